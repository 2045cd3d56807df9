"""Vector-Jacobian products by hand, for adjoints that would otherwise run autograd per step.

An adjoint solve takes one vector-Jacobian product (VJP) of the dynamics per function
evaluation. Through ``torch.autograd.grad`` that costs a graph, a backward pass and the
engine's fixed cost: on the small networks of these benchmarks, about four calls of the
dynamics. A *pullback* does the same arithmetic with plain tensor operations: the operations
autograd would run (``addmm``'s and each activation's backward formulas), without the graph.

Two pieces meet here. :class:`PlainMLP` is the pullback of the harness's ``mlp`` networks
(``Autonomous`` around an ``nn.Sequential`` of ``nn.Linear`` layers and elementwise
activations); a family's :meth:`~harness.contract.Family.derivatives_vjp` is the pullback of its
own right-hand side, written around f's. Where both exist, :class:`harness.toolkit.ode.Dynamics` offers ``vjp`` and the fast
backend's adjoint uses it; elsewhere it uses autograd. The conformance kit checks every
family's hand-written VJP against autograd's.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness.contract import Pullback
from harness.toolkit.networks import Autonomous
from harness.toolkit.stacking import StackedLinear, rows_of, stacked_linear

aten = torch.ops.aten


# Each activation's forward (module, u) ↦ y and autograd's backward formula (module, g, u, y) ↦
# gᵀ∂y/∂u, for its input u and output y; named functions, so a model holding them pickles.
def _relu(m: nn.Module, u: Tensor) -> Tensor:
    return torch.relu(u)


def _relu_backward(m: nn.Module, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.threshold_backward(g, y, 0)


def _elu(m: nn.ELU, u: Tensor) -> Tensor:
    return F.elu(u, m.alpha)


def _elu_backward(m: nn.ELU, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.elu_backward(g, m.alpha, 1, 1, False, u)


def _tanh(m: nn.Module, u: Tensor) -> Tensor:
    return torch.tanh(u)


def _tanh_backward(m: nn.Module, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.tanh_backward(g, y)


def _sigmoid(m: nn.Module, u: Tensor) -> Tensor:
    return torch.sigmoid(u)


def _sigmoid_backward(m: nn.Module, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.sigmoid_backward(g, y)


def _softplus(m: nn.Softplus, u: Tensor) -> Tensor:
    return F.softplus(u, m.beta, m.threshold)


def _softplus_backward(m: nn.Softplus, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.softplus_backward(g, u, m.beta, m.threshold)


def _hardtanh(m: nn.Hardtanh, u: Tensor) -> Tensor:
    return F.hardtanh(u, m.min_val, m.max_val)


def _hardtanh_backward(m: nn.Hardtanh, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return aten.hardtanh_backward(g, u, m.min_val, m.max_val)


def _identity(m: nn.Module, u: Tensor) -> Tensor:
    return u


def _identity_backward(m: nn.Module, g: Tensor, u: Tensor, y: Tensor) -> Tensor:
    return g


Forward = Callable[[nn.Module, Tensor], Tensor]
Backward = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]
#: An activation bound to its module (:func:`pointwise`): u ↦ y, and (g, u, y) ↦ gᵀ∂y/∂u.
Activation = Callable[[Tensor], Tensor]
ActivationBackward = Callable[[Tensor, Tensor, Tensor], Tensor]
Weights = tuple[tuple[Tensor, "Tensor | None"], ...]
"""Each layer's weight and bias, as :meth:`PlainMLP.rows` gives them."""

#: The elementwise activations a plain MLP may use, and :func:`pointwise` knows.
_ACTIVATIONS: dict[type[nn.Module], tuple[Forward, Backward]] = {
    nn.ReLU: (_relu, _relu_backward),
    nn.ELU: (_elu, _elu_backward),
    nn.Tanh: (_tanh, _tanh_backward),
    nn.Sigmoid: (_sigmoid, _sigmoid_backward),
    nn.Softplus: (_softplus, _softplus_backward),
    nn.Hardtanh: (_hardtanh, _hardtanh_backward),
    nn.Identity: (_identity, _identity_backward),
}


def pointwise(activation: nn.Module) -> tuple[Activation, ActivationBackward]:
    """An elementwise activation module (ReLU, ELU, Tanh, Sigmoid, Softplus, Hardtanh or
    Identity, exact types) as plain functions, for a family's hand-written VJP: u ↦ y, and
    (g, u, y) ↦ gᵀ∂y/∂u by autograd's own backward formula."""
    if type(activation) not in _ACTIVATIONS:
        raise ValueError(f"no pullback for {activation!r}; valid: "
                         f"{', '.join(kind.__name__ for kind in _ACTIVATIONS)}")
    forward, backward = _ACTIVATIONS[type(activation)]
    return partial(forward, activation), partial(backward, activation)


@dataclass(frozen=True)
class _Layer:
    """A Linear layer and its activation's functions (:func:`pointwise`; None for none)."""

    linear: nn.Linear | StackedLinear
    forward: Activation | None
    backward: ActivationBackward | None


