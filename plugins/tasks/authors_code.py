"""Building blocks of the HBNODE authors' code (hedixia/HeavyBallNODE) where it differs from the
paper's text, for the ``authors-code`` profile (docs/profiles.md lists every difference).

Line numbers below are of the revisions of the authors' files this was read from: the
plane-vibration scripts at 29c7d66 (``plane_vibration/*_rnn_pv.py``), their training loop at
17a3d5a (``plane_vibration/trainpv.py``), ``misc.py`` at f0ac8a1.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


class AuthorsCell(nn.Module):
    """The RNN cell as the authors build it (``temprnn`` in ``plane_vibration/node_rnn_pv.py``
    lines 21–38 and ``hbnode_rnn_pv.py`` lines 21–42): one dense layer on the features and one
    on each state part, each giving the whole state (P·n), summed, plus the state itself:
    z ↦ W_x·x + Σ_p W_p·z_p + z. That is the paper's fc_{P·n} on [z, x] with one extra bias per
    part beyond the first, and a residual; with it the plane-vibration counts are Table 4's.
    Maps [z, x] (batch, P·n + k) to (batch, P·n), as :class:`harness.toolkit.ODERNN` calls it."""

    def __init__(self, parts: int, n: int, features: int) -> None:
        super().__init__()
        self.parts, self.n = parts, n
        self.features = nn.Linear(features, parts * n)
        self.state = nn.ModuleList(nn.Linear(n, parts * n) for _ in range(parts))

    def forward(self, zx: Tensor) -> Tensor:
        z, x = zx[:, :self.parts * self.n], zx[:, self.parts * self.n:]
        out = self.features(x)
        for layer, part in zip(self.state, z.chunk(self.parts, dim=1)):
            out = out + layer(part)
        return out + z


@torch.no_grad()
def shrink_as_authors(twice: Iterable[nn.Module], once: Iterable[nn.Module], factor: float) -> None:
    """The authors' initial shrinking as it acts. ``trainpv`` (``plane_vibration/trainpv.py``
    line 20) calls ``shrink_parameters(model, 0.01)`` (``misc.py``), which multiplies every
    entry of ``model.state_dict()`` in place; the ODE cell, the RNN cell and the initial-state
    layer are registered under two names each (``model.cell`` and ``model.ode_rnn.ode``,
    ``model.rnn`` and ``model.ode_rnn.rnn``, ``model.ic`` and ``model.ode_rnn.ic``:
    ``node_rnn_pv.py`` lines 45–48, ``hbnode_rnn_pv.py`` lines 49–54), so their tensors are
    multiplied twice (×factor²: 1e-4, HBNODE's ω included, which moves γ = sigmoid(ω) from
    sigmoid(−3) to ≈ 0.5); the output layer once (×factor). Buffers are shrunk like
    parameters, as state_dict holds both."""
    for modules, scale in ((twice, factor * factor), (once, factor)):
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor.mul_(scale)
