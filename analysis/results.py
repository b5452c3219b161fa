"""The analysis's results as types: what conclusions.json holds, field by field.

`analysis.conclusions` builds one `Conclusions`; the summary and the report read
its fields; `to_json` writes it (the only place it is serialised) and `from_json`
reads it back, so a report can be rebuilt from conclusions.json alone.

Scores are accuracies (or losses for claims on val_loss). A number that could not
be computed is None (null in the file): `analysis.conclusions` passes what it built
through the file's form once, so memory and file agree. A field marked `INLINE` is a
mapping whose entries sit beside the other fields in the file (a ranked cell's
factor values, a claim's group scores), as they always have.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field

from study.vocabulary.tables import jsonable

INLINE = {"inline": True}
Scalar = typing.Union[float, str, None]


@dataclass(frozen=True)
class Counts:
    """Rows of a design by what became of them (`analysed`: full budget, scored)."""

    trials: int
    completed: int
    pruned: int
    diverged: int
    error: int
    short: int  # completed before the full budget
    unscored: int
    analysed: int
    cells: int | None = None
    max_epochs: int | None = None


@dataclass(frozen=True)
class SelectedTrial:
    """The search trial whose configuration a cell's ranking entry stands for."""

    trial_id: str
    score: float | None
    config: dict[str, Scalar] = field(default_factory=dict, metadata=INLINE)  # nuisance values, drop rates


@dataclass(frozen=True)
class RankedCell:
    rank: int
    cell: str
    n: int
    score: float | None
    ci_low: float | None
    ci_high: float | None
    sd: float | None
    unit: str  # "seeds", "folds" or "best trial"
    factors: dict[str, Scalar] = field(default_factory=dict, metadata=INLINE)
    config_id: str | None = None  # replicates: the search trial they retrain
    selected_trial: SelectedTrial | None = None


@dataclass(frozen=True)
class ValueScore:
    """One value of a factor: its score, interval, rows and cells."""

    score: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_cells: int


@dataclass(frozen=True)
class EffectTest:
    """Whether the values of one factor differ."""

    p_value: float | None
    significant: bool
    method: str
    matched: bool
    estimate_method: str = ""
    statistic: float | None = None
    df1: float | None = None
    df2: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class InteractionResult:
    factors: list[str]  # the pair tested, e.g. ["bn", "dropout"]
    p_value: float | None
    significant: bool
    method: str
    metric: str
    statistic: float | None = None
    df1: float | None = None
    df2: float | None = None
    n_cells: int = 0
    n_trials: int = 0
    reason: str = ""
    means: dict[str, dict[str, float]] | None = None  # bn -> level -> mean score


@dataclass(frozen=True)
class RateEntry:
    """The fitted best drop rate for one BatchNorm setting."""

    best: float | None
    ci_low: float | None
    ci_high: float | None
    score_at_best: float | None
    n: int
    range: tuple[float, float]
    at_edge: bool
    near_optimal: tuple[float | None, float | None]
    source: str  # "replicates" or "search"
    method: str
    # A grid of rates (rate levels as cells): [rate, fitted score, 95% bootstrap band low, high] per level.
    levels: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class BestCellEvidence:
    """The best cell of the claimed group against the best other cell."""

    metric: str
    claimed_cell: str
    claimed_score: float | None
    claimed_rank: int
    best_other_cell: str
    best_other_score: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


@dataclass(frozen=True)
class GroupEvidence:
    """Two groups of matched cells: each group's score and their difference (claimed direction first)."""

    metric: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    matched: bool
    n_cells: int
    n_trials: int
    margin: float | None = None
    groups: dict[str, float | None] = field(default_factory=dict, metadata=INLINE)


@dataclass(frozen=True)
class LineEvidence:
    """A straight line fitted through one point per configuration: y against x, with the slope's interval."""

    x: str
    y: str
    slope: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    intercept: float | None
    r_squared: float | None
    n_points: int


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    verdict: str
    evidence: BestCellEvidence | GroupEvidence | LineEvidence | None = None
    reason: str = ""
    method: str = ""
    post: str = ""  # the advice in the post's words (or the mechanism's)
    cells: list[str] = field(default_factory=list)  # the cells the verdict rests on


@dataclass(frozen=True)
class OmnibusTest:
    p_value: float | None
    significant: bool
    statistic: float | None
    df1: float | None
    df2: float | None
    method: str


