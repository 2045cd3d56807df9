"""Shared fixtures: the real plugin registry, and quick run specs."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from harness.plugins import Registry, load_registry
from harness.suites.runspec import RunSpec, default_settings

CPU = torch.device("cpu")
FAMILIES = ("node", "anode", "sonode", "hbnode", "ghbnode")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def make_spec(task: str = "point_cloud", model: str = "hbnode", seed: int = 0,
              **settings: Any) -> RunSpec:
    """A run spec from the harness defaults, with ``settings`` (``solver`` merged key by key)."""
    resolved = default_settings()
    solver = settings.pop("solver", {})
    resolved.update({"epochs": 2, "lr": 0.01, **settings})
    resolved["solver"].update({"rtol": 1e-3, "atol": 1e-3, **solver})
    return RunSpec.from_settings("test", task, model, seed, resolved)


@pytest.fixture
def float64():
    """torch's default dtype float64 for the test, for tests that make blocks, models or data
    themselves (exactness tests compare NFE step for step); a run takes ``precision="float64"``
    instead, which sets it for the run alone."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
