"""The verdicts of claims and their checks (described in :mod:`harness.reports.claim_verdicts`),
a check's result, and how a claim's verdict follows from its checks' verdicts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.reports.claims import Check

HOLDS, REFUTED, INCONCLUSIVE, INCOMPLETE, NOT_RUN = (
    "holds", "refuted", "inconclusive", "incomplete", "not run")
#: How a report shows each verdict, in the order a summary counts them.
SYMBOLS = {HOLDS: "✓ holds", REFUTED: "✗ refuted", INCONCLUSIVE: "? inconclusive",
           INCOMPLETE: "incomplete", NOT_RUN: "not run"}


@dataclass
class CheckResult:
    """One check's verdict, the lines of numbers behind it, and for an inconclusive ``compare``
    the seeds per model its undecided tests need for 80 % power (None when unknown)."""

    check: Check
    verdict: str
    evidence: list[str] = field(default_factory=list)
    seeds_needed: int | None = None


def claim_verdict(verdicts: Sequence[str]) -> str:
    """Refuted when any check is; else not run when every check is; else incomplete when any
    check is not run or incomplete; else inconclusive when any is; else holds."""
    if REFUTED in verdicts:
        return REFUTED
    if all(verdict == NOT_RUN for verdict in verdicts):
        return NOT_RUN
    if NOT_RUN in verdicts or INCOMPLETE in verdicts:
        return INCOMPLETE
    return INCONCLUSIVE if INCONCLUSIVE in verdicts else HOLDS
