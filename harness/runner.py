"""Training and evaluating runs, and running a suite of them into a results file."""
from __future__ import annotations

import datetime as dt
import math
import random
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Callable, Iterable

import torch
from torch import nn

from harness.contract import BuildContext, Family, Task, TaskData
from harness.environment import environment
from harness.nfe import NFECounter
from harness.ode import ODEBlock
from harness.plugins import Registry
from harness.records import append_record, finished_keys, results_path
from harness.runspec import RunSpec
from harness.solver import SolverFailure, as_solver_failure

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
}


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""


class RunConfigError(ValueError):
    """A run cannot be set up (no widths for a model, bad family options); found before training."""


@dataclass
class BuiltRun:
    """A run's task, model and NFE counter, ready to train."""

    task: Task
    family: type[Family]
    widths: dict[str, int]
    model: nn.Module
    counter: NFECounter


def widths_for(spec: RunSpec, task: Task, family: type[Family]) -> dict[str, int]:
    """The suite's widths, else the task's for this family (or for ``family.widths_like``)."""
    for widths in (spec.widths, task.widths.get(spec.model),
                   task.widths.get(family.widths_like or "")):
        if widths:
            return dict(widths)
    raise RunConfigError(f"{spec.label}: task {task.name!r} lists no widths for model {spec.model!r}; "
                         f"give `widths:` for it in the suite (the task knows "
                         f"{', '.join(sorted(task.widths))}), or set `widths_like` on the family")


def build_run(spec: RunSpec, registry: Registry, device: torch.device) -> BuiltRun:
    """Compose the task's networks with the family's dynamics (seeded, so init is reproducible)."""
    task, family = registry.tasks[spec.task], registry.families[spec.model]
    widths = widths_for(spec, task, family)
    counter = NFECounter()

    def ode(f: nn.Module, width: int) -> ODEBlock:
        return ODEBlock(family(**spec.model_options), f, width, spec.solver, counter)

    seed_everything(spec.seed)
    model = task.build_model(BuildContext(family=family, widths=widths, ode=ode)).to(device)
    return BuiltRun(task, family, widths, model, counter)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def execute_run(spec: RunSpec, registry: Registry, device: torch.device) -> dict[str, Any]:
    """Train and evaluate one run; whatever happens, return its result record."""
    task = registry.tasks[spec.task]
    record: dict[str, Any] = {
        "key": spec.key, "suite": spec.suite, "task": spec.task, "model": spec.model,
        "seed": spec.seed, "status": "ok", "error": None, "failure_kind": None,
        "metric": task.metric, "higher_is_better": task.higher_is_better,
        "paper_params": task.paper_params.get(spec.model), "config": spec.config(),
        "packages": {"task": registry.package_of("task", spec.task),
                     "model": registry.package_of("model", spec.model)},
        "environment": environment(device), "started_at": _now(), "epochs": [],
    }
    registry.hook.harness_run_started(run=spec)
    start = perf_counter()
    try:
        built = build_run(spec, registry, device)
        record.update(params=count_parameters(built.model), widths=built.widths)
        data = task.data(_task_options(task, spec), spec.seed, spec.data_root, device,
                         spec.batch_size)
        for epoch in train(spec, built, data, device):
            record["epochs"].append(epoch)
            registry.hook.harness_epoch_finished(run=spec, epoch=epoch)
    except Exception as error:  # a run that blows up is a result, not a crash
        error = as_solver_failure(error)
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      failure_kind=_failure_kind(error),
                      traceback="".join(traceback.format_exception(error)[-3:]))
    record.update(wall_time_s=perf_counter() - start, finished_at=_now())
    registry.hook.harness_run_finished(run=spec, record=record)
    return record


