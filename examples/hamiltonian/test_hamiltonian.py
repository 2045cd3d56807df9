"""The example plugin passes the harness's conformance kit."""
import pytest

from harness.conformance import family_checks
from harness_hamiltonian import Hamiltonian


@pytest.mark.parametrize("check", family_checks(Hamiltonian), ids=str)
def test_conformance(check):
    check()
