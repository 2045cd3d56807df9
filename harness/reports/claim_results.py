"""The verdicts of claims and their checks (docs/claims.md says what makes each), a check's
result, and how a claim's verdict follows from its checks' verdicts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.reports.claims import Check

HOLDS, REFUTED, INCONCLUSIVE, INCOMPLETE, NOT_COMPARABLE, NOT_RUN = (
    "holds", "refuted", "inconclusive", "incomplete", "not comparable", "not run")
#: How a report shows each verdict, in the order a summary counts them.
SYMBOLS = {HOLDS: "✓ holds", REFUTED: "✗ refuted", INCONCLUSIVE: "? inconclusive",
           INCOMPLETE: "incomplete", NOT_COMPARABLE: "≠ not comparable", NOT_RUN: "not run"}


@dataclass
class CheckResult:
    """One check's verdict and the lines of numbers behind it."""

    check: Check
    verdict: str
    evidence: list[str] = field(default_factory=list)


def claim_verdict(verdicts: Sequence[str]) -> str:
    """Refuted when any check is; else not run when every check is; else incomplete when any
    check is not run or incomplete; else not comparable when any check is; else inconclusive
    when any is; else holds."""
    if REFUTED in verdicts:
        return REFUTED
    if all(verdict == NOT_RUN for verdict in verdicts):
        return NOT_RUN
    if NOT_RUN in verdicts or INCOMPLETE in verdicts:
        return INCOMPLETE
    if NOT_COMPARABLE in verdicts:
        return NOT_COMPARABLE
    return INCONCLUSIVE if INCONCLUSIVE in verdicts else HOLDS
