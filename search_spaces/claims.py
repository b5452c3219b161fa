"""Claims as data: a piece of advice, and the contrast of cells that decides it.

A claim is declared in YAML (the shipped ones in ``search_spaces/claims.yaml``; a
user's in the ``claims`` list of their own space file) with these keys:

``id``, ``text``
    A short identifier and the claim in words; ``post`` optionally quotes the advice.
``kind``
    ``difference``: cells whose ``factor`` takes a ``claimed`` value against the matched
    cells (equal in every other factor) where it takes an ``against`` value;
    ``best``: the best cell of the claimed group (the cells matching ``where``) against
    the best other cell; ``shift_slope``: across configurations with BN and Dropout, does
    the accuracy Dropout costs grow with the variance shift; ``reestimation_gain``: the
    accuracy gained by re-estimating BN statistics with Dropout off, in the cells of
    ``where``.
``where``
    Factor -> values: the cells the claim is about (for ``best``: the claimed group).
``metric``
    ``accuracy`` (the study's score) or a replicate column: ``val_loss``, ``gap``,
    ``var_shift_max``, ``conf_wrong``, ``ece``; ``better``: ``higher`` or ``lower``.
``test``
    ``superiority`` (default), ``non_inferiority`` ("at least as good": a loss smaller than
    ``margin`` is allowed) or ``equivalence`` (no difference beyond ``margin``);
    ``margin`` is in the metric's units (0.001 = 0.1 percentage point of accuracy).

Every declaration is checked when it is read: unknown keys, factors, values, metrics
and kinds are a `SpaceError` naming the claim and the value; a space that lists a
claim must have the cells its contrast compares (`check_claims_against_cells`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from study.vocabulary.errors import UserError
from study.vocabulary.factors import CATEGORICAL_VALUES, NESTED_FACTORS, SCIENTIFIC_FACTORS

CLAIMS_FILE = Path(__file__).parent / "claims.yaml"
KINDS = ("difference", "best", "shift_slope", "reestimation_gain")
ACCURACY = "accuracy"  # the study's score: best validation accuracy of a replicate
METRICS = (ACCURACY, "val_loss", "gap", "var_shift_max", "conf_wrong", "ece")
TESTS = ("superiority", "non_inferiority", "equivalence")
KEYS = ("id", "text", "post", "kind", "factor", "claimed", "against", "where", "metric", "better", "test", "margin")
_REQUIRED = {"difference": ("factor", "claimed", "against"), "best": ("where",), "shift_slope": (), "reestimation_gain": ()}


class ClaimError(UserError):
    """A claim declaration is invalid; the message names the claim, the key and the value."""


@dataclass(frozen=True)
class ClaimSpec:
    """One claim as declared (see the module docstring for the keys)."""

    id: str
    text: str
    kind: str
    metric: str = ACCURACY
    better: str = "higher"
    test: str = "superiority"
    margin: float | None = None
    factor: str | None = None
    claimed: tuple = ()
    against: tuple = ()
    where: dict[str, tuple] = field(default_factory=dict)
    post: str = ""

    def in_where(self, factors: dict[str, Any]) -> bool:
        return all(factors.get(f) in values for f, values in self.where.items())

    def groups(self) -> dict[str, tuple]:
        """A difference claim's two groups of `factor` values, the claimed one first."""
        return {_label(self.claimed): self.claimed, _label(self.against): self.against}

    def describe(self) -> str:
        where = ", ".join(f"{f} in {list(v)}" for f, v in self.where.items())
        if self.kind == "difference":
            return f"{self.factor} {list(self.claimed)} against {list(self.against)}" + (f" where {where}" if where else "")
        if self.kind == "best":
            return f"the best cell with {where} against the best other cell"
        return f"{self.kind} over the cells with {where or 'any values'}"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "kind": self.kind, "metric": self.metric,
                               "better": self.better, "test": self.test}
        if self.margin is not None:
            out["margin"] = self.margin
        if self.kind == "difference":
            out.update(factor=self.factor, claimed=list(self.claimed), against=list(self.against))
        if self.where:
            out["where"] = {f: list(v) for f, v in self.where.items()}
        if self.post:
            out["post"] = self.post
        return out


