"""Epoch records, built in one place for every trainer: what a run trained in an epoch
(:class:`Trained`) and what an evaluation measured (:func:`evaluation`) become the same fields
whether the run trained alone or as a member of an ensemble (:mod:`harness.running.engine`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Iterable, Mapping

from harness.record import EpochRecord
from harness.running.failures import TimeLimitExceeded
from harness.suites.runspec import RunSpec
from harness.toolkit.memory import MEMORY_PHASES


@dataclass
class Trained:
    """One run's epoch of training, as its trainer measured it."""

    epoch: int
    iterations: int = 0
    samples: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    """The loss and metrics summed per sample (:func:`add`), and ``forward_time_s`` and
    ``backward_time_s`` summed per iteration."""
    nfe: Mapping[str, int] | None = field(default_factory=dict)
    """Evaluations of the dynamics in the epoch's ``forward`` and ``backward`` phases; None for
    a model that counts none (a baseline without a solve)."""
    memory: Mapping[str, int] = field(default_factory=dict)
    """The peak bytes a training step held in its ``forward`` and ``backward`` phases, the
    largest of the epoch's steps (:class:`harness.toolkit.memory.MemoryMeter`); none (absent
    from the record) where they were not measured (a run without ``memory: true``)."""
    notes: Mapping[str, float] = field(default_factory=dict)
    """The backend's solve notes of the epoch (``forward_outer_steps``, …; none for most)."""
    seconds: float = 0.0
    """The epoch's training time."""


def add(sums: dict[str, float], values: Mapping[str, float], weight: float) -> None:
    """Add ``values`` × ``weight`` to ``sums``, name by name (a batch's means × its size)."""
    for name, value in values.items():
        sums[name] = sums.get(name, 0.0) + value * weight


def count_iterations(trained: Iterable[Trained], samples: int, forward_s: float,
                     backward_s: float) -> None:
    """One training iteration on ``samples`` samples, for each of ``trained`` (a run alone, or
    every member of an ensemble: a member that failed still counts the ensemble's iterations),
    whose forward and backward passes took ``forward_s`` and ``backward_s`` seconds. The loss
    and metrics are :func:`add`-ed apart (only a live member's count)."""
    times = {"forward_time_s": forward_s, "backward_time_s": backward_s}
    for run in trained:
        add(run.sums, times, 1)
        run.iterations += 1
        run.samples += samples


def epoch_record(trained: Trained, spec: RunSpec) -> EpochRecord:
    """The epoch record of ``trained``, a run of ``spec``: the loss and metrics per sample, NFE
    and times per iteration (both None for a model that counts none; ``backward_nfe`` None
    without the adjoint, and for a baseline, whose backward pass is backpropagation through
    what its forward evaluated, never the run's adjoint), the peak memory of a step by phase
    where it was measured, the solve notes."""
    sums, iterations, nfe = trained.sums, trained.iterations, trained.nfe
    adjoint = spec.solver.adjoint and not spec.baseline
    return {
        "epoch": trained.epoch, "iterations": iterations,
        **{k: v / trained.samples for k, v in sums.items() if not k.endswith("_time_s")},
        "forward_nfe": None if nfe is None else nfe["forward"] / iterations,
        "backward_nfe": None if nfe is None or not adjoint else nfe["backward"] / iterations,
        "train_time_s": trained.seconds,
        "forward_time_s": sums.get("forward_time_s", 0.0) / iterations,
        "backward_time_s": sums.get("backward_time_s", 0.0) / iterations,
        **{f"{phase}_memory_bytes": trained.memory[phase] for phase in MEMORY_PHASES
           if phase in trained.memory},
        **trained.notes,
    }


def untrained_record() -> EpochRecord:
    """The start of the record of the untrained model (a run of 0 epochs), numbered 0."""
    return {"epoch": 0, "iterations": 0}


def evaluation(test: Mapping[str, float], nfe: int | None, batches: int, seconds: float,
               notes: Mapping[str, float], validation: Mapping[str, float]) -> dict[str, Any]:
    """An evaluation's fields: the test loss and metrics (per sample) as ``test_<name>``, the
    evaluation NFE (None: a baseline's) and inference time (per batch), the evaluation's solve notes, the
    validation loss and metrics as ``val_<name>``."""
    return {**{f"test_{k}": v for k, v in test.items()},
            "eval_nfe": None if nfe is None else nfe / batches, "eval_time_s": seconds / batches, **notes,
            **{f"val_{k}": v for k, v in validation.items()}}


def evaluates(spec: RunSpec, epoch: int) -> bool:
    """Whether epoch ``epoch`` ends with an evaluation (every ``eval_every``, the last, 0)."""
    return epoch % spec.eval_every == 0 or epoch == spec.epochs


def check_deadline(spec: RunSpec, deadline: float | None, epoch: int, iterations: int) -> None:
    """Past ``deadline`` (a ``perf_counter`` time) stop with :class:`TimeLimitExceeded`: the
    check after each iteration, where :class:`~harness.running.deadline.Alarm` cannot
    interrupt the run (outside the main thread)."""
    if deadline is not None and perf_counter() > deadline:
        raise TimeLimitExceeded(f"time limit of {spec.time_limit_s} s reached in epoch "
                                f"{epoch}, iteration {iterations}")
