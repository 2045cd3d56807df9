"""Why a run failed: the exceptions the harness raises, and how a record names them."""
from __future__ import annotations

from harness.data_root import DataNotFound
from harness.solvers.settings import NFECapExceeded, SolverFailure


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""

    @classmethod
    def at(cls, value: float, epoch: int, iteration: int) -> NonFiniteLoss:
        """The failure of a training loss ``value`` in ``epoch``'s ``iteration`` (from 1)."""
        return cls(f"training loss is {value} at epoch {epoch}, iteration {iteration}")


class TimeLimitExceeded(TimeoutError):
    """The run took longer than its ``time_limit_s``."""


class WorkerDied(RuntimeError):
    """The process running the run ended before the run did (killed, out of memory, a crash
    in native code, a lost Ray node)."""


class ExecutorUnavailable(RuntimeError):
    """No run can execute where the suite asked (no worker process can start, Ray is not
    installed): the command ends with this message, not a run's record."""


#: failure_kind in a record, by exception type; the first match wins.
KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (NFECapExceeded, "nfe_cap"),
    (SolverFailure, "solver"),
    (NonFiniteLoss, "non_finite"),
    (TimeLimitExceeded, "time_limit"),
    (WorkerDied, "worker_died"),
    (DataNotFound, "data_missing"),
)


#: Every failure_kind a record may hold: those of :data:`KINDS`, and "error" for anything else.
FAILURE_KINDS: tuple[str, ...] = (*(kind for _, kind in KINDS), "error")


def failure_kind(error: BaseException) -> str:
    """"nfe_cap", "solver", "non_finite", "time_limit", "worker_died", "data_missing" (a
    task's data is not there), or "error" for anything else (:data:`FAILURE_KINDS`)."""
    return next((kind for cls, kind in KINDS if isinstance(error, cls)), FAILURE_KINDS[-1])
