"""The example plugin passes the harness's conformance kit."""
import pytest

from harness.conformance import family_checks
from harness_adamnode import AdamNODE


@pytest.mark.parametrize("check", family_checks(AdamNODE), ids=str)
def test_conformance(check):
    check()
