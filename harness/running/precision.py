"""A run's floating-point precision (run setting ``precision``, :data:`harness.setting_values.PRECISIONS`).

A task makes its tensors in torch's default dtype, so the run makes its precision torch's
default dtype while its data and model are made and while it trains, and restores the one
before when it ends, however it ends: a worker process runs many runs, and a float64 run leaves
nothing to the float32 run after it. What a task builds is checked against it
(:func:`stray_tensors`), so a task that ignores the setting fails its runs with a message
rather than recording float32 numbers as float64.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from harness.setting_values import PRECISIONS

#: Precisions run on a CUDA device only: on the CPU the fast backend refuses them, float16's
#: adaptive steps underflow (its times round to the same value) and bfloat16 is emulated.
CUDA_ONLY = ("bfloat16", "float16")


def device_refusal(precision: str, device: torch.device) -> str | None:
    """Why a run in ``precision`` cannot run on ``device``, or None."""
    if precision in CUDA_ONLY and device.type != "cuda":
        return (f"precision {precision} runs on a CUDA device only (on the CPU the fast backend "
                f"refuses it and float16's adaptive steps underflow); this run's device is "
                f"{device.type}: use precision float32 or float64")
    return None


@contextmanager
def in_precision(precision: str) -> Iterator[torch.dtype]:
    """torch's default dtype set to ``precision``'s within the block, the previous one after."""
    dtype, previous = PRECISIONS[precision], torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield dtype
    finally:
        torch.set_default_dtype(previous)


def stray_tensors(model: nn.Module, dtype: torch.dtype) -> list[str]:
    """The model's floating parameters and buffers not in ``dtype``, as ``name (dtype)``."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [f"{name} ({str(tensor.dtype).removeprefix('torch.')})" for name, tensor in named
            if tensor.is_floating_point() and tensor.dtype != dtype]
