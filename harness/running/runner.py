"""One run: building its model (also for each member of an ensemble), and training it alone
(:class:`SoloTrainer`, executed by :func:`harness.running.engine.execute`)."""
from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Callable, Iterable

import torch
from torch import nn

from harness.contract import BuildContext, Family, Task
from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.engine import execute
from harness.running.epochs import (Trained, add, check_deadline, count_iterations,
                                     evaluation)
from harness.running.failures import NonFiniteLoss
from harness.running.observers import Notify
from harness.running.precision import device_refusal, in_precision, stray_tensors
from harness.setting_values import PRECISIONS
from harness.solvers.backends import SolverBackend
from harness.suites.runspec import OPTIMIZERS, RunSpec
from harness.toolkit.memory import MemoryMeter
from harness.toolkit.nfe import NFECounter, hand_counter
from harness.toolkit.ode import ODEBlock
from harness.widths import lacking, listed


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
    counted: bool
    """Whether the model's evaluations are counted: a family's always, a baseline's when it
    has a module that counts them (:class:`~harness.toolkit.nfe.CountsEvaluations`)."""


class MissingWidth(KeyError):
    """A width the task (or family) reads that the run's widths do not hold."""


class Widths(dict):
    """A run's widths, name to size: reading one it lacks raises :class:`MissingWidth`, which
    the run's set-up turns into a message naming it (``get`` with a default still reads an
    optional width)."""

    def __missing__(self, name: str) -> int:
        raise MissingWidth(name)


def _own_widths(spec: RunSpec, registry: Registry) -> dict[str, int] | None:
    """The task's widths for the run's family (:meth:`harness.Task.widths_for`) or baseline
    (:attr:`harness.Task.baselines`)."""
    task = registry.tasks[spec.task]
    if spec.baseline:
        return task.baselines.get(spec.model)
    return task.widths_for(registry.families[spec.model], registry.families)


def widths_for(spec: RunSpec, registry: Registry) -> Widths:
    """The suite's widths, else the task's own for this family or baseline."""
    task = registry.tasks[spec.task]
    widths = spec.widths or _own_widths(spec, registry)
    if widths:
        return Widths(widths)
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
    with naming_missing_widths(spec, registry, widths):
        reason = task.refusal(family, widths)
    if reason:
        raise RunConfigError(f"{spec.label}: task {task.name!r} refuses model {spec.model!r} "
                             f"(widths {listed(widths)}): {reason}")
    try:
        family(**spec.model_options)
    except (TypeError, ValueError) as error:
        raise RunConfigError(f"{spec.label}: {error}") from None


@contextmanager
def naming_missing_widths(spec: RunSpec, registry: Registry, widths: Widths) -> Iterator[None]:
    """Turn a width the task reads but the run lacks into a RunConfigError naming it, the
    widths given and the task's own (a suite's ``widths:`` replaces the task's whole)."""
    try:
        yield
    except MissingWidth as missing:
        own = _own_widths(spec, registry)
        valid = f"; the task's own for it: {listed(own)}" if own else ""
        raise RunConfigError(
            f"{spec.label}: {lacking(missing.args, widths, spec.task, spec.kind, spec.model)}; "
            f"give every width it reads in the suite's `widths:`{valid}") from None


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
    with in_precision(spec.precision), naming_missing_widths(spec, registry, widths):
        if family is None:
            model = task.build_baseline(spec.model, widths, task_options(task, spec))
        else:
            model = task.build_model(BuildContext(family=family, widths=widths, ode=ode,
                                                  options=task_options(task, spec),
                                                  data_root=spec.data_root))
        model = model.to(device)
    counted = family is not None or hand_counter(model, counter)
    stray = stray_tensors(model, PRECISIONS[spec.precision])
    if stray:
        raise RunConfigError(
            f"{spec.label}: the model holds {', '.join(stray[:3])}"
            f"{f' and {len(stray) - 3} more' if len(stray) > 3 else ''}, not the run's "
            f"precision {spec.precision}: task {task.name!r} (or family {spec.model!r}) makes "
            f"floating tensors in torch.get_default_dtype(), which the harness sets to it")
    optimizer = optimizer_for(spec, model, spec.lr)
    return BuiltRun(task, family, widths, model, optimizer, counter, counted)