def _label(values: tuple) -> str:
    return "+".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)


@functools.cache
def shipped_claims() -> tuple[ClaimSpec, ...]:
    """The claims this project ships (the source post's advice and the variance-shift mechanism)."""
    return parse_claims(yaml.safe_load(CLAIMS_FILE.read_text()), f"claims file {str(CLAIMS_FILE)!r}")


def parse_claims(section: Any, where: str, shipped: tuple[ClaimSpec, ...] = ()) -> tuple[ClaimSpec, ...]:
    """A list of claims: each a declaration (a mapping) or the id of one of `shipped`."""
    if not isinstance(section, list) or not section:
        raise ClaimError(f"{where}: 'claims' must be a non-empty list of claim ids or declarations, got {section!r}")
    known = {c.id: c for c in shipped}
    out: list[ClaimSpec] = []
    for i, entry in enumerate(section):
        if isinstance(entry, str):
            if entry not in known:
                raise ClaimError(f"{where}: claims[{i}]: unknown claim {entry!r}; shipped claims: {', '.join(known) or 'none'}")
            claim = known[entry]
        else:
            claim = parse_claim(entry, f"{where}: claims[{i}]")
            if claim.id in known:
                raise ClaimError(f"{where}: claims[{i}]: id {claim.id!r} is a shipped claim's; list it by id, or give yours another id")
        if claim.id in {c.id for c in out}:
            raise ClaimError(f"{where}: claims[{i}]: claim {claim.id!r} is listed twice")
        out.append(claim)
    return tuple(out)


def parse_claim(spec: Any, where: str) -> ClaimSpec:
    """One declaration, validated against the vocabulary."""
    if not isinstance(spec, dict):
        raise ClaimError(f"{where} must be a claim id or a mapping with keys {', '.join(KEYS)}, got {spec!r}")
    cid = spec.get("id")
    if not isinstance(cid, str) or not cid.replace("_", "").isalnum():
        raise ClaimError(f"{where}: 'id' must be letters, digits and _, got {cid!r}")
    where = f"{where} ({cid})"
    unknown = set(spec) - set(KEYS)
    if unknown:
        raise ClaimError(f"{where} has unknown keys {sorted(unknown)}; allowed: {', '.join(KEYS)}")
    kind = _choice(spec, "kind", KINDS, None, where)
    missing = [k for k in _REQUIRED[kind] if k not in spec]
    if missing:
        raise ClaimError(f"{where}: a {kind!r} claim needs {', '.join(missing)}")
    text = spec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ClaimError(f"{where}: 'text' must say the claim in words, got {text!r}")
    margin = spec.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0):
        raise ClaimError(f"{where}: 'margin' must be a positive number in the metric's units, got {margin!r}")
    test = _choice(spec, "test", TESTS, "superiority", where)
    if test != "superiority" and margin is None:
        raise ClaimError(f"{where}: a {test} test needs a 'margin' (the difference that does not matter)")
    factor, claimed, against = spec.get("factor"), (), ()
    if kind == "difference":
        _check_factor(factor, where, "factor")
        claimed = _values(factor, spec["claimed"], where, "claimed")
        against = _values(factor, spec["against"], where, "against")
        if set(claimed) & set(against):
            raise ClaimError(f"{where}: {factor} values {sorted(set(claimed) & set(against), key=str)} are both claimed and against")
    conditions = spec.get("where") or {}
    if not isinstance(conditions, dict):
        raise ClaimError(f"{where}: 'where' must map factors to lists of values, got {conditions!r}")
    parsed_where = {}
    for f, values in conditions.items():
        _check_factor(f, where, f"where.{f}")
        parsed_where[f] = _values(f, values, where, f"where.{f}")
    return ClaimSpec(
        cid, text.strip(), kind, _choice(spec, "metric", METRICS, ACCURACY, where),
        _choice(spec, "better", ("higher", "lower"), "higher", where), test,
        None if margin is None else float(margin), factor, claimed, against, parsed_where, str(spec.get("post", "")),
    )


