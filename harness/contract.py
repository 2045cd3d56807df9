"""The plugin contract: what a model or task plugin implements, in one file.

A plugin is a module (or object) registered under the ``harness`` entry-point group that
implements some of the hooks of :mod:`harness.hookspecs` with ``@hookimpl``. Two kinds of
things are contributed:

* a **model family** (:class:`Family`): the dynamics a model puts around a task's network f —
  its state layout, its right-hand side, its own parameters, where each part of its initial
  state comes from, the part a task reads and the interval it integrates over;
* a **task** (:class:`Task`): data, the networks for given widths, loss, metrics, the default
  schedule and its widths for each family — and, optionally, its **baselines**: models that are
  no ODE family (a discrete normalizing flow, a ResNet, an RNN), which a suite names beside the
  families and which are recorded, keyed and reported as baselines.

The host composes the two: a run is ``family × task``. Observer hooks let progress displays and
loggers follow a run without touching the runner. What the contract names but does not define
has a leaf module of its own: the width types (:mod:`harness.widths`), where a task's data lives
(:mod:`harness.data_root`), the values of run settings (:mod:`harness.setting_values`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Protocol

import pluggy
import torch
from torch import Tensor, nn

from harness.widths import Structure, WidthNames

#: Bumped when a hook or base-class requirement changes incompatibly. A plugin module may set
#: ``HARNESS_CONTRACT = N`` (the version it was written for); a harness with another contract
#: refuses it with a clear message instead of failing later. Version 2: every contribution hook
#: returns classes (tasks and backends were instances); ``Family.initial_state`` says where each
#: part starts (it was "augment" or "network"); a family declares its ``readout`` part.
CONTRACT_VERSION = 2

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")

#: The network a family is built around: ``f(t, z)`` with z of shape (batch, f_input_parts·n, …).
VectorField = Callable[[Tensor, Tensor], Tensor]
#: g ↦ (gᵀ∂f/∂x, {parameter: gᵀ∂f/∂parameter}) at the point it was made at.
Pullback = Callable[[Tensor], tuple[Tensor, dict[Tensor, Tensor]]]
#: f's value at (t, x) and its pullback there (see :mod:`harness.toolkit.pullbacks`).
DifferentiableField = Callable[[Tensor, Tensor], tuple[Tensor, Pullback]]
#: A state as a family sees it: its parts, in the order of :attr:`Family.parts`.
State = tuple[Tensor, ...]
#: What :meth:`Family.derivatives_vjp` returns: (derivatives, cotangent of every part,
#: {parameter: gradient}).
VJP = tuple[State, State, dict[Tensor, Tensor]]

#: Where a part of the initial state comes from (:attr:`Family.initial_state`), and what each
#: start means for the part's n channels, given the input x of c channels.
STARTS: Mapping[str, str] = MappingProxyType({
    "input+zeros": "x in the first c channels, zeros after (ANODE's augmentation)",
    "input+network": "x in the first c channels, the initial-velocity network's after",
    "network": "all n channels from the initial-velocity network",
    "zeros": "all n channels zero",
})


class Family(nn.Module):
    """A dynamics family. Subclass it, set the class attributes, implement :meth:`derivatives`.

    The state is a tuple of ``parts`` (each shaped like h: (batch, n, …)); the host stores them
    side by side along dim 1 of one tensor, so the solver's step control takes one RMS norm over
    the whole state. Keyword arguments of ``__init__`` are the family's options (suite key
    ``model_options``); trainable family parameters (γ, ξ) are created there.
    """

    #: The name suites use, lower case.
    name: ClassVar[str]
    #: The family's version, part of every run's key: raise it when a change alters the numbers
    #: of runs already recorded (the dynamics, a parameter's initialisation), so that
    #: ``harness run`` reruns them and reports tell the older records apart. An integer ≥ 1.
    version: ClassVar[int] = 1
    #: Names of the state parts: ("h",), ("h", "m"), ("h", "m", "v"), ("q", "p"), …
    parts: ClassVar[tuple[str, ...]] = ("h",)
    #: The part a task reads the model's output from (the head of a classifier, an ODE-RNN's
    #: prediction); one of ``parts``.
    readout: ClassVar[str] = "h"
    #: How many leading parts f reads, concatenated (SONODE: 2, so f's input width is 2n).
    f_input_parts: ClassVar[int] = 1
    #: Where each part starts, by part name: one of :data:`STARTS` for every part. x goes into
    #: one part at most; the initial-velocity network's output is split, in the order of
    #: ``parts``, across the parts that take channels from it. The paper's second-order rule
    #: (the network supplies every channel after x's c, across h and m) is
    #: ``{"h": "input+network", "m": "network"}``.
    initial_state: ClassVar[Mapping[str, str]] = MappingProxyType({"h": "input+zeros"})
    #: Integration interval (t0, T); a Nesterov-type family needs t0 > 0.
    interval: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: A family whose widths to take on tasks that list none for this one (by default the
    #: task's family of the most similar structure: see :meth:`Task.widths_for`).
    widths_like: ClassVar[str | None] = None

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        """Return d(part)/dt for every part, in the order of ``parts``."""
        raise NotImplementedError

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        """Optional, for speed: the derivatives and their vector-Jacobian product by hand.

        Return (derivatives, aᵀ∂derivatives/∂part for every part, {parameter: aᵀ∂derivatives/∂
        parameter}) for the cotangent a (one tensor per part). ``f(t, x)`` gives f's value and
        its pullback ``g ↦ (gᵀ∂f/∂x, {parameter: gradient})``; merge its gradients with the
        family's own. A family parameter's gradient may be left unsummed, in any shape the
        parameter broadcasts to (as the terms of the derivatives hold it: ``−a_m·m·γ′``): it is
        summed down to the parameter's shape, as autograd sums a broadcast. Only for derivatives
        that do not read t (the fast backend then passes t as None, here and to
        :meth:`derivatives`). It is used only by the class that defines it: a subclass changes
        what the derivatives read (a property, an option) as easily as the derivatives
        themselves, so it takes autograd unless it states ``derivatives_vjp =
        Parent.derivatives_vjp``. The conformance kit checks it against autograd.
        """
        raise NotImplementedError

    #: Set True in the class that defines ``derivatives_vjp`` when it leaves every family
    #: parameter's gradient unsummed over the batch (see there): an ensemble's members then use
    #: it too. An ensemble hands the family each scalar parameter per row (shape (rows, 1, …),
    #: each member's value in its rows) and sums each member's rows of the gradient; a gradient
    #: already summed over the batch would mix the members, so without this flag they take
    #: autograd.
    vjp_unsummed: ClassVar[bool] = False

    @classmethod
    def has_derivatives_vjp(cls) -> bool:
        """Whether this class itself defines ``derivatives_vjp`` (see there)."""
        return cls is not Family and "derivatives_vjp" in vars(cls)

    @classmethod
    def has_member_vjp(cls) -> bool:
        """Whether ``derivatives_vjp`` serves an ensemble's members: this class defines it and
        itself sets :attr:`vjp_unsummed`."""
        return cls.has_derivatives_vjp() and vars(cls).get("vjp_unsummed", False)

    @classmethod
    def uses_network(cls) -> bool:
        """Whether a part takes channels from the initial-velocity network."""
        return any(start.endswith("network") for start in cls.initial_state.values())

    @classmethod
    def initial_layout(cls, n: int, c: int) -> tuple[tuple[str, int], ...]:
        """The initial state's channels in order, as runs of (source, channels), the source
        "input", "network" or "zeros", for part width n and an input of c channels; adjacent
        runs of one source merged, empty ones left out. (HBNODE: (("input", c),
        ("network", 2n − c)).) A ValueError when x does not fit its part."""
        layout: list[tuple[str, int]] = []
        for part in cls.parts:
            first, _, rest = cls.initial_state[part].rpartition("+")
            if first:  # "input+…": x, then the rest of the part
                if c > n:
                    raise ValueError(f"family {cls.name!r}: the input has {c} channels, more "
                                     f"than part {part!r}'s width n={n}")
                runs = [(first, c), (rest, n - c)]
            else:
                runs = [(rest, n)]
            for source, channels in runs:
                if channels and layout and layout[-1][0] == source:
                    layout[-1] = (source, layout[-1][1] + channels)
                elif channels:
                    layout.append((source, channels))
        return tuple(layout)

    @classmethod
    def network_channels(cls, n: int, c: int) -> int:
        """How many channels the initial-velocity network supplies (HBNODE: 2n − c)."""
        return sum(channels for source, channels in cls.initial_layout(n, c) if source == "network")

    @classmethod
    def structure(cls) -> Structure:
        """What sizes a task's networks for this family: see :class:`Structure`."""
        return Structure(cls.f_input_parts, cls.uses_network(), len(cls.parts))


