"""Mini-batches over tensors that already sit on the run's device."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


class TensorBatches:
    """Re-iterable (x, y) batches; with ``shuffle`` each epoch draws a new seeded order.

    ``batch_size=None`` gives the whole set as one batch (full-batch training).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None = None,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size or len(x)
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.batch_size >= len(self.x):
            yield self.x, self.y
            return
        order = (torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
                 if self.shuffle else torch.arange(len(self.x), device=self.x.device))
        for start in range(0, len(self.x), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]
