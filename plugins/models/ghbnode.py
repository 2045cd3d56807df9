"""GHBNODE (Xia et al. 2021): h' = σ(m), m' = −γ·m + f(h, t) − ξ·h, γ = sigmoid(ω), ξ = softplus(χ);
σ tanh, hardtanh[−5, 5] or identity (σ_backward: g·σ'(m)). ``xi`` fixes ξ (docs/profiles.md)."""
from torch import Tensor, nn

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl
from harness.toolkit import pointwise
from harness_plugins.models.hbnode import HBNODE


class GHBNODE(HBNODE):
    name = "ghbnode"
    sigmas = {"tanh": nn.Tanh, "hardtanh": lambda: nn.Hardtanh(-5.0, 5.0), "identity": nn.Identity}
    vjp_unsummed = True  # HBNODE's gradients, unsummed, passed on

    def __init__(self, gamma_init: float = -3.0, xi_init: float = 0.0, sigma: str = "tanh",
                 xi: float | None = None) -> None:
        super().__init__(gamma_init, xi_init if xi is None else None)
        if sigma not in self.sigmas:
            raise ValueError(f"sigma must be one of {', '.join(self.sigmas)}, not {sigma!r}")
        self.fixed_xi, (self.sigma, self.sigma_backward) = xi, pointwise(self.sigmas[sigma]())

    xi = property(lambda self: HBNODE.xi.fget(self) if self.chi is not None else self.fixed_xi)

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        (h, m), dm = state, f(t, state[0]) - self.gamma * state[1]
        return self.sigma(m), dm - self.xi * h

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:  # HBNODE's (with its −ξ·h), at σ'(m)·a_h
        (h, m), (a_h, a_m), sigma_m = state, cotangent, self.sigma(state[1])
        (_, dm), (a_x, a_m2), grads = super().derivatives_vjp(
            t, state, (self.sigma_backward(a_h, m, sigma_m), a_m), f)
        if self.chi is None:  # a fixed ξ: HBNODE's VJP has no ξ term, so it is added here
            dm, a_x = dm - self.fixed_xi * h, a_x - self.fixed_xi * a_m
        return (sigma_m, dm), (a_x, a_m2), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [GHBNODE]