def train(spec: RunSpec, built: BuiltRun, data: TaskData,
          device: torch.device) -> Iterable[dict[str, Any]]:
    """Train for ``spec.epochs`` epochs, yielding one record per epoch (with ``epochs: 0``,
    one record of the untrained model, numbered 0)."""
    model, task, counter = built.model, built.task, built.counter
    optimizer = OPTIMIZERS[spec.optimizer](model.parameters(), lr=spec.lr)
    sync = _synchronizer(device)
    options = _task_options(task, spec)

    def evaluate_and_measure(epoch: int) -> dict[str, Any]:
        results = evaluate(model, task, data.test, counter, sync)
        with counter.in_phase("probe"):
            results.update(task.measure(model, data, epoch, options))
        return results

    if spec.epochs == 0:  # a study of the model at initialisation
        yield {"epoch": 0, "iterations": 0, **evaluate_and_measure(0)}
    for epoch in range(1, spec.epochs + 1):
        model.train()
        counter.take()
        sums: dict[str, float] = {}
        iterations = samples = 0
        sync()
        epoch_start = perf_counter()
        for x, y in data.train:
            t0 = perf_counter()
            with counter.in_phase("forward"):
                prediction = model(x)
                loss = task.loss(prediction, y)
            value = loss.item()  # synchronises the device, like sync() would
            t1 = perf_counter()
            if not math.isfinite(value):
                raise NonFiniteLoss(f"training loss is {value} at epoch {epoch}, iteration {iterations + 1}")
            optimizer.zero_grad(set_to_none=True)
            with counter.in_phase("backward"):
                loss.backward()
            sync()
            t2 = perf_counter()
            if spec.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()
            batch = len(x)
            for name, metric in {"loss": value, **task.metrics(prediction.detach(), y)}.items():
                sums[name] = sums.get(name, 0.0) + metric * batch
            sums["forward_time_s"] = sums.get("forward_time_s", 0.0) + t1 - t0
            sums["backward_time_s"] = sums.get("backward_time_s", 0.0) + t2 - t1
            iterations += 1
            samples += batch
            sync()
        train_time = perf_counter() - epoch_start
        nfe = counter.take()
        record: dict[str, Any] = {
            "epoch": epoch, "iterations": iterations,
            **{k: v / samples for k, v in sums.items() if not k.endswith("_time_s")},
            "forward_nfe": nfe["forward"] / iterations,
            "backward_nfe": nfe["backward"] / iterations if spec.solver.adjoint else None,
            "train_time_s": train_time,
            "forward_time_s": sums["forward_time_s"] / iterations,
            "backward_time_s": sums["backward_time_s"] / iterations,
        }
        if epoch % spec.eval_every == 0 or epoch == spec.epochs:
            record.update(evaluate_and_measure(epoch))
        yield record


def evaluate(model: nn.Module, task: Task, batches: Iterable, counter: NFECounter,
             sync: Callable[[], None]) -> dict[str, float]:
    """Test loss and metrics (per sample), evaluation NFE and inference time (per batch)."""
    model.eval()
    sums: dict[str, float] = {}
    n_batches = samples = 0
    elapsed = 0.0
    counter.take()
    with torch.no_grad(), counter.in_phase("eval"):
        for x, y in batches:
            sync()
            start = perf_counter()
            prediction = model(x)
            sync()
            elapsed += perf_counter() - start
            batch = len(x)
            metrics = {"loss": task.loss(prediction, y).item(), **task.metrics(prediction, y)}
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + value * batch
            n_batches += 1
            samples += batch
    nfe = counter.take()["eval"]
    return {**{f"test_{k}": v / samples for k, v in sums.items()},
            "eval_nfe": nfe / n_batches, "eval_time_s": elapsed / n_batches}


@dataclass
class SuiteOutcome:
    """What a suite invocation did: records written, runs skipped as already finished."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def check_runs(runs: Iterable[RunSpec], registry: Registry) -> None:
    """Find set-up problems of every run before any training starts."""
    problems = []
    for spec in runs:
        task, family = registry.tasks[spec.task], registry.families[spec.model]
        try:
            widths_for(spec, task, family)
            family(**spec.model_options)
        except (RunConfigError, TypeError, ValueError) as error:
            problems.append(f"{spec.label}: {error}" if not isinstance(error, RunConfigError) else str(error))
    if problems:
        raise RunConfigError("\n".join(problems))


def run_suite(runs: list[RunSpec], registry: Registry, out_dir: str | Path,
              device: torch.device, force: bool = False) -> SuiteOutcome:
    """Run every spec not already finished ``ok`` in ``out_dir`` (all of them with ``force``),
    appending one record per run to ``out_dir/results.jsonl`` as soon as it ends."""
    check_runs(runs, registry)
    path = results_path(out_dir)
    done = set() if force else finished_keys(path)
    outcome = SuiteOutcome()
    for spec in runs:
        if spec.key in done:
            outcome.skipped += 1
            continue
        record = execute_run(spec, registry, device)
        append_record(path, record)
        outcome.records.append(record)
    return outcome


def _task_options(task: Task, spec: RunSpec) -> dict[str, Any]:
    return {**task.options, **spec.task_options}


def _failure_kind(error: BaseException) -> str:
    if isinstance(error, SolverFailure):
        return "solver"
    if isinstance(error, NonFiniteLoss):
        return "non_finite"
    return "error"


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
