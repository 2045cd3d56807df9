"""Results for your own analysis: every run's epochs as a pandas DataFrame (what
``harness.load_results`` returns)."""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

from harness.running.configs import flatten
from harness.running.store import load_results as standing_records

#: The run fields each row carries, before the configuration and the epoch's numbers.
RUN_FIELDS = ("suite", "task", "model", "seed", "status", "failure_kind", "error", "metric",
              "higher_is_better", "params", "wall_time_s", "started_at", "key")


def load_results(*paths: str | os.PathLike) -> pd.DataFrame:
    """One row per run and epoch of the results directories (or ``results.jsonl`` files)
    given: the run's fields (:data:`RUN_FIELDS`), its configuration flattened into
    ``config.*`` columns (``config.solver.method``, ``config.lr``, …) and the epoch record's
    fields (``epoch``, ``loss``, ``forward_nfe``, ``test_accuracy``, …; curves such as
    ``adjoint_norm`` as lists). A run that ended before its first epoch has one row with no
    epoch. A run stored more than once in a directory counts by its standing record (the
    latest ``ok``); two directories holding the same run give a row each.
    Raises :class:`harness.running.store.ResultsError` for a path without records."""
    rows: list[dict[str, Any]] = []
    for record in standing_records(paths):
        run = {name: record.get(name) for name in RUN_FIELDS}
        run.update({f"config.{name}": value
                    for name, value in flatten(record.get("config") or {}).items()})
        rows += [{**run, **epoch} for epoch in record["epochs"]] or [run]
    return pd.DataFrame(rows)
