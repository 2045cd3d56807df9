"""Baselines (models a task offers that are no ODE family) and families a task refuses: the
suite syntax, the key, the record, the report row and the refusal before training."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from harness import hookimpl
from harness.conformance import _train_step
from harness.plugins import load_registry
from harness.reports.aggregate import group_runs
from harness.reports.claim_contexts import differing
from harness.reports.tables import render_markdown, summarize
from harness.running.driver import check_runs, run_suite
from harness.running.runner import RunConfigError
from harness.suites.loader import SuiteError, suite_from_document
from harness_plugins.tasks.point_cloud import PointCloud


class WithBaselines(PointCloud):
    """The point cloud offering two baselines (one named like a family) and refusing HBNODE."""

    name = "with_baselines"
    baselines = {"mlp": {"h": 8}, "node": {"h": 4}}
    tiny = {"task_options": {"inner": 4, "outer": 8}}

    def build_baseline(self, name, widths, options):
        return nn.Sequential(nn.Linear(2, widths["h"]), nn.Tanh(), nn.Linear(widths["h"], 1),
                             nn.Tanh())

    def refusal(self, family, widths):
        return "its momentum is not wanted here" if family.name == "hbnode" else None


class Plugin:
    @hookimpl
    def harness_tasks(self):
        return [WithBaselines]


@pytest.fixture(scope="module")
def registry():
    return load_registry([("with-baselines", Plugin())])


def suite(registry, *entries, **defaults):
    return suite_from_document({"name": "b", "defaults": {"epochs": 2, **defaults},
                                "runs": list(entries)}, Path("b.yaml"), registry)


def test_baselines_expand_beside_models_with_keys_of_their_own(registry):
    runs = suite(registry, {"task": "with_baselines", "models": ["node"],
                            "baselines": ["mlp", "node"]}).runs
    assert [(r.model, r.kind) for r in runs] == [("node", "family"), ("mlp", "baseline"),
                                                  ("node", "baseline")]
    family, _, baseline = runs
    assert family.key != baseline.key  # one name, two models
    alone = suite(registry, {"task": "with_baselines", "model": "node"}).runs
    assert alone[0].key == family.key  # a family's key does not move for baselines
    assert "kind" not in family.config() and baseline.config()["kind"] == "baseline"
    assert baseline.versions["model_version"] == WithBaselines.version
    only = suite(registry, {"task": "with_baselines", "baseline": "mlp"}).runs
    assert [(r.model, r.kind) for r in only] == [("mlp", "baseline")]


def test_unknown_or_unoffered_baselines_are_named_with_the_valid_ones(registry):
    with pytest.raises(SuiteError) as error:
        suite(registry, {"task": "with_baselines", "baselines": ["planar"]})
    assert "runs[0].baselines[0]: unknown baseline 'planar'" in str(error.value)
    assert "mlp" in str(error.value)
    with pytest.raises(SuiteError) as error:
        suite(registry, {"tasks": ["with_baselines", "point_cloud"], "baselines": ["mlp"]})
    assert "baseline 'mlp' is not offered by task(s) point_cloud" in str(error.value)
    with pytest.raises(SuiteError, match="no 'model' or 'models' given"):
        suite(registry, {"task": "with_baselines"})
    with pytest.raises(SuiteError, match="'hbnode' is not a model of this entry; valid: mlp"):
        suite(registry, {"task": "with_baselines", "baselines": ["mlp"],
                         "overrides": {"hbnode": {"lr": 0.1}}})


def test_a_baseline_trains_into_its_own_record_and_report_row(registry, tmp_path):
    runs = suite(registry, {"task": "with_baselines", "models": ["node"],
                            "baselines": ["node"], "task_options": {"inner": 4, "outer": 8},
                            "overrides": {"node": {"lr": 0.05}}}).runs
    outcome = run_suite(runs, registry, tmp_path)
    family, baseline = outcome.records
    assert family["status"] == baseline["status"] == "ok", baseline.get("error")
    assert "kind" not in family and baseline["kind"] == "baseline"
    assert baseline["params"] == 2 * 4 + 4 + 4 + 1  # the task's baseline, not a family's model
    assert all(e["forward_nfe"] is None and e["backward_nfe"] is None and e["eval_nfe"] is None
               for e in baseline["epochs"])
    assert family["epochs"][-1]["forward_nfe"] > 0
    rows = summarize(outcome.records)
    assert [(row["label"], row["kind"]) for row in rows] == [("node", "family"),
                                                             ("node (baseline)", "baseline")]
    assert "| node (baseline) |" in render_markdown(rows)
    family_group, baseline_group = group_runs(outcome.records)
    assert differing(family_group, baseline_group) == []  # the kind is the model, not a setting


def test_model_options_are_refused_for_a_baseline(registry):
    runs = suite(registry, {"task": "with_baselines", "baselines": ["mlp"],
                            "model_options": {"gamma_init": -2.0}}).runs
    with pytest.raises(RunConfigError, match="baseline 'mlp' takes none"):
        check_runs(runs, registry)


def test_a_refused_family_is_refused_before_training_with_the_reason(registry):
    runs = suite(registry, {"task": "with_baselines", "models": ["node", "hbnode"]}).runs
    with pytest.raises(RunConfigError) as error:
        check_runs(runs, registry)
    assert ("task 'with_baselines' refuses model 'hbnode' (widths {" in str(error.value)
            and "its momentum is not wanted here" in str(error.value))
    assert "'n':" not in str(error.value)  # the widths listed as a suite writes them: {n: …}
    assert "'node'" not in str(error.value)


def test_the_conformance_kit_skips_a_refused_pair_saying_why(registry, monkeypatch):
    monkeypatch.setattr("harness.conformance.load_registry", lambda *a: registry)
    with pytest.raises(pytest.skip.Exception, match="its momentum is not wanted here"):
        _train_step(registry.families["hbnode"], "with_baselines")
    torch.manual_seed(0)
    _train_step(registry.families["node"], "with_baselines")  # not refused: it trains
