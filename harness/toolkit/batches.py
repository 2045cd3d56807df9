"""Mini-batches over tensors that already sit on the run's device."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


class TensorBatches:
    """Re-iterable (x, y) batches; with ``shuffle``, the order of epoch e is drawn from
    (seed, e) alone, so a run resumed at epoch e sees the batches it would have seen.

    ``batch_size=None`` gives the whole set as one batch (full-batch training).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None = None,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size or len(x)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the runner before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.batch_size >= len(self.x):
            yield self.x, self.y
            return
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = (torch.randperm(len(self.x), generator=generator).to(self.x.device)
                 if self.shuffle else torch.arange(len(self.x), device=self.x.device))
        for start in range(0, len(self.x), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]