def _choice(spec: dict, key: str, allowed: tuple, default, where: str) -> str:
    value = spec.get(key, default)
    if value not in allowed:
        raise ClaimError(f"{where}: '{key}' is {value!r}; choose one of {', '.join(allowed)}")
    return value


def _check_factor(factor: Any, where: str, entry: str) -> None:
    if factor not in SCIENTIFIC_FACTORS:
        raise ClaimError(f"{where}: {entry}: unknown factor {factor!r}; known factors: {', '.join(SCIENTIFIC_FACTORS)}")


def _values(factor: str, values: Any, where: str, entry: str) -> tuple:
    values = values if isinstance(values, list) else [values]
    if not values:
        raise ClaimError(f"{where}: {entry} needs at least one value of {factor!r}")
    allowed = CATEGORICAL_VALUES.get(factor)
    for value in values:
        if allowed is not None and (value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool)):
            shown = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in allowed)
            raise ClaimError(f"{where}: {entry}: {value!r} is not a value of {factor!r}; allowed: {shown}")
        if allowed is None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1):
            raise ClaimError(f"{where}: {entry}: rate {factor!r} has value {value!r}; expected a number in [0, 1)")
    return tuple(float(v) if allowed is None else v for v in values)


def check_claims_against_cells(claims: tuple[ClaimSpec, ...], cells: list[dict[str, Any]], where: str) -> None:
    """Each claim must have cells to compare among these (full, normalised factor values of every cell)."""
    for claim in claims:
        missing = contrast_gap(claim, cells)
        if missing:
            raise ClaimError(f"{where}: claim {claim.id!r} cannot be decided by this space: {missing}; add the cells "
                             f"it compares ({claim.describe()}) or drop the claim")


def cells_used(claim: ClaimSpec, cells: list[dict[str, Any]]) -> set[int]:
    """Indices of the cells whose scores enter the claim's contrast (as the analysis matches them)."""
    inside = {i for i, c in enumerate(cells) if claim.in_where(c)}
    if claim.kind == "best":
        return set(range(len(cells))) if inside and len(inside) < len(cells) else set()
    if claim.kind == "shift_slope":
        return {i for i in inside if cells[i].get("bn") != "none"}
    if claim.kind == "reestimation_gain":
        return inside
    ignored = {claim.factor, *NESTED_FACTORS.get(claim.factor, ())}

    def key(cell):
        return tuple(repr(cell.get(f)) for f in SCIENTIFIC_FACTORS if f not in ignored)

    claimed = {i for i in inside if cells[i].get(claim.factor) in claim.claimed}
    against = {i for i in inside if cells[i].get(claim.factor) in claim.against}
    matched = {key(cells[i]) for i in claimed} & {key(cells[i]) for i in against}
    return {i for i in claimed | against if key(cells[i]) in matched}


def contrast_gap(claim: ClaimSpec, cells: list[dict[str, Any]]) -> str | None:
    """Why these cells cannot decide `claim` (None when they can)."""
    used = cells_used(claim, cells)
    if claim.kind == "best" and not used:
        inside = [c for c in cells if claim.in_where(c)]
        return ("no cell is in the claimed group" if not inside
                else "every cell is in the claimed group, so there is nothing to compare it with")
    if claim.kind == "reestimation_gain" and not used:
        return "no cell matches its 'where'"
    if claim.kind == "shift_slope":
        with_bn = [cells[i] for i in used]
        if not any(c.get("dropout") != "none" for c in with_bn) or not any(c.get("dropout") == "none" for c in with_bn):
            return "it needs cells with BatchNorm both with and without Dropout"
    if claim.kind == "difference" and not used:
        return (f"no cell with {claim.factor} in {list(claim.claimed)} has a matching cell (equal in every other "
                f"factor but the nested ones) with {claim.factor} in {list(claim.against)}")
    return None
