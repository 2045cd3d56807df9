"""An ensemble's trainer: every member built, trained, evaluated and measured as its solo run
would be (:class:`harness.running.runner.SoloTrainer` for M members at once), executed by
:func:`harness.running.engine.execute`, each member into its own record.

The members' models are built exactly as their solo runs build them (each seeded by its run),
then stacked into one model (:func:`harness.toolkit.ensemble.stack_models`); each member reads
its own data (seeded as alone), in its own order: its batches sit side by side with the
others' (member m's at rows [m·B, (m+1)·B)). One optimizer holds the stacked parameters: Adam,
AdamW and SGD are elementwise, so each member's slice moves as its solo optimizer would move it,
and a fresh one (``lr_restarts``) is each member's fresh one; gradient clipping is per member.
Each member's loss, metrics, NFE, solve notes and failure are its own: a member whose solve
fails, whose loss is not finite or whose measurement raises fails (as its solo run would) and is
masked out, and the others go on. A task's measurements are taken on each member's solo model
holding its slice of the stacked parameters.
"""
from __future__ import annotations

import math
from time import perf_counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from harness.contract import Task, TaskData
from harness.registry import Registry
from harness.running.epochs import (Trained, add, check_deadline, count_iterations,
                                     evaluation)
from harness.running.failures import NonFiniteLoss, TimeLimitExceeded
from harness.running.runner import (BuiltRun, build_run, count_parameters, load_state,
                                    optimizer_for, solver_backend, synchronizer, task_options)
from harness.suites.runspec import RunSpec
from harness.toolkit.batches import TensorBatches
from harness.toolkit.ensemble import Members, NotStackable, load_member, stack_models


class TooLarge(RuntimeError):
    """The ensemble ran out of device memory before any member finished an epoch: the same
    runs in smaller ensembles may fit (nothing was recorded, no run_finished was sent)."""


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device (or the host) running out of memory."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError))


