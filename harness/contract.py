"""The plugin contract: everything a model or task plugin implements, in one file.

A plugin is a module (or object) registered under the ``harness`` entry-point group that
implements some of the hooks below with ``@hookimpl``. Two kinds of things are contributed:

* a **model family** (:class:`Family`): the dynamics a model puts around a task's network f —
  its state layout, its right-hand side, its own parameters, how its initial state is formed and
  the interval it integrates over;
* a **task** (:class:`Task`): data, the networks for given widths, loss, metrics, the default
  schedule and the per-model widths.

The host composes the two: a run is ``family × task``. Observer hooks let progress displays and
loggers follow a run without touching the runner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Protocol, Sequence

import pluggy
import torch
from torch import Tensor, nn

#: Bumped when a hook or base-class requirement changes incompatibly. A plugin module may set
#: ``HARNESS_CONTRACT = N`` (the version it was written for); a harness older than that refuses
#: it with a clear message instead of failing later.
CONTRACT_VERSION = 1

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")

#: The network a family is built around: ``f(t, z)`` with z of shape (batch, f_input_parts·n, …).
VectorField = Callable[[Tensor, Tensor], Tensor]
#: g ↦ (gᵀ∂f/∂x, {parameter: gᵀ∂f/∂parameter}) at the point it was made at.
Pullback = Callable[[Tensor], tuple[Tensor, dict[Tensor, Tensor]]]
#: f's value at (t, x) and its pullback there (see :mod:`harness.toolkit.pullbacks`).
DifferentiableField = Callable[[Tensor, Tensor], tuple[Tensor, Pullback]]


class Family(nn.Module):
    """A dynamics family. Subclass it, set the class attributes, implement :meth:`derivatives`.

    The state is a tuple of ``parts`` (each shaped like h: (batch, n, …)); the host stores them
    side by side along dim 1 of one tensor, so the solver's step control takes one RMS norm over
    the whole state. Keyword arguments of ``__init__`` are the family's options (suite key
    ``model_options``); trainable family parameters (γ, ξ) are created there.
    """

    #: The name suites use, lower case.
    name: ClassVar[str]
    #: Names of the state parts, h first: ("h",), ("h", "m"), ("h", "m", "v"), …
    parts: ClassVar[tuple[str, ...]] = ("h",)
    #: How many leading parts f reads, concatenated (SONODE: 2, so f's input width is 2n).
    f_input_parts: ClassVar[int] = 1
    #: "augment": x padded with zero channels to the whole state; "network": the task's
    #: initial-velocity network supplies every channel after x.
    initial_state: ClassVar[str] = "augment"
    #: Integration interval (t0, T); a Nesterov-type family needs t0 > 0.
    interval: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: Use this built-in family's widths on tasks that list none for this family.
    widths_like: ClassVar[str | None] = None

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        """Return d(part)/dt for every part, in the order of ``parts``."""
        raise NotImplementedError

    def derivatives_vjp(self, t: Tensor, state: tuple[Tensor, ...], cotangent: tuple[Tensor, ...],
                        f: DifferentiableField) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...],
                                                         dict[Tensor, Tensor]]:
        """Optional, for speed: the derivatives and their vector-Jacobian product by hand.

        Return (derivatives, aᵀ∂derivatives/∂part for every part, {parameter: aᵀ∂derivatives/∂
        parameter}) for the cotangent a (one tensor per part). ``f(t, x)`` gives f's value and
        its pullback ``g ↦ (gᵀ∂f/∂x, {parameter: gradient})``; merge its gradients with the
        family's own. Only for derivatives that do not read t. It is used only by the class
        that defines it: a subclass changes what the derivatives read (a property, an option)
        as easily as the derivatives themselves, so it takes autograd unless it states
        ``derivatives_vjp = Parent.derivatives_vjp``. The conformance kit checks it against
        autograd.
        """
        raise NotImplementedError

    @classmethod
    def has_derivatives_vjp(cls) -> bool:
        """Whether this class itself defines ``derivatives_vjp`` (see there)."""
        return cls is not Family and "derivatives_vjp" in vars(cls)


class ODEBlockLike(Protocol):
    """What a task's model may use of the ODE block ``ctx.ode(f, n)`` returns: an
    ``nn.Module``, :class:`harness.toolkit.ode.ODEBlock` (named here by what it offers, so the contract
    depends on nothing else of the harness)."""

    width: int
    """The width n of each part."""

    @property
    def family(self) -> Family:
        """The family instance whose dynamics the block solves."""

    def __call__(self, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """The state at the end of the family's interval (with ``duration``, per element)."""

    def initial_state(self, x: Tensor, velocity_net: nn.Module | None = None) -> Tensor:
        """x with the rest of the state: zeros, or the initial-velocity network's output."""

    def part(self, z: Tensor, name: str = "h") -> Tensor:
        """One part of a state."""


class DataNotFound(FileNotFoundError):
    """A task's data is not where it was looked for; the message says where and how to get it."""


