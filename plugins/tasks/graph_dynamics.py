"""The graph task's diffusions (GRAND and GRAND++, the dissertation's chapter 4) and the
Dirichlet energy that measures how far node features are from one vector.

On a graph with self-loops, degrees d (self-loop included) and Â = D^{-1/2}(A + I)D^{-1/2}:

- ``fixed``: f(h) = T·(Â − I)·h, a fixed normalised adjacency (no parameter in the ODE);
- ``grand-l``: f(h) = T·(A(X₀) − I)·h, A(X₀) the multi-head attention of eq. (4.7) computed from
  the encoded initial features X₀ = φ(X) (GRAND-l: the diffusivity depends on them only);
- ``fixed++`` and ``grand++-l``: the same plus the source term of eq. (4.12),
  Σ_{j∈I} δ_ij (x₀⁽ⁱ⁾ − x̂) over the labelled nodes I, x̂ their mean, and the initial condition of
  §4.5, z⁽ⁱ⁾(0) = x₀⁽ⁱ⁾ − c with c = (1/n)(Σᵢ x₀⁽ⁱ⁾ − Σ_{j∈I} (x₀⁽ʲ⁾ − x̂)/d_j), so that (4.11)
  holds.

The Dirichlet energy is the graph's own, ½ Σ_(i,j) ‖h_i − h_j‖²: the fixed Â's diffusion tends
to features proportional to √d_i rather than to one vector, so on a graph of unequal degrees
its energy stops short of zero.

The field reads [z, x, m] — the state's f input, the raw node features x and the labelled mask
m — so that X₀, the attention and the source are recomputed from x by the encoder inside every
call: their gradients then reach the encoder and the attention under the adjoint method too,
which differentiates f's own parameters only. Where autograd differentiates the solve (no
adjoint) or nothing does (evaluation), they are computed once per solve instead
(:meth:`SourcedDiffusion.fixed`): the same f, without recomputing at every step what does not
change along the solve.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: The task option ``dynamics``: name → (attention, source term).
DYNAMICS = {"fixed": (False, False), "fixed++": (False, True),
            "grand-l": (True, False), "grand++-l": (True, True)}


class SymmetricProduct(torch.autograd.Function):
    """Â·h for a symmetric sparse Â, whose backward is Â·grad again: autograd's own backward
    of a sparse product transposes (and coalesces) Â at every call, which dominated the cost."""

    @staticmethod
    def forward(ctx: Any, adjacency: Tensor, h: Tensor) -> Tensor:
        ctx.save_for_backward(adjacency)
        return torch.sparse.mm(adjacency, h)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        (adjacency,) = ctx.saved_tensors
        return None, SymmetricProduct.apply(adjacency, grad)


def dirichlet_energy(edges: Tensor, h: Tensor) -> float:
    """½ Σ_i Σ_{j∈N(i)} ‖h_i − h_j‖² over the graph's edges (both directions listed): zero exactly
    when the features are one vector on each connected component — the over-smoothed state of
    the attention diffusions, whose rows sum to one — and large when neighbours differ."""
    i, j = edges
    return float((h[i] - h[j]).pow(2).sum() / 2)


class GraphDiffusion(nn.Module):
    """f(t, z) = T·(Â − I)·h on the h part of the state (the first ``n`` channels)."""

    def __init__(self, adjacency: Tensor, end_time: float, n: int) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.end_time, self.n = end_time, n

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        h = z[:, :self.n]
        return self.end_time * (SymmetricProduct.apply(self.adjacency, h) - h)


class Attention(nn.Module):
    """A(X₀) of eq. (4.7): per head l, softmax over i's neighbours j (and i) of
    LeakyReLU(a_lᵀ[W_l x_i ‖ W_l x_j]), averaged over the heads; rows sum to one."""

    def __init__(self, edges: Tensor, n: int, heads: int) -> None:
        super().__init__()
        self.register_buffer("edges", edges)
        self.heads, self.n = heads, n
        self.w = nn.Linear(n, heads * n, bias=False)
        self.a = nn.Parameter(torch.randn(2, heads, n) / n ** 0.5)

    def weights(self, x0: Tensor) -> Tensor:
        """The attention of every edge (i, j), (E,)."""
        i, j = self.edges
        wx = self.w(x0).view(len(x0), self.heads, self.n)
        scores = nn.functional.leaky_relu(
            (wx * self.a[0]).sum(-1)[i] + (wx * self.a[1]).sum(-1)[j], 0.2)
        peak = scores.new_full((len(x0), self.heads), -torch.inf).scatter_reduce(
            0, i[:, None].expand_as(scores), scores.detach(), "amax")
        e = (scores - peak[i]).exp()
        total = e.new_zeros(len(x0), self.heads).index_add(0, i, e)
        return (e / total[i]).mean(1)

    def diffuse(self, weights: Tensor, h: Tensor) -> Tensor:
        """A(X₀)·h, given A(X₀)'s edge ``weights``."""
        i, j = self.edges
        return h.new_zeros(h.shape).index_add(0, i, weights[:, None] * h[j])


