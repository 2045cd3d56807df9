"""The adjoint-decay measurement (the paper's Fig. 3).

‖∂L_last/∂s_i‖ at every stamp i, where L_last is the loss at the last stamp only and s_i the
full hidden state at stamp i (h and m for a second-order family), back-propagated through the
model as trained (with the adjoint method, the adjoint solves give these gradients). The curve
says how much the last stamp's loss still reaches earlier stamps: a fast decay means long-range
dependencies are hard to learn.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from harness.toolkit.growth import exponential_rate


def adjoint_norms(loss_last: Tensor, states: Sequence[Tensor]) -> list[float]:
    """‖∂loss_last/∂s_i‖ for each state s_i of the graph (norm over the whole batch tensor);
    0.0 for a state the loss does not depend on."""
    grads = torch.autograd.grad(loss_last, list(states), allow_unused=True)
    return [0.0 if g is None else g.norm().item() for g in grads]


def decay_summary(norms: Sequence[float]) -> dict[str, float | None]:
    """``adjoint_ratio``: norm at the first stamp over norm at the last; ``adjoint_decay_rate``:
    r of the least-squares fit log‖a_i‖ ≈ c − r·(last − i) over the stamps with a positive
    finite norm, so the norm shrinks by e^(−r) per stamp going back (None with under two)."""
    first, last = norms[0], norms[-1]
    ratio = first / last if last > 0 and math.isfinite(first) and math.isfinite(last) else None
    return {"adjoint_ratio": ratio, "adjoint_decay_rate": exponential_rate(norms)}
