"""Hostile space files are refused in milliseconds: YAML alias bombs inside allowed keys (they expanded to 3.2 GB,
then MemoryError and "this is a bug") and files far larger than any space (10.8 MB took 47.7 s and 1.45 GB)."""

from __future__ import annotations

import time

import pytest

from search_spaces import load_space
from search_spaces.limits import MAX_FILE_BYTES
from search_spaces.space import SpaceError

BASE = "scientific:\n  bn: [none, pre_act]\nnuisance:\n  lr: {low: 0.01, high: 0.1, log: true}\n"


def _bomb(levels: int = 9) -> str:
    """Nine anchors, each a list of nine aliases of the one before: 9**9 (387 million) values once expanded."""
    lines = ["  - &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"  - &l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(1, levels)]
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["description", "fixed"])
def test_an_alias_bomb_inside_an_allowed_key_is_refused_at_once(tmp_path, where):
    if where == "description":
        text = BASE + "description:\n" + _bomb()
    else:
        text = BASE + "fixed:\n  model: small\n  p_fc:\n" + "\n".join("  " + line for line in _bomb().splitlines())
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(SpaceError, match="anchors and aliases") as caught:
        load_space(path)
    assert time.monotonic() - started < 2
    assert "bomb.yaml" in str(caught.value) and "100,000 values" in str(caught.value)


def test_a_file_larger_than_any_space_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(BASE + "description: >\n" + "".join(f"  key{i}: value\n" for i in range(40_000)))
    assert path.stat().st_size > MAX_FILE_BYTES
    started = time.monotonic()
    with pytest.raises(SpaceError, match=r"is \d+ KB; a space file is at most 256 KB"):
        load_space(path)
    assert time.monotonic() - started < 1


def test_an_anchor_used_a_few_times_still_loads(tmp_path):
    path = tmp_path / "anchored.yaml"
    path.write_text("scientific:\n  bn: [none, pre_act]\nnuisance:\n  lr: &range {low: 0.01, high: 0.1, log: true}\n"
                    "  weight_decay: {low: 0.00001, high: 0.001, log: true}\ndescription: a space with an anchor\n")
    space = load_space(path)
    assert len(space.named_cells()) == 2


def test_the_command_line_says_so_with_exit_2(tmp_path, fake_data_dir, capsys):
    from study.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(BASE + "description:\n" + _bomb())
    assert main(["run", "--space", str(path), "--data-dir", str(fake_data_dir), "--storage", str(tmp_path / "e")]) == 2
    assert "anchors and aliases" in " ".join(capsys.readouterr().err.split())
