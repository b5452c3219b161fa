"""The `SearchSpace` type, its validation, and loading by name or path.

A space file (YAML or TOML) has these top-level keys:

``description``
    One line, shown by ``study spaces``.
``scientific``
    Factor -> list of values (categorical; every combination is a cell), or, for the
    drop rates ``p_conv`` / ``p_fc`` only, a range ``{low, high}``: a *continuous*
    scientific factor, sampled by Optuna inside each cell where its Dropout exists
    and recorded per trial (rate-response curves).
``cells``
    An explicit list of named cells, each ``{name, experiment, description,
    factors: {...}, fixed: {...}, claims: [...]}``. ``factors`` gives scientific
    values (on top of the space's ``fixed`` ones); ``fixed`` gives settings for that
    cell only (e.g. an experiment without an LR schedule), which take precedence over
    nuisance ranges; ``claims`` names the claims whose contrasts use the cell (checked).
    Alone, the list is the whole space; beside ``scientific`` it adds named cells to
    the factorial ("a factorial plus the cells each claim needs"). An added cell
    without a name is named by the factorial's factors and its own.
``claims``
    The claims the study decides (`search_spaces.claims`): ids of shipped claims
    (``search_spaces/claims.yaml``) and declarations of new ones. Each is checked
    against the cells when the space is loaded: a claim whose contrast has no cells
    to compare is an error. Without this key every shipped claim is reported, and
    those whose cells the space lacks say so.
``nuisance``
    Name -> range ``{low, high, log, when}``, tuned by Optuna inside every cell and
    never compared. ``when: {dropout: [fc, all]}`` restricts a range to the cells
    whose factor takes one of the listed values (elsewhere the value is not sampled).
``fixed``
    Name -> value, the same for every trial.
``early_stopping``
    ``true`` (default) lets ASHA stop trials early inside a cell; ``false`` runs every
    trial to the end (for spaces without nuisance ranges, whose trials are replicates).

A space is validated when it is loaded: unknown factor names, values outside the
vocabulary (`study.vocabulary.factors`), empty or inverted ranges and conditions on unknown names
are each a `SpaceError` naming the file, the entry and the value.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from search_spaces.claims import CLAIMS_FILE, ClaimSpec, cells_used, check_claims_against_cells, parse_claims, shipped_claims
from search_spaces.limits import check_expansion, check_file_size
from study.vocabulary.config import METADATA_KEYS, ConfigError, TrialConfig
from study.vocabulary.errors import UserError
from study.vocabulary.factors import (
    CATEGORICAL_VALUES, NUISANCE, RANGED_NUISANCE, SCIENTIFIC_FACTORS, cell_name, normalise_factors,
)
from study.vocabulary.tables import CELL_SETTINGS

SPACES_DIR = Path(__file__).parent
RANGED = RANGED_NUISANCE  # hyperparameters that may be tuned over a range
# Scientific factors that may be continuous (a range sampled inside each cell).
CONTINUOUS = ("p_conv", "p_fc")
TOP_LEVEL_KEYS = ("description", "scientific", "cells", "nuisance", "fixed", "early_stopping", "claims")
CELL_KEYS = ("name", "experiment", "description", "factors", "fixed", "claims")
# Cell names become file names (optuna/<cell>.log): keep them to a safe alphabet.
_CELL_NAME = re.compile(r"^[A-Za-z0-9_.=,+-]+$")


class SpaceError(UserError):
    """A search space file is invalid; the message names the file, the entry and the value."""


@dataclass(frozen=True)
class Range:
    """A continuous range, sampled on a log or linear scale.

    `when` maps a scientific factor to the values for which the hyperparameter exists
    (``{"dropout": ("fc", "all")}``); empty means always.
    """

    low: float
    high: float
    log: bool = False
    when: dict[str, tuple] = field(default_factory=dict)

    def applies(self, values: dict[str, Any]) -> bool:
        """True when every condition holds for these (full, normalised) factor values."""
        return all(values.get(name) in allowed for name, allowed in self.when.items())

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.when:
            out["when"] = {name: list(values) for name, values in self.when.items()}
        return out


@dataclass(frozen=True)
class Cell:
    """One scientific cell: what every trial of the cell shares, and what it samples.

    - `name`: stable, readable key (``"bn=pre_act,dropout=fc"`` or an explicit name such
      as ``"exp4"``); names the trial's `cell` column and the cell's Optuna journal.
    - `index`: position in the space's cell list (seeds the cell's sampler).
    - `factors`: every scientific factor, normalised (the network this cell trains).
    - `settings`: the values a trial of this cell must carry on top of the space's
      fixed values: the scientific values the space declares, and per-cell fixed
      settings (blog experiments: `schedule`, ...).
    - `ranges`: what Optuna samples inside the cell: nuisance ranges and continuous
      rates, conditions already resolved for this cell.
    """

    name: str
    index: int
    factors: dict[str, Any]
    settings: dict[str, Any]
    ranges: dict[str, Range]
    experiment: int | None = None
    description: str = ""
    claims: tuple[str, ...] = ()  # the claims whose contrasts use this cell, as the space file says

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "index": self.index}
        if self.experiment is not None:
            out["experiment"] = self.experiment
        if self.description:
            out["description"] = self.description
        out.update(factors=dict(self.factors), settings=dict(self.settings))
        out["ranges"] = {k: r.to_dict() for k, r in self.ranges.items()}
        if self.claims:
            out["claims"] = list(self.claims)
        return out


@dataclass(frozen=True)
class CellDef:
    """An explicitly listed cell, as written in the space file (before normalisation)."""

    name: str | None
    experiment: int | None
    description: str
    factors: dict[str, Any]
    fixed: dict[str, Any]
    claims: tuple[str, ...] = ()  # ids of the claims whose contrasts use this cell


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    scientific: dict[str, Any]  # factor -> values compared (list), or Range for a continuous rate
    nuisance: dict[str, Range]  # tuned inside every cell (where its condition holds)
    fixed: dict[str, Any] = field(default_factory=dict)  # same for every trial
    source: str = ""
    explicit_cells: tuple[CellDef, ...] = ()  # set when the space lists (or adds) named cells
    early_stopping: bool = True
    factorial: dict[str, list] = field(default_factory=dict)  # the `scientific` lists as written: crossed
    claims: tuple[ClaimSpec, ...] = ()  # what the study decides; empty: every shipped claim

    @property
    def factors(self) -> tuple[str, ...]:
        """The categorical scientific factors that define cells, in vocabulary order."""
        return tuple(f for f in SCIENTIFIC_FACTORS if isinstance(self.scientific.get(f), list))

    @property
    def continuous(self) -> dict[str, Range]:
        """Continuous scientific factors (rates sampled inside cells)."""
        return {f: r for f, r in self.scientific.items() if isinstance(r, Range)}

    def cells(self) -> list[dict[str, Any]]:
        """Every cell's values of `factors`, normalised; equal networks are one cell."""
        return [{f: cell.factors[f] for f in self.factors} for cell in self.named_cells()]

    def named_cells(self) -> list[Cell]:
        """The cells in order, each with its name, settings and sampled ranges."""
        return _expand_cells(self)

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "description": self.description,
            "scientific": {k: (v.to_dict() if isinstance(v, Range) else v) for k, v in self.scientific.items()},
            "nuisance": {k: r.to_dict() for k, r in self.nuisance.items()},
            "fixed": self.fixed,
            "early_stopping": self.early_stopping,
            "source": self.source,
        }
        if self.factorial and self.explicit_cells:
            out["factorial"] = self.factorial
        out["cells"] = [cell.to_dict() for cell in self.named_cells()]
        if self.claims:
            out["claims"] = [claim.to_dict() for claim in self.claims]
        return out


