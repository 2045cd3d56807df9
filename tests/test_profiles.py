"""The ``profile`` run setting and ``lr_restarts``: keys, the loader's profile levels, the
optimizer restart. (What each task's authors-code profile changes: test_authors_code.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.reports.tables import render_markdown, summarize
from harness.running.engine import execute
from harness.running.runner import SoloTrainer
from harness.suites.loader import SuiteError, load_suite, suite_from_document
from harness_plugins.tasks.point_cloud import PointCloud
from tests.conftest import CPU, make_spec
from tests.result_records import record


def runs(registry, *entries: dict) -> list:
    return suite_from_document({"runs": list(entries)}, Path("s.yaml"), registry).runs


def test_settings_added_later_stay_out_of_the_key_at_their_defaults():
    paper = make_spec()
    assert paper.config()["profile"] == "paper" and paper.config()["lr_restarts"] == {}
    assert make_spec(profile="paper").key == paper.key
    assert make_spec(profile="authors-code").key != paper.key
    assert make_spec(lr_restarts={2: 1e-3}).key != paper.key
    assert make_spec(precision="float32").key == paper.key
    assert make_spec(precision="float64").key != paper.key


def test_the_shipped_ci_suite_keeps_its_keys(registry):
    """The default profile leaves every run as it was: ci.yaml's runs resolve to the settings
    and keys they had (the record's config only gains the two new fields)."""
    suite = suite_from_document({"runs": [{"task": "point_cloud", "model": "hbnode",
                                           "epochs": 20, "lr": 0.02,
                                           "solver": {"method": "dopri5", "tol": 1.0e-4}}]},
                                Path("ci.yaml"), registry)
    (spec,) = suite.runs
    assert spec.profile == "paper" and spec.lr_restarts == {} and spec.task_options == {}
    assert spec.model_options == {} and spec.grad_clip is None


def test_a_profile_is_a_level_under_the_suites_settings(registry, monkeypatch):
    monkeypatch.setattr(PointCloud, "profiles", {"authors-code": {
        "lr": 0.5, "grad_clip": 2.0, "task_options": {"inner": 7, "outer": 9},
        "models": {"ghbnode": {"model_options": {"sigma": "identity"}}}}})
    entry = {"task": "point_cloud", "models": ["node", "ghbnode"], "profile": "authors-code",
             "task_options": {"outer": 11}}
    node, ghbnode = runs(registry, entry)
    assert node.lr == 0.5 and node.grad_clip == 2.0          # the profile over the schedule
    assert node.task_options == {"inner": 7, "outer": 11}    # the suite over the profile
    assert node.model_options == {} and ghbnode.model_options == {"sigma": "identity"}
    paper = runs(registry, {**entry, "profile": "paper"})[0]
    assert paper.lr == PointCloud.schedule["lr"] and paper.task_options == {"outer": 11}
    override = runs(registry, {**entry, "lr": 0.125})[0]
    assert override.lr == 0.125


def test_bad_profiles_and_restarts_are_named(registry, monkeypatch):
    with pytest.raises(SuiteError, match="'author-code' is not a profile.*authors-code"):
        runs(registry, {"task": "point_cloud", "model": "node", "profile": "author-code"})
    with pytest.raises(SuiteError, match=r"lr_restarts\.1: epoch 1 is not an integer > 1"):
        runs(registry, {"task": "point_cloud", "model": "node", "lr_restarts": {1: 0.1}})
    with pytest.raises(SuiteError, match=r"lr_restarts\.3: -1 is not > 0"):
        runs(registry, {"task": "point_cloud", "model": "node", "lr_restarts": {3: -1}})
    monkeypatch.setattr(PointCloud, "profiles", {"authors-code": {"task_options": {"iner": 7}}})
    with pytest.raises(SuiteError, match="profile 'authors-code'.*unknown option 'iner'"):
        runs(registry, {"task": "point_cloud", "model": "node"})


def test_a_restart_brings_a_fresh_optimizer_at_its_lr(registry):
    spec = make_spec(epochs=3, lr=0.01, lr_restarts={3: 0.5},
                     task_options={"inner": 5, "outer": 5})
    trainer = SoloTrainer(spec, registry, CPU)
    optimizers = []

    def notify(event, run, **details):
        if event == "epoch_finished":
            optimizers.append(trainer.built.optimizer)

    assert execute(trainer, registry, CPU, notify)[0]["status"] == "ok"
    first, _, fresh = optimizers
    assert optimizers[1] is first and fresh is not first
    assert [o.param_groups[0]["lr"] for o in optimizers] == [0.01, 0.01, 0.5]
    steps = {int(state["step"]) for state in fresh.state.values()}
    assert steps == {1}  # the full batch: one step in epoch 3, none carried over from 1 and 2
    assert all(isinstance(p, torch.Tensor) for p in fresh.param_groups[0]["params"])


def test_a_grid_sets_both_profiles_side_by_side_and_the_report_names_them(registry):
    paper, authors = runs(registry, {"task": "plane_vibration", "model": "hbnode",
                                     "grid": {"profile": ["paper", "authors-code"]}})
    assert (paper.profile, authors.profile) == ("paper", "authors-code")
    assert authors.task_options["cell"] == "authors" and paper.task_options == {}
    epochs = [{"epoch": 1, "loss": 0.5, "forward_nfe": 20.0, "backward_nfe": 30.0,
               "train_time_s": 1.0, "test_accuracy": 0.9}]
    both = [record("point_cloud", "hbnode", 0, epochs, config={"profile": profile})
            for profile in ("paper", "authors-code")]
    both[1]["key"] += "/authors"
    text = render_markdown(summarize(both))
    assert "profile: paper, authors-code" in text and "profile=authors-code" in text
    older = record("point_cloud", "hbnode", 0, epochs)  # a record from before profiles
    assert "profile" not in older["config"]
    assert "1 seed: 0; profile: paper" in render_markdown(summarize([older]))
    only = record("point_cloud", "hbnode", 0, epochs, config={"profile": "authors-code"})
    assert "1 seed: 0; profile: authors-code" in render_markdown(summarize([only]))


def test_the_authors_code_suite_runs_the_papers_experiments(registry):
    """suites/paper-authors-code.yaml: paper.yaml's runs (task, model, seed, epochs, batch,
    solver), all under the authors' profile, whose settings it leaves to the profile."""
    suites = Path(__file__).resolve().parents[1] / "suites"
    paper, authors = (load_suite(suites / name, registry).runs
                      for name in ("paper.yaml", "paper-authors-code.yaml"))

    def experiment(spec):
        return spec.task, spec.model, spec.seed, spec.epochs, spec.batch_size, spec.solver

    assert [experiment(s) for s in authors] == [experiment(s) for s in paper]
    assert {s.profile for s in paper} == {"paper"}
    assert {s.profile for s in authors} == {"authors-code"}
    vibration = {(s.lr, s.grad_clip, s.task_options["cell"])
                 for s in authors if s.task == "plane_vibration"}
    assert vibration == {(1e-3, 1.0, "authors")}
