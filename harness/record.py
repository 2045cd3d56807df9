"""The result record: what one run's line in ``results.jsonl`` holds, in one definition.

:class:`RunRecord` says every field and its type; the store checks each line it reads against
it (:func:`record_problem`, derived from the type, so a field added here is checked there), and
the constructors in :mod:`harness.running.records` are the only code that builds one. Readers
may rely on the required fields alone: records written before a field existed lack it, and any
other field may be null where its writer had no value.

Nothing of the harness is imported here, so every layer may name the type.
"""
from __future__ import annotations

import types
import typing
from typing import Any, Literal, TypedDict, Union

#: The version of the record's shape this harness writes (``schema`` in every record; records
#: from before it was kept have none and read as version 0). A reader refuses newer records.
SCHEMA = 1

#: A run's outcome: ``ok`` (it trained and was evaluated) or ``failed`` (``error`` says why).
Status = Literal["ok", "failed"]

#: One epoch's measurements: ``epoch``, ``iterations``, the training ``loss`` and metrics
#: (per sample), ``forward_nfe``/``backward_nfe`` (per iteration; backward is None without
#: the adjoint), ``train_time_s``, ``forward_time_s``/``backward_time_s`` (per iteration),
#: ``forward_memory_bytes``/``backward_memory_bytes`` (the largest step's peak: docs/memory.md), and
#: after an evaluation ``test_<metric>``, ``eval_nfe``, ``eval_time_s`` and what the task's
#: ``measure`` adds. Keys vary with the task, so it is a mapping; :func:`epoch_problem` checks it.
EpochRecord = dict[str, Any]


class _RequiredFields(TypedDict):
    key: str
    """The run's key (:attr:`harness.suites.runspec.RunSpec.key`): what a rerun skips by."""
    task: str
    model: str
    seed: int
    status: Status
    epochs: list[EpochRecord]


class RunRecord(_RequiredFields, total=False):
    """One run's result record (a JSON object, one line of ``results.jsonl``)."""

    schema: int
    suite: str
    kind: str
    """``baseline`` for a run of one of the task's baselines (:attr:`harness.Task.baselines`),
    whose ``model`` is the baseline's name and whose epochs hold no NFE (null); absent for a
    family's run (:data:`harness.setting_values.MODEL_KINDS`)."""
    error: str | None
    """``"<ExceptionType>: <message>"`` of a failed run."""
    failure_kind: str | None
    """What kind of failure (:func:`harness.running.failures.failure_kind`)."""
    traceback: str | None
    metric: str
    """The task's headline metric (``test_<metric>`` in the epochs)."""
    higher_is_better: bool
    params: int
    """Trainable parameters of the built model."""
    paper_params: int | None
    widths: dict[str, int]
    config: dict[str, Any]
    """The resolved run settings (:meth:`harness.suites.runspec.RunSpec.config`)."""
    packages: dict[str, str]
    versions: dict[str, str | int]
    """What ran, in which version (:attr:`harness.suites.runspec.RunSpec.versions`): the
    packages providing the task and the model, and ``task_version``/``model_version`` (absent
    in records made before they were kept)."""
    environment: dict[str, Any]
    """Device, threads, package versions, git revision (:mod:`harness.running.environment`)."""
    started_at: str
    finished_at: str
    wall_time_s: float
    resumed_from_epoch: int
    grid_point: dict[str, Any] | None
    """Where in its suite the run comes from (:attr:`harness.suites.runspec.RunSpec.grid_point`):
    ``{"entry": i, "values": {path: value}}``, its ``runs:`` entry's index and the values of
    that entry's ``grid`` (``{}`` without one). Absent in records made before it was kept, null
    for a run made outside a suite; the reports group by it where it is there
    (:mod:`harness.reports.aggregate`)."""
    ensemble: dict[str, Any] | None
    """``{id, size, index}`` of a run trained as member ``index`` of an ensemble of ``size``
    runs that differ only in seed (:mod:`harness.running.ensembles`); its times (epochs'
    ``*_time_s``, ``wall_time_s``) are the whole ensemble's, not a solo run's."""


# --- checking a record read from disk ---------------------------------------------------------

_JSON_KIND = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def record_problem(record: Any) -> str | None:
    """Why ``record`` (parsed JSON) is not a usable :class:`RunRecord`, or None."""
    if not isinstance(record, dict):
        return f"a JSON {_JSON_KIND.get(type(record), 'null')}, not a record (an object)"
    for name in _REQUIRED:
        if name not in record:
            return f"no {name!r}"
    schema = record.get("schema", 0)
    if not _fits(schema, int) or schema > SCHEMA:
        return (f"'schema' is {schema!r}: written by a newer harness (this one reads records up "
                f"to schema {SCHEMA})")
    for name, kind in _FIELDS.items():
        value = record.get(name)
        if (value is not None or name in _REQUIRED) and name in record and not _fits(value, kind):
            return f"{name!r} is {record[name]!r}, not {_describe(kind)}"
    for number, epoch in enumerate(record["epochs"], 1):
        problem = epoch_problem(epoch)
        if problem:
            return f"epoch {number}: {problem}"
    return None


def epoch_problem(epoch: Any) -> str | None:
    """Why ``epoch`` is not a usable :data:`EpochRecord`, or None: values are JSON scalars or
    lists, and the counts, losses, NFE, times and test metrics numbers (or null)."""
    if not isinstance(epoch, dict):
        return f"{epoch!r} is not an object"
    for name, value in epoch.items():
        if value is not None and not isinstance(value, (str, bool, int, float, list)):
            return f"{name!r} is {value!r}, not a number, string or list"
        if _numeric_epoch_field(name) and value is not None and not _fits(value, float):
            return f"{name!r} is {value!r}, not a number"
    return None


#: Name endings of an epoch's measured amounts (evaluations, seconds, bytes): numbers ≥ 0.
MEASURED_SUFFIXES = ("_nfe", "_time_s", "_bytes")


def _numeric_epoch_field(name: str) -> bool:
    return name in ("epoch", "iterations", "loss") or name.startswith("test_") or name.endswith(
        MEASURED_SUFFIXES)


def _fits(value: Any, kind: Any) -> bool:
    """Whether a JSON value has the annotated type (bool is no number; an int is a float)."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        return any(_fits(value, argument) for argument in arguments)
    if origin is Literal:
        return value in arguments
    if kind is Any:
        return True
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, origin or kind)  # containers: the outer type; epochs checked apart


def _describe(kind: Any) -> str:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in arguments)
    if origin is Literal:
        return "one of " + ", ".join(map(str, arguments))
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(origin or kind, str(kind))


#: Every field's type, and the fields a reader may rely on, from :class:`RunRecord` itself.
_FIELDS: dict[str, Any] = typing.get_type_hints(RunRecord)
_REQUIRED: tuple[str, ...] = tuple(name for name in _FIELDS if name in RunRecord.__required_keys__)