@dataclass(frozen=True)
class TopTwo:
    best: str
    runner_up: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    method: str


@dataclass(frozen=True)
class Comparisons:
    omnibus: OmnibusTest | None = None
    best_vs_runner_up: TopTwo | None = None


@dataclass(frozen=True)
class Resolution:
    detectable: float | None  # in the score's units (accuracy)
    sd: float | None  # median replicate sd over cells
    n: int  # median replicates per cell
    unit: str
    method: str


@dataclass(frozen=True)
class CellMean:
    mean: float | None
    n: int


@dataclass(frozen=True)
class SearchSummary:
    """The search stage: each cell's best trial, and the mean over its trials (nuisance sensitivity)."""

    counts: Counts
    best_trials: list[RankedCell]
    mean_over_trials: dict[str, CellMean]
    mean_over_trials_method: str
    ranking_method: str


@dataclass(frozen=True)
class Setting:
    """What every search trial trained on, where the trials table records one value."""

    train_size: int | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    val_size: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class DivergedCount:
    trials: int
    diverged: int
    share: float | None = None


@dataclass(frozen=True)
class FinalResult:
    """One configuration's test accuracy over seeds."""

    config_id: str
    cell: str
    n_seeds: int
    test_acc: float | None
    ci_low: float | None
    ci_high: float | None
    sd: float | None
    method: str
    test_loss: float | None = None
    # Means over the seeds (None where final.csv lacks them, or without BN).
    test_acc_flip: float | None = None  # each test image averaged with its mirror image
    test_ece: float | None = None
    test_conf_wrong: float | None = None
    var_shift_max: float | None = None
    test_acc_bn_reestimated: float | None = None
    test_ece_bn_reestimated: float | None = None


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval, over `n` replicates (or matched cells)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True)
class MechanismCell:
    """One cell's trained networks, measured: why it scores what it scores."""

    cell: str
    factors: dict[str, object]
    var_shift: Estimate | None  # var_shift_max; None without BN
    accuracy_gap: Estimate | None  # val_acc minus the same cell without Dropout's; None for those cells
    reference_cell: str | None  # that cell
    reestimation_gain: Estimate | None  # acc_gain_bn_reestimated: val_acc_bn_reestimated - val_acc; None without BN
    ece: Estimate | None
    conf_wrong: Estimate | None


@dataclass(frozen=True)
class Mechanism:
    """The variance-shift mechanism and calibration, from stage-2 replicates (`analysis.mechanism`)."""

    cells: list[MechanismCell]
    shift_line: LineEvidence | None  # accuracy_gap against var_shift over BN cells with Dropout
    calibration_by_bn: dict[str, dict[str, Estimate]]  # bn -> {"ece": ..., "conf_wrong": ...}
    skipped: list[str]  # what could not be computed, and why
    method: str


@dataclass(frozen=True)
class RungFidelity:
    """One ASHA rung: how well its scores foretell the final ones (`analysis.fidelity`)."""

    epoch: int
    tau: float | None  # Kendall tau, pairs within cells
    ci_low: float | None
    ci_high: float | None
    n_trials: int  # full-budget trials with a score at this epoch
    n_cells: int  # cells with at least two of them
    best_stopped: int  # cells whose eventual best trial would have been stopped here
    cells_judged: int


@dataclass(frozen=True)
class AshaFidelity:
    rungs: list[RungFidelity]
    reason: str  # why nothing was measured, or ""
    method: str


@dataclass(frozen=True)
class Importance:
    values: dict[str, float]  # parameter -> importance, largest first
    method: str
    n_trials: int
    kinds: dict[str, str]  # parameter -> "scientific" or "nuisance"


@dataclass(frozen=True)
class ReplicateSet:
    """One replicate set of the experiment (seeds or folds, docs/command-line.md, 'Replicate sets'), cell by cell."""

    name: str
    unit: str  # "seeds", "folds" ("replicates" for a table that mixes them)
    chosen: bool  # the conclusions come from this set
    trainings: int  # rows of its cv.csv
    scored: int  # of them, completed with a score
    cells: dict[str, Estimate]  # cell -> mean validation accuracy of its representative configuration, 95% CI
    best_cell: str | None
    agreement: str = ""  # how it compares with the chosen set, in words ("" for the chosen one)


