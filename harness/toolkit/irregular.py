"""Irregular sampling as the paper's sequence tasks make it: a seeded random share of a
regular series' stamps is dropped, and the time between the kept stamps becomes an input."""
from __future__ import annotations

import torch
from torch import Tensor


def keep_stamps(count: int, drop: float, generator: torch.Generator) -> Tensor:
    """Sorted indices of the stamps kept when a share ``drop`` of ``count`` stamps is removed
    at random (exactly round(drop·count) of them), drawn from ``generator`` alone."""
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"the share of dropped stamps must be in [0, 1), not {drop}")
    kept = count - round(drop * count)
    return torch.randperm(count, generator=generator)[:kept].sort().values


def gaps(stamps: Tensor, previous: int | Tensor) -> Tensor:
    """Stamps elapsed before each kept stamp (along the last dimension), the first counted
    from ``previous`` (one number, or one per row: shape (…, 1))."""
    first = torch.as_tensor(previous, dtype=stamps.dtype).expand(*stamps.shape[:-1], 1)
    return torch.diff(stamps, dim=-1, prepend=first)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of every ``window``-long window of a ``length``-long sequence, ``stride`` apart."""
    return list(range(0, length - window + 1, stride))
