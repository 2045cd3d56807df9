"""The progress display, attached through the observer hooks like any logger would be: what
the suite will do (runs finished earlier, resumed, to run, the estimated time), then per run and
for the suite the time elapsed and the time remaining (:mod:`harness.running.eta`).

On a terminal it is a live display (rich's progress bars: the suite and each running run);
otherwise (a CI log, a file) plain lines: each run's start, every tenth epoch and its end.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn
from rich.progress import Progress as Bars
from rich.text import Text

from harness.contract import hookimpl
from harness.running.eta import SuiteEta
from harness.running.plan import HISTORY, REFERENCE, RESUME, SuitePlan, duration, units


class Progress:
    """Prints a suite's plan when it begins, then follows its runs. The counter ``[i/N]``
    counts the runs this invocation executes (those finished earlier are counted up front, not
    in N). Call :meth:`begin` before the runs and :meth:`close` after them."""

    def __init__(self, plan: SuitePlan, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, live: bool | None = None) -> None:
        self.plan = plan
        self.eta = SuiteEta(plan, clock)
        self.total = len(plan.todo)
        self.resumes = {run.spec.key: run.resume_epoch for run in plan.todo
                        if run.state == RESUME}
        self.numbers: dict[str, int] = {}
        self.stream = stream or sys.stderr  # looked up now: a test may have replaced it
        self.live = self.stream.isatty() if live is None else live
        self.lock = threading.Lock()  # the live display's refresh thread reads the ETA too
        self.bars: Bars | None = None
        self.tasks: dict[str, Any] = {}

    def prefix(self, run: Any) -> str:
        """[i/N] and the run's label; i counts runs in the order they are first seen."""
        number = self.numbers.setdefault(run.key, len(self.numbers) + 1)
        return f"[{number}/{self.total}] {run.label}"

    def begin(self) -> None:
        """Say what the suite will do, and start the live display on a terminal."""
        self._line(self.overview())
        if self.live:
            self.bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             _Timing(), console=Console(file=self.stream, force_terminal=True,
                                             highlight=False),
                             get_time=self.eta.clock)
            self.bars.start()
            self.tasks["suite"] = self.bars.add_task("suite", total=max(self.total, 1),
                                                     timing=self.suite_timing)

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None

    def overview(self) -> str:
        """``N runs: k finished earlier in DIR (skipped), m to run (j resume from a checkpoint);
        estimated …``."""
        plan = self.plan
        text = (f"{len(plan.runs)} runs: {plan.skipped} finished earlier in {plan.out_dir} "
                f"(skipped), {self.total} to run")
        if plan.resuming:
            text += f" ({plan.resuming} resume from a checkpoint)"
        if not self.total:
            return text
        seconds, unknown = plan.total_estimate_s()
        if unknown == self.total:
            return text + "; no earlier results of these configurations to estimate the time from"
        estimate = f"{'at least ' if unknown else ''}{duration(seconds)}"
        sources = plan.sources()
        origin = " and ".join(
            (["earlier results"] if sources.get(HISTORY) else [])
            + ([f"the shipped reference timings ({plan.reference.machine})"]
               if sources.get(REFERENCE) else []))
        text += f"; estimated {estimate} run {plan.how()}, from {origin}"
        return text + (f" ({unknown} runs without any yet)" if unknown else "")

    def suite_timing(self) -> str:
        """``elapsed 1h 2m, ETA 3h`` (``ETA ≥ …`` while some runs have no estimate)."""
        with self.lock:
            seconds, unknown = self.eta.suite_remaining()
            elapsed = self.eta.elapsed()
        if unknown and seconds < 1:
            eta = "ETA ? (no epoch of these configurations timed yet)"
        else:
            eta = f"ETA {'≥ ' if unknown else ''}{duration(seconds)}"
        return f"elapsed {duration(elapsed)}, {eta}"

    def run_timing(self, run: Any) -> str:
        with self.lock:
            remaining, elapsed = self.eta.run_remaining(run), self.eta.elapsed(run)
        eta = "ETA ?" if remaining is None else f"ETA {duration(remaining)}"
        return f"{duration(elapsed)} elapsed, {eta}"

    @hookimpl
    def harness_run_started(self, run: Any) -> None:
        with self.lock:
            self.eta.run_started(run)
        resume = self.resumes.get(run.key)
        start = (f"resuming at epoch {resume + 1}/{run.epochs}" if resume else "starting")
        if self.bars is not None:
            self.tasks[run.key] = self.bars.add_task(
                self.prefix(run), total=units(run), completed=resume or 0,
                timing=lambda: self.run_timing(run))
            if resume:
                self._line(f"{self.prefix(run)}: {start}")
            return
        self._line(f"{self.prefix(run)}: {start}; {self.run_timing(run)}; "
                   f"suite {self.suite_timing()}")

    @hookimpl
    def harness_epoch_finished(self, run: Any, epoch: dict[str, Any]) -> None:
        with self.lock:
            self.eta.epoch_finished(run, epoch["epoch"])
        if self.bars is not None and run.key in self.tasks:
            self.bars.update(self.tasks[run.key], completed=epoch["epoch"])
            return
        every = max(1, run.epochs // 10)
        if epoch["epoch"] % every and epoch["epoch"] != run.epochs:
            return
        self._line(f"{self.prefix(run)}: epoch {epoch['epoch']}/{run.epochs} {describe(epoch)}; "
                   f"{self.run_timing(run)}; suite {self.suite_timing()}")

    @hookimpl
    def harness_run_finished(self, run: Any, record: dict[str, Any]) -> None:
        with self.lock:
            self.eta.run_finished(run, record)
        if record["status"] == "ok":
            summary = f"ok in {duration(record['wall_time_s'])}, {describe(record['epochs'][-1])}"
        else:
            summary = f"FAILED after {len(record['epochs'])} epochs: {record['error']}"
        line = (f"{self.prefix(run)}: {summary}; {self.eta.ended} of {self.total} done, "
                f"suite {self.suite_timing()}")
        if self.bars is not None:
            task = self.tasks.pop(run.key, None)
            if task is not None:
                self.bars.remove_task(task)
            self.bars.update(self.tasks["suite"], completed=self.eta.ended)
        self._line(line)

    def _line(self, text: str) -> None:
        if self.bars is not None:  # above the bars, as it is (no markup)
            self.bars.console.print(text, markup=False, highlight=False, soft_wrap=True)
            return
        self.stream.write(text + "\n")
        self.stream.flush()


class _Timing(ProgressColumn):
    """The elapsed time and the ETA of a bar, computed when the display refreshes."""

    def render(self, task: Task) -> Text:
        return Text(task.fields["timing"]())


def describe(epoch: dict[str, Any]) -> str:
    """loss, metrics and NFE of an epoch record, compactly."""
    parts = [f"loss {epoch['loss']:.4g}"] if "loss" in epoch else []
    parts += [f"{k} {v:.4g}" for k, v in epoch.items()
              if k.startswith("test_") and isinstance(v, (int, float))]
    if epoch.get("forward_nfe") is not None:  # None: a baseline, which solves no ODE
        parts.append(f"NFE fwd {epoch['forward_nfe']:.1f}")
    if epoch.get("backward_nfe") is not None:
        parts.append(f"bwd {epoch['backward_nfe']:.1f}")
    return ", ".join(parts)
