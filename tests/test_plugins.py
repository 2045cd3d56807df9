"""Plugin discovery: built-ins come through the entry-point group; broken plugins are reported."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import harness.plugins
from harness import Family, hookimpl
from harness.plugins import load_registry
from harness.solvers.torchdiffeq_backend import TorchdiffeqBackend
from harness_plugins.models.node import NODE
from harness_plugins.tasks.point_cloud import PointCloud


def test_builtins_load_through_the_entry_point_group(registry):
    assert set(registry.families) >= {"node", "anode", "sonode", "hbnode", "ghbnode"}
    assert "point_cloud" in registry.tasks
    assert registry.package_of("model", "hbnode") == "harness"
    assert registry.failures == []


class Raises:
    @hookimpl
    def harness_model_families(self):
        raise RuntimeError("boom")


class WrongThing:
    @hookimpl
    def harness_model_families(self):
        return ["not a family"]


class Clash:
    class OtherNODE(NODE):
        pass

    @hookimpl
    def harness_model_families(self):
        return [self.OtherNODE]


class Fine:
    class Extra(Family):
        name = "extra"

        def derivatives(self, t, state, f):
            return (f(t, state[0]),)

    @hookimpl
    def harness_model_families(self):
        return [self.Extra]


def test_broken_plugins_are_reported_and_the_others_load(monkeypatch):
    broken_import = EntryPoint("ghost", "no_such_module_for_harness_tests", "harness")
    real = harness.plugins.entry_points
    monkeypatch.setattr(harness.plugins, "entry_points",
                        lambda group: [*real(group=group), broken_import])
    registry = load_registry([("raises", Raises()), ("wrong", WrongThing()), ("clash", Clash()),
                              ("fine", Fine())])
    reasons = {failure.plugin: failure.reason for failure in registry.failures}
    assert "import failed" in reasons["ghost"] and "no_such_module_for_harness_tests" in reasons["ghost"]
    assert "harness_model_families raised RuntimeError('boom')" in reasons["raises"]
    assert "not a subclass of harness.Family" in reasons["wrong"]
    assert "model name 'node' is already taken by plugin 'node'" in reasons["clash"]
    assert registry.families["node"] is NODE  # the first one keeps the name
    assert "extra" in registry.families and "hbnode" in registry.families


class QP(Family):
    """Parts q and p, and no readout declared: the default "h" is none of them."""

    name = "qp"
    parts = ("q", "p")
    initial_state = {"q": "input+network", "p": "network"}

    def derivatives(self, t, state, f):
        q, p = state
        return p, f(t, q)


class ProvidesQP:
    @hookimpl
    def harness_model_families(self):
        return [QP]


def test_a_family_without_a_valid_readout_is_refused_at_load():
    registry = load_registry([("qp-plugin", ProvidesQP())])
    assert "qp" not in registry.families and "hbnode" in registry.families
    assert [(f.plugin, f.reason) for f in registry.failures] == [
        ("qp-plugin", "family 'qp': readout 'h' is not one of its parts ('q', 'p'); set readout "
                      "to the part tasks read the model's output from")]


def _family(**attributes) -> type[Family]:
    def derivatives(self, t, state, f):
        return tuple(f(t, state[0]) for _ in state)
    return type("Made", (Family,), {"name": "made", "derivatives": derivatives, **attributes})


@pytest.mark.parametrize("attributes, reason", [
    ({"parts": ("h", "m"), "initial_state": "network"},
     "family 'made': initial_state must map each part ('h', 'm') to where it starts ("
     "'input+zeros', 'input+network', 'network', 'zeros'), not 'network' (contract 1's 'augment' "
     "is {'h': 'input+zeros'}; its 'network' is {'h': 'input+network', <other parts>: 'network'})"),
    ({"parts": ("h", "m")},
     "family 'made': initial_state must name every part ('h', 'm') and no other; missing ['m']"),
    ({"initial_state": {"h": "input"}},
     "family 'made': initial_state {'h': 'input'} is not a start; valid: 'input+zeros', "
     "'input+network', 'network', 'zeros'"),
    ({"parts": ("h", "m"), "initial_state": {"h": "input+zeros", "m": "input+network"}},
     "family 'made': initial_state puts the input x into 2 parts ['h', 'm']; one at most"),
    ({"initial_state": {"h": "zeros"}},
     "family 'made': initial_state reads nothing of the input: no part starts from x or the network"),
    ({"parts": ("h", "h"), "initial_state": {"h": "input+zeros"}},
     "family 'made': parts must be a non-empty tuple of distinct names, not ('h', 'h')"),
])
def test_a_family_whose_contract_is_wrong_is_refused_at_load(attributes, reason):
    made = _family(**attributes)

    class Plugin:
        @hookimpl
        def harness_model_families(self):
            return [made]

    registry = load_registry([("made-plugin", Plugin())])
    assert "made" not in registry.families
    assert [(f.plugin, f.reason) for f in registry.failures] == [("made-plugin", reason)]


class _Backend(TorchdiffeqBackend):
    name = "other_torchdiffeq"


class _Task(PointCloud):
    name = "other_point_cloud"


class ReturnsInstances:
    """Contract 1's habit: a task and a backend as instances, and a family too."""

    @hookimpl
    def harness_tasks(self):
        return [_Task()]

    @hookimpl
    def harness_solver_backends(self):
        return [_Backend()]

    @hookimpl
    def harness_model_families(self):
        return [NODE()]


