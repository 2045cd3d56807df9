"""A run's configuration as flat ``dotted.key → value`` pairs: the columns of
:func:`harness.load_results` and the tags the experiment trackers give each run."""
from __future__ import annotations

from typing import Any


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"solver": {"method": "dopri5"}}`` → ``{"solver.method": "dopri5"}``; an empty
    mapping stays as ``{}`` under its key (so ``model_options: {}`` is a column too)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
