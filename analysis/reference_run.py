"""A study's verdicts against a reference run's: does a cheaper regime reach the verdicts a costlier one reached?

The repository publishes the default space's run on all 54,000 training images (`docs/findings/`). A study of the
same design (the same claims on the same cells) trained otherwise, such as the quick budget's 1,500 images for 4
epochs, is compared with it claim by claim, so that its own report says where the cheap regime is a good guide;
`study analyze --against PATH` compares with any other run's conclusions.json instead.

Each claim gets one of:

- `agrees`: the same verdict;
- `undecided here`: this run is inconclusive where the reference decided (supported, refuted or negligible);
- `decided only here`: the reverse;
- `contradicts`: two different decisions (supported against refuted, or either against negligible).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from analysis.claims import INCONCLUSIVE
from analysis.errors import AnalysisError
from analysis.results import Claim, Conclusions, ReferenceAgreement, ReferenceClaim, Setting, from_json

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "findings" / "conclusions.json"
AGREES, UNDECIDED_HERE, DECIDED_ONLY_HERE, CONTRADICTS = "agrees", "undecided here", "decided only here", "contradicts"


def agreement(this: str, reference: str) -> str:
    """How this run's verdict stands against the reference's."""
    if this == reference:
        return AGREES
    if this == INCONCLUSIVE:
        return UNDECIDED_HERE
    if reference == INCONCLUSIVE:
        return DECIDED_ONLY_HERE
    return CONTRADICTS


def compare_claims(claims: list[Claim], reference: Conclusions, label: str) -> ReferenceAgreement:
    """Each claim of this run that the reference run also judged, with both verdicts and how they stand."""
    theirs = {claim.id: claim for claim in reference.claims}
    rows = [ReferenceClaim(claim.id, claim.verdict, theirs[claim.id].verdict,
                           agreement(claim.verdict, theirs[claim.id].verdict), theirs[claim.id].evidence)
            for claim in claims if claim.id in theirs]
    if not rows:
        raise AnalysisError(f"the reference run ({label}) decided none of this study's claims "
                            f"({', '.join(c.id for c in claims) or 'none'}); compare with a run of the same space")
    return ReferenceAgreement(label, reference.setting, rows)


def same_design(conclusions: Conclusions, reference: Conclusions) -> bool:
    """The same claims on the same cells: the same space, trained some other way."""
    def design(c: Conclusions) -> tuple[set, set]:
        return {claim.id for claim in c.claims}, {entry.cell for entry in c.ranking}

    return bool(conclusions.claims) and design(conclusions) == design(reference)


def read_reference(path: str | Path, named_by: str = "--against") -> Conclusions:
    """A run's conclusions: its conclusions.json, its report folder or its experiment folder."""
    path = Path(path)
    for candidate in (path, path / "conclusions.json", path / "report" / "conclusions.json"):
        if candidate.is_file():
            try:
                return from_json(Conclusions, json.loads(candidate.read_text()))
            except (ValueError, TypeError, KeyError) as exc:
                raise AnalysisError(f"{named_by} {str(path)!r}: {candidate} is not a conclusions.json this tool "
                                    f"wrote ({type(exc).__name__}: {exc}); give a run's report folder") from None
    raise AnalysisError(f"{named_by} {str(path)!r}: no conclusions.json there (nor in its report/ folder); give a "
                        "run's conclusions.json, its report folder or its experiment folder")


def describe(setting: Setting) -> str:
    """'54,000 training images, 10 epochs' from a run's setting."""
    images = f"{int(setting.train_size):,} training images" if setting.train_size else "all training images"
    return f"{images}, {int(setting.max_epochs)} epochs" if setting.max_epochs else images


@dataclass(frozen=True)
class Reference:
    """A run to compare with: named by the user (compared whatever its design), or the published one (compared only
    with a study of its design trained otherwise)."""

    conclusions: Conclusions
    label: str
    given: bool


def load_reference(against: str | Path | None) -> Reference | None:
    """`against` read now (a bad path stops the analysis before any work), else the published run where present."""
    if against is not None:
        reference = read_reference(against)
        return Reference(reference, f"{against} ({describe(reference.setting)})", given=True)
    if not PUBLISHED.is_file():
        return None
    reference = read_reference(PUBLISHED, "the published findings")
    return Reference(reference, f"the published full-data run, docs/findings ({describe(reference.setting)})", given=False)


def reference_for(conclusions: Conclusions, reference: Reference | None) -> ReferenceAgreement | None:
    """The comparison the report shows, or None (no reference, or the published one for another design or for the
    same training)."""
    if reference is None:
        return None
    if not reference.given:
        theirs = reference.conclusions.setting
        same_training = (conclusions.setting.train_size, conclusions.setting.max_epochs) == (theirs.train_size, theirs.max_epochs)
        if same_training or not same_design(conclusions, reference.conclusions):
            return None
    return compare_claims(conclusions.claims, reference.conclusions, reference.label)