class ODEBlockLike(Protocol):
    """What a task's model may use of the ODE block ``ctx.ode(f, n)`` returns: an
    ``nn.Module``, :class:`harness.toolkit.ode.ODEBlock` (named here by what it offers, so the
    contract depends on no part of the harness but the leaves)."""

    width: int
    """The width n of each part."""

    @property
    def family(self) -> Family:
        """The family instance whose dynamics the block solves."""

    def __call__(self, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """The state at the end of the family's interval (with ``duration``, per element)."""

    def initial_state(self, x: Tensor, velocity_net: nn.Module | None = None) -> Tensor:
        """The initial state from x, every part as the family's ``initial_state`` says (the
        network's channels from ``velocity_net(x)``)."""

    def part(self, z: Tensor, name: str | None = None) -> Tensor:
        """One part of a state: the family's ``readout`` part unless named."""


class EpochBatches(Protocol):
    """Training batches of (input, target): the runner calls ``set_epoch(e)`` before iterating
    them in epoch e, so an order drawn from (seed, e) alone lets a resumed run see the batches
    it would have seen (:class:`harness.toolkit.TensorBatches` is one)."""

    def set_epoch(self, epoch: int) -> None:
        """Called by the runner before each epoch."""

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's batches."""


@dataclass
class TaskData:
    """Batches of (input, target), already on the run's device; each is iterated once an epoch
    (``test`` and ``validation`` in the epochs evaluated, as the records' ``test_<metric>`` and
    ``val_<metric>``)."""

    train: EpochBatches
    test: Iterable[tuple[Tensor, Tensor]]
    validation: Iterable[tuple[Tensor, Tensor]] = ()
    """Held-out batches evaluated like ``test`` (the NFE they take are not ``eval_nfe``);
    empty for tasks without a validation split."""

    def __post_init__(self) -> None:
        if not callable(getattr(self.train, "set_epoch", None)):
            raise TypeError(f"TaskData.train is a {type(self.train).__name__} without "
                            f"set_epoch(epoch): the runner calls it before each epoch (see "
                            f"harness.contract.EpochBatches; harness.toolkit.TensorBatches has it)")


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
    data_root: str | None = None
    """The run's data root as :meth:`Task.data` gets it, for a model built from the data (a
    graph's adjacency): resolve it with :func:`harness.data_root.data_root_or_default`."""

    @property
    def n_parts(self) -> int:
        return len(self.family.parts)

    @property
    def uses_velocity_net(self) -> bool:
        """Whether the model needs an initial-velocity network (some part starts from one)."""
        return self.family.uses_network()

    def velocity_channels(self, n: int, c: int) -> int:
        """How many channels the initial-velocity network outputs, for part width n and an
        input of c channels (HBNODE: 2n − c; a family whose only network part is m: n)."""
        return self.family.network_channels(n, c)


class Task:
    """A task blueprint. Subclass it, set the class attributes, implement the four methods."""

    #: The name suites use, lower case.
    name: ClassVar[str]
    #: The task's version, part of every run's key: raise it when a change alters the numbers
    #: of runs already recorded (its data, networks, loss or metrics), so that ``harness run``
    #: reruns them and reports tell the older records apart. An integer ≥ 1.
    version: ClassVar[int] = 1
    #: Default schedule (the paper's Table 1): epochs, batch_size, lr, optimizer, solver.
    schedule: ClassVar[dict[str, Any]] = {}
    #: The widths the task was tuned with, per family name, e.g. {"hbnode": {"n": 2, "h": 14}}
    #: (the built-ins: the paper's, for its parameter counts). Other families get widths from
    #: :meth:`widths_for`; a task need not list every family, nor any family but one.
    widths: ClassVar[dict[str, dict[str, int]]] = {}
    #: The width names :meth:`build_model` and :meth:`refusal` read, for every family
    #: (``WidthNames(required={"n", "h"}, optional={"c"})``): the suite loader refuses a
    #: ``widths:`` key no model of its entry reads, and a run's widths lacking a required one.
    #: None: the names in :attr:`widths`, all optional (see :meth:`widths_read`).
    width_names: ClassVar[WidthNames | None] = None
    #: The same for each baseline, by name; one not listed: the names of its entry in
    #: :attr:`baselines`, all optional.
    baseline_width_names: ClassVar[Mapping[str, WidthNames]] = {}
    #: Trainable-parameter counts the paper reports, per family name (for reports).
    paper_params: ClassVar[dict[str, int]] = {}
    #: Task-specific options (suite key ``task_options``) and their defaults.
    options: ClassVar[dict[str, Any]] = {}
    #: What a profile other than "paper" (:data:`harness.PROFILES`) changes, by profile name:
    #: run settings as a suite writes them (``task_options``, ``lr``, ``grad_clip``, …), plus
    #: ``models: {family name: run settings}`` for single families. The suite loader puts them
    #: between the task's ``schedule`` and the suite's own settings, so a suite still overrides
    #: them and the record's configuration shows what ran.
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Run settings for a run of a few seconds (say, task_options that shrink the data): used
    #: by the conformance kit (:mod:`harness.conformance`) to take one training step per family.
    tiny: ClassVar[dict[str, Any]] = {}
    #: Whether runs of this task that differ only in seed may train together as an ensemble
    #: (``execution.ensemble``): members sit side by side in the batch, so a model that mixes
    #: the rows of a batch (batch statistics, attention across samples) must say False.
    joins_ensembles: ClassVar[bool] = True
    #: The task's baselines (:data:`harness.setting_values.MODEL_KINDS`): models that are no
    #: ODE family, by name, each with its default widths (``{"planar": {"K": 32}}``). A suite
    #: runs them with ``baselines: [planar]`` beside (or instead of) ``models:``;
    #: :meth:`build_baseline` builds them. Their records say ``kind: baseline`` and hold no
    #: NFE, unless a module of the baseline counts its evaluations
    #: (:class:`harness.toolkit.CountsEvaluations`).
    baselines: ClassVar[dict[str, dict[str, int]]] = {}
    #: The metric a report ranks by, and whether higher is better.
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def widths_for(self, family: type[Family], known: Mapping[str, type[Family]]
                   ) -> dict[str, int] | None:
        """The widths for ``family`` (None: the task has none; a suite must give them).

        By default: the table's entry for the family's name, else for its ``widths_like``, else
        the entry of the listed family whose :class:`Structure` is closest (``known`` holds the
        installed family classes by name; ties go to the family listed first). Override it to
        choose widths from the structure some other way.
        """
        for name in (family.name, family.widths_like):
            if name in self.widths:
                return dict(self.widths[name])
        structure = family.structure()
        listed = [name for name in self.widths if name in known]
        if not listed:
            return None
        closest = min(listed, key=lambda name: structure.distance(known[name].structure()))
        return dict(self.widths[closest])

    @classmethod
    def widths_read(cls, baseline: str | None = None) -> WidthNames | None:
        """The width names the task reads for every family, or for ``baseline``: as declared
        (:attr:`width_names`, :attr:`baseline_width_names`), else the names its table holds
        (:attr:`widths`, :attr:`baselines`), all optional; None when neither names any (then
        a suite's widths are not checked)."""
        if baseline is None:
            declared, tables = cls.width_names, list(cls.widths.values())
        else:
            declared = cls.baseline_width_names.get(baseline)
            tables = [cls.baselines.get(baseline, {})]
        if declared is not None:
            return declared
        names = frozenset(name for table in tables for name in table)
        return WidthNames(optional=names) if names else None

    def refusal(self, family: type[Family], widths: Mapping[str, int]) -> str | None:
        """Why this task cannot run ``family`` with these widths, or None (the default: every
        family runs). Asked for every run before anything trains (``harness run`` stops with
        the reasons; the conformance kit skips the pair, saying why): a task whose loss needs
        something of the state that a family's layout does not give — say, a density that is
        exact only when the state is the data itself — refuses it here rather than failing
        or, worse, measuring something else."""
        return None

    def build_baseline(self, name: str, widths: dict[str, int],
                       options: dict[str, Any]) -> nn.Module:
        """Build baseline ``name`` (one of :attr:`baselines`) with these widths and the run's
        task options: a module mapping a batch of inputs to predictions, trained and
        evaluated exactly as a family's model is (the same data, loss, metrics, schedule and
        :meth:`measure`)."""
        raise NotImplementedError(f"task {self.name!r} lists baselines but does not build them")

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


__all__ = ["CONTRACT_VERSION", "hookimpl", "hookspec", "Family", "Task", "TaskData", "BuildContext",
           "VectorField", "Pullback", "DifferentiableField", "ODEBlockLike", "EpochBatches",
           "STARTS", "State", "VJP"]