@dataclass(frozen=True)
class PlainMLP:
    """The network of a vector field ``Autonomous(net)`` whose net is an ``nn.Sequential`` of
    Linear layers, each followed by at most one activation from the table above (or a single
    Linear layer), evaluated and differentiated without module calls or autograd. The layers
    are all ``nn.Linear``, or all :class:`~harness.toolkit.stacking.StackedLinear`: an
    ensemble's stack of M such networks (``stacked``), member m's rows of x at [m·R, (m+1)·R).

    It holds the modules, not their tensors, so it follows in-place updates of the weights;
    :meth:`intact` says whether its direct evaluation still computes what the modules would.
    """

    layers: tuple[_Layer, ...]
    #: The hook tables of every module whose forward it stands in for (filled in place when a
    #: hook is registered), and the Linear layers' parameter tables with the names they hold.
    hook_tables: tuple[dict, ...]
    parameter_tables: tuple[tuple[dict, str], ...]
    stacked: bool

    @classmethod
    def of(cls, f: nn.Module) -> PlainMLP | None:
        """The plain view of the vector field ``f``, or None when it is anything else (exact
        types only: a subclass may compute something else, or read t)."""
        if type(f) is not Autonomous:
            return None
        kind = type(f.net)
        modules = list(f.net) if kind is nn.Sequential else [f.net]
        linears = modules[::2]
        if kind is nn.Sequential and linears:
            kind = type(linears[0])
        if kind not in (nn.Linear, StackedLinear):
            return None
        if len({id(linear) for linear in linears}) < len(linears):
            return None  # a layer used twice: its gradients would have to be summed
        layers = []
        for i in range(0, len(modules), 2):
            linear, activation = modules[i], (modules[i + 1] if i + 1 < len(modules) else None)
            if type(linear) is not kind or (activation is not None
                                            and type(activation) not in _ACTIVATIONS):
                return None
            functions = (None, None) if activation is None else pointwise(activation)
            layers.append(_Layer(linear, *functions))
        hook_tables = tuple(
            table for module in (f, f.net, *modules)
            for table in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks))
        parameter_tables = tuple((layer.linear._parameters, name) for layer in layers
                                 for name in ("weight", "bias") if name in layer.linear._parameters)
        return cls(tuple(layers), hook_tables, parameter_tables, kind is StackedLinear)

    def intact(self) -> bool:
        """No hooks on its modules, and every Linear's weight and bias still registered
        parameters: a hook, or a reparametrisation such as weight norm, would be skipped."""
        return (not any(self.hook_tables)
                and all(name in table for table, name in self.parameter_tables))

    def __call__(self, x: Tensor, members: Tensor | None = None,
                 weights: Weights | None = None) -> Tensor:
        """The value at x (of shape (…, in_features)); stacked, of the ``members`` (indices,
        default all) whose rows x holds, or of the members whose layers :meth:`rows` gave as
        ``weights``."""
        if not self.stacked:
            return self.bind(weights, transposed=False)(None, x)
        return self._evaluate(x, weights or self.rows(members), None)

    def vjp(self, x: Tensor, members: Tensor | None = None,
            weights: Weights | None = None) -> tuple[Tensor, Pullback]:
        """The value at x and the pullback there (``members`` or ``weights`` as for a call).
        Stacked, a parameter's gradient holds the rows of those members only: (M', out, in)
        for weights of shape (M, out, in)."""
        if not self.stacked:
            return self.bind(weights, transposed=False).vjp(None, x)
        saved: list[tuple[Tensor, ...]] = []  # layer input, pre-activation, output, weight
        value = self._evaluate(x, weights or self.rows(members), saved)
        return value, partial(self._stacked_pullback, saved, x.shape)

    def bind(self, weights: Weights | None = None, transposed: bool = True) -> BoundMLP:
        """Unstacked, the network as one solve calls it: each layer's parameters (or
        ``weights``) and activation looked up once, since a solve changes neither (an
        optimizer's in-place step between solves is seen: the tensors are the parameters),
        and with ``transposed`` each weight's transpose made once for every call to use (not
        worth making for a single call; a view of the weight's storage, so a weight assigned
        anew by ``.data =`` needs a new binding, as a replaced parameter does)."""
        if self.stacked:
            raise ValueError("bind() is for unstacked layers; a stack takes members per call")
        keys = self.rows(None)
        return BoundMLP(tuple(Step(weight, weight.t() if transposed else None, bias,
                                   layer.forward, layer.backward, *key)
                              for layer, (weight, bias), key in zip(self.layers, weights or keys,
                                                                    keys)))

    def _stacked_pullback(self, saved: list[tuple[Tensor, ...]], shape: torch.Size,
                          g: Tensor) -> tuple[Tensor, dict[Tensor, Tensor]]:
        """Stacked, gᵀ∂f/∂x (of x's ``shape``) and each parameter's gradient from the layers'
        ``saved`` tensors: autograd's formulas for baddbmm(bias, x, weightᵀ)."""
        grads: dict[Tensor, Tensor] = {}
        g = self._rows(g, len(saved[0][3]))
        for layer, (x_in, u, y, weight) in zip(reversed(self.layers), reversed(saved)):
            if layer.backward is not None:
                g = layer.backward(g, u, y)
            grads[layer.linear.weight] = g.transpose(1, 2).bmm(x_in)
            bias_grad = g.sum(1)
            g = g.bmm(weight)
            if layer.linear.bias is not None:
                grads[layer.linear.bias] = bias_grad
        return g.reshape(shape), grads

    def rows(self, members: Tensor | None) -> Weights:
        """Each layer's (weight, bias); stacked, those of the ``members`` (indices; None: all).
        Gathered once, they serve every evaluation of those members until a parameter
        changes."""
        if not self.stacked:  # the parameters themselves, from their tables (no module lookups)
            return tuple((layer.linear._parameters["weight"], layer.linear._parameters.get("bias"))
                         for layer in self.layers)
        return tuple(rows_of(layer.linear.weight, layer.linear.bias, members)
                     for layer in self.layers)

    def _evaluate(self, x: Tensor, weights: Weights,
                  saved: list[tuple[Tensor, ...]] | None) -> Tensor:
        """Stacked, the layers (``weights``) on x; with ``saved``, each layer's input,
        pre-activation, output and weight are appended to it."""
        y = self._rows(x, len(weights[0][0]))
        for layer, (weight, bias) in zip(self.layers, weights):
            x_in = y
            u = stacked_linear(x_in, weight, bias)
            y = u if layer.forward is None else layer.forward(u)
            if saved is not None:
                saved.append((x_in, u, y, weight))
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def _rows(self, x: Tensor, count: int) -> Tensor:
        """Stacked, x as each of ``count`` members' rows (count, R, features)."""
        return x.reshape(count, -1, x.shape[-1])


