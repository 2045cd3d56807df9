"""The ``harness`` command: run suites, list plugins, write reports.

Exit codes: 0 done; 1 a run failed (``run``), a budget or a comparison failed (``check``,
``compare --fail-on-worse``); 2 bad input (a results folder holding a link, FIFO or device
where a file or folder of the harness goes included), the results directory in use by another
run, or an executor that cannot start (no worker process starts, Ray missing);
3 a result, checkpoint or report could not be written (disk full, read-only, a file-size limit:
the message says what of the run is kept);
130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM: rerun the same command to resume.

Both signals end any command with one line and their code from its first instant: this module
imports nothing heavy (nor does ``import harness``), and each command imports what it needs
(torch, the plugins) only once the handlers are in place. SIGINT and SIGTERM blocked by the
process that started the command are unblocked; a SIGINT it set to be ignored (a background
job of a shell script) stays ignored, as the shell intends.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Iterator

from harness import commands
from harness.commands import EXIT_WRITE_FAILED, refused

INTERRUPTED, TERMINATED = 130, 143


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C does (checkpoints stay, locks are released)."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; interrupts, a closed output pipe and a results directory that cannot
    be used or written end it with one line and their exit code, never a traceback."""
    try:
        with _interruptible():
            _report_warnings()
            return _main(argv)
    except KeyboardInterrupt:
        print(f"\nharness: interrupted{_rerun(argv)}", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print(f"harness: stopped by SIGTERM{_rerun(argv)}", file=sys.stderr)
        return TERMINATED
    except BrokenPipeError:  # `harness list | head`: the reader has gone, nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (SIGINT raises KeyboardInterrupt, Python's own), and
    neither is blocked (one that was pending lands at once); handler and mask as they were on
    the way out (tests call :func:`main` in-process)."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGTERM, previous)


def _rerun(argv: list[str] | None) -> str:
    """What to do after an interrupt: ``run`` resumes where it stopped; the other commands
    start over."""
    words = sys.argv[1:] if argv is None else argv
    return "; rerun the same command to resume" if words[:1] == ["run"] else ""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _report_warnings() -> None:
    """The harness's warnings (skipped record lines, moved-aside files) as ``harness: warning:``
    lines on stderr."""
    logger = logging.getLogger("harness")
    if not any(isinstance(handler, _Stderr) for handler in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("harness: warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a message comes (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.replace("``", ""))
    parser.add_argument("--version", action="version",
                        version=f"harness {importlib.metadata.version('harness')}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate every run of a suite")
    run.add_argument("suite", type=Path, help="a suite file, e.g. suites/smoke.yaml")
    run.add_argument("--out", type=Path, help="results directory (default: results/<suite name>)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--data-root", help="where tasks find their data (overrides the suite's "
                                          "data_root and $HARNESS_DATA_ROOT)")
    run.add_argument("--force", action="store_true", help="rerun runs that already finished")
    run.add_argument("--executor", help="where runs execute: inline, local (a process per GPU, "
                                         "or --workers CPU processes), ray, or a plugin's; "
                                         "default: the suite's, else local with several GPUs, "
                                         "else inline")
    run.add_argument("--workers", type=int, help="worker processes (local) or CPUs (ray)")
    run.add_argument("--address", help="address of an existing Ray cluster")
    run.add_argument("--allow-failures", action="store_true",
                     help="exit 0 even when some runs failed")
    run.add_argument("--quiet", action="store_true", help="no progress display: only the summary at the end")
    run.add_argument("--track", action="append", default=[], choices=["tensorboard", "mlflow"],
                     help="log every run's epochs and configuration to TensorBoard "
                          "(OUT/tensorboard) or MLflow ($MLFLOW_TRACKING_URI, else "
                          "OUT/mlflow.db); repeatable; needs the extra of that name")
    run.add_argument("--dry-run", action="store_true",
                     help="train nothing: list the runs, those done in the results directory, "
                          "whether their data is there and the time they should take")
    run.add_argument("--skip-unavailable", action="store_true",
                     help="run the runs whose data is there; record the others as failed "
                          "(data_missing) instead of stopping before any training")

    for name in ("list", "plugins"):
        commands.add_parser(name, help="show the model families and tasks found, and broken plugins")

    report = commands.add_parser("report", help="write the report page (tables, figures, paper "
                                                "claims, environment) of results dirs")
    report.add_argument("results", type=Path, nargs="+",
                        help="directories holding results.jsonl (their records are combined)")
    report.add_argument("--out", type=Path,
                        help="where to write (default: DIR/report; required with several dirs)")
    report.add_argument("--claims", type=Path, action="append", default=[],
                        help="a claims YAML file to check too (repeatable)")
    report.add_argument("--no-paper-claims", action="store_true",
                        help="leave out the HBNODE paper's claims shipped with the harness")
    report.add_argument("--formats", default="png,svg",
                        help="figure formats, comma-separated (default: png,svg)")

    compare = commands.add_parser("compare", help="per task and model, the change in NFE, time "
                                                  "and metric from BASE to NEW results")
    compare.add_argument("base", type=Path, help="a directory holding results.jsonl, or such a file")
    compare.add_argument("new", type=Path, help="a directory holding results.jsonl, or such a file")
    compare.add_argument("--threshold", type=float, default=0.05,
                         help="relative changes below this are noise (default 0.05)")
    compare.add_argument("--fail-on-worse", action="store_true",
                         help="exit 1 when any quantity got worse or is not a number")
    compare.add_argument("--ensemble-times", action="store_true",
                         help="compare the times of runs trained in an ensemble too (they are "
                              "the ensemble's, so they are left out by default)")
    compare.add_argument("--match", default="suite,task,model,setting",
                         help="the fields groups are matched by, comma-separated (default "
                              "suite,task,model,setting; task,model,setting matches across "
                              "suite names)")

    check = commands.add_parser("check", help="check results against NFE budgets (exit 1 on a "
                                              "violation)")
    check.add_argument("results", type=Path,
                       help="a directory holding results.jsonl, or such a file")
    check.add_argument("--budgets", type=Path, required=True, help="a budget YAML file")
    check.add_argument("--update", action="store_true",
                       help="write or refresh the budget file from the measured values")
    check.add_argument("--margin", type=float, default=0.1,
                       help="with --update: the tolerance of new budget lines (default 0.1)")

    args = parser.parse_args(argv)
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """The command, with the plugins loaded; a results directory that cannot be used or written
    and an executor that cannot start end it with one line."""
    from harness.plugins import load_registry
    from harness.running.failures import ExecutorUnavailable
    from harness.running.safe_files import UnsafePathError
    from harness.running.store import ResultsError, StoreBusy, StoreWriteError

    try:
        registry = load_registry()
        if args.command == "run":
            return commands.run(args, registry)
        if args.command == "report":
            return commands.report(args)
        if args.command == "compare":
            return commands.compare(args)
        if args.command == "check":
            return commands.check(args)
        return commands.list_plugins(registry)
    except (StoreBusy, ResultsError, ExecutorUnavailable, UnsafePathError) as error:
        return refused(error)
    except StoreWriteError as error:
        return refused(error, EXIT_WRITE_FAILED)


if __name__ == "__main__":
    sys.exit(main())
