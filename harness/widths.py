"""What a task's widths depend on and which names it reads: a family's :class:`Structure`
(:meth:`harness.Family.structure`, by which :meth:`harness.Task.widths_for` picks the widths of
the listed family closest to an unlisted one) and a task's :class:`WidthNames` (checked by the
suite loader against a suite's ``widths:``).

Nothing of the harness is imported here.
"""
from __future__ import annotations

from typing import Collection, Mapping, NamedTuple


class Structure(NamedTuple):
    """What a task's widths depend on: f's input (f_input_parts·n channels), whether an
    initial-velocity network is built, and the state's width (parts·n channels)."""

    f_input_parts: int
    uses_network: bool
    parts: int

    def distance(self, other: Structure) -> tuple[int, int, int]:
        """How unlike ``other`` this is, compared in order: f's input, the network, the parts."""
        return (abs(self.f_input_parts - other.f_input_parts),
                int(self.uses_network != other.uses_network), abs(self.parts - other.parts))


class WidthNames(NamedTuple):
    """The width names a task reads to build a model (:attr:`harness.Task.width_names`): those it
    always reads (``widths["n"]``) and those it reads only when given (``widths.get("c", n)``).
    A suite's ``widths:`` may hold these and no others."""

    required: Collection[str] = ()
    optional: Collection[str] = ()

    @property
    def valid(self) -> frozenset[str]:
        """Every name the task reads."""
        return frozenset(self.required) | frozenset(self.optional)


def listed(widths: Mapping[str, int]) -> str:
    """Widths as a message lists them, as a suite writes them: ``{n: 2, h: 14}``."""
    return "{" + ", ".join(f"{name}: {size}" for name, size in widths.items()) + "}"


def lacking(missing: Collection[str], widths: Mapping[str, int], task: str, kind: str,
            model: str) -> str:
    """What a message says of ``widths`` without the names ``missing`` that ``task`` reads to
    build ``kind`` (family, baseline) ``model``."""
    return (f"widths has no {', '.join(map(repr, missing))}, which task {task!r} reads to "
            f"build {kind} {model!r} (given: {listed(widths)})")
