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
import dataclasses
import importlib.metadata
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from harness.registry import Registry

EXIT_WRITE_FAILED = 3
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
            return _run(args, registry)
        if args.command == "report":
            return _report(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "check":
            return _check(args)
        return _list(registry)
    except (StoreBusy, ResultsError, ExecutorUnavailable, UnsafePathError) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    except StoreWriteError as error:
        print(f"harness: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED


def _run(args: argparse.Namespace, registry: Registry) -> int:
    from harness.reports.claims import RESULTS_CLAIMS, ClaimsError, checked_suite_claims
    from harness.running.driver import check_runs, run_suite
    from harness.running.environment import resolve_device
    from harness.running.executors import default_executor
    from harness.running.outdir import OutDirError, check_out_dir
    from harness.running.plan import parallel_units, plan_suite
    from harness.running.planview import render_plan
    from harness.running.preflight import check_data
    from harness.running.progress import Progress
    from harness.running.reference import shipped_reference
    from harness.running.runner import RunConfigError
    from harness.running.trackers import TRACKERS, TrackerUnavailable
    from harness.suites.loader import SuiteError, load_suite

    try:
        suite = load_suite(args.suite, registry, data_root=args.data_root)
        resolve_device(args.device)
    except (SuiteError, ValueError) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    execution = {**suite.execution, **{key: value for key, value in
                 (("executor", args.executor), ("workers", args.workers), ("address", args.address))
                 if value is not None}}
    executor = execution.get("executor", default_executor())
    if executor not in registry.executors:
        print(f"harness: --executor {executor!r} is unknown; valid: "
              f"{', '.join(sorted(registry.executors))}", file=sys.stderr)
        return 2
    try:
        out = check_out_dir(args.out or Path("results") / suite.name)
        plan = plan_suite(suite.runs, out, args.force, execution.get("ensemble"),
                          parallel_units(executor, execution.get("workers")),
                          shipped_reference())
        data = check_data([run.spec for run in plan.todo], registry)
        if args.dry_run:
            check_runs(suite.runs, registry)
            print(render_plan(plan, data, registry))
            return 0
        if data.by_run and not args.skip_unavailable:
            print(f"harness: {args.suite}: {data.report()}", file=sys.stderr)
            return 2
        claims = checked_suite_claims(args.suite)
        for name in dict.fromkeys(args.track):
            registry.manager.register(TRACKERS[name](out), name=f"tracker-{name}")
    except (OutDirError, ClaimsError, TrackerUnavailable) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    except RunConfigError as error:
        print(f"harness: {args.suite}: {error}", file=sys.stderr)
        return 2
    unavailable = data.by_run if args.skip_unavailable else {}
    if unavailable and not args.quiet:
        print(f"leaving out {len(unavailable)} runs for missing data (recorded as failed, "
              f"data_missing; a rerun tries them again):\n"
              + "\n".join(f"  {missing.path}" for missing in data.missing), file=sys.stderr)
    available = plan.without(unavailable)
    progress = None if args.quiet else Progress(available)
    if progress:
        registry.manager.register(progress, name="progress")
        progress.begin()
    plugin_failures = len(registry.failures)
    try:
        outcome = run_suite(suite.runs, registry, out, args.device, force=args.force,
                            executor=executor, workers=execution.get("workers"),
                            address=execution.get("address"), unavailable=unavailable,
                            ensemble=execution.get("ensemble"), settings=execution.get(executor),
                            files={RESULTS_CLAIMS: claims} if claims else {})
    except RunConfigError as error:
        print(f"harness: {args.suite}: {error}", file=sys.stderr)
        return 2
    finally:
        if progress:
            progress.close()
    failed = outcome.failed
    left_out = (f", {len(outcome.unavailable)} left out for missing data"
                if outcome.unavailable else "")
    print(f"{len(outcome.records)} runs done ({len(failed)} failed), {outcome.skipped} skipped as "
          f"already finished{left_out}; results in {out / 'results.jsonl'}")
    for record in failed:
        _print_failure(record)
    for failure in registry.failures[plugin_failures:]:  # observers that raised during the runs
        print(f"  plugin {failure.plugin} (package {failure.package}): {failure.reason}")
    return 1 if failed and not args.allow_failures else 0


def _print_failure(record: dict) -> None:
    """A failed run: its error, then where in the plugin's code it happened."""
    from harness.running.tracebacks import failure_lines

    error, *where = failure_lines(record)
    print(f"  failed: {record['task']}/{record['model']}/seed{record['seed']}: {error}")
    for line in where:
        print(f"    {line}")


def _report(args: argparse.Namespace) -> int:
    from harness.reports.claim_results import SYMBOLS
    from harness.reports.claims import ClaimsError
    from harness.reports.page import write_page
    from harness.running.safe_files import UnsafePathError
    from harness.running.store import ResultsError

    formats = [fmt.strip() for fmt in args.formats.split(",") if fmt.strip()]
    if not formats or any(fmt not in ("png", "svg", "pdf") for fmt in formats):
        print(f"harness: --formats {args.formats!r}: valid: png, svg, pdf, comma-separated",
              file=sys.stderr)
        return 2
    try:
        written = write_page(args.results, args.out, args.claims,
                             paper_claims=not args.no_paper_claims, formats=formats)
    except (ResultsError, ClaimsError, UnsafePathError) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only or full disk where the report goes
        print(f"harness: cannot write the report: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    print(written.summary.read_text())
    for record in written.failed:
        _print_failure(record)
    for file, results in written.claims:
        counts = {verdict: sum(r.verdict == verdict for r in results) for verdict in SYMBOLS}
        print(f"claims of {file.path}: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    print(f"written: {written.html} (open it in a browser), {written.markdown}, "
          f"{written.summary}, {written.summary.with_suffix('.csv')} and "
          f"{written.summary.with_suffix('.tex')}, "
          f"{len(written.figures)} figure files")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from harness.reports.compare import CompareError, compare, render
    from harness.running.store import ResultsError, load_results

    try:
        comparison = compare(load_results([args.base]), load_results([args.new]),
                             args.threshold, [name.strip() for name in args.match.split(",")],
                             ensemble_times=args.ensemble_times)
    except (ResultsError, CompareError) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    print(render(comparison))
    if comparison.warning:
        print(f"harness: warning: {comparison.warning}", file=sys.stderr)
    return 1 if args.fail_on_worse and comparison.failing else 0


def _check(args: argparse.Namespace) -> int:
    from harness.gates import budgets
    from harness.running.store import ResultsError, load_results

    try:
        records = load_results([args.results])
        if args.update:
            existing, tolerance = (budgets.load_budgets(args.budgets) if args.budgets.exists()
                                   else ([], args.margin))
            lines = budgets.updated_budgets(records, existing, args.margin)
            budgets.write_budgets(args.budgets, lines, tolerance)
            print(f"wrote {len(lines)} budget lines to {args.budgets}")
            return 0
        lines, _ = budgets.load_budgets(args.budgets)
    except (ResultsError, budgets.BudgetError) as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # --update on a read-only or full disk
        print(f"harness: cannot write {args.budgets}: {error.strerror or error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    verdicts = budgets.check(lines, records)
    print(budgets.render(verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


def _list(registry: Registry) -> int:
    from tabulate import tabulate

    rows = [("model", name, registry.package_of("model", name), ", ".join(family.parts))
            for name, family in sorted(registry.families.items())]
    rows += [("task", name, registry.package_of("task", name), task.metric)
             for name, task in sorted(registry.tasks.items())]
    rows += [("baseline", baseline, registry.package_of("task", name), f"of task {name}")
             for name, task in sorted(registry.tasks.items()) for baseline in task.baselines]
    rows += [("executor", name, registry.package_of("executor", name),
              ", ".join(field.name for field in dataclasses.fields(executor.Settings))
              if executor.Settings else "")
             for name, executor in sorted(registry.executors.items())]
    print(tabulate(rows, headers=["kind", "name", "package",
                                  "state parts / metric / settings"]))
    if registry.failures:
        print("\nplugins that failed to load:")
        for failure in registry.failures:
            print(f"  {failure.plugin} (package {failure.package}): {failure.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