def _linear(x: Tensor, weight: Tensor, weight_t: Tensor | None, bias: Tensor | None,
           matrix: bool) -> Tensor:
    """``F.linear(x, weight, bias)``; on a matrix x with a bias, given the transpose
    ``weight_t`` made once per solve, the ``addmm`` F.linear would call (the same kernel and
    bits, without F.linear's transpose each call)."""
    if matrix and bias is not None and weight_t is not None:
        return torch.addmm(bias, x, weight_t)
    return F.linear(x, weight, bias)


class Step(NamedTuple):
    """One layer of a :class:`BoundMLP`: its weight, the weight's transpose made once per solve
    (None: not made), bias, the activation and its backward formula (None for none), and the
    parameters its gradients are keyed by."""

    weight: Tensor
    weight_t: Tensor | None
    bias: Tensor | None
    forward: Activation | None
    backward: ActivationBackward | None
    weight_key: Tensor
    bias_key: Tensor | None


@dataclass(frozen=True)
class BoundMLP:
    """An unstacked :class:`PlainMLP` as one solve calls it (:meth:`PlainMLP.bind`): a vector
    field ``(t, x) ↦ f(x)`` and its :meth:`vjp`, a family's ``DifferentiableField``, each a
    loop over layers looked up once, with nothing else between the kernels."""

    steps: tuple[Step, ...]

    def __call__(self, t: Tensor | None, x: Tensor) -> Tensor:
        """f at x (of shape (…, in_features)); t is not read."""
        matrix = x.dim() == 2
        for weight, weight_t, bias, forward, _, _, _ in self.steps:
            x = _linear(x, weight, weight_t, bias, matrix)
            if forward is not None:
                x = forward(x)
        return x

    def vjp(self, t: Tensor | None, x: Tensor) -> tuple[Tensor, Pullback]:
        """f at x and its pullback there; t is not read."""
        saved: list[tuple[Tensor, Tensor, Tensor]] = []  # layer input, pre-activation, output
        matrix = x.dim() == 2
        for weight, weight_t, bias, forward, _, _, _ in self.steps:
            u = _linear(x, weight, weight_t, bias, matrix)
            y = u if forward is None else forward(u)
            saved.append((x, u, y))
            x = y
        return x, partial(self._pullback, saved)

    def _pullback(self, saved: list[tuple[Tensor, Tensor, Tensor]],
                  g: Tensor) -> tuple[Tensor, dict[Tensor, Tensor]]:
        """gᵀ∂f/∂x and each parameter's gradient from the layers' ``saved`` tensors:
        autograd's formulas for addmm, on the rows of every leading dimension. g keeps x's
        shape throughout."""
        grads: dict[Tensor, Tensor] = {}
        matrix = g.dim() == 2
        for (weight, _, _, _, backward, weight_key, bias_key), (x_in, u, y) in zip(
                reversed(self.steps), reversed(saved)):
            if backward is not None:
                g = backward(g, u, y)
            rows, inputs = ((g, x_in) if matrix else (g.flatten(0, -2), x_in.flatten(0, -2)))
            grads[weight_key] = rows.t().mm(inputs)
            if bias_key is not None:
                grads[bias_key] = rows.sum(0)
            g = g.matmul(weight)
        return g, grads
