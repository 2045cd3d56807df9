"""The proximal backend's ``solver.options``, read and checked in one place so that a suite
with a bad option fails before training with the key, the value and what would be valid."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

#: The inner solvers of argmin_z G(z): gradient descent, Nesterov's accelerated gradient, the
#: same with adaptive (gradient) restart, and gradient descent with Fletcher–Reeves momentum.
INNER_SOLVERS = ("gd", "nesterov", "restart", "fr")

#: How a BDF method gets the k−1 states its first steps lack: "extrapolated" takes them by
#: Crank–Nicolson with Richardson extrapolation (fourth order, so BDF3 and BDF4 keep their
#: order); "lower_order" by BDF1, BDF2, … on the same step (the textbook start: the global
#: error of BDF3 and BDF4 then drops to second order).
STARTS = ("extrapolated", "lower_order")

_KEYS = ("step_size", "steps", "inner", "inner_step", "inner_tol", "inner_max_iter", "start")


@dataclass(frozen=True)
class ProximalOptions:
    """One solve's settings: the outer grid (``step_size`` or ``steps``, exactly one), the inner
    solver, its step η (on the gradient scaled by c·s, see :mod:`harness.solvers.proximal.inner`),
    its tolerance on ‖z_{i+1} − z_i‖ and its iteration cap, and the BDF start."""

    step_size: float | None = None
    steps: int | None = None
    inner: str = "fr"
    inner_step: float = 0.1
    inner_tol: float = 1e-5
    inner_max_iter: int = 100
    start: str = "extrapolated"

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> "ProximalOptions":
        """The options of a suite's ``solver.options``; ValueError names the key and what is valid."""
        unknown = sorted(set(options) - set(_KEYS))
        if unknown:
            raise ValueError(f"solver.options: the proximal backend takes no option "
                             f"{', '.join(map(repr, unknown))}; valid: {', '.join(_KEYS)}")
        given = {key: options[key] for key in _KEYS if key in options}
        if ("step_size" in given) == ("steps" in given):
            raise ValueError("solver.options: the proximal backend needs exactly one of step_size "
                             "(a number > 0: the largest outer step) and steps (an integer >= 1: "
                             "outer steps over the interval)")
        checked = {
            "step_size": _positive("step_size", given.get("step_size")),
            "steps": _positive_int("steps", given.get("steps")),
            "inner": _choice("inner", given.get("inner", cls.inner), INNER_SOLVERS),
            "inner_step": _positive("inner_step", given.get("inner_step", cls.inner_step)),
            "inner_tol": _non_negative("inner_tol", given.get("inner_tol", cls.inner_tol)),
            "inner_max_iter": _positive_int("inner_max_iter",
                                            given.get("inner_max_iter", cls.inner_max_iter)),
            "start": _choice("start", given.get("start", cls.start), STARTS),
        }
        return cls(**checked)

    def outer_steps(self, length: float) -> int:
        """Outer steps over an interval of ``length``: ``steps``, or the fewest steps no longer
        than ``step_size`` (the grid is uniform, as the multistep formulas need)."""
        if self.steps is not None:
            return self.steps
        assert self.step_size is not None
        return max(1, math.ceil(round(length / self.step_size, 9)))


def _number(key: str, value: Any, valid: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"solver.options.{key}: {value!r} is not a finite number; valid: {valid}")
    return float(value)


def _positive(key: str, value: Any) -> float | None:
    if value is None:
        return None
    number = _number(key, value, "a number > 0")
    if number <= 0:
        raise ValueError(f"solver.options.{key}: {value!r} is not > 0; valid: a number > 0")
    return number


def _non_negative(key: str, value: Any) -> float:
    number = _number(key, value, "a number >= 0")
    if number < 0:
        raise ValueError(f"solver.options.{key}: {value!r} is negative; valid: a number >= 0")
    return number


def _positive_int(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"solver.options.{key}: {value!r} is not an integer >= 1; "
                         f"valid: an integer >= 1")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"solver.options.{key}: {value!r} is not one of them; "
                         f"valid: {', '.join(choices)}")
    return value
