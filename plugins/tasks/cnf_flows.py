"""The flows of the CNF task: the paper's continuous normalizing flow around a family's ODE
block, the trace of its Jacobian (exact or Hutchinson's), and the planar flow baseline.

Both models map a batch of points x (B, D) to log p(x) (B, 1) under a standard normal base
density, and draw samples (:meth:`CNF.sample`, :meth:`PlanarFlow.sample`) and so can be
compared by the same loss, metric and figures.

The CNF's direction: the data x is z(t0); the family's dynamics F carry it to z(t1), and the
state carries ℓ with ℓ(t0) = 0, dℓ/dt = −tr(∂F/∂z) (the instantaneous change of variables,
Theorem 1), so log p(x) = log N(z(t1); 0, I) − ℓ(t1). Sampling runs the flow backwards from
z(t1) ~ N(0, I).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness.toolkit import ODEBlock

#: The trace estimators (task option ``trace``): how many vector-Jacobian products through
#: the dynamics each evaluation of the augmented dynamics takes is said in docs/cnf.md.
TRACES = ("exact", "hutchinson")
#: log(e − 1): softplus of it is 1, so the planar flow's m(0) = 0.
_SHIFT = math.log(math.e - 1)


def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row, (B, 1)."""
    return -0.5 * (z ** 2).sum(1, keepdim=True) - 0.5 * z.shape[1] * math.log(2 * math.pi)


class HyperField(nn.Module):
    """The paper's CNF vector field (torchdiffeq's examples/cnf.py): f(t, z) = mean over M
    units of u_m(t)·tanh(w_m(t)ᵀz + b_m(t)), where a hypernetwork of two hidden tanh layers of
    width h maps t to every (w_m, u_m, b_m) and a gate g_m(t) (u_m scaled by sigmoid(g_m))."""

    def __init__(self, dim: int, width: int, hidden: int) -> None:
        super().__init__()
        self.dim, self.width = dim, width
        self.hyper = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                   nn.Tanh(), nn.Linear(hidden, 3 * width * dim + width))

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        params = self.hyper(t.reshape(1, 1).to(z)).reshape(-1)
        block = self.width * self.dim
        w = params[:block].reshape(self.width, self.dim, 1)
        u = params[block:2 * block].reshape(self.width, 1, self.dim)
        gate = params[2 * block:3 * block].reshape(self.width, 1, self.dim)
        b = params[3 * block:].reshape(self.width, 1, 1)
        hidden = torch.tanh(torch.matmul(z.unsqueeze(0), w) + b)  # (M, B, 1)
        return torch.matmul(hidden, u * torch.sigmoid(gate)).mean(0)


def jacobian_trace(dz: Tensor, z: Tensor, probes: Tensor | None, create_graph: bool) -> Tensor:
    """tr(∂dz/∂z) per row (B,): exact, from one vector-Jacobian product per dimension, or with
    ``probes`` (P, B, D) Hutchinson's estimate, the mean over probes of εᵀ(∂dz/∂z)ε, one
    vector-Jacobian product per probe."""
    if probes is None:
        rows = [torch.autograd.grad(dz[:, i].sum(), z, create_graph=create_graph,
                                    retain_graph=True)[0][:, i] for i in range(z.shape[1])]
        return torch.stack(rows, dim=1).sum(1)
    estimates = [(torch.autograd.grad(dz, z, eps, create_graph=create_graph,
                                      retain_graph=True)[0] * eps).sum(1) for eps in probes]
    return torch.stack(estimates).mean(0)


class WithLogDensity(nn.Module):
    """The augmented dynamics [F(t, z), −tr(∂F/∂z)] on the state [z, ℓ], made for one solve
    (its Hutchinson probes stay fixed through the solve, the adjoint's included). ``field``
    is the ODE block's dynamics: every call of this module is one counted evaluation."""

    def __init__(self, field: nn.Module, dim: int, probes: Tensor | None) -> None:
        super().__init__()
        self.field, self.dim, self.probes = field, dim, probes

    def forward(self, t: Tensor, state: Tensor) -> Tensor:
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            z = state[:, :self.dim]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            dz = self.field(t, z)
            trace = jacobian_trace(dz, z, self.probes, create_graph=keep_graph)
        derivative = torch.cat([dz, -trace.unsqueeze(1)], dim=1)
        return derivative if keep_graph else derivative.detach()


class Reversed(nn.Module):
    """z' = −F(t0 + t1 − τ, z): the flow run backwards over the same interval (sampling)."""

    def __init__(self, field: nn.Module, interval: tuple[float, float]) -> None:
        super().__init__()
        self.field, self.end = field, interval[0] + interval[1]

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return -self.field(self.end - t, z)


