"""Plugin discovery: built-ins come through the entry-point group; broken plugins are reported."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import harness.plugins
from harness import Family, hookimpl
from harness.plugins import load_registry
from harness_plugins.models.node import NODE


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
