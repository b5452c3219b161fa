"""The `SearchSpace` type, its validation, and loading by name or path."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from study.config import ConfigError, TrialConfig
from study.factors import CATEGORICAL_VALUES, NUISANCE, SCIENTIFIC_FACTORS, cell_name, normalise_factors

SPACES_DIR = Path(__file__).parent
# Hyperparameters that may be tuned over a range.
RANGED = ("lr", "weight_decay", "momentum")


class SpaceError(ValueError):
    """A search space file is invalid; the message names the file, the entry and the value."""


@dataclass(frozen=True)
class Range:
    """A continuous hyperparameter range, sampled on a log or linear scale."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    scientific: dict[str, list]  # factor -> values compared
    nuisance: dict[str, Range]  # tuned inside every cell
    fixed: dict[str, Any] = field(default_factory=dict)  # same for every trial
    source: str = ""

    @property
    def factors(self) -> tuple[str, ...]:
        """The scientific factors that vary, in vocabulary order."""
        return tuple(f for f in SCIENTIFIC_FACTORS if f in self.scientific)

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of scientific values, normalised; equal networks are one cell."""
        seen, cells = set(), []
        for values in itertools.product(*(self.scientific[f] for f in self.factors)):
            factors = normalise_factors({**self.fixed, **dict(zip(self.factors, values))})
            key = cell_name(factors, self.factors)
            if key not in seen:
                seen.add(key)
                cells.append({f: factors[f] for f in self.factors})
        return cells

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "scientific": self.scientific,
            "nuisance": {k: vars(r) for k, r in self.nuisance.items()},
            "fixed": self.fixed,
            "source": self.source,
        }


def list_spaces() -> dict[str, str]:
    """Name -> one-line description of every space shipped in this folder."""
    return {p.stem: load_space(p.stem).description for p in sorted(_space_files())}


def _space_files() -> list[Path]:
    return [p for p in SPACES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".toml")]


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
    if not path.is_file():
        raise SpaceError(f"search space file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SpaceError(f"search space file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    return parse_space(data, name=path.stem, source=str(path))


def parse_space(data: Any, name: str, source: str = "<dict>") -> SearchSpace:
    """Validate a space given as a dict (the parsed file)."""
    where = f"search space {source!r}"
    if not isinstance(data, dict):
        raise SpaceError(f"{where} must be a mapping with keys scientific, nuisance, fixed; got {type(data).__name__}")
    unknown = set(data) - {"description", "scientific", "nuisance", "fixed"}
    if unknown:
        raise SpaceError(f"{where} has unknown top-level keys {sorted(unknown)}; allowed: description, scientific, nuisance, fixed")
    scientific = _parse_scientific(data.get("scientific") or {}, where)
    nuisance = {k: _parse_range(k, v, where) for k, v in (data.get("nuisance") or {}).items()}
    fixed = dict(data.get("fixed") or {})
    clash = (set(scientific) | set(nuisance)) & set(fixed)
    if clash:
        raise SpaceError(f"{where}: {sorted(clash)} cannot be both fixed and searched")
    space = SearchSpace(name, str(data.get("description", "")), scientific, nuisance, fixed, source)
    _check_builds(space, where)
    return space


def _parse_scientific(section: Any, where: str) -> dict[str, list]:
    if not isinstance(section, dict):
        raise SpaceError(f"{where}: 'scientific' must map factor names to lists of values")
    out = {}
    for factor, values in section.items():
        if factor not in SCIENTIFIC_FACTORS:
            raise SpaceError(f"{where}: unknown scientific factor {factor!r}; known factors: {', '.join(SCIENTIFIC_FACTORS)}")
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{where}: scientific factor {factor!r} needs a non-empty list of values, got {values!r}")
        allowed = CATEGORICAL_VALUES.get(factor)
        for value in values:
            if allowed is not None and value not in allowed:
                raise SpaceError(
                    f"{where}: value {value!r} of factor {factor!r} is not in the vocabulary; allowed: {', '.join(map(str, allowed))}"
                )
        out[factor] = list(values)
    return out


def _parse_range(key: str, spec: Any, where: str) -> Range:
    if key not in RANGED:
        raise SpaceError(
            f"{where}: {key!r} cannot be tuned over a range; tunable: {', '.join(RANGED)} (nuisance names: {', '.join(NUISANCE)})"
        )
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log"}:
        raise SpaceError(f"{where}: range {key!r} must be {{low: ..., high: ..., log: true|false}}, got {spec!r}")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise SpaceError(f"{where}: range {key!r} bounds must be numbers, got low={low!r} high={high!r}")
    if not low < high:
        raise SpaceError(f"{where}: range {key!r} is empty or inverted: low={low!r} must be below high={high!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: log-scale range {key!r} needs low > 0, got low={low!r}")
    return Range(float(low), float(high), log)


def _check_builds(space: SearchSpace, where: str) -> None:
    """Every cell at both ends of every range must make a valid TrialConfig."""
    for cell in space.cells():
        for end in ("low", "high"):
            flat = {**space.fixed, **cell, **{k: getattr(r, end) for k, r in space.nuisance.items()}}
            try:
                TrialConfig.from_flat(flat)
            except ConfigError as exc:
                raise SpaceError(f"{where}: {exc}") from exc
