"""benchmarks/spirals_curve.py, whose numbers docs/spirals.md quotes: the held-out points it
calls unseen are those past every observation window's angle, and its diagnostics leave the
training's random draws as a run's, so its curve is the one ``harness run`` would record."""
from __future__ import annotations

import torch

from benchmarks.spirals_curve import diagnose, unseen
from harness.running.runner import build_run
from harness_plugins.tasks.spiral_data import generate
from harness_plugins.tasks.spirals import SpiralsTask
from tests.conftest import CPU, make_spec

OPTIONS = {**SpiralsTask.options, "spirals": 12, "stamps": 20, "observations": 8}


def test_unseen_points_lie_past_every_windows_angle(float64):
    """The angle of a clean point is its radius over b (a = 0): unseen held-out points are
    those whose angle exceeds the largest angle of any window's point, and no others."""
    spirals = generate(OPTIONS, data_seed=5)
    angle = spirals.clean.norm(dim=-1) / OPTIONS["b"]
    window, held_out = angle[:, :20], angle[:, 20:]
    expected = held_out > window.max()
    assert expected.any() and not expected.all()
    assert torch.equal(unseen(spirals, OPTIONS["a"], OPTIONS["b"]), expected)


def test_diagnostics_leave_the_random_draws_of_training(registry):
    """The sampled-z0 evaluation draws from torch's generator; the training after it must draw
    what it would have drawn without it."""
    spec = make_spec(task="spirals", model="node", task_options={
        key: OPTIONS[key] for key in ("spirals", "stamps", "observations")})
    model = build_run(spec, registry, CPU).model
    spirals = generate(OPTIONS, data_seed=0)
    torch.manual_seed(7)
    diagnose(model, spirals, unseen(spirals, OPTIONS["a"], OPTIONS["b"]))
    after = torch.randn(3)
    torch.manual_seed(7)
    assert torch.equal(after, torch.randn(3))
    assert model.training  # left in training mode, as the training loop expects