@dataclass(frozen=True)
class ReferenceClaim:
    """One claim's verdict here and in a reference run, and how they stand (`analysis.reference_run`)."""

    id: str
    verdict: str
    reference_verdict: str
    agreement: str  # agrees, undecided here, decided only here, contradicts
    reference_evidence: BestCellEvidence | GroupEvidence | LineEvidence | None = None  # its effect and interval


@dataclass(frozen=True)
class ReferenceAgreement:
    """This study's verdicts against a reference run's (by default the published full-data run)."""

    label: str  # which run, and what it trained on
    setting: Setting
    claims: list[ReferenceClaim]

    def count(self, agreement: str) -> int:
        return sum(claim.agreement == agreement for claim in self.claims)


@dataclass(frozen=True)
class Conclusions:
    """Everything the analysis concludes; conclusions.json is this, serialised."""

    source: str  # "replicates" or "search"
    metric: str
    factors: list[str]
    ranking: list[RankedCell]
    effects: dict[str, dict[str, ValueScore]]  # factor -> value label -> score
    effect_tests: dict[str, EffectTest]
    effects_metric: str
    interaction: InteractionResult
    dropout_rate: dict[str, dict[str, RateEntry]]  # rate -> bn -> fit
    claims: list[Claim]
    warnings: list[str]
    ranking_method: str
    comparisons: Comparisons
    resolution: Resolution | None
    counts: Counts
    cell_factors: list[str]
    within_cell_factors: list[str]
    search: SearchSummary
    setting: Setting
    diverged: dict[str, DivergedCount]  # cell -> search trials
    diverged_by_bn: dict[str, DivergedCount]
    final: list[FinalResult] | None
    importance: Importance | None
    mechanism: Mechanism | None = None  # None in an analysis from before it was measured
    asha_fidelity: AshaFidelity | None = None
    methods: dict[str, str] = field(default_factory=dict)  # what each part was computed with
    summary: list[str] = field(default_factory=list)
    # The answer, in a few lines: each claim's verdict, then which drop rates work (the report's first sections).
    answer: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)  # plot name -> PNG file name
    plots_skipped: dict[str, str] = field(default_factory=dict)  # plot name -> why it was not drawn
    replicate_set: str | None = None  # the set the conclusions come from (None: the search alone)
    replicate_set_reason: str = ""  # why that one
    replicate_sets: list[ReplicateSet] = field(default_factory=list)  # every set, the chosen one first
    reference: ReferenceAgreement | None = None  # the verdicts against a reference run's, where there is one


def to_json(value) -> object:
    """A result (dataclass, mapping, list, number) as plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = to_json(getattr(value, f.name))
            if f.metadata.get("inline"):
                out.update(item)
            else:
                out[f.name] = item
        return out
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return jsonable(value)


@functools.cache
def _type_hints(cls: type) -> dict:
    return typing.get_type_hints(cls)  # resolves the module's string annotations: slow, and the same every time


def from_json(cls: type, data: dict):
    """Rebuild `cls` (a dataclass of this module) from what `to_json` wrote."""
    hints = _type_hints(cls)
    fields = dataclasses.fields(cls)
    named = {f.name for f in fields if not f.metadata.get("inline")}
    kwargs = {}
    for f in fields:
        if f.metadata.get("inline"):
            kwargs[f.name] = {k: _decode(_value_type(hints[f.name]), v) for k, v in data.items() if k not in named}
        elif f.name in data:
            kwargs[f.name] = _decode(hints[f.name], data[f.name])
    return cls(**kwargs)


def _decode(hint, value):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in args if a is not type(None)]
        classes = [a for a in options if dataclasses.is_dataclass(a)]
        for option in classes:  # the first dataclass whose required fields are all present
            if isinstance(value, dict) and all(f.name in value for f in _required(option)):
                return from_json(option, value)
        # One other type (`float | None`) decodes as that type; scalars of several types stay as written.
        return _decode(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if origin is list:
        return [_decode(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_decode(a, v) for a, v in zip(args, value))
    if origin is dict:
        return {k: _decode(args[1], v) for k, v in value.items()}
    if hint is float:
        return math.nan if value is None else float(value)
    return value


def _value_type(mapping_hint):
    return typing.get_args(mapping_hint)[1]


def _required(cls) -> list:
    return [f for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and not f.metadata.get("inline")]
