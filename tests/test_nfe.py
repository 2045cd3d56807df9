"""NFE is counted by the harness and split by phase: forward, backward (adjoint), evaluation."""
from __future__ import annotations

import pytest
import torch

from harness.running.runner import build_run, execute_run
from tests.conftest import CPU, FAMILIES, make_spec

RK4_QUARTER = {"method": "rk4", "options": {"step_size": 0.25}}  # 4 steps × 4 stages


def one_step(spec, registry):
    """Forward, loss and backward once, each in its phase; returns the counts per phase."""
    built = build_run(spec, registry, CPU)
    task = registry.tasks[spec.task]
    data = task.data({**task.options, "inner": 40, "outer": 80}, 0, None, CPU, None)
    x, y = next(iter(data.train))
    with built.counter.in_phase("forward"):
        loss = built.task.loss(built.model(x), y)
    with built.counter.in_phase("backward"):
        loss.backward()
    with built.counter.in_phase("eval"), torch.no_grad():
        built.model(x)
    return built.counter.take()


@pytest.mark.parametrize("model", FAMILIES)
def test_fixed_step_counts_are_exact_in_every_phase(registry, model):
    counts = one_step(make_spec(model=model, solver=RK4_QUARTER), registry)
    assert counts == {"forward": 16, "backward": 16, "eval": 16, "probe": 0}


@pytest.mark.parametrize("model", FAMILIES)
def test_without_adjoint_nothing_is_counted_in_backward(registry, model):
    counts = one_step(make_spec(model=model, solver={**RK4_QUARTER, "adjoint": False}), registry)
    assert counts == {"forward": 16, "backward": 0, "eval": 16, "probe": 0}


def test_adaptive_counts_follow_dopri5(registry):
    """dopri5 spends 2 calls choosing the first step, then 6 per step (first-same-as-last)."""
    counts = one_step(make_spec(solver={"rtol": 1e-6, "atol": 1e-6}), registry)
    for phase in ("forward", "backward"):
        assert counts[phase] > 2 and (counts[phase] - 2) % 6 == 0, counts


def test_counts_match_an_independent_count_of_calls(registry, monkeypatch):
    from harness_plugins.models.hbnode import HBNODE
    calls = []
    original = HBNODE.derivatives
    monkeypatch.setattr(HBNODE, "derivatives",
                        lambda self, t, s, f: calls.append(1) or original(self, t, s, f))
    counts = one_step(make_spec(), registry)
    assert sum(counts.values()) == len(calls)


def test_records_carry_nfe_per_phase(registry):
    adjoint = execute_run(make_spec(solver=RK4_QUARTER), registry, CPU)
    direct = execute_run(make_spec(solver={**RK4_QUARTER, "adjoint": False}), registry, CPU)
    for epoch in adjoint["epochs"]:
        assert (epoch["forward_nfe"], epoch["backward_nfe"], epoch["eval_nfe"]) == (16, 16, 16)
    for epoch in direct["epochs"]:
        assert (epoch["forward_nfe"], epoch["backward_nfe"], epoch["eval_nfe"]) == (16, None, 16)


def test_nfe_is_per_iteration_when_an_epoch_has_several_batches(registry):
    record = execute_run(make_spec(solver=RK4_QUARTER, batch_size=50), registry, CPU)
    assert record["epochs"][0]["iterations"] == 3  # 120 points in batches of 50
    assert record["epochs"][0]["forward_nfe"] == 16
