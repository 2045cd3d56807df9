"""A run spec: one fully resolved (task, model, seed, settings) run, and its resume key.

The run settings — what a suite may set per run — are defined once, as the fields of
:class:`RunSpec` made with :func:`setting`: each has its default and its check there (the
solver's keys: the fields of :class:`harness.solvers.settings.SolverConfig`, declared there
with :func:`~harness.solvers.settings.solver_setting` and checked by :func:`solver_checks`). The
defaults a suite starts from (:func:`default_settings`), the keys the loader accepts and how it
checks them, :meth:`RunSpec.from_settings`, :meth:`RunSpec.config` (stored in the record) and
the key all derive from these fields. A setting added after records existed is made with
``keyed_from_default=False`` (``lr_restarts``, ``profile``, ``precision``, ``memory``): the
key leaves it out while it holds its default. Besides the settings, the key holds the
versions of what ran (:attr:`RunSpec.versions`): a new version of a task or family reruns
its runs.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from harness.setting_values import MODEL_KINDS, PRECISIONS, PROFILES
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import SOLVER_SETTINGS, TOLERANCE, TOLERANCES, SolverConfig
from harness.suites.validation import (boolean, choice, non_negative_int, optional,
                                       positive_int, positive_number, type_check)

#: The optimizers a suite may name (``optimizer:``), and what each builds.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
}

#: How a setting whose value is a mapping is checked: by the suite loader, which knows the
#: context (the entry's models and tasks, the registry's backends).
STRUCTURED = "structured"


def setting(default: Any, check: Callable[[Any], Any] | str,
            keyed_from_default: bool = True) -> Any:
    """A run setting: a field of :class:`RunSpec` with its default and how a suite's value for it
    is checked (a function returning the normalised value or raising
    :class:`~harness.suites.validation.Invalid`, or :data:`STRUCTURED`). With
    ``keyed_from_default=False`` the key leaves the setting out while it holds its default (a
    setting added after records existed: their keys stay as they were)."""
    metadata = {"check": check, "keyed_from_default": keyed_from_default}
    if isinstance(default, (dict, SolverConfig)):  # mutable: each spec its own
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on. ``data_root`` says where data is, not what it is, so it
    is left out of the key; so are the suite's name and the device."""

    suite: str
    task: str
    model: str
    seed: int
    epochs: int = setting(10, non_negative_int)  # 0 studies the untrained model
    lr: float = setting(1e-3, positive_number)
    batch_size: int | None = setting(None, optional(positive_int))
    optimizer: str = setting("adam", choice(OPTIMIZERS, "an optimizer"))
    solver: SolverConfig = setting(SolverConfig(), STRUCTURED)
    widths: dict[str, int] | None = setting(None, STRUCTURED)
    model_options: dict[str, Any] = setting({}, STRUCTURED)
    task_options: dict[str, Any] = setting({}, STRUCTURED)
    eval_every: int = setting(1, positive_int)
    grad_clip: float | None = setting(None, optional(positive_number))
    time_limit_s: float | None = setting(None, optional(positive_number))
    lr_restarts: dict[int, float] = setting({}, STRUCTURED, keyed_from_default=False)
    """{epoch: lr}: at the start of each listed epoch, a fresh optimizer with that lr (the
    authors' plane-vibration schedule: ``{51: 1.0e-4}`` after 50 epochs at ``lr``)."""
    profile: str = setting("paper", choice(PROFILES, "a profile"), keyed_from_default=False)
    """Whose settings the run follows where the paper's text and its authors' code differ
    (:data:`harness.setting_values.PROFILES`); the loader applies the task's settings for it."""
    precision: str = setting("float32", choice(PRECISIONS, "a precision"),
                             keyed_from_default=False)
    """The floating-point precision of the run's data, model and solves
    (:data:`harness.setting_values.PRECISIONS`): torch's default dtype while the run is made and
    trained."""
    memory: bool = setting(False, boolean, keyed_from_default=False)
    """Measure the peak memory each training step holds, per phase (docs/memory.md). Asked
    for, not always on: on a CPU the saved-tensor hooks slow a small model's step by a quarter
    to a half, which would change every time the harness records. A run measuring it trains
    alone, never as an ensemble's member."""
    data_root: str | None = None
    kind: str = "family"
    """What ``model`` names (:data:`harness.setting_values.MODEL_KINDS`): a family, or one of the
    task's baselines. Part of the key (of a baseline's only: family runs keep their keys)."""
    versions: dict[str, str | int] = field(default_factory=dict)
    """What ran, in which version: ``task`` and ``model``, the package providing each and its
    version; ``task_version`` and ``model_version``, the task's and the family's own
    (:attr:`harness.Task.version`). Part of the key."""
    grid_point: dict[str, Any] | None = field(default=None, compare=False)
    """Where in its suite the run comes from: ``{"entry": i, "values": {path: value}}``, the
    index of its ``runs:`` entry and the values of that entry's ``grid`` it was made with
    (``{}`` without a grid); None for a spec made outside a suite. Not part of the key or the
    configuration: kept in the record (``grid_point``) for the reports."""

    @classmethod
    def from_settings(cls, suite: str, task: str, model: str, seed: int,
                      settings: Mapping[str, Any], data_root: str | None = None,
                      versions: dict[str, str | int] | None = None,
                      grid_point: dict[str, Any] | None = None,
                      kind: str = "family") -> "RunSpec":
        """Build from resolved settings (every key of :func:`default_settings`)."""
        values = {name: settings[name] for name in SETTINGS}
        values["solver"] = SolverConfig(**settings["solver"])
        return cls(suite=suite, task=task, model=model, seed=seed, data_root=data_root,
                   kind=kind, versions=dict(versions or {}), grid_point=grid_point,
                   **values)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"RunSpec.kind is {self.kind!r}; valid: {', '.join(MODEL_KINDS)}")

    @property
    def baseline(self) -> bool:
        """Whether ``model`` is one of the task's baselines, not a family."""
        return self.kind == "baseline"

    def config(self) -> dict[str, Any]:
        """The resolved configuration, as stored in the result record (``kind`` only for a
        baseline: a family's configuration, and so its key, is what it was before kinds)."""
        kind = {"kind": self.kind} if self.baseline else {}
        return {"task": self.task, "model": self.model, **kind, "seed": self.seed,
                **_plain({name: getattr(self, name) for name in SETTINGS})}

    @functools.cached_property
    def key(self) -> str:
        """Identifies the run across invocations: a hash of the resolved configuration and of
        the versions of the task and the model (their packages' and their own; computed once
        per spec: planning reads it often)."""
        config = self.config()
        for settings, declared in ((config, SETTINGS), (config["solver"], SOLVER_SETTINGS)):
            for name, default in _unkeyed(declared).items():  # added later: keys stay
                if settings[name] == default:
                    del settings[name]
        text = json.dumps([config, self.versions], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.task}/{self.model}/seed{self.seed}"


