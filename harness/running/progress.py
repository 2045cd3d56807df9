"""A live progress display, attached through the observer hooks like any logger would be."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from harness.contract import hookimpl


class Progress:
    """Prints each run's epochs (one updating line on a terminal, every tenth epoch otherwise)
    and a summary line when it ends."""

    def __init__(self, total_runs: int, stream: TextIO | None = None) -> None:
        self.total = total_runs
        self.numbers: dict[str, int] = {}
        self.stream = stream or sys.stderr  # looked up now: a test may have replaced it
        self.live = self.stream.isatty()

    def prefix(self, run: Any) -> str:
        """[i/N] and the run's label; i counts runs in the order they are first seen."""
        number = self.numbers.setdefault(run.key, len(self.numbers) + 1)
        return f"[{number}/{self.total}] {run.label}"

    @hookimpl
    def harness_run_started(self, run: Any) -> None:
        self._write(f"{self.prefix(run)}: starting", end="" if self.live else "\n")

    @hookimpl
    def harness_epoch_finished(self, run: Any, epoch: dict[str, Any]) -> None:
        every = max(1, run.epochs // 10)
        if not self.live and epoch["epoch"] % every and epoch["epoch"] != run.epochs:
            return
        line = f"{self.prefix(run)}: epoch {epoch['epoch']}/{run.epochs} {describe(epoch)}"
        self._write(line, end="" if self.live else "\n")

    @hookimpl
    def harness_run_finished(self, run: Any, record: dict[str, Any]) -> None:
        if record["status"] == "ok":
            summary = f"ok in {record['wall_time_s']:.1f} s, {describe(record['epochs'][-1])}"
        else:
            summary = f"FAILED after {len(record['epochs'])} epochs: {record['error']}"
        self._write(f"{self.prefix(run)}: {summary}", end="\n")

    def _write(self, text: str, end: str) -> None:
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()


def describe(epoch: dict[str, Any]) -> str:
    """loss, metrics and NFE of an epoch record, compactly."""
    parts = [f"loss {epoch['loss']:.4g}"] if "loss" in epoch else []
    parts += [f"{k} {v:.4g}" for k, v in epoch.items()
              if k.startswith("test_") and isinstance(v, (int, float))]
    if "forward_nfe" in epoch:
        parts.append(f"NFE fwd {epoch['forward_nfe']:.1f}")
    if epoch.get("backward_nfe") is not None:
        parts.append(f"bwd {epoch['backward_nfe']:.1f}")
    return ", ".join(parts)
