"""Measuring the memory a training step holds, per phase (docs/memory.md).

On CUDA it is the allocator's peak (``torch.cuda.max_memory_allocated``, reset at the start of
each phase): everything the step allocated, parameters, optimizer state and data included. On
the CPU, which has no such counter, it is the bytes autograd holds for the backward pass: every
tensor saved for it (``torch.autograd.graph.saved_tensors_hooks``), each storage counted once
however many saved tensors view it, from when it is saved until autograd lets it go. The hooks
stay active through ``loss.backward()``, so an adjoint solve, which builds and frees a small
graph per step of its backward solve, is counted too. The hooks only watch: what autograd saves,
and so every number the run computes, is what it would be without them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

#: The phases of a training step whose peak is recorded (``<phase>_memory_bytes``).
MEMORY_PHASES = ("forward", "backward")


class _Saved:
    """One tensor saved for backward, as the pack hook hands it to autograd: it holds the tensor
    (detached, so it references no graph) and releases its storage's count when autograd drops
    it."""

    __slots__ = ("tensor", "storage", "meter")

    def __init__(self, tensor: Tensor, meter: "MemoryMeter") -> None:
        self.tensor, self.meter = tensor.detach(), meter
        if tensor.layout == torch.strided:
            storage = tensor.untyped_storage()
            self.storage = storage.data_ptr(), storage.nbytes()
        else:  # sparse and other layouts have no one storage: counted on their own
            self.storage = id(self), tensor.element_size() * tensor.numel()
        meter.hold(*self.storage)

    def __del__(self) -> None:
        self.meter.release(*self.storage)


class MemoryMeter:
    """The peak memory of each phase of a run's training steps, kept until :meth:`take`.

    :meth:`in_phase` brackets a phase; each phase's number is the largest peak over the
    brackets since the last :meth:`take` (the epoch's steps). A meter not ``enabled`` (a run
    without ``memory: true``) measures nothing and takes {}.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device, self.enabled = device, enabled
        self.peaks: dict[str, int] = {}
        self.live = 0
        """Bytes of the distinct storages saved for backward and not yet released (CPU)."""
        self.peak = 0
        self.holders: dict[int, int] = {}
        """Per storage pointer, how many saved tensors hold it (CPU)."""

    def hold(self, pointer: int, nbytes: int) -> None:
        count = self.holders.get(pointer, 0)
        if not count:
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        self.holders[pointer] = count + 1

    def release(self, pointer: int, nbytes: int) -> None:
        count = self.holders.pop(pointer)
        if count > 1:
            self.holders[pointer] = count - 1
        else:
            self.live -= nbytes

    @contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        """Measure the peak of ``phase`` over the block (the CPU's from the bytes already
        held when it starts: what the forward pass saved is still held in the backward)."""
        if not self.enabled:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = self.live
            with torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack):
                yield
            peak = self.peak
        self.peaks[phase] = max(self.peaks.get(phase, 0), peak)

    def _pack(self, tensor: Tensor) -> _Saved:
        return _Saved(tensor, self)

    def take(self) -> dict[str, int]:
        """The peaks since the last take, by phase, and start again."""
        peaks, self.peaks = self.peaks, {}
        return peaks


def _unpack(saved: _Saved) -> Tensor:
    return saved.tensor
