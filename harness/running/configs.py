"""A run's configuration as flat ``dotted.key → value`` pairs: the columns of
:func:`harness.load_results` and the tags the experiment trackers give each run; and the
configuration less its seed, what runs that differ only in seed share."""
from __future__ import annotations

from typing import Any, Mapping


def without_seed(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration (:meth:`harness.suites.runspec.RunSpec.config`) less its seed:
    what runs that differ only in seed share (an ensemble's members; the runs whose times
    estimate one another's)."""
    return {key: value for key, value in config.items() if key != "seed"}


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
