"""``harness run SUITE --dry-run``: the plan as text — per task and model the runs, those done
in the results directory, those resuming, those to run, whether their data is there, and the
time they should take (from earlier results of the same configuration, else from the reference
timings shipped with the harness), saying which source each estimate came from."""
from __future__ import annotations

from tabulate import tabulate

from harness.registry import Registry
from harness.running.plan import (DONE, HISTORY, NEW, REFERENCE, RESUME, UNAVAILABLE,
                                  PlannedRun, SuitePlan, duration)
from harness.running.preflight import DataCheck, has_data_check


def render_plan(plan: SuitePlan, data: DataCheck, registry: Registry) -> str:
    """The plan's table, the missing files and the estimated total of the runs to do that have
    their data (what ``--skip-unavailable`` runs; without it, a run lacking data stops the
    command before any training)."""
    groups: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in plan.runs:  # a baseline apart from a family of its name, and labelled so
        model = f"{run.spec.model} (baseline)" if run.spec.baseline else run.spec.model
        groups.setdefault((run.spec.task, model), []).append(run)
    rows = []
    for (task, model), runs in groups.items():
        states = [run.state for run in runs]
        todo = [run for run in runs if run.state in (RESUME, NEW)]
        lacking = sum(run.spec.key in data.by_run for run in runs if run.state != DONE)
        estimates = [plan.estimate_s(run) for run in todo]
        known = [e for e in estimates if e is not None]
        unknown = len(estimates) - len(known)
        estimate = ("—" if not todo else "?" if not known else
                    f"{'≥ ' if unknown else ''}{duration(sum(known))}")
        rows.append([task, model, len(runs), states.count(DONE), states.count(RESUME), len(todo),
                     _data_cell(registry, task, lacking, len(runs) - states.count(DONE)),
                     estimate, *([states.count(UNAVAILABLE)] if plan.unavailable else [])])
    lines = [f"{len(plan.runs)} runs; results directory {plan.out_dir}",
             tabulate(rows, ["task", "model", "runs", "done", "resuming", "to run", "data",
                             "time (sum of runs)", *(["left out"] if plan.unavailable else [])],
                      tablefmt="simple", disable_numparse=True)]
    if data.missing:
        lines += ["", data.report().replace("; nothing was trained", "")]
    runnable = plan.leaving_out(data.by_run)
    seconds, unknown = runnable.total_estimate_s()
    lines.append("")
    if not runnable.todo:
        lines.append("nothing to run")
        return "\n".join(lines)
    todo = len(runnable.todo)
    if unknown == todo:
        lines.append(f"time: no estimate for the {todo} runs to run, {runnable.how()} "
                     f"({_why_unknown(runnable)}; the progress display estimates as soon as a "
                     f"run of each has timed an epoch)")
    else:
        lines.append(f"time: {'at least ' if unknown else ''}{duration(seconds)} for the {todo} "
                     f"runs to run, {runnable.how()}"
                     + (f" ({unknown} of them without an estimate)" if unknown else ""))
    lines += _sources(runnable)
    return "\n".join(lines)


def _why_unknown(plan: SuitePlan) -> str:
    if all(run.ensemble_size > 1 for run in plan.todo):
        return "a member's time is its ensemble's, which no earlier solo run tells"
    return (f"no earlier results of their configurations in {plan.out_dir}, and no shipped "
            f"reference timing of them")


def _sources(plan: SuitePlan) -> list[str]:
    """One line per source the estimates came from."""
    counts = plan.sources()
    lines = []
    if counts.get(HISTORY):
        lines.append(f"  {counts[HISTORY]} runs estimated from earlier results in {plan.out_dir}")
    if counts.get(REFERENCE):
        lines.append(f"  {counts[REFERENCE]} runs estimated from the reference timings shipped "
                     f"with the harness, measured on {plan.reference.machine} (your machine "
                     f"differs: take them as an order of magnitude)")
    return lines


def _data_cell(registry: Registry, task: str, lacking: int, todo: int) -> str:
    if not has_data_check(registry.tasks[task]):
        return "unchecked (no check_data)"
    if not todo:
        return "—"
    return "ok" if not lacking else f"MISSING for {lacking} of {todo}"
