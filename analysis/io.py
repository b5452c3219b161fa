"""Loading and validating the experiment-directory tables (docs/experiment-directory.md).

`load_experiment` reads a directory (or a bare trials.csv and whatever sits beside
it); the `validate_*` functions check one table each and return a cleaned copy:
types parsed, vocabulary checked, factors that cannot matter normalised, a `cell`
column built when the table has none. Problems are `AnalysisError`s that name the
table, the column and the bad values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.final import MEANS as FINAL_MEANS
from search_spaces.claims import ClaimSpec, parse_claims
from study.vocabulary import replicate_sets, storage, tables
from study.vocabulary.factors import (
    CATEGORICAL_VALUES,
    RATE_FACTORS,
    RATE_LAYER,
    SCIENTIFIC_FACTORS,
    STATUSES,
    canonical_values,
    cell_name,
    is_diverged,
)

# The least a trials table needs: which trial, did it finish, how long it trained, its
# score, and the two factors the study is about.
REQUIRED_TRIAL_COLUMNS = ("trial_id", "status", "epochs", "best_val_acc", "bn", "dropout")
REQUIRED_EPOCH_COLUMNS = ("trial_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc")
REQUIRED_CV_COLUMNS = ("config_id", "val_acc")
REQUIRED_CV_SUMMARY_COLUMNS = ("config_id", "val_acc_mean", "val_acc_std")
REQUIRED_FINAL_COLUMNS = ("config_id", "seed", "test_acc")
REPLICATE_KINDS = ("seed", "fold")
# How an older table (or a hand-made one) says that training diverged in its error column.
DIVERGED_ERROR_WORDS = ("DivergedError", "training loss became")
ACCURACY_COLUMNS = ("best_val_acc", "val_acc", "train_acc")
FILES = {
    "trials": tables.TRIALS,
    "epochs": tables.EPOCHS,
    "cv": tables.CV,
    "cv_summary": tables.CV_SUMMARY,
    "final": tables.FINAL,
    "study": tables.STUDY,
}
_STRING_COLUMNS = {"trial_id": str, "config_id": str, "cell": str}


@dataclass(frozen=True)
class Tables:
    """Everything an experiment directory holds that the analysis reads (validated)."""

    trials: pd.DataFrame
    epochs: pd.DataFrame | None = None
    cv: pd.DataFrame | None = None
    cv_summary: pd.DataFrame | None = None
    final: pd.DataFrame | None = None
    # Nuisance search ranges from study.json: name -> (low, high, log). None when unknown.
    search_ranges: dict | None = None
    # ASHA's reduction factor from study.json. None when unknown (the fidelity check infers it).
    reduction_factor: float | None = None
    source: str = ""
    # Every replicate set of the experiment, by name (docs/command-line.md, 'Replicate sets'), the experiment's own
    # stage 2 (`cv`) among them; empty when only `cv` is given (a table passed by hand).
    replicate_sets: dict = field(default_factory=dict)
    own_set: str | None = None  # the name of the set in the experiment directory itself (cv.csv)
    # The claims the space declared (study.json's ``space.claims``); None: the shipped claims.
    claims: tuple[ClaimSpec, ...] | None = None


def load_experiment(path: str | Path) -> Tables:
    """Read an experiment directory (a local path, or a URI such as ``s3://bucket/prefix/NAME``), or a
    trials CSV with the other tables beside it. The tables come back validated and typed (`Tables`):
    trials, epochs, cv, cv_summary and final as DataFrames, None where the experiment has no such file."""
    if tables.is_uri(str(path)):
        return _load_remote(str(path))
    path = Path(path)
    if path.is_dir():
        folder, trials_path = path, path / FILES["trials"]
        if not trials_path.is_file():
            raise AnalysisError(
                f"experiment directory {str(path)!r} has no {FILES['trials']}; "
                "pass a directory written by `study run` or the path of a trials CSV"
            )
    elif path.is_file():
        folder, trials_path = path.parent, path
    else:
        raise AnalysisError(f"{str(path)!r} does not exist; pass an experiment directory or a trials.csv file")
    trials = validate_trials(read_csv(trials_path))
    optional = {}
    for key in ("epochs", "cv", "cv_summary", "final"):
        file = folder / FILES[key]
        # A bare CSV given by path only picks up siblings when it is the standard trials.csv.
        if file.is_file() and file != trials_path:
            optional[key] = read_csv(file)
    cv = validate_cv(optional["cv"]) if "cv" in optional else None
    own = set_name_of(folder, cv) if cv is not None else None
    sets = {own: cv} if cv is not None else {}
    if folder / FILES["trials"] == trials_path:
        sets.update(read_replicate_sets(folder, taken=set(sets)))
    return Tables(
        trials=trials,
        epochs=validate_epochs(optional["epochs"]) if "epochs" in optional else None,
        cv=cv,
        cv_summary=validate_cv_summary(optional["cv_summary"]) if "cv_summary" in optional else None,
        final=validate_final(optional["final"]) if "final" in optional else None,
        search_ranges=read_search_ranges(folder / FILES["study"]),
        reduction_factor=read_reduction_factor(folder / FILES["study"]),
        source=str(path),
        replicate_sets=sets,
        own_set=own,
        claims=read_claims(folder / FILES["study"]),
    )


def set_name_of(folder: Path, cv: pd.DataFrame) -> str:
    """The name of the replicate set whose cv.csv is in `folder`: from its cv.json, else from the table."""
    record = folder / tables.CV_RECORD
    name = None
    if record.is_file():
        try:
            name = replicate_sets.name_from_record(json.loads(record.read_text()))
        except (ValueError, AttributeError):
            name = None
    if name is None:
        name = replicate_sets.name_from_table(cv.get("replicate_kind", ()), cv.get("replicate", ()))
    return name


def read_replicate_sets(folder: Path, taken: set) -> dict[str, pd.DataFrame]:
    """The named sets in `folder/replicates/NAME/` that have a cv.csv (an interrupted set has none yet)."""
    sets = {}
    root = folder / replicate_sets.SETS_DIR
    for sub in sorted(root.iterdir()) if root.is_dir() else ():
        if (sub / tables.CV).is_file() and sub.name not in taken:
            sets[sub.name] = validate_cv(read_csv(sub / tables.CV))
    return sets


def _load_remote(uri: str) -> Tables:
    """An experiment in remote storage: its tables and study.json copied to a temporary folder, then read."""
    import tempfile

    uri = uri.rstrip("/")
    try:
        present = set(storage.files_in(uri))
        names = [name for name in FILES.values() if name in present]
        # The replicate sets beside the experiment's own: replicates/NAME/cv.csv and cv.json.
        for folder in storage.folders_in(f"{uri}/{replicate_sets.SETS_DIR}"):
            in_set = set(storage.files_in(f"{uri}/{replicate_sets.SETS_DIR}/{folder}"))
            names += [f"{replicate_sets.SETS_DIR}/{folder}/{name}" for name in (tables.CV, tables.CV_RECORD) if name in in_set]
    except (OSError, ValueError) as exc:  # an unknown scheme, a missing bucket, no credentials
        raise AnalysisError(f"cannot read the experiment {uri!r} ({exc}); check the URI and the credentials") from exc
    if tables.TRIALS not in names:
        raise AnalysisError(f"experiment {uri!r} has no {tables.TRIALS}; pass the experiment `study run` wrote there")
    with tempfile.TemporaryDirectory(prefix="bn-dropout-analysis-") as local:
        for name in names:
            (Path(local) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(local) / name).write_bytes(storage.read_bytes(uri, name))
        loaded = load_experiment(local)
    return Tables(**{**vars(loaded), "source": uri})


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV with identifier columns kept as strings."""
    try:
        # low_memory=False: one type per column over the whole file (else a long table's mixed `error` column
        # warns, and its chunks may come back typed differently).
        return pd.read_csv(path, dtype=_STRING_COLUMNS, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise AnalysisError(f"{str(path)!r} is empty; it needs a header row and one row per trial") from exc
    except UnicodeDecodeError as exc:  # a binary file, or text in UTF-16 and the like
        raise AnalysisError(
            f"{str(path)!r} is not a UTF-8 CSV ({exc.reason} at byte {exc.start}); save it as UTF-8 text with a "
            "header row and one row per trial") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise AnalysisError(f"{str(path)!r} is not a readable CSV ({exc}); pass the table `study run` wrote, or "
                            "one with a header row and one row per trial") from exc
    except OSError as exc:  # unreadable: permissions, a folder, an I/O error
        raise AnalysisError(f"cannot read {str(path)!r} ({exc.strerror or exc}); check its permissions") from exc


def read_search_ranges(path: Path) -> dict | None:
    """Nuisance ranges recorded in study.json (``space.nuisance``), if any."""
    def ranges(record: dict) -> dict:
        return {name: (float(r["low"]), float(r["high"]), bool(r.get("log", False)))
                for name, r in record["space"]["nuisance"].items()}

    return _from_study_record(path, ranges)


def read_reduction_factor(path: Path) -> float | None:
    """ASHA's reduction factor recorded in study.json (``plan.scheduler.reduction_factor``), if any."""
    return _from_study_record(path, lambda record: float(record["plan"]["scheduler"]["reduction_factor"]))


def read_claims(path: Path) -> tuple[ClaimSpec, ...] | None:
    """The claims recorded in study.json (``space.claims``), if the space declared any."""
    record = _from_study_record(path, lambda record: record["space"]["claims"])
    return None if record is None else parse_claims(record, f"the claims recorded in {str(path)!r}")


def _from_study_record(path: Path, read):
    """`read(study.json's record)`, or None when the file is absent or lacks what `read` looks for."""
    if not path.is_file():
        return None
    try:
        return read(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def validate_trials(frame: pd.DataFrame, metric: str = "best_val_acc") -> pd.DataFrame:
    """Check and clean a trials table; returns a new DataFrame.

    - required columns present (`REQUIRED_TRIAL_COLUMNS`, and `metric`);
    - `status` one of completed / pruned / diverged / error; `trial_id` unique;
    - diverged trials labelled one way (`study.vocabulary.factors.is_diverged`): a non-finite
      loss or a final accuracy near chance is `diverged`, whatever the table said;
    - categorical factors in the vocabulary, `augment` parsed from true/false;
    - rates in [0, 1); accuracies fractions in [0, 1];
    - `max_epochs` filled with the largest `epochs` when the column is absent;
    - factors that cannot matter normalised (as `study.vocabulary.factors.normalise_factors`);
    - `cell` built from the factors that vary when the column is absent.
    """
    _check_columns("trials", frame, (*REQUIRED_TRIAL_COLUMNS, metric))
    if len(frame) == 0:
        raise AnalysisError("the trials table is empty (0 rows); run a study first or pass a table with one row per trial")
    df = frame.copy()
    df["trial_id"] = df["trial_id"].astype(str)
    dup = df["trial_id"][df["trial_id"].duplicated()].unique()
    if len(dup):
        raise AnalysisError(f"trials table has duplicate trial_id values: {_quote(dup)}; each trial must appear once")
    df["status"] = df["status"].astype(str).str.strip().str.lower()
    _check_values("trials", df, "status", STATUSES)
    df["epochs"] = _numeric("trials", df, "epochs")
    if "max_epochs" in df.columns:
        df["max_epochs"] = _numeric("trials", df, "max_epochs")
        df["max_epochs"] = df["max_epochs"].fillna(df["epochs"].max())
    else:
        df["max_epochs"] = df["epochs"].max()
    for column in (metric, *ACCURACY_COLUMNS, "train_loss", "val_loss", "gap", "best_epoch", "epoch_s", "samples_per_s"):
        if column in df.columns:
            df[column] = _numeric("trials", df, column)
    for column in ACCURACY_COLUMNS + ((metric,) if metric not in ACCURACY_COLUMNS else ()):
        if column in df.columns:
            _check_fraction("trials", df, column)
    for column in ("train_eval_loss", "train_eval_acc"):
        if column in df.columns:
            df[column] = _numeric("trials", df, column)
    df = with_eval_mode_gap(df)
    df["status"] = label_diverged(df)
    df = validate_factors("trials", df)
    for column in ("lr", "weight_decay", "momentum"):
        if column in df.columns:
            df[column] = _numeric("trials", df, column)
    if "experiment" in df.columns:
        df["experiment"] = pd.to_numeric(df["experiment"], errors="coerce").astype("Int64")
    if "cell" not in df.columns or df["cell"].isna().any():
        built = build_cells(df)
        df["cell"] = built if "cell" not in df.columns else df["cell"].fillna(built)
    df["cell"] = df["cell"].astype(str)
    return df


def with_eval_mode_gap(df: pd.DataFrame) -> pd.DataFrame:
    """`gap` = val_loss - train_eval_loss (clean training images, eval mode), or no gap column.

    A gap against the train-mode loss (Dropout and augmentation on) shrinks with any
    regulariser because the training loss is inflated, so a table without
    `train_eval_loss` gets no `gap` rather than a misleading one.
    """
    if {"val_loss", "train_eval_loss"} <= set(df.columns):
        return df.assign(gap=df["val_loss"] - df["train_eval_loss"])
    return df.drop(columns=[c for c in ("gap",) if c in df.columns])


def label_diverged(df: pd.DataFrame) -> pd.Series:
    """Statuses with every diverged run labelled `diverged` (`study.vocabulary.factors.is_diverged`, for every table).

    A run that reported a validation accuracy and a non-finite training loss diverged,
    as does one that trained the full budget and ended near chance; a row with no
    metrics at all (a blank in a hand-made table) is no evidence of divergence.
    """
    status = df["status"].copy()
    nan = pd.Series(np.nan, index=df.index)
    acc = df["val_acc"] if "val_acc" in df.columns else df.get("best_val_acc", nan)
    loss = df["train_loss"].where(acc.notna(), 0.0) if "train_loss" in df.columns else nan.fillna(0.0)
    full = (df["epochs"] >= df["max_epochs"]) if {"epochs", "max_epochs"} <= set(df.columns) else status == "completed"
    trained = status.isin(("completed", "pruned"))
    diverged = [is_diverged(l, a, f) for l, a, f in zip(loss.astype(float), acc.astype(float), full)]
    status[trained & np.array(diverged, dtype=bool)] = "diverged"
    if "error" in df.columns:
        said_so = df["error"].astype(str).str.contains("|".join(DIVERGED_ERROR_WORDS), regex=True, na=False)
        status[(status == "error") & said_so] = "diverged"
    return status


def validate_factors(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Vocabulary, types and normalisation of whichever scientific factor columns exist."""
    for factor, allowed in CATEGORICAL_VALUES.items():
        if factor not in df.columns:
            continue
        if df[factor].isna().any():
            rows = df.index[df[factor].isna()].tolist()
            raise AnalysisError(
                f"{table} column {factor!r} is empty in {len(rows)} row(s) (first: {rows[:5]}); "
                f"every row needs one of: {', '.join(map(str, allowed))}"
            )
        if factor == "augment":
            df[factor] = _boolean(table, df, factor)
        else:
            df[factor] = df[factor].astype(str).str.strip()
            _check_values(table, df, factor, allowed)
    for rate in RATE_FACTORS:
        if rate in df.columns:
            df[rate] = _numeric(table, df, rate).fillna(0.0)
            bad = df.loc[(df[rate] < 0) | (df[rate] >= 1), rate]
            if len(bad):
                raise AnalysisError(
                    f"{table} column {rate!r} has values outside [0, 1): {_quote(bad.unique())}; drop rates are probabilities"
                )
    # Equal networks, one cell: the vocabulary's rule, applied per placement (a dozen at most) to the columns there are.
    if "bn" in df.columns and "dropout" in df.columns:
        for bn, dropout in df[["bn", "dropout"]].drop_duplicates().itertuples(index=False):
            rows = (df["bn"] == bn) & (df["dropout"] == dropout)
            for factor, value in canonical_values(bn, dropout).items():
                if factor in df.columns:
                    df.loc[rows, factor] = value
    return df


def build_cells(df: pd.DataFrame) -> pd.Series:
    """A cell name per row from the factors that vary (rates only when they take few values)."""
    names = []
    for factor in SCIENTIFIC_FACTORS:
        if factor not in df.columns:
            continue
        values = df[factor]
        if factor in RATE_FACTORS and "dropout" in df.columns:
            # A rate that only comes with its placement (0 without it) adds nothing to the name.
            values = values[df["dropout"].isin(RATE_LAYER[factor])]
            if not is_discrete(values):
                continue
        if values.nunique(dropna=True) >= 2:
            names.append(factor)
    if not names:
        return pd.Series("all", index=df.index)
    return pd.Series([cell_name(row, names) for row in df[names].to_dict("records")], index=df.index)


def is_discrete(values: pd.Series) -> bool:
    """A rate column is a grid (cell-defining) when its values repeat: at most 10 distinct
    values, each used twice on average; sampled continuous rates are not."""
    values = values.dropna()
    k = values.nunique()
    return k <= 10 and k <= len(values) / 2


def validate_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    _check_columns("epochs", frame, REQUIRED_EPOCH_COLUMNS)
    df = frame.copy()
    df["trial_id"] = df["trial_id"].astype(str)
    for column in df.columns:
        if column != "trial_id":
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df = df.dropna(subset=["epoch"])
    df["epoch"] = df["epoch"].astype(int)
    df = with_eval_mode_gap(df)
    for column in ("train_acc", "val_acc"):
        _check_fraction("epochs", df, column)
    return df.sort_values(["trial_id", "epoch"], ignore_index=True)


def _with_cell(df: pd.DataFrame) -> pd.DataFrame:
    """A CV table without a `cell` column treats each configuration as its own cell."""
    if "cell" not in df.columns:
        df["cell"] = df["config_id"]
    df["cell"] = df["cell"].astype(str)
    return df


def validate_cv(frame: pd.DataFrame) -> pd.DataFrame:
    """Check and clean a replicates table (cv.csv: one row per configuration and replicate).

    A replicate is a seed (`replicate_kind` seed: the configuration retrained with
    another seed on the study's fixed split) or a fold (`fold`: retrained on the
    other folds, validated on this one). A table with a `fold` column and no
    `replicate` column (written by hand, or by an older `study cv`) has folds.
    """
    _check_columns("cv", frame, REQUIRED_CV_COLUMNS)
    df = frame.copy()
    df["config_id"] = df["config_id"].astype(str)
    if "replicate" not in df.columns:
        if "fold" not in df.columns:
            raise AnalysisError(
                "cv table needs a replicate column (or a fold column for cross-validation folds); "
                f"it has: {', '.join(map(str, frame.columns))}"
            )
        df["replicate"] = df["fold"]
        df["replicate_kind"] = df.get("replicate_kind", "fold")
    if "replicate_kind" not in df.columns:
        df["replicate_kind"] = np.where(df["fold"].notna(), "fold", "seed") if "fold" in df.columns else "seed"
    df["replicate_kind"] = df["replicate_kind"].fillna("fold" if "fold" in df.columns else "seed").astype(str)
    _check_values("cv", df, "replicate_kind", REPLICATE_KINDS)
    for column in ("replicate", "fold", "val_acc", "val_loss", "train_loss", "train_acc", "train_eval_loss",
                   "n_train", "n_val", "epochs", "max_epochs"):
        if column in df.columns:
            df[column] = _numeric("cv", df, column)
    _check_fraction("cv", df, "val_acc")
    df = with_eval_mode_gap(df)
    if "status" in df.columns:
        df["status"] = df["status"].astype(str).str.strip().str.lower()
        _check_values("cv", df, "status", STATUSES)
    else:
        df["status"] = np.where(df["val_acc"].notna(), "completed", "error")
    df["status"] = label_diverged(df)
    return _with_cell(validate_factors("cv", df))


def validate_cv_summary(frame: pd.DataFrame) -> pd.DataFrame:
    _check_columns("cv_summary", frame, REQUIRED_CV_SUMMARY_COLUMNS)
    df = frame.copy()
    df["config_id"] = df["config_id"].astype(str)
    for column in df.columns:
        if column.startswith(("val_", "gap_", "n_folds", "n_replicates")):
            df[column] = _numeric("cv_summary", df, column)
    _check_fraction("cv_summary", df, "val_acc_mean")
    return _with_cell(validate_factors("cv_summary", df))


def validate_final(frame: pd.DataFrame) -> pd.DataFrame:
    _check_columns("final", frame, REQUIRED_FINAL_COLUMNS)
    df = frame.copy()
    df["config_id"] = df["config_id"].astype(str)
    for column in ("seed", "test_acc", *FINAL_MEANS):
        if column in df.columns:
            df[column] = _numeric("final", df, column)
    _check_fraction("final", df, "test_acc")
    df = validate_factors("final", df)
    if "cell" not in df.columns:
        df["cell"] = df["config_id"]
    df["cell"] = df["cell"].astype(str)
    return df


def _check_columns(table: str, frame: pd.DataFrame, required) -> None:
    missing = [c for c in dict.fromkeys(required) if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{table} table is missing required column(s): {', '.join(missing)}; "
            f"it has: {', '.join(map(str, frame.columns)) or '(no columns)'} (docs/experiment-directory.md lists the columns)"
        )


def _check_values(table: str, df: pd.DataFrame, column: str, allowed) -> None:
    bad = sorted(set(df[column].dropna()) - set(allowed), key=str)
    if df[column].isna().any():
        bad.append("<empty>")
    if bad:
        raise AnalysisError(
            f"{table} column {column!r} has value(s) {_quote(bad)} not in the vocabulary; allowed: {', '.join(map(str, allowed))}"
        )


def _numeric(table: str, df: pd.DataFrame, column: str) -> pd.Series:
    if pd.api.types.is_float_dtype(df[column]):
        return df[column]
    values = pd.to_numeric(df[column], errors="coerce")
    bad = df.loc[values.isna() & df[column].notna(), column]
    if len(bad):
        raise AnalysisError(f"{table} column {column!r} has non-numeric value(s): {_quote(bad.unique())}")
    return values.astype(float)


def _boolean(table: str, df: pd.DataFrame, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(df[column]):
        return df[column]
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = df[column].astype(str).str.strip().str.lower()
    bad = df.loc[~text.isin(mapping), column]
    if len(bad):
        raise AnalysisError(f"{table} column {column!r} has value(s) {_quote(bad.unique())}; expected true or false")
    return text.map(mapping).astype(bool)


def _check_fraction(table: str, df: pd.DataFrame, column: str) -> None:
    values = df[column].dropna()
    if len(values) and (values.max() > 1.0 or values.min() < 0.0):
        hint = " (they look like percentages; divide by 100)" if values.max() <= 100 else ""
        raise AnalysisError(
            f"{table} column {column!r} must hold accuracies as fractions in [0, 1], "
            f"found values from {values.min():g} to {values.max():g}{hint}"
        )


def _quote(values, limit: int = 8) -> str:
    values = list(values)
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


__all__ = [
    "REQUIRED_TRIAL_COLUMNS",
    "Tables",
    "load_experiment",
    "read_csv",
    "validate_trials",
    "validate_epochs",
    "validate_cv",
    "validate_cv_summary",
    "validate_final",
]
