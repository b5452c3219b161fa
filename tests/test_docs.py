"""The project's Markdown: every relative link and anchor resolves (README.md, docs/, analysis/README.md, ...),
and CI runs README's test command as written.

A page moved or a heading renamed breaks links silently on GitHub; this finds them. Anchors follow GitHub's rule:
the heading in lower case, every character but letters, digits, `_`, `-` and spaces dropped, spaces made `-`, and a
repeated heading numbered `-1`, `-2`, ...
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return sorted(ROOT / name for name in listed if (ROOT / name).exists())


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link inside a code sample is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    heading = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    names = set()
    for line in prose_lines(path.read_text()):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = anchor(match.group(1))
            count = found.get(base, 0)
            names.add(base if count == 0 else f"{base}-{count}")
            found[base] = count + 1
    return names


def broken_links(path: Path) -> list[str]:
    broken = []
    for line in prose_lines(path.read_text()):
        for match in LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
                continue
            file_part, _, fragment = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{target} (no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked})")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{target} (no heading '#{fragment}' in {linked.relative_to(ROOT)})")
    return broken


def test_anchors_follow_githubs_rule():
    assert anchor("Stage 2 (seeds or cross-validation) and final evaluation") == \
        "stage-2-seeds-or-cross-validation-and-final-evaluation"
    assert anchor("BatchNorm × Dropout: a study") == "batchnorm--dropout-a-study"
    assert anchor("`study run`") == "study-run"


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Top\n\n[ok](#top-1) [gone](#nowhere) [file](other.md) ![img](missing.png)\n"
                    "```\n[in code](nothing.md)\n```\n")
    assert broken_links(page) == ["#nowhere (no heading '#nowhere' in page.md)", "other.md (no file other.md)",
                                  "missing.png (no file missing.png)"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert not broken_links(path), f"{path.relative_to(ROOT)}: broken links"


def test_ci_runs_the_readmes_test_command_as_written():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick_start, re.S)
    assert len(commands) == 2, "README's quick start has two commands: the study, then the tests"
    assert "pytest" in commands[1] and commands[1] in (ROOT / ".ci" / "run").read_text()


FINDINGS = ROOT / "docs" / "findings"
HEADLINE_RUN = ROOT / "docs" / "headline-run"


def test_readmes_findings_are_the_published_runs_verdicts():
    """README's Findings table says, claim by claim, what docs/findings/conclusions.json decided, and that run
    trained on all 54,000 training images."""
    from analysis.reference_run import read_reference
    from analysis.summary import CLAIM_NAMES

    published = read_reference(FINDINGS / "conclusions.json")
    assert published.setting.train_size == 54_000 and published.source == "replicates"
    findings = (ROOT / "README.md").read_text().split("## Findings", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in findings.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[1].strip("*") in ("supported", "refuted", "negligible",
                                                                                  "inconclusive"):
            rows[cells[0]] = cells[1].strip("*")
    said = {claim.id: rows.get(claim.post) or rows.get(CLAIM_NAMES.get(claim.id, "")) for claim in published.claims}
    assert said == {claim.id: claim.verdict for claim in published.claims}


@pytest.mark.parametrize("published, tables", [
    (FINDINGS, {"report.md", "report.html", "conclusions.json", "trials.csv", "epochs.csv", "cv.csv", "study.json"}),
    (HEADLINE_RUN, {"study.json", "trials.csv", "cv.csv", "final.csv", "final.json"}),
], ids=["findings", "headline"])
def test_a_published_run_holds_its_tables_but_no_tune_state(published, tables):
    names = {path.name for path in published.iterdir()}
    assert tables <= names
    assert not [path for path in published.iterdir() if path.is_dir()]  # no trial folder, checkpoint, cv/ or optuna/
    assert not [name for name in names if name.startswith(TUNE_STATE)]
    if (published / "report.md").exists():
        assert all(image in names for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (published / "report.md").read_text()))


@pytest.mark.parametrize("metric", ["test_acc", "test_acc_flip"])
def test_the_headline_numbers_quoted_are_the_published_finals(metric):
    """README, docs/headline.md and benchmarks/RESULTS.md quote docs/headline-run's `study final`: each seed's test
    accuracy and their mean ± sd, as final.json records them, read plainly and with flip averaging."""
    final = pd.read_csv(HEADLINE_RUN / "final.csv")
    acc = final[metric]
    record = json.loads((HEADLINE_RUN / "final.json").read_text())[metric]
    assert record["n_seeds"] == len(acc) == 3 and set(final["status"]) == {"completed"}
    assert round(record["mean"], 6) == round(acc.mean(), 6) and round(record["std"], 6) == round(acc.std(ddof=1), 6)
    quoted = [f"{value:.4f}" for value in acc] + [f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f}"]
    for page in ("README.md", "docs/headline.md", "benchmarks/RESULTS.md"):
        text = (ROOT / page).read_text()
        assert not [number for number in quoted if number not in text], page


TUNE_STATE = ("experiment_state-", "tuner.pkl", "searcher-state-", "search_gen_state-", "basic-variant-state-")
