"""HBNODE (Xia et al. 2021): h' = m, m' = −γ·m + f(h, t), γ = sigmoid(ω), [h0, m0] = [x, v(x)];
``xi_init`` adds −ξ·h, ξ = softplus(χ), as the authors' plane-vibration code (docs/profiles.md)."""
import torch
from torch import Tensor, nn

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl


class HBNODE(Family):
    name, parts = "hbnode", ("h", "m")
    initial_state = {"h": "input+network", "m": "network"}
    vjp_unsummed = True  # ω's and χ's gradients per element: members take derivatives_vjp too

    def __init__(self, gamma_init: float = -3.0, xi_init: float | None = None) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(float(gamma_init)))
        self.chi = None if xi_init is None else nn.Parameter(torch.tensor(float(xi_init)))

    gamma = property(lambda self: torch.sigmoid(self.omega))
    xi = property(lambda self: nn.functional.softplus(self.chi))  # only with a ξ term

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        (h, m), dm = state, f(t, state[0]) - self.gamma * state[1]
        return m, dm if self.chi is None else dm - self.xi * h

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h, m), (a_h, a_m), gamma, chi = state, cotangent, self.gamma, self.chi
        value, pullback = f(t, h)  # f's value, and g ↦ (gᵀ∂f/∂h, {parameter: gradient})
        (a_x, grads), dm = pullback(a_m), value - gamma * m  # m' reads f(h) with weight 1
        grads[self.omega] = (a_m * m) * (gamma * (gamma - 1))  # −γ' = γ(γ − 1); unsummed
        if chi is not None:
            xi, grads[chi] = self.xi, (a_m * h) * -torch.sigmoid(chi)  # softplus' = sigmoid
            dm, a_x = dm - xi * h, a_x - xi * a_m
        return (m, dm), (a_x, a_h - gamma * a_m), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [HBNODE]