def optimizer_for(spec: RunSpec, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The run's optimizer over ``model``'s parameters at ``lr`` (fresh: no state)."""
    return OPTIMIZERS[spec.optimizer](model.parameters(), lr=lr)


def load_state(model: nn.Module, optimizer: torch.optim.Optimizer,
               saved: dict[str, Any]) -> bool:
    """Load a checkpoint's model and optimizer state; False when it does not fit (shapes or
    names from another build)."""
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError):
        return False
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def execute_run(spec: RunSpec, registry: Registry, device: torch.device,
                notify: Notify | None = None,
                checkpoints: Checkpoints | None = None) -> RunRecord:
    """Train and evaluate one run; whatever happens, return its result record
    (:func:`harness.running.engine.execute` with a :class:`SoloTrainer`: with ``checkpoints``,
    saved after every epoch and resumed from there)."""
    return execute(SoloTrainer(spec, registry, device), registry, device, notify, checkpoints)[0]


class SoloTrainer:
    """One run alone, as :func:`build_run` builds it: the :class:`~harness.running.engine.Trainer`
    of a solo run. Whatever fails, fails the run (it raises, and the engine records it)."""

    def __init__(self, spec: RunSpec, registry: Registry, device: torch.device) -> None:
        self.specs, self.spec, self.registry, self.device = [spec], spec, registry, device
        self.checkpoint, self.placements = spec.key, [None]
        self.backend = solver_backend(spec, registry)
        self.task = registry.tasks[spec.task]
        self.options = task_options(self.task, spec)
        self.sync = synchronizer(device)
        self.meter = MemoryMeter(device, spec.memory)
        self.sizes: list[dict[str, Any]] = []
        self.failures: dict[int, BaseException] = {}

    def fail(self, index: int, error: BaseException) -> None:
        self.failures.setdefault(index, error)

    def prepare(self) -> None:
        """Nothing: a run alone is never given back."""

    def build(self) -> None:
        self.built = build_run(self.spec, self.registry, self.device)
        self.sizes = [{"params": count_parameters(self.built.model), "widths": self.built.widths}]
        spec = self.spec
        self.data = self.task.data(self.options, spec.seed, spec.data_root, self.device,
                                   spec.batch_size)

    def resume(self, saved: dict[str, Any]) -> str | None:
        if load_state(self.built.model, self.built.optimizer, saved):
            return None
        self.built = build_run(self.spec, self.registry, self.device)
        return "its model or optimizer state does not fit this run"

    def state(self) -> dict[str, Any]:
        return {"model": self.built.model.state_dict(),
                "optimizer": self.built.optimizer.state_dict()}

    def restart(self, lr: float) -> None:
        self.built.optimizer = optimizer_for(self.spec, self.built.model, lr)

    def train_epoch(self, epoch: int, deadline: float | None) -> list[Trained | None]:
        spec, task, data, sync = self.spec, self.task, self.data, self.sync
        model, counter, optimizer = self.built.model, self.built.counter, self.built.optimizer
        meter = self.meter
        if not model.training:  # evaluation left it in eval mode (a walk over every module)
            model.train()
        counter.take()
        meter.take()
        data.train.set_epoch(epoch)
        trained = Trained(epoch)
        sync()
        epoch_start = perf_counter()
        for x, y in data.train:
            t0 = perf_counter()
            with counter.in_phase("forward"), meter.in_phase("forward"):
                prediction = model(x)
                loss = task.loss(prediction, y)
            value = loss.item()  # synchronises the device, like sync() would
            t1 = perf_counter()
            if not math.isfinite(value):
                raise NonFiniteLoss.at(value, epoch, trained.iterations + 1)
            optimizer.zero_grad(set_to_none=True)
            with counter.in_phase("backward"), meter.in_phase("backward"):
                loss.backward()
            sync()
            t2 = perf_counter()
            if spec.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()
            batch = len(x)
            add(trained.sums, {"loss": value, **task.metrics(prediction.detach(), y)}, batch)
            count_iterations((trained,), batch, t1 - t0, t2 - t1)
            sync()
            check_deadline(spec, deadline, epoch, trained.iterations)
        trained.seconds = perf_counter() - epoch_start
        trained.notes = counter.take_notes(("forward", "backward"))
        trained.nfe = counter.take() if self.built.counted else None
        trained.memory = meter.take()
        return [trained]

    def evaluate(self, epoch: int) -> list[dict[str, Any]]:
        """Test loss and metrics (per sample), evaluation NFE and inference time (per batch),
        validation loss and metrics (counted in no recorded phase), the task's measurements."""
        model, counter, task, data = self.built.model, self.built.counter, self.task, self.data
        model.eval()
        counter.take()
        with counter.in_phase("eval"):
            test, batches, seconds = mean_losses(model, task, data.test, self.sync)
        notes = counter.take_notes(("eval",))
        nfe = counter.take()["eval"]
        with counter.in_phase("probe"):
            validation, _, _ = mean_losses(model, task, data.validation, self.sync)
            measured = task.measure(model, data, epoch, self.options)
        return [{**evaluation(test, nfe if self.built.counted else None, batches, seconds, notes,
                              validation), **measured}]

    def unfit(self, error: Exception, trained: bool) -> Exception | None:
        return None


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
            add(sums, {"loss": task.loss(prediction, y).item(), **task.metrics(prediction, y)},
                batch)
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
