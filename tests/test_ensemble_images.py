"""Ensembles on an image task: convolutions stacked as one grouped convolution, the
time-dependent convolutional field reading each member's time row by row; in float64 every
member trains and evaluates as its solo run, to the same NFE."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import datasets

from harness.running.ensembles import execute_ensemble
from harness.running.runner import execute_run
from harness.toolkit.ensemble import Members, load_member, stack_models
from harness.toolkit.stacking import of_members
from tests.conftest import CPU, FAMILIES, make_spec
from tests.image_files import random_idx_split, write_idx
from tests.test_images import trust_written_idx

pytestmark = pytest.mark.slow  # ensemble exactness

EXACT = ("forward_nfe", "backward_nfe", "eval_nfe", "iterations", "test_accuracy")


@pytest.fixture
def mnist(tmp_path, monkeypatch):
    """A data root with a small MNIST in torchvision's layout: 8 training, 4 test images."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    for split, count in (("train", 8), ("test", 4)):
        write_idx(raw, split, *random_idx_split(count, rng))
    trust_written_idx(monkeypatch, datasets.MNIST, raw)
    monkeypatch.setenv("HARNESS_DATA_ROOT", str(tmp_path))


@pytest.mark.parametrize("model", FAMILIES)
def test_each_member_trains_as_its_solo_run(registry, mnist, model):
    """Three seeds, two batches of four images each (each member in its own order): each
    member's NFE in every phase and its test accuracy equal its solo run's, its losses agree
    to rounding."""
    specs = [make_spec(task="mnist", model=model, seed=seed, epochs=1, batch_size=4, lr=1e-3,
                       solver={"backend": "fast", "rtol": 1e-3, "atol": 1e-3},
                       precision="float64") for seed in range(3)]
    solo = [execute_run(spec, registry, CPU) for spec in specs]
    records = execute_ensemble(specs, registry, CPU)
    for record, alone in zip(records, solo):
        assert record["status"] == alone["status"] == "ok" and record["ensemble"]["size"] == 3
        (epoch,), (reference,) = record["epochs"], alone["epochs"]
        for name in EXACT:
            assert epoch[name] == reference[name], name
        for name in ("loss", "test_loss"):
            assert epoch[name] == pytest.approx(reference[name], rel=1e-9)


def test_stacked_convolutions_compute_each_members_own(float64):
    """A stack of three zero-padded convolutions gives each member's rows its own layer's
    output, for all members and for a selection of them; load_member copies a member back."""
    convolutions = [nn.Conv2d(4, 6, 3, padding=1, stride=2) for _ in range(3)]
    members = Members(3)
    stacked = stack_models(convolutions, members)
    x = torch.randn(3 * 2, 4, 9, 9)
    alone = torch.cat([conv(x[2 * m:2 * m + 2]) for m, conv in enumerate(convolutions)])
    torch.testing.assert_close(stacked(x), alone, rtol=1e-12, atol=1e-14)
    some = of_members(stacked, torch.tensor([0, 2]))
    torch.testing.assert_close(some(torch.cat([x[:2], x[4:]])),
                               torch.cat([alone[:2], alone[4:]]), rtol=1e-12, atol=1e-14)
    copy = nn.Conv2d(4, 6, 3, padding=1, stride=2)
    load_member(copy, stacked, 1)
    assert torch.equal(copy.weight, convolutions[1].weight)
    assert torch.equal(copy.bias, convolutions[1].bias)
