"""Named search spaces, stored as data (YAML or TOML files in this folder).

A space says which factors are scientific (compared, with their values), which
hyperparameters are nuisance (tuned inside each cell: a range and a scale) and
which values are fixed. `load_space` validates a space when it is loaded, so a
typo fails before any trial runs.
"""

from search_spaces.space import (
    Range,
    SearchSpace,
    SpaceError,
    list_spaces,
    load_space,
)

__all__ = ["Range", "SearchSpace", "SpaceError", "list_spaces", "load_space"]
