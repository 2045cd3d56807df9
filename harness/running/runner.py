"""Training and evaluating one run, whatever happens, into its result record."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Callable, Iterable

import torch
from torch import nn

from harness.contract import PRECISIONS, BuildContext, Family, Task, TaskData
from harness.record import EpochRecord, RunRecord
from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.deadline import Alarm
from harness.running.failures import NonFiniteLoss, TimeLimitExceeded
from harness.running.observers import Notify, Observers
from harness.running.precision import device_refusal, in_precision, stray_tensors
from harness.running.records import finish, mark_failed, new_record
from harness.solvers.backends import SolverBackend
from harness.suites.runspec import OPTIMIZERS, RunSpec
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock


class RunConfigError(ValueError):
    """A run cannot be set up (no widths for a model, bad family options); found before training."""


@dataclass
class BuiltRun:
    """A run's task, model, optimizer and NFE counter, ready to train."""

    task: Task
    family: type[Family] | None
    """None for a baseline (:attr:`harness.Task.baselines`)."""
    widths: dict[str, int]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    counter: NFECounter


def widths_for(spec: RunSpec, registry: Registry) -> dict[str, int]:
    """The suite's widths, else the task's for this family (:meth:`harness.Task.widths_for`)
    or baseline (:attr:`harness.Task.baselines`)."""
    task = registry.tasks[spec.task]
    if spec.baseline:
        widths = spec.widths or task.baselines.get(spec.model)
    else:
        widths = spec.widths or task.widths_for(registry.families[spec.model], registry.families)
    if widths:
        return dict(widths)
    raise RunConfigError(f"{spec.label}: task {task.name!r} has no widths for {spec.kind} "
                         f"{spec.model!r}; give `widths:` for it in the suite")


def check_model(spec: RunSpec, registry: Registry, widths: dict[str, int]) -> None:
    """A RunConfigError when the run's model cannot be made: a baseline its task does not
    offer or given family options, a family the task refuses (:meth:`harness.Task.refusal`)
    or whose options are bad."""
    task = registry.tasks[spec.task]
    if spec.baseline:
        if spec.model not in task.baselines:
            raise RunConfigError(f"{spec.label}: task {task.name!r} offers no baseline "
                                 f"{spec.model!r}; valid: {', '.join(task.baselines) or 'none'}")
        if spec.model_options:
            raise RunConfigError(f"{spec.label}: model_options are a family's options; baseline "
                                 f"{spec.model!r} takes none (give them in the family's entry)")
        return
    family = registry.families[spec.model]
    reason = task.refusal(family, widths)
    if reason:
        raise RunConfigError(f"{spec.label}: task {task.name!r} refuses model {spec.model!r} "
                             f"(widths {widths}): {reason}")
    try:
        family(**spec.model_options)
    except (TypeError, ValueError) as error:
        raise RunConfigError(f"{spec.label}: {error}") from None


def solver_backend(spec: RunSpec, registry: Registry) -> SolverBackend:
    """The backend ``spec.solver.backend`` names among the registry's."""
    try:
        return registry.backends[spec.solver.backend]
    except KeyError:
        raise RunConfigError(f"{spec.label}: no installed plugin provides solver backend "
                             f"{spec.solver.backend!r}; valid: "
                             f"{', '.join(sorted(registry.backends))}") from None


def build_run(spec: RunSpec, registry: Registry, device: torch.device) -> BuiltRun:
    """Compose the task's networks with the family's dynamics, solved by the registry's backend
    for the run (seeded, so init is reproducible), in the run's precision: its data and its
    training must be too (:func:`harness.running.precision.in_precision`)."""
    task = registry.tasks[spec.task]
    family = None if spec.baseline else registry.families[spec.model]
    refusal = device_refusal(spec.precision, device)
    if refusal:
        raise RunConfigError(f"{spec.label}: {refusal}")
    widths = widths_for(spec, registry)
    check_model(spec, registry, widths)
    backend = solver_backend(spec, registry)
    counter = NFECounter()

    def ode(f: nn.Module, width: int) -> ODEBlock:
        return ODEBlock(family(**spec.model_options), f, width, spec.solver, counter, backend)

    seed_everything(spec.seed)
    with in_precision(spec.precision):
        if family is None:
            model = task.build_baseline(spec.model, widths, task_options(task, spec))
        else:
            model = task.build_model(BuildContext(family=family, widths=widths, ode=ode,
                                                  options=task_options(task, spec)))
        model = model.to(device)
    stray = stray_tensors(model, PRECISIONS[spec.precision])
    if stray:
        raise RunConfigError(
            f"{spec.label}: the model holds {', '.join(stray[:3])}"
            f"{f' and {len(stray) - 3} more' if len(stray) > 3 else ''}, not the run's "
            f"precision {spec.precision}: task {task.name!r} (or family {spec.model!r}) makes "
            f"floating tensors in torch.get_default_dtype(), which the harness sets to it")
    optimizer = OPTIMIZERS[spec.optimizer](model.parameters(), lr=spec.lr)
    return BuiltRun(task, family, widths, model, optimizer, counter)


