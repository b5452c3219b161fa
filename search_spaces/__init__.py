"""Named search spaces, stored as data (YAML or TOML files in this folder).

A space says which factors are scientific (compared, with their values, or an
explicit list of named cells), which hyperparameters are nuisance (tuned inside
each cell: a range, a scale and optionally a condition) and which values are fixed.
`load_space` validates a space when it is loaded, so a typo fails before any trial
runs. See `search_spaces.space` for the file format.
"""

from search_spaces.space import (
    Cell,
    Range,
    SearchSpace,
    SpaceError,
    list_spaces,
    load_space,
    parse_space,
)

__all__ = ["Cell", "Range", "SearchSpace", "SpaceError", "list_spaces", "load_space", "parse_space"]