class CNF(nn.Module):
    """x ↦ log p(x) through a family's ODE block; the trace exact or by ``probes`` Rademacher
    vectors (Hutchinson's estimator, new ones each solve) while training, exact in evaluation
    (``hutchinson_in_eval`` false) so that test NLLs are exact."""

    def __init__(self, block: ODEBlock, dim: int, trace: str = "exact", probes: int = 1,
                 hutchinson_in_eval: bool = False) -> None:
        super().__init__()
        if trace not in TRACES:
            raise ValueError(f"task option trace is {trace!r}; valid: {', '.join(TRACES)}")
        self.block, self.dim = block, dim
        self.trace, self.probes, self.hutchinson_in_eval = trace, probes, hutchinson_in_eval

    def forward(self, x: Tensor) -> Tensor:
        z0 = self.block.initial_state(x)
        state = torch.cat([z0, z0.new_zeros(len(z0), 1)], dim=1)
        probes = None
        if self.trace == "hutchinson" and (self.training or self.hutchinson_in_eval):
            probes = torch.randint(0, 2, (self.probes, *z0.shape), device=x.device).to(x) * 2 - 1
        end = self.block.solve(WithLogDensity(self.block.dynamics, self.dim, probes), state)
        return standard_normal_log_density(end[:, :self.dim]) - end[:, self.dim:]

    def sample(self, base: Tensor) -> Tensor:
        """Points x from base points z(t1) (B, D), the flow solved backwards."""
        return self.block.solve(Reversed(self.block.dynamics, self.block.family.interval), base)


class PlanarFlow(nn.Module):
    """K planar layers (Rezende & Mohamed 2015) from data to base: z ← z + û·tanh(wᵀz + b),
    log p(x) = log N(z_K) + Σ log|1 + ûᵀψ|, ψ = (1 − tanh²(wᵀz + b))·w; û = u + (m(wᵀu) −
    wᵀu)·w/‖w‖² keeps each layer invertible (wᵀû = m(wᵀu) > −1). Their appendix's
    m(a) = −1 + softplus(a) is shifted here to m(a) = −1 + softplus(a + log(e − 1)), so that
    m(0) = 0 and u near 0 is a layer near the identity (with theirs, every layer at u = 0
    contracts along w by 1 + m(0) = 0.69, and 64 layers start 23 nats from the data)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.u = nn.Parameter(0.01 * torch.randn(layers, dim))
        self.w = nn.Parameter(torch.randn(layers, dim))
        self.b = nn.Parameter(torch.zeros(layers))

    def _u_hat(self, k: int) -> Tensor:
        u, w = self.u[k], self.w[k]
        wu = w @ u
        m = nn.functional.softplus(wu + _SHIFT) - 1
        return u + (m - wu) * w / (w @ w)

    def layer(self, k: int, z: Tensor) -> tuple[Tensor, Tensor]:
        """Layer k's output and log|det ∂output/∂z| per row (B,)."""
        u_hat, w = self._u_hat(k), self.w[k]
        activation = torch.tanh(z @ w + self.b[k])
        psi = (1 - activation ** 2).unsqueeze(1) * w
        return z + activation.unsqueeze(1) * u_hat, torch.log(torch.abs(1 + psi @ u_hat))

    def forward(self, x: Tensor) -> Tensor:
        z, log_det = x, torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for k in range(len(self.b)):
            z, change = self.layer(k, z)
            log_det = log_det + change
        return standard_normal_log_density(z) + log_det.unsqueeze(1)

    def invert_layer(self, k: int, y: Tensor, steps: int = 60) -> Tensor:
        """z with layer k(z) = y: a = wᵀz solves wᵀy = a + wᵀû·tanh(a + b), increasing in a,
        found by bisection within |wᵀû| of wᵀy; then z = y − û·tanh(a + b)."""
        u_hat, w, b = self._u_hat(k), self.w[k], self.b[k]
        target, wu = y @ w, w @ u_hat
        low, high = target - wu.abs() - 1e-6, target + wu.abs() + 1e-6
        for _ in range(steps):
            middle = (low + high) / 2
            above = middle + wu * torch.tanh(middle + b) > target
            low, high = torch.where(above, low, middle), torch.where(above, middle, high)
        return y - torch.tanh((low + high) / 2 + b).unsqueeze(1) * u_hat

    def sample(self, base: Tensor) -> Tensor:
        """Points x from base points z_K (B, D): the layers inverted, last first."""
        with torch.no_grad():
            z = base
            for k in reversed(range(len(self.b))):
                z = self.invert_layer(k, z)
        return z
