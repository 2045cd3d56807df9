"""The toolkit for task authors: the counted ODE block (ode, nfe; a baseline that counts its own
evaluations: CountsEvaluations), networks, the ODE-RNN and its sequence helpers, batches, irregular sampling, input signals (forcing), hand-written
vector-Jacobian products (pullbacks), the probes of adjoint decay and growth, and the stacking
of M seeds' models into one (ensemble, used by the harness's ensemble runner).

A task plugin imports from here and from :mod:`harness` only; the submodules are internal and
may move. The harness's own modules import the submodules directly.

May import: harness.contract, harness.solvers.
"""
from harness.toolkit.adjoint_probe import adjoint_norms, decay_summary
from harness.toolkit.batches import TensorBatches
from harness.toolkit.forcing import Signal, solve_with_input, solve_with_network
from harness.toolkit.growth import exponential_rate
from harness.toolkit.irregular import gaps, keep_stamps, window_starts
from harness.toolkit.networks import Autonomous, RowwiseTime, SolveThenRead, mlp
from harness.toolkit.nfe import CountsEvaluations, Ticks
from harness.toolkit.ode import ODEBlock
from harness.toolkit.odernn import ODERNN, InitialState, Trajectory
from harness.toolkit.pullbacks import pointwise
from harness.toolkit.sequences import (FORECAST, ONE_STEP, RECONSTRUCTION, pack_inputs,
                                       pack_targets, sequence_loss, sequence_metrics,
                                       target_values, unpack_inputs)

__all__ = [
    "FORECAST", "ONE_STEP", "RECONSTRUCTION", "ODERNN", "Autonomous", "CountsEvaluations", "RowwiseTime", "InitialState", "ODEBlock",
    "Signal", "SolveThenRead", "TensorBatches", "Ticks", "Trajectory", "adjoint_norms", "decay_summary",
    "exponential_rate", "gaps", "keep_stamps", "mlp", "pack_inputs", "pack_targets", "pointwise",
    "sequence_loss", "sequence_metrics", "solve_with_input", "solve_with_network",
    "target_values", "unpack_inputs",
    "window_starts",
]
