"""Synthetic result records with known values, for the report, figure, claims and compare
tests: the fields of README's "The result record", nothing trained."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.running.store import ResultStore

ENVIRONMENT = {"python": "3.11.7", "platform": "Linux-test", "torch": "2.14.1",
               "torchdiffeq": "0.2.5", "harness": "0.1.0", "git_revision": "abc123",
               "torch_threads": 1, "argv": ["/venv/bin/harness", "run", "suites/x.yaml"],
               "device": "cpu", "device_name": "x86_64"}


def epoch(number: int, **fields: Any) -> dict[str, Any]:
    """An epoch record: the given fields over defaults (NFE 10/12, 1 s, loss 1)."""
    return {"epoch": number, "iterations": 1, "loss": 1.0, "forward_nfe": 10.0,
            "backward_nfe": 12.0, "train_time_s": 1.0, "forward_time_s": 0.4,
            "backward_time_s": 0.5, **fields}


def record(task: str, model: str, seed: int, epochs: list[dict[str, Any]], *,
           suite: str = "test", metric: str = "accuracy", tol: float = 1e-3,
           params: int = 100, paper_params: int | None = None, status: str = "ok",
           config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run record; its key hashes nothing but is unique per suite, task, model, seed, tol."""
    solver = {"method": "dopri5", "rtol": tol, "atol": tol, "adjoint": True, "options": {}}
    return {
        "key": f"{suite}/{task}/{model}/{seed}/{tol}", "suite": suite, "task": task,
        "model": model, "seed": seed, "status": status,
        "error": None if status == "ok" else "SolverFailure: too many steps",
        "failure_kind": None if status == "ok" else "solver", "params": params,
        "paper_params": paper_params, "widths": {}, "metric": metric,
        "higher_is_better": metric == "accuracy",
        "config": {"task": task, "model": model, "seed": seed, "epochs": len(epochs),
                   "lr": 0.01, "batch_size": None, "solver": solver,
                   "task_options": {"data_seed": seed}, **(config or {})},
        "packages": {}, "environment": dict(ENVIRONMENT),
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
        "wall_time_s": 60.0, "epochs": epochs,
    }


def curve_run(task: str, model: str, seed: int, values: dict[str, list[float]],
              **options: Any) -> dict[str, Any]:
    """A run whose epoch i (from 1) has ``values[field][i - 1]`` for every field given."""
    count = len(next(iter(values.values())))
    epochs = [epoch(i + 1, **{name: series[i] for name, series in values.items()})
              for i in range(count)]
    return record(task, model, seed, epochs, **options)


def write_records(directory: Path, records: list[dict[str, Any]]) -> None:
    """Append records to ``directory/results.jsonl`` through the record store, as a driver does."""
    with ResultStore(directory) as store:
        for run in records:
            store.append(run)