def list_spaces() -> dict[str, str]:
    """Name -> one-line description of every space shipped in this folder."""
    return {p.stem: load_space(p.stem).description for p in sorted(_space_files())}


def _space_files() -> list[Path]:
    return [p for p in SPACES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".toml") and p != CLAIMS_FILE]


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load and validate a space: a shipped name (see `list_spaces`) or a YAML/TOML path."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = {p.stem: p for p in _space_files()}
        if str(name_or_path) not in shipped:
            raise SpaceError(
                f"unknown search space {str(name_or_path)!r}; shipped spaces: {', '.join(sorted(shipped))}; "
                "or pass the path of a .yaml or .toml file (run `study spaces` to list them)"
            )
        path = shipped[str(name_or_path)]
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise SpaceError(f"search space file {str(path)!r} must end in .yaml, .yml or .toml")
    if not path.is_file():
        raise SpaceError(f"search space file {str(path)!r} does not exist")
    check_file_size(path, SpaceError)  # before reading: a hostile file is refused in milliseconds
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SpaceError(f"search space file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    check_expansion(data, f"search space file {str(path)!r}", SpaceError)  # YAML aliases: before anything walks it
    return parse_space(data, name=path.stem, source=str(path))


def parse_space(data: Any, name: str, source: str = "<dict>") -> SearchSpace:
    """Validate a space given as a dict (the parsed file)."""
    where = f"search space {source!r}"
    if not isinstance(data, dict):
        raise SpaceError(f"{where} must be a mapping with keys scientific (or cells), nuisance, fixed; got {type(data).__name__}")
    unknown = set(data) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise SpaceError(f"{where} has unknown top-level keys {sorted(unknown)}; allowed: {', '.join(TOP_LEVEL_KEYS)}")
    fixed = _parse_fixed(data.get("fixed") or {}, where)
    declared = _parse_scientific(data.get("scientific") or {}, where)
    factorial = {f: v for f, v in declared.items() if isinstance(v, list)}
    explicit = _parse_cells(data["cells"], where) if data.get("cells") else ()
    if explicit:
        # The factors that vary over all cells, factorial and added alike (continuous rates as declared).
        every = _factorial_values(factorial, fixed) if factorial else []
        every += [{**fixed, **c.factors} for c in explicit]
        scientific = {**_varying_values(every), **{f: r for f, r in declared.items() if isinstance(r, Range)}}
    else:
        scientific = declared
    nuisance_section = data.get("nuisance") or {}
    if not isinstance(nuisance_section, dict):
        raise SpaceError(f"{where}: 'nuisance' must map names to ranges {{low, high, log}}, got {nuisance_section!r}")
    nuisance = {k: _parse_range(f"nuisance.{k}", v, where, allowed=RANGED) for k, v in nuisance_section.items()}
    # Named cells may override a fixed value (the factorial's base); the factorial's own factors may not.
    clash = (set(declared) | set(nuisance)) & set(fixed)
    if clash:
        raise SpaceError(f"{where}: {sorted(clash)} cannot be both fixed and searched")
    early_stopping = data.get("early_stopping", True)
    if not isinstance(early_stopping, bool):
        raise SpaceError(f"{where}: 'early_stopping' must be true or false, got {early_stopping!r}")
    space = SearchSpace(
        name, str(data.get("description", "")), scientific, nuisance, fixed, source, explicit, early_stopping,
        factorial if explicit else {},
    )
    _check_conditions(space, where)
    cells = _expand_cells(space, where)
    _check_ranges_used(space, cells, where)
    _check_builds(space, cells, where)
    claims = parse_claims(data["claims"], where, shipped=shipped_claims()) if "claims" in data else ()
    check_claims_against_cells(claims, [c.factors for c in cells], where)
    _check_cells_serve_claims(cells, claims, where)
    return replace(space, claims=claims)


def _check_cells_serve_claims(cells: list[Cell], claims, where: str) -> None:
    """A cell that says it serves a claim must be one of the cells that claim's contrast uses."""
    by_id = {claim.id: claim for claim in claims}
    factors = [c.factors for c in cells]
    for cell in cells:
        for cid in cell.claims:
            if cid not in by_id:
                raise SpaceError(f"{where}: cell {cell.name!r} says it serves claim {cid!r}, which the space's 'claims' do not list")
            if cell.index not in cells_used(by_id[cid], factors):
                raise SpaceError(
                    f"{where}: cell {cell.name!r} says it serves claim {cid!r}, but that claim's contrast does not use it "
                    f"(the claim compares {by_id[cid].describe()})"
                )


def _parse_fixed(section: Any, where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise SpaceError(f"{where}: 'fixed' must map names to values, got {section!r}")
    for key in section:
        if key in METADATA_KEYS:
            raise SpaceError(f"{where}: fixed.{key} is set by the study for each trial and cannot be fixed")
    return dict(section)


def _parse_scientific(section: Any, where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise SpaceError(f"{where}: 'scientific' must map factor names to lists of values, got {section!r}")
    out: dict[str, Any] = {}
    for factor, values in section.items():
        _check_factor_name(factor, where, f"scientific.{factor}")
        if isinstance(values, dict):
            if factor not in CONTINUOUS:
                raise SpaceError(
                    f"{where}: scientific.{factor} is a range {values!r}, but only {', '.join(CONTINUOUS)} "
                    f"can be continuous; give {factor!r} a list of values"
                )
            out[factor] = _parse_range(f"scientific.{factor}", values, where, allowed=CONTINUOUS)
            continue
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{where}: scientific.{factor} needs a non-empty list of values, got {values!r}")
        for value in values:
            _check_factor_value(factor, value, where, f"scientific.{factor}")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"{where}: scientific.{factor} lists a value twice: {values!r}")
        out[factor] = list(values)
    return out


def _check_factor_name(factor: Any, where: str, entry: str) -> None:
    if factor not in SCIENTIFIC_FACTORS:
        raise SpaceError(f"{where}: {entry}: unknown scientific factor {factor!r}; known factors: {', '.join(SCIENTIFIC_FACTORS)}")


def _check_factor_value(factor: str, value: Any, where: str, entry: str) -> None:
    allowed = CATEGORICAL_VALUES.get(factor)
    if allowed is not None:
        if value not in allowed or (isinstance(value, bool) != isinstance(allowed[0], bool)):
            raise SpaceError(
                f"{where}: {entry}: value {value!r} of factor {factor!r} is not in the vocabulary; "
                f"allowed: {', '.join(str(v).lower() if isinstance(v, bool) else str(v) for v in allowed)}"
            )
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise SpaceError(f"{where}: {entry}: rate {factor!r} has value {value!r}; expected a number in [0, 1)")


def _parse_range(entry: str, spec: Any, where: str, allowed: tuple[str, ...]) -> Range:
    key = entry.split(".", 1)[1]
    if key not in allowed:
        raise SpaceError(
            f"{where}: {entry}: {key!r} cannot be tuned over a range; tunable: {', '.join(allowed)} "
            f"(nuisance names: {', '.join(NUISANCE)})"
        )
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log", "when"}:
        raise SpaceError(f"{where}: {entry} must be {{low: ..., high: ..., log: true|false, when: {{factor: [values]}}}}, got {spec!r}")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise SpaceError(f"{where}: {entry}: bounds must be numbers, got low={low!r} high={high!r}")
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: {entry}: 'log' must be true or false, got {log!r}")
    if not low < high:
        raise SpaceError(f"{where}: {entry}: range is empty or inverted: low={low!r} must be below high={high!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: {entry}: a log-scale range needs low > 0, got low={low!r}")
    when = _parse_condition(entry, spec.get("when") or {}, where)
    return Range(float(low), float(high), log, when)


def _parse_condition(entry: str, spec: Any, where: str) -> dict[str, tuple]:
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: {entry}.when must map a scientific factor to its values, got {spec!r}")
    when = {}
    for factor, values in spec.items():
        if factor not in CATEGORICAL_VALUES:
            raise SpaceError(
                f"{where}: {entry}.when: condition on unknown name {factor!r}; a condition names a categorical "
                f"scientific factor: {', '.join(CATEGORICAL_VALUES)}"
            )
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SpaceError(f"{where}: {entry}.when.{factor} needs at least one value")
        for value in values:
            _check_factor_value(factor, value, where, f"{entry}.when.{factor}")
        when[factor] = tuple(values)
    return when


def _parse_cells(section: Any, where: str) -> tuple[CellDef, ...]:
    if not isinstance(section, list) or not section:
        raise SpaceError(f"{where}: 'cells' must be a non-empty list of cells, got {section!r}")
    cells, names, experiments = [], set(), set()
    for i, spec in enumerate(section):
        entry = f"cells[{i}]"
        if not isinstance(spec, dict):
            raise SpaceError(f"{where}: {entry} must be a mapping with keys {', '.join(CELL_KEYS)}, got {spec!r}")
        unknown = set(spec) - set(CELL_KEYS)
        if unknown:
            raise SpaceError(f"{where}: {entry} has unknown keys {sorted(unknown)}; allowed: {', '.join(CELL_KEYS)}")
        experiment = spec.get("experiment")
        if experiment is not None and (isinstance(experiment, bool) or not isinstance(experiment, int) or experiment < 0):
            raise SpaceError(f"{where}: {entry}.experiment must be a non-negative integer, got {experiment!r}")
        if experiment is not None and experiment in experiments:
            raise SpaceError(f"{where}: {entry}.experiment {experiment!r} is used by another cell")
        name = spec.get("name")
        if name is None and experiment is not None:
            name = f"exp{experiment}"
        if name is not None:
            if not isinstance(name, str) or not _CELL_NAME.match(name):
                raise SpaceError(f"{where}: {entry}.name {name!r} must be letters, digits and _ . = , + - only")
            if name in names:
                raise SpaceError(f"{where}: {entry}.name {name!r} is used by another cell")
            entry = f"cells[{i}] ({name})"
        factors = spec.get("factors") or {}
        if not isinstance(factors, dict):
            raise SpaceError(f"{where}: {entry}.factors must map scientific factors to values, got {factors!r}")
        for factor, value in factors.items():
            _check_factor_name(factor, where, f"{entry}.factors.{factor}")
            _check_factor_value(factor, value, where, f"{entry}.factors.{factor}")
        fixed = spec.get("fixed") or {}
        if not isinstance(fixed, dict):
            raise SpaceError(f"{where}: {entry}.fixed must map names to values, got {fixed!r}")
        for key in fixed:
            if key in SCIENTIFIC_FACTORS or key in METADATA_KEYS:
                raise SpaceError(f"{where}: {entry}.fixed.{key}: put scientific factors under 'factors'; 'cell' and 'experiment' are set by the study")
            if key not in (*NUISANCE, *CELL_SETTINGS):
                # Stage 2 and the final evaluation rebuild a trial from study.json's space-wide values and its
                # trials.csv row: a cell's own value of any other setting would be lost there.
                raise SpaceError(
                    f"{where}: {entry}.fixed.{key}: a cell may fix only {', '.join((*NUISANCE, *CELL_SETTINGS))}; "
                    f"set {key!r} in the space's top-level 'fixed' section (it then holds for every cell)")
        serves = spec.get("claims") or []
        if not isinstance(serves, list) or not all(isinstance(c, str) for c in serves):
            raise SpaceError(f"{where}: {entry}.claims must be a list of claim ids, got {serves!r}")
        names.add(name)
        experiments.add(experiment)
        cells.append(CellDef(name, experiment, str(spec.get("description", "")), dict(factors), dict(fixed), tuple(serves)))
    return tuple(cells)


def _defaults() -> dict[str, Any]:
    """Every config value at its default (what a trial gets when nothing sets it)."""
    return TrialConfig().to_flat()


def _full_factors(values: dict[str, Any]) -> dict[str, Any]:
    """All scientific factors, defaults filled in, normalised."""
    merged = {**_defaults(), **values}
    return {f: v for f, v in normalise_factors({f: merged[f] for f in SCIENTIFIC_FACTORS}).items()}


def _factorial_values(factorial: dict[str, list], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """Each combination of the factorial's values, on top of the fixed ones (not yet normalised)."""
    names = list(factorial)
    return [{**fixed, **dict(zip(names, values))} for values in itertools.product(*(factorial[f] for f in names))]


def _varying_values(cells: list[dict[str, Any]]) -> dict[str, list]:
    """Factor -> distinct values (normalised), for the factors that vary over these cells."""
    full = [_full_factors(c) for c in cells]
    out = {}
    for factor in SCIENTIFIC_FACTORS:
        values = []
        for f in full:
            if f[factor] not in values:
                values.append(f[factor])
        if len(values) > 1:
            out[factor] = values
    return out


def _check_conditions(space: SearchSpace, where: str) -> None:
    """A condition must name a factor this space compares or fixes (else it is a typo)."""
    declared = set(space.scientific) | set(space.factorial) | {k for k in space.fixed if k in SCIENTIFIC_FACTORS}
    for cell in space.explicit_cells:
        declared |= set(cell.factors)
    ranges = {**{f"nuisance.{k}": r for k, r in space.nuisance.items()}, **{f"scientific.{k}": r for k, r in space.continuous.items()}}
    for entry, rng in ranges.items():
        for factor in rng.when:
            if factor not in declared:
                raise SpaceError(
                    f"{where}: {entry}.when: condition on {factor!r}, which this space neither compares nor fixes; "
                    f"conditions may name: {', '.join(sorted(declared)) or 'nothing (declare the factor first)'}"
                )


def _expand_cells(space: SearchSpace, where: str | None = None) -> list[Cell]:
    where = where or f"search space {space.source!r}"
    # (name, experiment, description, values, factors that name it, declared factors, cell's fixed, claims served);
    # the factorial's cells come first (claims None: not listed), then the named ones.
    crossed = tuple(space.factorial) if space.explicit_cells else space.factors
    crossed_values = {f: space.factorial.get(f, space.scientific.get(f)) for f in crossed}
    candidates = [
        (None, None, "", values, crossed, crossed, {}, None)
        # A space of named cells alone has no factorial; any other crosses its lists (none: one cell).
        for values in (_factorial_values(crossed_values, space.fixed) if crossed or not space.explicit_cells else [])
    ]
    for d in space.explicit_cells:
        # An explicit cell carries its full factor values (those the space does not fix); unnamed beside
        # a factorial, it is named by the factorial's factors and its own.
        naming = tuple(f for f in SCIENTIFIC_FACTORS if f in crossed or f in d.factors) if crossed else space.factors
        declared = [f for f in SCIENTIFIC_FACTORS if f in d.factors or f in crossed or f not in space.fixed]
        candidates.append((d.name, d.experiment, d.description, {**space.fixed, **d.factors}, naming, declared, d.fixed, d.claims))
    seen: dict[str, str] = {}
    cells: list[Cell] = []
    for name, experiment, description, values, naming, declared, cell_fixed, serves in candidates:
        explicit = serves is not None
        full = _full_factors(values)
        identity = repr((sorted(full.items()), sorted(cell_fixed.items())))
        name = name or cell_name(full, naming) or "all"
        if identity in seen:
            if explicit:
                raise SpaceError(f"{where}: cells {seen[identity]!r} and {name!r} train the same network with the same settings")
            continue  # equal networks are one cell
        if name in seen.values():
            raise SpaceError(f"{where}: two cells are named {name!r}; give the added cell a 'name'")
        seen[identity] = name
        settings = {f: full[f] for f in SCIENTIFIC_FACTORS if f in declared}
        settings.update(cell_fixed)
        ranges = {}
        for rate, rng in space.continuous.items():
            # A rate exists only where its Dropout does (normalisation would zero it).
            if rng.applies(full) and normalise_factors({**full, rate: 0.5})[rate] != 0.0:
                ranges[rate] = rng
        for key, rng in space.nuisance.items():
            if key not in cell_fixed and rng.applies(full):
                ranges[key] = rng
        cells.append(Cell(name, len(cells), full, settings, ranges, experiment, description, tuple(serves or ())))
    return cells


def _check_ranges_used(space: SearchSpace, cells: list[Cell], where: str) -> None:
    for kind, ranges in (("nuisance", space.nuisance), ("scientific", space.continuous)):
        for key in ranges:
            if not any(key in cell.ranges for cell in cells):
                raise SpaceError(f"{where}: {kind}.{key} is sampled in no cell (its condition, or its Dropout, never holds)")


def _check_builds(space: SearchSpace, cells: list[Cell], where: str) -> None:
    """Every cell at both ends of every range must make a valid TrialConfig."""
    for cell in cells:
        for end in ("low", "high"):
            flat = {**space.fixed, **cell.settings, **{k: getattr(r, end) for k, r in cell.ranges.items()}}
            try:
                TrialConfig.from_flat(flat)
            except ConfigError as exc:
                raise SpaceError(f"{where}: cell {cell.name!r}: {exc}") from exc
