"""Every suite this repository ships (and the example packages' suites) loads, expands and
passes the checks made before training, so a suite a newcomer runs never fails on its own
text; its claims file, where it has one, loads too."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.reports.claims import load_claims
from harness.running.driver import check_runs
from harness.suites.loader import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted(p for p in [*ROOT.glob("suites/*.yaml"), *ROOT.glob("examples/*/suite.yaml")]
                if not p.name.endswith(".claims.yaml"))


def test_the_suites_are_found():
    names = {p.name for p in SUITES}
    assert {"smoke.yaml", "paper.yaml", "ci.yaml", "point-cloud-seeds.yaml"} <= names


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_shipped_suite_is_valid(path, registry):
    suite = load_suite(path, registry)
    assert suite.runs, f"{path} expands to no runs"
    check_runs(suite.runs, registry)
    claims = path.with_name(path.stem + ".claims.yaml")
    if claims.exists():
        load_claims(claims)