def restarted(spec: RunSpec, model: nn.Module, epoch: int) -> torch.optim.Optimizer:
    """The optimizer ``spec.lr_restarts`` starts at ``epoch``: a new one, with that epoch's lr."""
    return OPTIMIZERS[spec.optimizer](model.parameters(), lr=spec.lr_restarts[epoch])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def execute_run(spec: RunSpec, registry: Registry, device: torch.device,
                notify: Notify | None = None,
                checkpoints: Checkpoints | None = None) -> RunRecord:
    """Train and evaluate one run; whatever happens, return its result record.

    With ``checkpoints``, the run saves its state after every epoch and, when a checkpoint of
    it exists, continues from there (the record says ``resumed_from_epoch``). The checkpoint
    stays when the run ends: whoever stores the record discards it once the record is durable.
    A checkpoint that cannot be saved raises :class:`CheckpointWriteError` (no record).
    The run is made and trained in its precision (:mod:`harness.running.precision`).
    """
    with in_precision(spec.precision):
        return _execute_run(spec, registry, device, notify, checkpoints)


def _execute_run(spec: RunSpec, registry: Registry, device: torch.device,
                 notify: Notify | None, checkpoints: Checkpoints | None) -> RunRecord:
    notify = notify or Observers(registry)
    task = registry.tasks[spec.task]
    record = new_record(spec, registry, device, solver_backend(spec, registry))
    notify("run_started", spec)
    start, earlier = perf_counter(), 0.0
    message = f"time limit of {spec.time_limit_s} s reached"
    try:
        with Alarm(spec.time_limit_s, message):  # a task's data or build may hang too
            built = build_run(spec, registry, device)
            record.update(params=count_parameters(built.model), widths=built.widths)
            data = task.data(task_options(task, spec), spec.seed, spec.data_root, device,
                             spec.batch_size)
            saved = checkpoints.load(spec.key, [spec]) if checkpoints else None
            if saved and not _resumed(built, saved):
                checkpoints.reject(spec.key, "its model or optimizer state does not fit this run")
                built, saved = build_run(spec, registry, device), None  # afresh, as if never run
            if saved:
                record.update(epochs=saved["epochs"], resumed_from_epoch=len(saved["epochs"]))
                earlier = saved["elapsed_s"]
        deadline = start - earlier + spec.time_limit_s if spec.time_limit_s else None
        limit = Alarm(None if deadline is None else deadline - perf_counter(), message)
        with limit:  # stops the run wherever it is, even inside a solve
            for epoch in train(spec, built, data, device, len(record["epochs"]) + 1, deadline):
                with limit.held():  # not while a checkpoint or an event is half-written
                    record["epochs"].append(epoch)
                    if checkpoints:
                        checkpoints.save(spec.key, {"model": built.model.state_dict(),
                                                    "optimizer": built.optimizer.state_dict(),
                                                    "epochs": record["epochs"],
                                                    "elapsed_s": earlier + perf_counter() - start})
                    notify("epoch_finished", spec, epoch=epoch)
    except CheckpointWriteError:  # the storage failed, not the run: the command stops
        raise
    except Exception as error:  # a run that blows up is a result, not a crash
        mark_failed(record, error)
    finish(record, earlier + perf_counter() - start)
    notify("run_finished", spec, record=record)
    return record


def _resumed(built: BuiltRun, saved: dict[str, Any]) -> bool:
    """Load a checkpoint's model and optimizer state; False when it does not fit (shapes or
    names from another build of the run)."""
    try:
        built.model.load_state_dict(saved["model"])
        built.optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError):
        return False
    return True


