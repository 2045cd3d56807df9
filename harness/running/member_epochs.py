"""An ensemble's epochs: every member trained, evaluated and measured as its solo run would be
(:func:`harness.running.runner.train` for M members at once), each into its own epoch record.

The members' batches sit side by side (member m's at rows [m·B, (m+1)·B)); each member's loss,
metrics, NFE and failure are its own; gradient clipping is per member; a task's measurements
are taken on each member's solo model holding its slice of the stacked parameters.
"""
from __future__ import annotations

import math
from time import perf_counter
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from harness.contract import Task, TaskData
from harness.record import EpochRecord
from harness.running.failures import NonFiniteLoss, TimeLimitExceeded
from harness.running.runner import BuiltRun, synchronizer, task_options
from harness.suites.runspec import RunSpec
from harness.toolkit.ensemble import Members, load_member


def train_members(specs: Sequence[RunSpec], model: nn.Module,
                  optimizer: torch.optim.Optimizer, members: Members, task: Task,
                  data: list[TaskData], device: torch.device, first_epoch: int,
                  deadline: float | None, builts: Sequence[BuiltRun]) -> Iterable[
                      list[EpochRecord | None]]:
    """As :func:`harness.running.runner.train`, for every member at once: one list per epoch
    with each member's epoch record (None for a member that has failed). ``builts`` are the
    members' solo models, which a task's measurements use (:func:`measure_members`)."""
    spec, size = specs[0], len(specs)
    sync = synchronizer(device)

    def evaluate_and_measure(epoch: int) -> list[dict[str, Any]]:
        results = evaluate_members(model, task, data, members, sync)
        measured = measure_members(model, builts, task, data, members, epoch,
                                   task_options(task, spec))
        return [{**result, **more} for result, more in zip(results, measured)]

    if spec.epochs == 0 and first_epoch == 1:  # the untrained models (resumed: already there)
        yield _finished(members, evaluate_and_measure(0),
                        [{"epoch": 0, "iterations": 0} for _ in specs])
    for epoch in range(first_epoch, spec.epochs + 1):
        if not members.alive.any():
            return
        model.train()
        members.take()
        for member in data:
            member.train.set_epoch(epoch)
        sums: list[dict[str, float]] = [{} for _ in specs]
        iterations = samples = 0
        sync()
        epoch_start = perf_counter()
        for batches in zip(*(member.train for member in data), strict=True):
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
                    members.fail(int(member), NonFiniteLoss(
                        f"training loss is {values[member]} at epoch {epoch}, iteration "
                        f"{iterations + 1}"))
            training = np.flatnonzero(members.alive)
            if not len(training):
                return
            optimizer.zero_grad(set_to_none=True)
            with members.in_phase("backward"):
                torch.stack([losses[member] for member in training]).sum().backward()
            sync()
            t2 = perf_counter()
            if spec.grad_clip:
                clip_members(model.parameters(), spec.grad_clip, size)
            optimizer.step()
            for member in np.flatnonzero(members.alive):
                metrics = task.metrics(predictions[member].detach(), ys[member])
                for name, value in {"loss": values[member], **metrics}.items():
                    sums[member][name] = sums[member].get(name, 0.0) + value * batch
            iterations += 1
            samples += batch
            for name, seconds in (("forward_time_s", t1 - t0), ("backward_time_s", t2 - t1)):
                for member_sums in sums:
                    member_sums[name] = member_sums.get(name, 0.0) + seconds
            sync()
            if deadline is not None and perf_counter() > deadline:
                raise TimeLimitExceeded(f"time limit of {spec.time_limit_s} s reached in epoch "
                                        f"{epoch}, iteration {iterations}")
        train_time = perf_counter() - epoch_start
        nfe = members.take()
        records: list[EpochRecord] = [{
            "epoch": epoch, "iterations": iterations,
            **{k: v / samples for k, v in sums[m].items() if not k.endswith("_time_s")},
            "forward_nfe": int(nfe["forward"][m]) / iterations,
            "backward_nfe": int(nfe["backward"][m]) / iterations if spec.solver.adjoint else None,
            "train_time_s": train_time,
            "forward_time_s": sums[m].get("forward_time_s", 0.0) / iterations,
            "backward_time_s": sums[m].get("backward_time_s", 0.0) / iterations,
        } for m in range(size)]
        if epoch % spec.eval_every == 0 or epoch == spec.epochs:
            yield _finished(members, evaluate_and_measure(epoch), records)
        else:
            yield _finished(members, [{} for _ in specs], records)


def _finished(members: Members, results: list[dict[str, float]],
              records: list[EpochRecord]) -> list[EpochRecord | None]:
    return [{**record, **result} if members.alive[m] else None
            for m, (record, result) in enumerate(zip(records, results))]


def _common_size(xs: list[Tensor]) -> int:
    sizes = {len(x) for x in xs}
    if len(sizes) != 1:
        raise ValueError(f"the members' batches differ in size ({sorted(sizes)}): their data "
                         f"do not have the same number of samples")
    return sizes.pop()


def evaluate_members(model: nn.Module, task: Task, data: list[TaskData], members: Members,
                     sync: Callable[[], None]) -> list[dict[str, float]]:
    """Each member's test loss and metrics (per sample), evaluation NFE (per batch) and the
    ensemble's inference time (per batch), then its validation loss and metrics, as
    :func:`harness.running.runner.evaluate` and :func:`~harness.running.runner.validate`."""
    model.eval()
    members.take()
    with members.in_phase("eval"):
        means, n_batches, elapsed = _member_losses(model, task, [m.test for m in data], members,
                                                   sync)
    nfe = members.take()["eval"]
    with members.in_phase("probe"):
        validation, _, _ = _member_losses(model, task, [m.validation for m in data], members,
                                          sync)
    return [{**{f"test_{k}": v for k, v in means[m].items()},
             "eval_nfe": int(nfe[m]) / n_batches, "eval_time_s": elapsed / n_batches,
             **{f"val_{k}": v for k, v in validation[m].items()}}
            for m in range(members.size)]


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
                metrics = {"loss": task.loss(prediction, y).item(), **task.metrics(prediction, y)}
                for name, value in metrics.items():
                    sums[member][name] = sums[member].get(name, 0.0) + value * batch
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
