"""How an ensemble stacks the layers of M models that differ only in their seed: every
``nn.Linear`` as one :class:`StackedLinear` (weights (M, out, in), one batched matmul), every
zero-padded ``nn.Conv2d`` as one :class:`StackedConv2d` (one grouped convolution); a stack's
part computing some members only (:func:`of_members`), and one member's module as its solo run
builds it (:func:`member_of`). Member m's rows of an input are rows [m·R, (m+1)·R).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

class StackedLinear(nn.Module):
    """M ``nn.Linear`` layers in one: member m's rows of the input go through layer m (given
    ``members``, the indices of some members, the input holds their rows only)."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        weight, bias = rows_of(self.weight, self.bias, members)
        y = stacked_linear(x.reshape(len(weight), -1, x.shape[-1]), weight, bias)
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def member(self, index: int, made: dict[Tensor, Tensor]) -> nn.Linear:
        """Member ``index``'s layer as its solo run has it, with parameters of its own (each
        recorded in ``made`` under the stacked parameter it stands for)."""
        out_features, in_features = self.weight.shape[1:]
        layer = nn.Linear(in_features, out_features, self.bias is not None, device="meta")
        return _own_parameters(layer, self, index, made)


class StackedConv2d(nn.Module):
    """M ``nn.Conv2d`` layers (zero padding) in one grouped convolution: member m's rows of the
    input go through layer m (given ``members``, the input holds their rows only)."""

    def __init__(self, layers: list[nn.Conv2d]) -> None:
        super().__init__()
        first = layers[0]
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = first.groups
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if first.bias is not None else None)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        weight, bias = rows_of(self.weight, self.bias, members)
        count, channels = len(weight), x.shape[1]
        rows = x.reshape(count, -1, *x.shape[1:]).transpose(0, 1)  # (B, M, C, H, W)
        y = F.conv2d(rows.reshape(rows.shape[0], count * channels, *x.shape[2:]),
                     weight.flatten(0, 1), None if bias is None else bias.flatten(),
                     self.stride, self.padding, self.dilation, self.groups * count)
        y = y.reshape(y.shape[0], count, -1, *y.shape[2:]).transpose(0, 1)
        return y.reshape(-1, *y.shape[2:])

    def member(self, index: int, made: dict[Tensor, Tensor]) -> nn.Conv2d:
        """Member ``index``'s convolution as its solo run has it (see
        :meth:`StackedLinear.member`)."""
        out_channels, group_channels, *kernel = self.weight.shape[1:]
        layer = nn.Conv2d(group_channels * self.groups, out_channels, tuple(kernel), self.stride,
                          self.padding, self.dilation, self.groups, self.bias is not None,
                          device="meta")
        return _own_parameters(layer, self, index, made)


Stacked = (StackedLinear, StackedConv2d)


def stacked_linear(rows: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Each member's rows (M', R, in) through its own layer (weight (M', out, in), bias
    (M', out)): (M', R, out)."""
    weight = weight.transpose(1, 2)
    return (torch.bmm(rows, weight) if bias is None
            else torch.baddbmm(bias.unsqueeze(1), rows, weight))


def rows_of(weight: Tensor, bias: Tensor | None,
            members: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The stacked weight and bias of ``members`` (all when None)."""
    if members is None:
        return weight, bias
    return weight[members], None if bias is None else bias[members]


def _own_parameters(layer: nn.Module, stacked: nn.Module, index: int,
                    made: dict[Tensor, Tensor]) -> nn.Module:
    """``layer`` (made on the meta device: no initialisation drew random numbers) holding
    member ``index``'s slices of ``stacked``'s weight and bias as parameters of its own."""
    for name, parameter in stacked.named_parameters(recurse=False):
        setattr(layer, name, member_parameter(parameter, index, made))
    return layer


def member_parameter(parameter: Tensor, index: int, made: dict[Tensor, Tensor]) -> Tensor:
    """Member ``index``'s slice of a stacked parameter as a parameter of its own, made once
    (recorded in ``made``)."""
    if parameter not in made:
        made[parameter] = nn.Parameter(parameter[index].detach().clone(), parameter.requires_grad)
    return made[parameter]


class _OfMembers(nn.Module):
    """A stacked layer applied to the rows of some members only (made for a set of members)."""

    def __init__(self, layer: nn.Module, members: Tensor) -> None:
        super().__init__()
        self.layer, self.members = layer, members

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x, self.members)


def of_members(stacked: nn.Module, members: Tensor) -> nn.Module:
    """``stacked`` (a stack's part) computing the rows of ``members`` (indices) only, its input
    holding only theirs: a copy of its parameter-free modules around its stacked layers, which
    are left untouched."""
    return _copied(stacked, lambda layer: _OfMembers(layer, members))


def member_of(stacked: nn.Module, index: int, made: dict[Tensor, Tensor]) -> nn.Module:
    """Member ``index``'s module as its solo run builds it, with parameters of its own (each
    recorded in ``made`` under the stacked parameter whose slice it holds)."""
    return _copied(stacked, lambda layer: layer.member(index, made))


def _copied(module: nn.Module, replace: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """``module`` with each stacked layer replaced (the parameter-free modules around them
    copied, the originals untouched)."""
    if isinstance(module, Stacked):
        return replace(module)
    if not module._modules:
        return module
    copied = copy.copy(module)
    copied._modules = {name: None if child is None else _copied(child, replace)
                       for name, child in module._modules.items()}
    return copied
