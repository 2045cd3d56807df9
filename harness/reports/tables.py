"""Summaries of result records: one row per group of seeds (:mod:`harness.reports.aggregate`), as
Markdown tables and a flat CSV.

A run's ``forward_nfe``/``backward_nfe`` per epoch are taken as per-iteration counts; a run's
value is their mean over its epochs, and a row shows the mean ± sample std across ok seeds with
the 95 % confidence interval of the mean (and n where fewer seeds than the ok runs have a value).
The peak memory of a step (``*_memory_bytes``, runs with ``memory: true``: docs/memory.md) is
taken the same way; a table shows it, in MB, when a row of it has it.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.reports.aggregate import Group, group_runs, setting_label
from harness.reports.render import Block, Heading, Items, Paragraph, Table, to_markdown
from harness.running.safe_files import Destination, Folder

REPORT_DIR = "report"
DASH = "—"

_MEMORY = ("forward_memory_bytes", "backward_memory_bytes")
_STATS = ("test_metric", "train_loss", "forward_nfe", "backward_nfe", "epoch_time_s", *_MEMORY)
#: Per stat: mean, sample std, n (ok runs with a value), the 95 % CI of the mean.
_STAT_FIELDS = ("mean", "std", "n", "ci_low", "ci_high")

#: The CSV's columns, in order: every numeric column holds a raw number or is empty.
CSV_COLUMNS = [
    "suite", "task", "model", "setting", "metric", "n_ok", "n_failed",
    *(f"{name}_{part}" for name in _STATS for part in _STAT_FIELDS), "params", "paper_params",
    "kind",
]
#: What a table cell holds, said once above the tables.
CELLS = ("Cells: mean ± sample std over the ok seeds, then in brackets the 95 % confidence "
         "interval of the mean; (n=…) where fewer seeds than the runs ok have the value.")


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group (suite, task, model, setting) in first-seen order.

    A run stored more than once counts by its standing record (:func:`harness.running.store.standing`).
    Stats are over ok runs only; a ``*_std`` is None with fewer than two values, and a stat is None
    when no run has a value (e.g. ``backward_nfe`` without the adjoint).
    """
    return [summary_row(group) for group in group_runs(records)]


def summary_row(group: Group) -> dict[str, Any]:
    """The table row of one group: counts, the stats as ``*_mean``/``*_std``, params."""
    stats = {
        "test_metric": group.value(f"test_{group.metric}", "last"),
        "train_loss": group.value("loss", "last"),
        "forward_nfe": group.value("forward_nfe"),
        "backward_nfe": group.value("backward_nfe"),
        "epoch_time_s": group.value("train_time_s"),
        **{name: group.value(name) for name in _MEMORY},
    }
    row: dict[str, Any] = {
        "suite": group.suite, "task": group.task, "model": group.model, "kind": group.kind,
        "setting": setting_label(group.setting), "label": group.label, "metric": group.metric,
        "n_ok": len(group.ok), "n_failed": len(group.failed),
        "params": group.first("params"), "paper_params": group.first("paper_params"),
        "profile": (group.first("config") or {}).get("profile", "paper"),  # older: the paper's
        "seeds": [run["seed"] for run in group.runs],
        "errors": [(run["seed"], run.get("error")) for run in group.failed],
    }
    for name, value in stats.items():
        for part, number in zip(_STAT_FIELDS, (value.mean, value.std, value.n, value.low,
                                               value.high)):
            row[f"{name}_{part}"] = number
    return row


def sections(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows by (suite, task), in first-seen order."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["suite"], row["task"]), []).append(row)
    return grouped


def section_title(suite: str, task: str, scopes: Iterable[tuple[str, str]]) -> str:
    """The task's name, with the suite when the task appears under more than one suite."""
    suites = {scope_suite for scope_suite, scope_task in scopes if scope_task == task}
    return f"{task} ({suite})" if len(suites) > 1 else task


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of one section's table."""
    metrics = "/".join(dict.fromkeys(row["metric"] for row in rows))
    memory = any(row[f"{name}_mean"] is not None for row in rows for name in _MEMORY)
    stats = _STATS if memory else _STATS[:-len(_MEMORY)]
    headers = ["model", "runs ok", "failed", f"test {metrics}", "final train loss",
               "forward NFE", "backward NFE", "time/epoch (s)",
               *(["forward memory (MB)", "backward memory (MB)"] if memory else []),
               "params", "paper params"]
    cells = [[row["label"], str(row["n_ok"]), str(row["n_failed"]),
              *(_cell(row, name, 1e-6 if name in _MEMORY else 1.0) for name in stats),
              _plain(row["params"]), _plain(row["paper_params"])] for row in rows]
    return headers, cells


def seeds_line(rows: list[dict[str, Any]]) -> str:
    """The section's seeds and the profile(s) its runs followed (paper's text or authors' code)."""
    seeds = sorted({seed for row in rows for seed in row["seeds"]})
    profiles = ", ".join(dict.fromkeys(row["profile"] for row in rows))
    return (f"{len(seeds)} seed{'s' * (len(seeds) != 1)}: {', '.join(map(str, seeds))}; "
            f"profile: {profiles}")


def render_markdown(rows: list[dict[str, Any]], level: int = 2) -> str:
    """A heading, a seeds line, a table and the failed runs' errors for each (suite, task),
    laid out by :func:`harness.reports.render.to_markdown` (which escapes the record strings)."""
    grouped = sections(rows)
    blocks: list[Block] = [Paragraph(CELLS)] if rows else []
    for (suite, task), task_rows in grouped.items():
        blocks += [Heading(level, section_title(suite, task, grouped)),
                   Paragraph(seeds_line(task_rows)), Table(*table(task_rows))]
        errors = failures(task_rows)
        if errors:
            blocks += [Paragraph("Failed runs:"), Items(list(errors))]
    return to_markdown(blocks)


def failures(rows: list[dict[str, Any]]) -> list[str]:
    """``task/model/seed N: error`` for every failed run of the rows."""
    return [f"{row['task']}/{row['label']}/seed {seed}: {error}"
            for row in rows for seed, error in row["errors"]]


def write_summary(rows: list[dict[str, Any]], out: Destination) -> Path:
    """Write ``summary.md`` and ``summary.csv`` into ``out`` (no link followed below its
    root); return the .md."""
    folder = Folder.of(out)
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    folder.write("summary.csv", text.getvalue())
    return folder.write("summary.md", render_markdown(rows))


def _cell(row: dict[str, Any], name: str, scale: float = 1.0) -> str:
    """``mean ± std [low, high]`` (times ``scale``), with ``(n=k)`` when k differs from the ok
    runs."""
    mean, std, n = row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_n"]
    if mean is None:
        return DASH
    text = f"{mean * scale:.4g}"
    if std is not None:
        low, high = row[f"{name}_ci_low"] * scale, row[f"{name}_ci_high"] * scale
        text += f" ± {std * scale:.2g} [{low:.3g}, {high:.3g}]"
    return text + (f" (n={n})" if n != row["n_ok"] else "")


def _plain(value: Any) -> str:
    return DASH if value is None else str(value)
