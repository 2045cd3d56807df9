"""Reference timings shipped with the harness: seconds per epoch of the shipped suites' run
configurations, measured on one named machine by ``benchmarks/reference_times.py``, so that a
first ``harness run --dry-run`` (no results yet) can estimate. They are a last resort: earlier
results in the results directory come first, and every estimate says which it came from.

A reference matches a run by its *epoch shape*: the configuration less the settings that do
not change what one epoch computes (the seed, the number of epochs, the learning rate and the
rest of the schedule), so the timing of a short measurement run stands for longer runs of the
same task, model, solver, widths, batch size and options."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

#: The settings left out of an epoch's shape: they set how many epochs run and how the
#: optimizer steps, not what an epoch computes.
SCHEDULE = ("seed", "epochs", "lr", "optimizer", "lr_restarts", "time_limit_s", "grad_clip",
            "eval_every")

#: The shipped file, package data of ``harness.running``.
REFERENCE_FILE = "reference_times.json"


def epoch_shape(config: dict[str, Any]) -> str:
    """A run's configuration (``RunSpec.config()``) less :data:`SCHEDULE`, as text."""
    return json.dumps({k: v for k, v in config.items() if k not in SCHEDULE}, sort_keys=True,
                      default=str)


@dataclass(frozen=True)
class ReferenceTimes:
    """Seconds per epoch by epoch shape, and where they were measured."""

    machine: str = "none"
    """The machine, its load and the date, as one line (said with every estimate)."""
    seconds: dict[str, float] = field(default_factory=dict)

    def per_epoch(self, config: dict[str, Any]) -> float | None:
        return self.seconds.get(epoch_shape(config))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReferenceTimes":
        return cls(data["machine"], {epoch_shape(entry["config"]): float(entry["seconds_per_epoch"])
                                     for entry in data["timings"]})


def shipped_reference() -> ReferenceTimes:
    """The reference timings installed with the harness (none when the file is absent)."""
    path = resources.files("harness.running").joinpath(REFERENCE_FILE)
    if not path.is_file():
        return ReferenceTimes("no reference timings installed")
    return ReferenceTimes.from_json(json.loads(path.read_text()))