def train(spec: RunSpec, built: BuiltRun, data: TaskData, device: torch.device,
          first_epoch: int = 1, deadline: float | None = None) -> Iterable[EpochRecord]:
    """Train from ``first_epoch`` to ``spec.epochs``, yielding one record per epoch (with
    ``epochs: 0``, one record of the untrained model, numbered 0). Past ``deadline`` (a
    ``perf_counter`` time) the run stops with :class:`TimeLimitExceeded` after the iteration
    (the check that remains where :class:`~harness.running.deadline.Alarm` cannot interrupt it: outside
    the main thread)."""
    model, task, counter, optimizer = built.model, built.task, built.counter, built.optimizer
    sync = synchronizer(device)
    options = task_options(task, spec)

    def evaluate_and_measure(epoch: int) -> dict[str, Any]:
        results = evaluate(model, task, data.test, counter, sync)
        if spec.baseline:  # no ODE family: nothing a count of evaluations would mean
            results["eval_nfe"] = None
        results.update(validate(model, task, data.validation, counter, sync))
        with counter.in_phase("probe"):
            results.update(task.measure(model, data, epoch, options))
        return results

    if spec.epochs == 0 and first_epoch == 1:  # the untrained model (resumed: already there)
        yield {"epoch": 0, "iterations": 0, **evaluate_and_measure(0)}
    for epoch in range(first_epoch, spec.epochs + 1):
        if not model.training:  # evaluation left it in eval mode (a walk over every module)
            model.train()
        if epoch in spec.lr_restarts:  # a fresh optimizer (its state too) at the new lr
            optimizer = built.optimizer = restarted(spec, model, epoch)
        counter.take()
        data.train.set_epoch(epoch)
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
            if deadline is not None and perf_counter() > deadline:
                raise TimeLimitExceeded(f"time limit of {spec.time_limit_s} s reached in epoch "
                                        f"{epoch}, iteration {iterations}")
        train_time = perf_counter() - epoch_start
        solve_notes = counter.take_notes(("forward", "backward"))
        nfe = counter.take()
        record: EpochRecord = {
            "epoch": epoch, "iterations": iterations,
            **{k: v / samples for k, v in sums.items() if not k.endswith("_time_s")},
            "forward_nfe": None if spec.baseline else nfe["forward"] / iterations,
            "backward_nfe": (nfe["backward"] / iterations
                             if spec.solver.adjoint and not spec.baseline else None),
            "train_time_s": train_time,
            "forward_time_s": sums["forward_time_s"] / iterations,
            "backward_time_s": sums["backward_time_s"] / iterations,
            **solve_notes,
        }
        if epoch % spec.eval_every == 0 or epoch == spec.epochs:
            record.update(evaluate_and_measure(epoch))
        yield record


def evaluate(model: nn.Module, task: Task, batches: Iterable, counter: NFECounter,
             sync: Callable[[], None]) -> dict[str, float]:
    """Test loss and metrics (per sample), evaluation NFE and inference time (per batch)."""
    model.eval()
    counter.take()
    with counter.in_phase("eval"):
        means, n_batches, elapsed = mean_losses(model, task, batches, sync)
    solve_notes = counter.take_notes(("eval",))
    nfe = counter.take()["eval"]
    return {**{f"test_{k}": v for k, v in means.items()},
            "eval_nfe": nfe / n_batches, "eval_time_s": elapsed / n_batches, **solve_notes}


def validate(model: nn.Module, task: Task, batches: Iterable, counter: NFECounter,
             sync: Callable[[], None]) -> dict[str, float]:
    """Validation loss and metrics (per sample) as ``val_<name>``; its evaluations count in
    no recorded phase (nothing when there are no validation batches)."""
    model.eval()
    with counter.in_phase("probe"):
        means, _, _ = mean_losses(model, task, batches, sync)
    return {f"val_{k}": v for k, v in means.items()}


def mean_losses(model: nn.Module, task: Task, batches: Iterable,
                sync: Callable[[], None]) -> tuple[dict[str, float], int, float]:
    """The loss and metrics over ``batches`` (each a mean per sample, without gradients), the
    number of batches and the seconds the model took on them (the device synchronised)."""
    sums: dict[str, float] = {}
    n_batches = samples = 0
    elapsed = 0.0
    with torch.no_grad():
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
    return {k: v / samples for k, v in sums.items()}, n_batches, elapsed


def task_options(task: Task, spec: RunSpec) -> dict[str, Any]:
    """The task's options with the run's."""
    return {**task.options, **spec.task_options}


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (a no-op on the CPU): brackets timed regions."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
