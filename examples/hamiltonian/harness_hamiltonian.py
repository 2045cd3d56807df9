"""A damped Hamiltonian family as a harness model family: a right-hand side that calls
autograd itself.

The state (h, p), position h and momentum p, follows Hamilton's equations for
H(h, p) = ½‖p‖² + V(h), with the potential V(h) = ½‖f(h)‖² built from the task's network f,
and a learnable damping γ = sigmoid(ω):

    h' = ∂H/∂p = p
    p' = −∂H/∂h − γp = −(∂f/∂h)ᵀ f(h) − γp

∂V/∂h is taken with ``torch.autograd.grad`` inside ``derivatives``. The harness calls
``derivatives`` under ``torch.no_grad()`` in the adjoint method's forward solve and in
evaluation, with grad mode on elsewhere (training without the adjoint, and the adjoint solve,
which differentiates the derivatives once more); and a state part may report
``requires_grad=True`` even under no_grad (a view of a tensor that requires grad), though no
graph is recorded for it. So the family turns grad mode on for its own graph, differentiates
with respect to a fresh leaf unless it is in a graph already, and keeps the graph of the
gradient (``create_graph``) only when the caller records one.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness import Family, hookimpl

HARNESS_CONTRACT = 2  # the plugin contract this module was written for


class Hamiltonian(Family):
    name = "hamiltonian"
    parts = ("h", "p")           # tasks read their prediction from h (the default readout)
    # h0 is x, then the initial-velocity network's channels; p0 all from the network
    initial_state = {"h": "input+network", "p": "network"}
    widths_like = "hbnode"       # on tasks without widths for hamiltonian, use HBNODE's

    def __init__(self, gamma_init: float = -3.0):
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(gamma_init))

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f) -> tuple[Tensor, ...]:
        h, p = state
        recording = torch.is_grad_enabled()  # False in the adjoint's forward solve, evaluation
        with torch.enable_grad():
            # under no_grad, h may say requires_grad yet be in no graph: take a fresh leaf
            position = h if recording and h.requires_grad else h.detach().requires_grad_()
            potential = 0.5 * f(t, position).pow(2).sum()
            (force,) = torch.autograd.grad(potential, position, create_graph=recording)
        return p, -force - torch.sigmoid(self.omega) * p


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [Hamiltonian]
