"""``harness run SUITE --dry-run``: the plan as text — per task and model the runs, those done
in the results directory, those resuming, those to run, whether their data is there, and the
time they should take from earlier results of the same configuration."""
from __future__ import annotations

from tabulate import tabulate

from harness.registry import Registry
from harness.running.plan import DONE, RESUME, PlannedRun, SuitePlan, duration
from harness.running.preflight import DataCheck, has_data_check


def render_plan(plan: SuitePlan, data: DataCheck, registry: Registry) -> str:
    """The plan's table, the missing files and the estimated total."""
    groups: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in plan.runs:
        groups.setdefault((run.spec.task, run.spec.model), []).append(run)
    rows = []
    for (task, model), runs in groups.items():
        todo = [run for run in runs if run.state != DONE]
        lacking = sum(run.spec.key in data.by_run for run in todo)
        estimates = [plan.estimate_s(run) for run in todo]
        known = [e for e in estimates if e is not None]
        unknown = len(estimates) - len(known)
        estimate = ("—" if not todo else "?" if not known else
                    f"{'≥ ' if unknown else ''}{duration(sum(known))}")
        rows.append([task, model, len(runs), len(runs) - len(todo),
                     sum(run.state == RESUME for run in runs), len(todo),
                     _data_cell(registry, task, lacking, len(todo)), estimate])
    lines = [f"{len(plan.runs)} runs; results directory {plan.out_dir}",
             tabulate(rows, ["task", "model", "runs", "done", "resuming", "to run", "data",
                             "time (one at a time)"], tablefmt="simple", disable_numparse=True)]
    if data.missing:
        lines += ["", data.report().replace("; nothing was trained", "")]
    seconds, unknown = SuitePlan(plan.out_dir, [run for run in plan.todo
                                                if run.spec.key not in data.by_run],
                                 plan.history).total_estimate_s()
    runnable = len(plan.todo) - len(data.by_run)
    lines.append("")
    if not runnable:
        lines.append("nothing to run")
    elif unknown == runnable:
        lines.append(f"time: no estimate for the {runnable} runs to run (no earlier results of "
                     f"their configurations in {plan.out_dir}; the progress display estimates "
                     f"as soon as a run of each has timed an epoch)")
    else:
        lines.append(f"time: {'at least ' if unknown else ''}{duration(seconds)} for the "
                     f"{runnable} runs to run, one at a time, from earlier results in "
                     f"{plan.out_dir}" + (f" ({unknown} of them without any)" if unknown else ""))
    return "\n".join(lines)


def _data_cell(registry: Registry, task: str, lacking: int, todo: int) -> str:
    if not has_data_check(registry.tasks[task]):
        return "unchecked (no check_data)"
    if not todo:
        return "—"
    return "ok" if not lacking else f"MISSING for {lacking} of {todo}"