#: Where tasks look for data when a run names no data root (no --data-root, no suite
#: ``data_root``, no $HARNESS_DATA_ROOT).
DEFAULT_DATA_ROOT = Path("~/.cache/harness/data")


def data_root_or_default(data_root: str | None) -> Path:
    """The run's data root, else :data:`DEFAULT_DATA_ROOT`, with ``~`` expanded."""
    return Path(data_root if data_root is not None else DEFAULT_DATA_ROOT).expanduser()


@dataclass
class TaskData:
    """Batches of (input, target), already on the run's device; each is iterated once an epoch."""

    train: Iterable[tuple[Tensor, Tensor]]
    test: Iterable[tuple[Tensor, Tensor]]


@dataclass
class BuildContext:
    """Handed to :meth:`Task.build_model`: the family, its widths, and a factory for ODE blocks."""

    family: type[Family]
    widths: dict[str, int]
    ode: Callable[[nn.Module, int], ODEBlockLike]
    """``ode(f, n)`` wraps the network f in the family's dynamics with part width n; the block
    counts NFE and calls the run's solver. Call it once per ODE in the model."""
    options: dict[str, Any] = field(default_factory=dict)
    """The task's options for this run (its ``options`` updated by the suite's task_options)."""

    @property
    def n_parts(self) -> int:
        return len(self.family.parts)

    @property
    def uses_velocity_net(self) -> bool:
        return self.family.initial_state == "network"


class Task:
    """A task blueprint. Subclass it, set the class attributes, implement the four methods."""

    #: The name suites use, lower case.
    name: ClassVar[str]
    #: Default schedule (the paper's Table 1): epochs, batch_size, lr, optimizer, solver.
    schedule: ClassVar[dict[str, Any]] = {}
    #: Widths per family name, e.g. {"hbnode": {"n": 2, "h": 14}}.
    widths: ClassVar[dict[str, dict[str, int]]] = {}
    #: Trainable-parameter counts the paper reports, per family name (for reports).
    paper_params: ClassVar[dict[str, int]] = {}
    #: Task-specific options (suite key ``task_options``) and their defaults.
    options: ClassVar[dict[str, Any]] = {}
    #: Run settings for a run of a few seconds (say, task_options that shrink the data): used
    #: by the conformance kit (:mod:`harness.conformance`) to take one training step per family.
    tiny: ClassVar[dict[str, Any]] = {}
    #: The metric a report ranks by, and whether higher is better.
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        raise NotImplementedError

    def build_model(self, ctx: BuildContext) -> nn.Module:
        """Return a module mapping a batch of inputs to predictions."""
        raise NotImplementedError

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        """Batch means of the task's metrics (the runner weights them by batch size)."""
        return {}

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        """Extra measurements after an epoch's evaluation (say, an adjoint-decay curve), merged
        into the epoch record. Dynamics calls made here count as phase "probe", not "eval"."""
        return {}

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Optional, and cheap (no reading, no checksums): the files :meth:`data` would read
        for a run with these task options and data root (None: the default root) that are
        missing, as paths (a pattern such as ``walker/rollout_*.npy`` for a set of files).
        Return [] when everything is there, when the task reads no files, or when it fetches
        what is missing itself (an option such as ``download: true``). ``harness run`` asks
        it for every run before anything trains, so a suite missing data fails within seconds
        naming every missing file and the runs that need it; a task that does not implement
        it is checked only when its runs start."""
        return []


# ---------------------------------------------------------------------------------------------
# Hooks. Contribution hooks return lists; observer hooks return nothing.


@hookspec
def harness_model_families() -> Sequence[type[Family]]:
    """Return the model families this plugin contributes."""


@hookspec
def harness_tasks() -> Sequence[Task]:
    """Return the tasks (instances) this plugin contributes."""


@hookspec
def harness_executors() -> Sequence[type]:
    """Return executor classes (see :mod:`harness.running.executors`): where runs execute."""


@hookspec
def harness_solver_backends() -> Sequence[Any]:
    """Return solver backends (instances of :class:`harness.solvers.backends.SolverBackend`): a run
    naming one in ``solver.backend`` solves with it."""


@hookspec
def harness_run_started(run: Any) -> None:
    """A run (a :class:`harness.suites.runspec.RunSpec`) is about to train."""


@hookspec
def harness_epoch_finished(run: Any, epoch: dict[str, Any]) -> None:
    """A run finished an epoch; ``epoch`` is the per-epoch record that goes into the result."""


@hookspec
def harness_run_finished(run: Any, record: dict[str, Any]) -> None:
    """A run ended (``record["status"]`` is "ok" or "failed"); the record is about to be stored."""


__all__ = [
    "CONTRACT_VERSION", "hookimpl", "hookspec", "Family", "Task", "TaskData", "BuildContext",
    "DataNotFound", "DEFAULT_DATA_ROOT", "data_root_or_default",
    "VectorField", "Pullback", "DifferentiableField", "ODEBlockLike",
]