class MemberTrainer:
    """The runs ``specs`` (the same but for the seed) as members of one stacked model, its
    checkpoint named ``identity``: the :class:`~harness.running.engine.Trainer` of an
    ensemble. It gives the unit back when the models or data cannot be stacked
    (:class:`NotStackable`) or run out of memory before the first epoch (:class:`TooLarge`)."""

    def __init__(self, specs: Sequence[RunSpec], registry: Registry, device: torch.device,
                 identity: str) -> None:
        self.specs, self.spec, self.registry, self.device = specs, specs[0], registry, device
        self.checkpoint = identity
        self.placements = [{"id": identity, "size": len(specs), "index": index}
                           for index in range(len(specs))]
        self.backend = solver_backend(self.spec, registry)
        self.task = registry.tasks[self.spec.task]
        self.options = task_options(self.task, self.spec)
        self.sync = synchronizer(device)
        self.members = Members(len(specs))
        self.failures = self.members.failures
        self.fail = self.members.fail
        self.sizes: list[dict[str, Any]] = []

    def prepare(self) -> None:
        """Build and stack the members' models, read their data (each as its solo run does);
        :class:`NotStackable` when that fails (alone, each run records what stopped it) or
        their data differ in size. Running out of time fails them together (alone, each would
        hang again)."""
        try:
            self._stack()
            self.data = [self.task.data(task_options(self.task, member), member.seed,
                                        member.data_root, self.device, member.batch_size)
                         for member in self.specs]
        except (TimeLimitExceeded, NotStackable):
            raise
        except Exception as error:
            raise NotStackable(f"the models or data could not be made ({type(error).__name__}: "
                               f"{error})") from error
        check_same_batches(self.data)
        self.sizes = [{"params": count_parameters(built.model), "widths": built.widths}
                      for built in self.builts]

    def _stack(self) -> None:
        self.builts: list[BuiltRun] = [build_run(member, self.registry, self.device)
                                       for member in self.specs]
        self.model = stack_models([built.model for built in self.builts], self.members)
        self.optimizer = optimizer_for(self.spec, self.model, self.spec.lr)

    def build(self) -> None:
        """Nothing: :meth:`prepare` built it all."""

    def resume(self, saved: dict[str, Any]) -> str | None:
        if load_state(self.model, self.optimizer, saved):
            return None
        self._stack()
        return "its state does not fit this ensemble"

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def restart(self, lr: float) -> None:
        self.optimizer = optimizer_for(self.spec, self.model, lr)

    def train_epoch(self, epoch: int, deadline: float | None) -> list[Trained | None]:
        spec, task, model, members, sync = self.spec, self.task, self.model, self.members, self.sync
        size, optimizer = members.size, self.optimizer
        model.train()
        members.take()
        members.take_notes()
        for member in self.data:
            member.train.set_epoch(epoch)
        trained = [Trained(epoch) for _ in self.specs]
        iterations = 0
        sync()
        epoch_start = perf_counter()
        for batches in zip(*(member.train for member in self.data), strict=True):
            xs, ys = [x for x, _ in batches], [y for _, y in batches]
            batch = _common_size(xs)
            t0 = perf_counter()
            with members.in_phase("forward"):
                predictions = model(torch.cat(xs)).chunk(size)
                losses = [task.loss(p, y) for p, y in zip(predictions, ys)]
            values = torch.stack([loss.detach() for loss in losses]).tolist()
            t1 = perf_counter()
            for member in np.flatnonzero(members.alive):
                if not math.isfinite(values[member]):
                    members.fail(int(member),
                                 NonFiniteLoss.at(values[member], epoch, iterations + 1))
            training = np.flatnonzero(members.alive)
            if not len(training):
                return [None for _ in self.specs]
            optimizer.zero_grad(set_to_none=True)
            with members.in_phase("backward"):
                torch.stack([losses[member] for member in training]).sum().backward()
            sync()
            t2 = perf_counter()
            if spec.grad_clip:
                clip_members(model.parameters(), spec.grad_clip, size)
            optimizer.step()
            iterations += 1
            for member in np.flatnonzero(members.alive):
                metrics = task.metrics(predictions[member].detach(), ys[member])
                add(trained[member].sums, {"loss": values[member], **metrics}, batch)
            count_iterations(trained, batch, t1 - t0, t2 - t1)
            sync()
            check_deadline(spec, deadline, epoch, iterations)
        seconds = perf_counter() - epoch_start
        notes = members.take_notes(("forward", "backward"))
        nfe = members.take()
        for m, member in enumerate(trained):
            member.seconds, member.notes = seconds, member_notes(notes, m)
            member.nfe = {phase: int(nfe[phase][m]) for phase in ("forward", "backward")}
        return [member if members.alive[m] else None for m, member in enumerate(trained)]

    def evaluate(self, epoch: int) -> list[dict[str, Any]]:
        """Each member's evaluation as its solo run's (the inference time is the ensemble's),
        then its measurements (:func:`measure_members`)."""
        model, members, task, data = self.model, self.members, self.task, self.data
        model.eval()
        members.take()
        members.take_notes()
        with members.in_phase("eval"):
            test, batches, seconds = _member_losses(model, task, [m.test for m in data],
                                                    members, self.sync)
        notes = members.take_notes(("eval",))
        nfe = members.take()["eval"]
        with members.in_phase("probe"):
            validation, _, _ = _member_losses(model, task, [m.validation for m in data],
                                              members, self.sync)
        measured = measure_members(model, self.builts, task, data, members, epoch, self.options)
        return [{**evaluation(test[m], int(nfe[m]), batches, seconds, member_notes(notes, m),
                              validation[m]), **measured[m]} for m in range(members.size)]

    def unfit(self, error: Exception, trained: bool) -> Exception | None:
        size = self.members.size
        if out_of_memory(error) and size > 1 and not trained:
            return TooLarge(f"{size} members ran out of device memory before their first "
                            f"epoch ended ({type(error).__name__}: {error})")
        return None