class SourcedDiffusion(nn.Module):
    """f([z, x, m]) (fed by :func:`harness.toolkit.solve_with_input`): the diffusion of h
    (attention or Â) plus, with ``source``, the source term of the labelled nodes m, all from
    X₀ = encoder(x), recomputed at every call (see the module's docstring); or, through
    :meth:`fixed`, the same f with X₀'s coefficients computed once for a whole solve."""

    def __init__(self, adjacency: Tensor, encoder: nn.Module, attention: Attention | None,
                 source: bool, end_time: float, n: int, features: int) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.encoder, self.attention, self.source = encoder, attention, source
        self.end_time, self.n, self.features = end_time, n, features

    def forward(self, z: Tensor) -> Tensor:
        h = z[:, :self.n]
        x, labelled = z[:, -self.features - 1:-1], z[:, -1] > 0.5
        return self.field(h, *self.coefficients(x, labelled))

    def coefficients(self, x: Tensor, labelled: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """What f takes from the input, fixed along a solve: the attention's edge weights
        A(X₀) (None: Â) and the source term (None: none), X₀ = encoder(x)."""
        x0 = self.encoder(x)
        weights = None if self.attention is None else self.attention.weights(x0)
        return weights, source_term(x0, labelled) if self.source else None

    def field(self, h: Tensor, weights: Tensor | None, source: Tensor | None) -> Tensor:
        """T·(A·h − h [+ source]) with the given coefficients."""
        if weights is None:
            diffused = SymmetricProduct.apply(self.adjacency, h)
        else:
            diffused = self.attention.diffuse(weights, h)
        change = diffused - h
        if source is not None:
            change = change + source
        return self.end_time * change

    def fixed(self, x: Tensor, labelled: Tensor) -> FixedDiffusion:
        """f(t, h) for one solve, its coefficients computed from x once (autograd carries
        their gradients to the encoder and the attention; the adjoint would not)."""
        return FixedDiffusion(self, *self.coefficients(x, labelled))


class FixedDiffusion(nn.Module):
    """One solve's f(t, h) = :meth:`SourcedDiffusion.field` with coefficients computed once:
    GRAND-l's attention and the source depend on X₀ only, not on h or t."""

    def __init__(self, diffusion: SourcedDiffusion, weights: Tensor | None,
                 source: Tensor | None) -> None:
        super().__init__()
        self.diffusion, self.weights, self.source = diffusion, weights, source

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        """f of the state's f input z, whose first n channels are h (SONODE's f reads [h, v])."""
        return self.diffusion.field(z[:, :self.diffusion.n], self.weights, self.source)


def source_term(x0: Tensor, labelled: Tensor) -> Tensor:
    """C_i = x₀⁽ⁱ⁾ − x̂ on the labelled nodes, 0 elsewhere; x̂ the labelled nodes' mean."""
    centre = x0[labelled].mean(0)
    return torch.where(labelled[:, None], x0 - centre, torch.zeros_like(x0))


def initial_condition(x0: Tensor, labelled: Tensor, degrees: Tensor) -> Tensor:
    """z(0) = x₀ − c of §4.5, c = (1/n)(Σᵢ x₀⁽ⁱ⁾ − Σ_{j∈I} (x₀⁽ʲ⁾ − x̂)/d_j): Σᵢ z⁽ⁱ⁾(0) =
    Σ_{j∈I} (x₀⁽ʲ⁾ − x̂)/d_j, eq. (4.11)."""
    weighted = (source_term(x0, labelled) / degrees[:, None]).sum(0)
    return x0 - (x0.sum(0) - weighted) / len(x0)
