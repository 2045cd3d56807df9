"""What each subcommand of the ``harness`` command does (:mod:`harness.cli` parses the command
line, handles the signals and calls one of these with the parsed arguments): each returns the
command's exit code (see :mod:`harness.cli`) and imports what it needs (torch, the drivers, the
report page) only when called, so that ``harness list`` starts fast and the signal handlers are in
place before anything heavy loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.registry import Registry

EXIT_WRITE_FAILED = 3
"""The exit code of a result, checkpoint, report or budget file that could not be written."""


def refused(reason: object, code: int = 2) -> int:
    """Say why a command stops (one line on stderr, ``harness: reason``) and return its exit
    code: 2 for bad input, :data:`EXIT_WRITE_FAILED` for a file that could not be written."""
    print(f"harness: {reason}", file=sys.stderr)
    return code


def run(args: argparse.Namespace, registry: Registry) -> int:
    """``harness run``: check the suite and its data, plan it (or show the plan,
    ``--dry-run``), run it and summarise its failures."""
    from harness.reports.claims import RESULTS_CLAIMS, ClaimsError, checked_suite_claims
    from harness.running.driver import check_runs, run_plan
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
        return refused(error)
    execution = {**suite.execution, **{key: value for key, value in
                 (("executor", args.executor), ("workers", args.workers), ("address", args.address))
                 if value is not None}}
    executor = execution.get("executor", default_executor())
    if executor not in registry.executors:
        return refused(f"--executor {executor!r} is unknown; valid: "
                       f"{', '.join(sorted(registry.executors))}")
    try:
        out = check_out_dir(args.out or Path("results") / suite.name)
        plan = plan_suite(suite.runs, out, args.force, execution.get("ensemble"),
                          parallel_units(executor, execution.get("workers")),
                          shipped_reference())
        data = check_data([run.spec for run in plan.todo], registry)
        if data.by_run and args.skip_unavailable:
            plan = plan.leaving_out(data.by_run)
        if args.dry_run:
            check_runs(suite.runs, registry)
            print(render_plan(plan, data, registry))
            return 0
        if data.by_run and not args.skip_unavailable:
            return refused(f"{args.suite}: {data.report()}")
        claims = checked_suite_claims(args.suite)
        for name in dict.fromkeys(args.track):
            registry.manager.register(TRACKERS[name](out), name=f"tracker-{name}")
    except (OutDirError, ClaimsError, TrackerUnavailable) as error:
        return refused(error)
    except RunConfigError as error:
        return refused(f"{args.suite}: {error}")
    if plan.unavailable and not args.quiet:
        print(f"leaving out {len(plan.unavailable)} runs for missing data (recorded as failed, "
              f"data_missing; a rerun tries them again):\n"
              + "\n".join(f"  {missing.path}" for missing in data.missing), file=sys.stderr)
    progress = None if args.quiet else Progress(plan)
    if progress:
        registry.manager.register(progress, name="progress")
        progress.begin()
    plugin_failures = len(registry.failures)
    try:
        outcome = run_plan(plan, registry, args.device, executor, execution.get("workers"),
                           execution.get("address"), execution.get(executor),
                           {RESULTS_CLAIMS: claims} if claims else {})
    except RunConfigError as error:
        return refused(f"{args.suite}: {error}")
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


def report(args: argparse.Namespace) -> int:
    """``harness report``: write the report page of results directories."""
    from harness.reports.claim_results import SYMBOLS
    from harness.reports.claims import ClaimsError
    from harness.reports.page import write_page
    from harness.running.safe_files import UnsafePathError
    from harness.running.store import ResultsError

    formats = [fmt.strip() for fmt in args.formats.split(",") if fmt.strip()]
    if not formats or any(fmt not in ("png", "svg", "pdf") for fmt in formats):
        return refused(f"--formats {args.formats!r}: valid: png, svg, pdf, comma-separated")
    try:
        written = write_page(args.results, args.out, args.claims,
                             paper_claims=not args.no_paper_claims, formats=formats)
    except (ResultsError, ClaimsError, UnsafePathError) as error:
        return refused(error)
    except OSError as error:  # a read-only or full disk where the report goes
        return refused(f"cannot write the report: {error}", EXIT_WRITE_FAILED)
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


def compare(args: argparse.Namespace) -> int:
    """``harness compare``: the change from BASE's results to NEW's."""
    from harness.reports.compare import CompareError, compare, render
    from harness.running.store import ResultsError, load_results

    try:
        comparison = compare(load_results([args.base]), load_results([args.new]),
                             args.threshold, [name.strip() for name in args.match.split(",")],
                             ensemble_times=args.ensemble_times)
    except (ResultsError, CompareError) as error:
        return refused(error)
    print(render(comparison))
    if comparison.warning:
        print(f"harness: warning: {comparison.warning}", file=sys.stderr)
    return 1 if args.fail_on_worse and comparison.failing else 0


def check(args: argparse.Namespace) -> int:
    """``harness check``: results against NFE budgets (``--update``: write the budgets)."""
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
        return refused(error)
    except OSError as error:  # --update on a read-only or full disk
        return refused(f"cannot write {args.budgets}: {error.strerror or error}", EXIT_WRITE_FAILED)
    verdicts = budgets.check(lines, records)
    print(budgets.render(verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


def list_plugins(registry: Registry) -> int:
    """``harness list`` (``plugins``): the families, tasks, baselines and executors found, and
    the plugins that failed to load."""
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