def member_notes(notes: Mapping[str, Any], index: int) -> dict[str, float]:
    """Member ``index``'s solve notes from an ensemble's (a backend notes one value per member,
    or one value for all)."""
    return {name: float(value[index]) if np.ndim(value) else value
            for name, value in notes.items()}


def check_same_batches(data: list[TaskData]) -> None:
    """NotStackable when the members' training or test data differ in their number of batches
    or samples (say, a seeded split that keeps a different number of windows): side by side,
    a member would lose batches or a batch would not split by member."""
    for split in ("train", "test", "validation"):
        sizes = {_batch_shape(getattr(member, split)) for member in data}
        if len(sizes) > 1:
            raise NotStackable(f"the members' {split} data differ in size "
                               f"({', '.join(sorted(map(str, sizes)))})")


def _batch_shape(batches: Any) -> tuple[int, int] | int | None:
    """(batches, samples) of :class:`TensorBatches`, the length of other sized iterables."""
    if isinstance(batches, TensorBatches):
        return len(batches), len(batches.x)
    return len(batches) if hasattr(batches, "__len__") else None


def _common_size(xs: list[Tensor]) -> int:
    sizes = {len(x) for x in xs}
    if len(sizes) != 1:
        raise ValueError(f"the members' batches differ in size ({sorted(sizes)}): their data "
                         f"do not have the same number of samples")
    return sizes.pop()


def _member_losses(model: nn.Module, task: Task, splits: list[Iterable[tuple[Tensor, Tensor]]],
                   members: Members, sync: Callable[[], None]) -> tuple[
                       list[dict[str, float]], int, float]:
    """Each live member's loss and metrics over its batches of one split (means per sample,
    without gradients), the number of batches and the ensemble's seconds on them."""
    sums: list[dict[str, float]] = [{} for _ in splits]
    n_batches = samples = 0
    elapsed = 0.0
    with torch.no_grad():
        for batches in zip(*splits, strict=True):
            xs, ys = [x for x, _ in batches], [y for _, y in batches]
            batch = _common_size(xs)
            sync()
            start = perf_counter()
            predictions = model(torch.cat(xs)).chunk(len(splits))
            sync()
            elapsed += perf_counter() - start
            for member in np.flatnonzero(members.alive):
                prediction, y = predictions[member], ys[member]
                add(sums[member], {"loss": task.loss(prediction, y).item(),
                                   **task.metrics(prediction, y)}, batch)
            n_batches += 1
            samples += batch
    return [{k: v / samples for k, v in member.items()} for member in sums], n_batches, elapsed


def measure_members(model: nn.Module, builts: Sequence[BuiltRun], task: Task,
                    data: list[TaskData], members: Members, epoch: int,
                    options: dict[str, Any]) -> list[dict[str, Any]]:
    """Each live member's :meth:`Task.measure`, taken on its solo model holding its slice of
    the stacked parameters (a measurement may need one model's trajectory or gradients); a
    member whose measurement raises fails, as its solo run would. Nothing for tasks without
    measurements."""
    if type(task).measure is Task.measure:
        return [{} for _ in builts]
    results: list[dict[str, Any]] = []
    for index, built in enumerate(builts):
        results.append({})
        if not members.alive[index]:
            continue
        load_member(built.model, model, index)
        built.model.eval()
        try:
            with built.counter.in_phase("probe"):
                results[index] = task.measure(built.model, data[index], epoch, options)
        except TimeLimitExceeded:
            raise
        except Exception as error:
            members.fail(index, error)
    return results


def clip_members(parameters: Iterable[nn.Parameter], max_norm: float, size: int) -> None:
    """``nn.utils.clip_grad_norm_`` for each member on its own slices of the stacked
    parameters: each member's total norm, each member's factor."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(size, -1), dim=1) for g in grads])
    total = torch.linalg.vector_norm(norms, dim=0)
    factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(factor.view(size, *([1] * (g.dim() - 1))))
