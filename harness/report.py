"""Summaries of a results file: one row per (task, model), as Markdown tables and a flat CSV.

A run's ``forward_nfe``/``backward_nfe`` per epoch are taken as per-iteration counts; a run's
value is their mean over its epochs, and a row shows the mean ± sample std across ok seeds.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from tabulate import tabulate

from harness.records import read_records, results_path

REPORT_DIR = "report"
DASH = "—"

#: The CSV's columns, in order: every numeric column holds a raw number or is empty.
CSV_COLUMNS = [
    "task", "model", "metric", "n_ok", "n_failed",
    "test_metric_mean", "test_metric_std", "train_loss_mean", "train_loss_std",
    "forward_nfe_mean", "forward_nfe_std", "backward_nfe_mean", "backward_nfe_std",
    "epoch_time_s_mean", "epoch_time_s_std", "params", "paper_params",
]

_STATS = ("test_metric", "train_loss", "forward_nfe", "backward_nfe", "epoch_time_s")


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, model), tasks in first-seen order, then models in first-seen order.

    A run stored more than once (a failed run tried again) counts by its last record. Stats
    are over ok runs only; a ``*_std`` is None with fewer than two values, and a stat is None
    when no run has a value (e.g. ``backward_nfe`` without the adjoint).
    """
    latest: dict[Any, dict[str, Any]] = {}
    for index, record in enumerate(records):
        latest[record.get("key", index)] = record
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in latest.values():
        groups.setdefault(record["task"], {}).setdefault(record["model"], []).append(record)
    return [_row(task, model, runs)
            for task, models in groups.items() for model, runs in models.items()]


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """A heading, a seeds line, a table and the failed runs' errors for each task."""
    tasks: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tasks.setdefault(row["task"], []).append(row)
    sections = []
    for task, task_rows in tasks.items():
        seeds = sorted({seed for row in task_rows for seed in row["seeds"]})
        metrics = "/".join(dict.fromkeys(row["metric"] for row in task_rows))
        headers = ["model", "runs ok", "failed", f"test {metrics}", "final train loss",
                   "forward NFE", "backward NFE", "time/epoch (s)", "params", "paper params"]
        table = [[row["model"], row["n_ok"], row["n_failed"],
                  *(_cell(row, stat) for stat in _STATS),
                  _plain(row["params"]), _plain(row["paper_params"])] for row in task_rows]
        lines = [f"## {task}", "",
                 f"{len(seeds)} seed{'s' * (len(seeds) != 1)}: {', '.join(map(str, seeds))}", "",
                 tabulate(table, headers, tablefmt="github", disable_numparse=True)]
        errors = [f"- {task}/{row['model']}/seed {seed}: {error}"
                  for row in task_rows for seed, error in row["errors"]]
        if errors:
            lines += ["", "Failed runs:", "", *errors]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def write_report(results_dir: Path) -> Path:
    """Write ``report/summary.md`` and ``report/summary.csv`` under results_dir; return the .md."""
    path = results_path(results_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    rows = summarize(read_records(path))
    if not rows:
        raise ValueError(f"{path} holds no result records")
    out = Path(results_dir) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    markdown = out / "summary.md"
    markdown.write_text(render_markdown(rows), encoding="utf-8")
    return markdown


def _row(task: str, model: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [run for run in runs if run.get("status") == "ok"]
    first = (ok or runs)[0]
    metric = first["metric"]
    per_run = {
        "test_metric": [run["epochs"][-1].get(f"test_{metric}") for run in ok if run["epochs"]],
        "train_loss": [run["epochs"][-1].get("loss") for run in ok if run["epochs"]],
        "forward_nfe": [_epoch_mean(run, "forward_nfe") for run in ok],
        "backward_nfe": [_epoch_mean(run, "backward_nfe") for run in ok],
        "epoch_time_s": [_epoch_mean(run, "train_time_s") for run in ok],
    }
    row: dict[str, Any] = {
        "task": task, "model": model, "metric": metric,
        "n_ok": len(ok), "n_failed": len(runs) - len(ok),
        "params": first.get("params"), "paper_params": first.get("paper_params"),
        "seeds": [run["seed"] for run in runs],
        "errors": [(run["seed"], run.get("error")) for run in runs if run.get("status") != "ok"],
    }
    for stat, values in per_run.items():
        values = [value for value in values if value is not None]
        row[f"{stat}_mean"] = fmean(values) if values else None
        row[f"{stat}_std"] = stdev(values) if len(values) > 1 else None
    return row


def _epoch_mean(run: dict[str, Any], key: str) -> float | None:
    values = [epoch[key] for epoch in run["epochs"] if epoch.get(key) is not None]
    return fmean(values) if values else None


def _cell(row: dict[str, Any], stat: str) -> str:
    mean, std = row[f"{stat}_mean"], row[f"{stat}_std"]
    if mean is None:
        return DASH
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def _plain(value: Any) -> str:
    return DASH if value is None else str(value)
