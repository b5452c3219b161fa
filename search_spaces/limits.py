"""Bounds on a space file, checked before and right after parsing, so that a hostile file is refused in
milliseconds instead of exhausting memory.

- Size: a space is a few kilobytes (the shipped ones are under 4 KB); a file above `MAX_FILE_BYTES` is refused
  before it is read.
- Expansion: YAML anchors and aliases (`&a`, `*a`) let a small file name a value many times over; the parser
  shares one object, but anything that walks it (validation, printing the space, study.json) meets every copy,
  so nine levels of nine aliases are 387 million values: gigabytes, then MemoryError. `check_expansion` counts
  the values as a walk would meet them, visiting each shared object once, and refuses more than
  `MAX_VALUES`. An anchor used a few times is fine.
"""

from __future__ import annotations

from pathlib import Path

MAX_FILE_BYTES = 256 * 1024
MAX_VALUES = 100_000


def check_file_size(path: Path, error: type[Exception]) -> None:
    """`error` when the file at `path` is larger than any space needs to be."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise error(
            f"search space file {str(path)!r} is {size / 1024:,.0f} KB; a space file is at most "
            f"{MAX_FILE_BYTES // 1024} KB (the shipped ones are a few KB): list the factors' values, not trials"
        )


def check_expansion(data, where: str, error: type[Exception]) -> None:
    """`error` when `data` (a parsed file) holds more than `MAX_VALUES` values once its aliases are expanded."""
    sizes: dict[int, int] = {}  # id of a list or dict -> values inside it, expanded; each computed once
    keep = []  # the objects measured, so that their ids stay theirs while we run

    def measure(value) -> int:
        if not isinstance(value, (list, dict)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a cycle (YAML allows a node to contain itself) counts once instead of forever
        keep.append(value)
        children = value.values() if isinstance(value, dict) else value
        total = 1 + sum(measure(child) for child in children)
        sizes[key] = min(total, MAX_VALUES + 1)
        if total > MAX_VALUES:
            raise error(
                f"{where} expands to more than {MAX_VALUES:,} values through YAML anchors and aliases (&name, *name); "
                "a space needs a few dozen: write the values out, or use each anchor only a few times"
            )
        return sizes[key]

    measure(data)