def test_a_hook_returning_an_instance_where_a_class_is_expected_is_that_plugins_failure():
    registry = load_registry([("instances", ReturnsInstances()), ("fine", Fine())])
    reasons = sorted(f.reason for f in registry.failures if f.plugin == "instances")
    assert len(reasons) == 3 and all("returned an instance" in r for r in reasons)
    assert any(r.startswith("harness_tasks returned an instance, ") and r.endswith(
        "; it returns classes (since plugin contract 2): return _Task, not _Task()") for r in reasons)
    assert any(r.startswith("harness_model_families returned an instance, ") and r.endswith(
        "; it returns classes: return NODE, not NODE()") for r in reasons)
    assert "other_point_cloud" not in registry.tasks
    assert "other_torchdiffeq" not in registry.backends
    assert "extra" in registry.families and "point_cloud" in registry.tasks


class ReturnsClasses:
    @hookimpl
    def harness_tasks(self):
        return [_Task]

    @hookimpl
    def harness_solver_backends(self):
        return [_Backend]


def test_tasks_and_backends_are_instantiated_once_at_load():
    registry = load_registry([("classes", ReturnsClasses())])
    assert type(registry.tasks["other_point_cloud"]) is _Task
    assert type(registry.backends["other_torchdiffeq"]) is _Backend
    assert registry.sources["task", "other_point_cloud"] == "classes"


class Unmakeable(PointCloud):
    name = "unmakeable"

    def __init__(self) -> None:
        raise RuntimeError("needs a licence server")


class ProvidesUnmakeable:
    @hookimpl
    def harness_tasks(self):
        return [Unmakeable]


def test_a_task_that_cannot_be_instantiated_is_that_plugins_failure():
    registry = load_registry([("unmakeable", ProvidesUnmakeable())])
    assert "unmakeable" not in registry.tasks and "point_cloud" in registry.tasks
    assert [(f.plugin, f.reason) for f in registry.failures] == [
        ("unmakeable", "task 'unmakeable': Unmakeable() raised RuntimeError('needs a licence server')")]


class WrittenForContract1:
    HARNESS_CONTRACT = 1

    @hookimpl
    def harness_model_families(self):
        return [QP]


def test_a_plugin_written_for_contract_1_is_refused_with_what_changed():
    registry = load_registry([("old", WrittenForContract1())])
    (failure,) = registry.failures
    assert failure.plugin == "old"
    assert failure.reason.startswith("written for plugin contract 1; this harness has contract 2: "
                                     "every contribution hook returns classes")
    assert "set HARNESS_CONTRACT = 2" in failure.reason
