"""The example plugin passes the harness's conformance kit."""
import pytest

from harness.conformance import family_checks
from harness_nesterovnode import NesterovNODE


@pytest.mark.parametrize("check", family_checks(NesterovNODE), ids=str)
def test_conformance(check):
    check()