#: The run settings, by name: the fields of :class:`RunSpec` made with :func:`setting`.
SETTINGS: dict[str, dataclasses.Field] = {
    spec_field.name: spec_field for spec_field in dataclasses.fields(RunSpec)
    if "check" in spec_field.metadata}


def default_settings() -> dict[str, Any]:
    """Every run setting at its default (the solver's as a mapping): where a suite's settings
    start, before the task's schedule. A new dict each call."""
    return _plain({name: _default(spec_field) for name, spec_field in SETTINGS.items()})


def _unkeyed(declared: Mapping[str, dataclasses.Field]) -> dict[str, Any]:
    """The defaults of the declared settings the key leaves out while they hold them (the
    run's: :data:`SETTINGS`; the solver's: :data:`~harness.solvers.settings.SOLVER_SETTINGS`)."""
    return _plain({name: _default(spec_field) for name, spec_field in declared.items()
                   if not spec_field.metadata["keyed_from_default"]})


def _default(spec_field: dataclasses.Field) -> Any:
    return (spec_field.default_factory() if spec_field.default is dataclasses.MISSING
            else spec_field.default)


def scalar_checks() -> dict[str, Callable[[Any], Any]]:
    """How each setting that is one value is checked (the others are :data:`STRUCTURED`)."""
    return {name: spec_field.metadata["check"] for name, spec_field in SETTINGS.items()
            if spec_field.metadata["check"] != STRUCTURED}


def solver_checks(backends: Mapping[str, SolverBackend]) -> dict[str, Callable[[Any], Any]]:
    """How each key of a suite's ``solver`` is checked, from the declaration of each solver
    setting (:data:`~harness.solvers.settings.SOLVER_SETTINGS`; ``options``, a mapping, is read
    by the loader): by its type, > 0 where declared ``positive``, among the names its ``among``
    gives for the registry's backends; plus ``tol``, both tolerances at once."""
    kinds = typing.get_type_hints(SolverConfig)
    checks = {}
    for name, spec_field in SOLVER_SETTINGS.items():
        declared = spec_field.metadata
        if declared["among"] is not None:
            checks[name] = choice(declared["among"](backends), declared["noun"])
        elif not declared["structured"]:
            checks[name] = _value_check(kinds[name], declared["positive"])
    return {**checks, TOLERANCE: checks[TOLERANCES[0]]}


def _value_check(kind: Any, positive: bool) -> Callable[[Any], Any]:
    """The check of a value of type ``kind`` (``X | None`` takes null), > 0 when ``positive``."""
    if not positive:
        return type_check(kind)
    inner = [argument for argument in typing.get_args(kind) if argument is not type(None)]
    check = {float: positive_number, int: positive_int}[inner[0] if inner else kind]
    return optional(check) if inner else check


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON-like values: the solver as a mapping, mappings copied."""
    return {name: (value.as_dict() if isinstance(value, SolverConfig)
                   else dict(value) if isinstance(value, dict) else value)
            for name, value in settings.items()}
