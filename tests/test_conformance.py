"""Every installed family (the built-ins and, in CI, the example packages' AdamNODE and
NesterovNODE) passes the conformance kit a plugin author runs (harness.conformance), including a
tiny run on every installed task whose data is on this machine."""
from __future__ import annotations

import pytest

from harness.conformance import Check, family_checks
from harness.plugins import load_registry
from harness.running.preflight import has_data_check
from harness_plugins.models.node import NODE
from tests.sequence_files import SHARED_DATA

REGISTRY = load_registry()


def _marks(check: Check) -> list[pytest.MarkDecorator]:
    """A tiny run on a task that reads data files is a run on the real data where this machine
    has it (minutes, not seconds): slow."""
    task = check.name.removeprefix("a tiny run on ")
    reads_files = task != check.name and has_data_check(REGISTRY.tasks[task])
    return [pytest.mark.slow] if reads_files else []


CHECKS = [pytest.param(name, check, marks=_marks(check), id=f"{name}: {check}")
          for name, family in sorted(REGISTRY.families.items()) for check in family_checks(family)]


@pytest.fixture(autouse=True)
def shared_data(monkeypatch):
    """The tasks read the shared data folder beside the checkout when there is one."""
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("HARNESS_DATA_ROOT", str(SHARED_DATA))


@pytest.mark.parametrize("family, check", CHECKS)
def test_installed_family_conforms(family, check):
    check()


def test_a_broken_family_fails_the_kit_with_a_clear_message():
    class Wrong(NODE):
        name = "wrong"
        parts = ("h", "m")  # declares two parts; NODE's right-hand side unpacks one

    shapes = next(c for c in family_checks(Wrong, tasks=[]) if c.name == "derivative shapes")
    with pytest.raises(AssertionError, match=r"derivatives raised ValueError.* 2 parts \('h', 'm'\)"):
        shapes()


def test_a_family_returning_too_few_derivatives_fails_the_kit():
    class Short(NODE):
        name = "short"
        parts = ("h", "m")

        def derivatives(self, t, state, f):
            return (f(t, state[0]),)  # one derivative for two parts

    shapes = next(c for c in family_checks(Short, tasks=[]) if c.name == "derivative shapes")
    with pytest.raises(AssertionError, match=r"expected a tuple of 2, one per part \('h', 'm'\)"):
        shapes()


def test_the_kit_catches_a_readout_that_is_not_a_part():
    class PositionMomentum(NODE):
        name = "position_momentum"
        parts = ("q", "p")  # and no readout: the default "h" is neither
        initial_state = {"q": "input+network", "p": "network"}

        def derivatives(self, t, state, f):
            q, p = state
            return p, f(t, q)

    checks = {c.name: c for c in family_checks(PositionMomentum, tasks=[])}
    for name in ("state layout", "initial state as declared"):
        with pytest.raises(AssertionError, match=r"readout 'h' is not one of its parts \('q', 'p'\)"):
            checks[name]()
    PositionMomentum.readout = "q"
    for check in checks.values():
        check()


def test_the_kit_checks_each_part_starts_where_declared(monkeypatch):
    class MomentumAndRest(NODE):
        name = "momentum_and_rest"
        parts = ("h", "m", "z")
        initial_state = {"h": "input+zeros", "m": "network", "z": "zeros"}

        def derivatives(self, t, state, f):
            h, m, z = state
            return m, f(t, h) - m, h - z

    (check,) = [c for c in family_checks(MomentumAndRest, tasks=[])
                if c.name == "initial state as declared"]
    check()
    # a block that put the network's channels right after x, as contract 1 did, is caught
    monkeypatch.setattr(MomentumAndRest, "initial_layout",
                        classmethod(lambda cls, n, c: (("input", c), ("network", n), ("zeros", 2 * n - c))))
    with pytest.raises(AssertionError, match="part 'h' \\('input\\+zeros'\\) starts as"):
        check()
