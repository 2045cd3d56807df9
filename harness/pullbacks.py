"""Vector-Jacobian products by hand, for adjoints that would otherwise run autograd per step.

An adjoint solve takes one vector-Jacobian product (VJP) of the dynamics per function
evaluation. Through ``torch.autograd.grad`` that costs a graph, a backward pass and the
engine's fixed cost: on the small networks of these benchmarks, about four calls of the
dynamics. A *pullback* does the same arithmetic with plain tensor operations: the operations
autograd would run (``addmm``'s and each activation's backward formulas), without the graph.

Two pieces meet here. :class:`PlainMLP` is the pullback of the harness's ``mlp`` networks (an
``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations); a family's
:meth:`~harness.contract.Family.derivatives_vjp` is the pullback of its own right-hand side,
written around f's. Where both exist, :class:`harness.ode.Dynamics` offers ``vjp`` and the fast
backend's adjoint uses it; elsewhere it uses autograd. The conformance kit checks every
family's hand-written VJP against autograd's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness.contract import Pullback

aten = torch.ops.aten


@dataclass(frozen=True)
class _Activation:
    """An elementwise activation: its forward and autograd's backward formula, which reads the
    activation's input u and output y."""

    forward: Callable[[nn.Module, Tensor], Tensor]
    backward: Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


_ACTIVATIONS: dict[type[nn.Module], _Activation] = {
    nn.ReLU: _Activation(lambda m, u: torch.relu(u),
                         lambda m, g, u, y: aten.threshold_backward(g, y, 0)),
    nn.ELU: _Activation(lambda m, u: F.elu(u, m.alpha),
                        lambda m, g, u, y: aten.elu_backward(g, m.alpha, 1, 1, False, u)),
    nn.Tanh: _Activation(lambda m, u: torch.tanh(u), lambda m, g, u, y: aten.tanh_backward(g, y)),
    nn.Sigmoid: _Activation(lambda m, u: torch.sigmoid(u),
                            lambda m, g, u, y: aten.sigmoid_backward(g, y)),
    nn.Softplus: _Activation(lambda m, u: F.softplus(u, m.beta, m.threshold),
                             lambda m, g, u, y: aten.softplus_backward(g, u, m.beta, m.threshold)),
}


@dataclass(frozen=True)
class PlainMLP:
    """An ``nn.Sequential`` of Linear layers, each followed by at most one activation from the
    table above, evaluated and differentiated without module calls or autograd.

    It holds the modules, not their tensors, so it follows in-place updates of the weights.
    """

    layers: tuple[tuple[nn.Linear, nn.Module | None], ...]

    @classmethod
    def of(cls, net: nn.Module) -> PlainMLP | None:
        """The plain view of ``net``, or None when ``net`` is anything else (exact types only:
        a subclass may compute something else)."""
        if type(net) is not nn.Sequential:
            return None
        modules = list(net)
        layers = []
        for i in range(0, len(modules), 2):
            linear, activation = modules[i], (modules[i + 1] if i + 1 < len(modules) else None)
            if type(linear) is not nn.Linear or (activation is not None and type(activation) not in _ACTIVATIONS):
                return None
            layers.append((linear, activation))
        return cls(tuple(layers)) if layers else None

    def __call__(self, x: Tensor) -> Tensor:
        for linear, activation in self.layers:
            x = F.linear(x, linear.weight, linear.bias)
            if activation is not None:
                x = _ACTIVATIONS[type(activation)].forward(activation, x)
        return x

    def vjp(self, x: Tensor) -> tuple[Tensor, Pullback]:
        """The value at x and the pullback there (x of shape (…, in_features))."""
        saved = []  # (layer input, pre-activation, output) of each layer
        for linear, activation in self.layers:
            u = F.linear(x, linear.weight, linear.bias)
            y = u if activation is None else _ACTIVATIONS[type(activation)].forward(activation, u)
            saved.append((x, u, y))
            x = y

        def pullback(g: Tensor) -> tuple[Tensor, dict[Tensor, Tensor]]:
            grads: dict[Tensor, Tensor] = {}
            for (linear, activation), (x_in, u, y) in zip(reversed(self.layers), reversed(saved)):
                if activation is not None:
                    g = _ACTIVATIONS[type(activation)].backward(activation, g, u, y)
                rows, inputs = (g, x_in) if g.dim() == 2 else (g.flatten(0, -2), x_in.flatten(0, -2))
                grads[linear.weight] = rows.t().mm(inputs)
                if linear.bias is not None:
                    grads[linear.bias] = rows.sum(0)
                g = g.matmul(linear.weight)
            return g, grads
        return x, pullback
