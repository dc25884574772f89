"""Mini-batches as slices of a seeded shuffled index: no per-sample DataLoader, batch size 1 stays practical."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


class Batches:
    """Yields (x, y) batches of in-memory tensors; the order of epoch e depends only on (seed, e).

    That is what makes resume exact: to continue epoch e at batch k, re-create the order and skip k batches.
    """

    def __init__(self, x: Tensor, y: Tensor, size: int | None, shuffle: bool, seed: int):
        self.x, self.y = x, y  # (N, ...), (N, ...)
        self.n = x.shape[0]
        self.size = self.n if size is None else max(1, min(int(size), self.n))
        self.shuffle = shuffle and self.size < self.n  # a full batch is the same in any order
        self.seed = seed

    def __len__(self) -> int:
        """Optimizer steps per epoch: ceil(N / batch size)."""
        return math.ceil(self.n / self.size)

    def order(self, epoch: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator).to(self.x.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of one epoch, from batch number `start` on."""
        x, y = self.x, self.y
        if self.size == self.n:  # full batch: the tensors themselves, no slicing per step
            if start == 0:
                yield x, y
            return
        if self.shuffle:
            index = self.order(epoch)
            x, y = x[index], y[index]  # one gather per epoch; the slices below are views
        s = self.size
        for i in range(start, len(self)):
            yield x[i * s : (i + 1) * s], y[i * s : (i + 1) * s]
