"""What a checkpoint may hold: exactly what a run of this harness (or an ensemble of runs) saves,
checked whole against the run it claims to be.

A checkpoint that unpickles safely can still lie: epochs the run never trained (40 of a 30-epoch
run, one member at 90 of 15), a time of ``"x"`` or −1e9, an epoch field that is no number, a
random-number state that does not restore, a failure of a kind no run records. Trusting any of
these records a run ``ok`` that never finished, crashes the driver or fails the run for its
checkpoint's sake; :func:`checkpoint_problem` names it instead, so the file is set aside and the
run trains from scratch (:meth:`harness.running.checkpoints.Checkpoints.read`).
"""
from __future__ import annotations

import math
import random
from typing import Any

import torch

from harness.record import MEASURED_SUFFIXES, epoch_problem
from harness.running.failures import FAILURE_KINDS

#: The keys of a solo run's checkpoint; an ensemble's has ``failed`` too.
SOLO_KEYS = ("model", "optimizer", "epochs", "elapsed_s", "rng")
ENSEMBLE_KEYS = (*SOLO_KEYS, "failed")


def checkpoint_problem(state: Any, epochs: int, members: int | None) -> str | None:
    """Why ``state`` is not a checkpoint that a run of ``epochs`` epochs (an ensemble of
    ``members`` such runs, when given) could have saved, or None when it is one."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a mapping"
    keys = ENSEMBLE_KEYS if members else SOLO_KEYS
    if set(state) != set(keys):
        unknown, missing = sorted(map(str, set(state) - set(keys))), sorted(set(keys) - set(state))
        return "; ".join([f"no {name!r}" for name in missing]
                         + [f"unknown key {name!r}" for name in unknown]) + \
            f" (valid keys: {', '.join(keys)})"
    for name in ("model", "optimizer"):
        if not isinstance(state[name], dict):
            return f"{name!r} is a {type(state[name]).__name__}, not a state dict"
    elapsed = state["elapsed_s"]
    if not _number(elapsed) or not 0 <= elapsed < math.inf:
        return f"'elapsed_s' is {elapsed!r}, not a finite number of seconds ≥ 0"
    problem = rng_problem(state["rng"])
    if problem:
        return f"'rng': {problem}"
    if members is None:
        return epochs_problem(state["epochs"], epochs)
    return _ensemble_problem(state["epochs"], state["failed"], epochs, members)


def epochs_problem(records: Any, epochs: int) -> str | None:
    """Why ``records`` are not the first epoch records of a run of ``epochs`` epochs (numbered
    1, 2, …; a run of 0 epochs has one, numbered 0), or None."""
    if not isinstance(records, list):
        return f"'epochs' is a {type(records).__name__}, not a list"
    if len(records) > (epochs or 1):
        return f"{len(records)} epochs, but the run has {epochs}"
    first = 0 if epochs == 0 else 1
    for number, record in enumerate(records, first):
        problem = epoch_problem(record) or _range_problem(record, number)
        if problem:
            return f"epoch {number}: {problem}"
    return None


def _range_problem(record: dict[str, Any], number: int) -> str | None:
    """What of an epoch record no training writes: another number, negative counts, NFE,
    times or bytes that are not finite and ≥ 0, a training loss that is not finite."""
    if not _whole(record.get("epoch")) or record["epoch"] != number:
        return f"'epoch' is {record.get('epoch')!r}, not {number}"
    if not _whole(record.get("iterations")) or record["iterations"] < 0:
        return f"'iterations' is {record.get('iterations')!r}, not a count"
    for name, value in record.items():
        counted = name.endswith(MEASURED_SUFFIXES)
        if value is None or not (counted or name == "loss"):
            continue
        if not math.isfinite(value) or (counted and value < 0):
            return f"{name!r} is {value!r}, not a finite number" + " ≥ 0" * counted
    return None


def _ensemble_problem(records: Any, failed: Any, epochs: int, members: int) -> str | None:
    """An ensemble's epochs (one list per member) and failures against its ``members`` runs of
    ``epochs`` epochs: members still training have all trained as many epochs; a failed one
    stopped no later."""
    if not isinstance(records, list) or len(records) != members:
        count = len(records) if isinstance(records, list) else type(records).__name__
        return f"'epochs' holds {count} members' epochs, but the ensemble has {members}"
    for index, member in enumerate(records):
        problem = epochs_problem(member, epochs)
        if problem:
            return f"member {index}: {problem}"
    if not isinstance(failed, dict):
        return f"'failed' is a {type(failed).__name__}, not a mapping"
    for index, failure in failed.items():
        problem = _failure_problem(index, failure, members)
        if problem:
            return f"'failed' of member {index!r}: {problem}"
    trained = max(len(member) for member in records)
    for index, member in enumerate(records):
        if str(index) not in failed and len(member) != trained:
            return (f"member {index} trained {len(member)} epochs, the ensemble {trained}, and "
                    f"it has not failed")
    return None


def _failure_problem(index: Any, failure: Any, members: int) -> str | None:
    if not isinstance(index, str) or index not in {str(m) for m in range(members)}:
        return f"no member of an ensemble of {members} (valid: 0 to {members - 1})"
    if not isinstance(failure, dict) or set(failure) != {"error", "failure_kind"}:
        return "not a mapping of 'error' and 'failure_kind'"
    if not isinstance(failure["error"], str):
        return f"'error' is {failure['error']!r}, not a message"
    if failure["failure_kind"] not in FAILURE_KINDS:
        return (f"'failure_kind' is {failure['failure_kind']!r}; valid: "
                f"{', '.join(FAILURE_KINDS)}")
    return None


def rng_problem(state: Any) -> str | None:
    """Why ``state`` is not a random-number state :func:`~harness.running.checkpoints.rng_state`
    saves and :func:`~harness.running.checkpoints.restore_rng` restores; tried on generators
    of its own, so checking changes nothing."""
    if not isinstance(state, dict) or not {"torch", "python"} <= set(state) or \
            not set(state) <= {"torch", "python", "cuda"}:
        return "not a mapping of 'torch', 'python' (and 'cuda') states"
    try:
        torch.Generator().set_state(state["torch"])
        version, internal, gauss = state["python"]
        random.Random().setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        return f"does not restore ({type(error).__name__}: {error})"
    if version != 3 or not (gauss is None or isinstance(gauss, float)):  # setstate checks neither
        return f"'python' is not a version-3 state of Python's random (version {version!r})"
    cuda = state.get("cuda", [])
    if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                             for t in cuda):
        return "'cuda' is not a list of generator states"
    if torch.cuda.is_available() and len(cuda) > torch.cuda.device_count():
        return f"{len(cuda)} CUDA states for {torch.cuda.device_count()} devices"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
