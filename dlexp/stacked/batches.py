"""A stack's data and batches: shared by every job when the jobs' tensors are equal, else stacked per job.

Each job keeps its own shuffle: epoch e of job i is `Batches.order(e)` of its own `Batches` (seeded by its own
seed), and one indexing operation per step gathers every job's batch into (N, B, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from dlexp.parts.batching import Batches


class Rows:
    """One split's tensor for N jobs: (n, ...) shared when every job's is equal, else (N, n, ...) stacked."""

    def __init__(self, tensors: Sequence[Tensor], flatten: bool = False):
        first = tensors[0]
        self.shared = all(t is first or (t.shape == first.shape and torch.equal(t, first)) for t in tensors[1:])
        if flatten:
            tensors = [t.reshape(t.shape[0], -1) for t in tensors]  # (n, F): the model's Flatten
        self.data = tensors[0] if self.shared else torch.stack(list(tensors))  # (n, ...) or (N, n, ...)
        self.jobs = len(tensors)
        self._rows: Tensor | None = None

    @property
    def n(self) -> int:
        return self.data.shape[0 if self.shared else 1]

    def full(self) -> Tensor:
        """(N, n, ...): the whole split for every job (a view when shared)."""
        return self.data.expand(self.jobs, *self.data.shape) if self.shared else self.data

    def slice(self, start: int, stop: int) -> Tensor:
        """(N, stop - start, ...): the same rows of every job's split."""
        if self.shared:
            part = self.data[start:stop]
            return part.expand(self.jobs, *part.shape)
        return self.data[:, start:stop]

    def gather(self, index: Tensor) -> Tensor:
        """(N, B) row numbers, one row of them per job -> (N, B, ...): one indexing operation."""
        if self.shared:
            return self.data[index]
        if self._rows is None:
            self._rows = torch.arange(self.jobs, device=self.data.device).unsqueeze(1)  # (N, 1)
        return self.data[self._rows, index]

    def select(self, index: Tensor) -> None:
        self.jobs = int(index.numel())
        self._rows = None
        if not self.shared:
            self.data = self.data.index_select(0, index)

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()


class StackedBatches:
    """The training batches of N jobs that share batch size, shuffling and training-set size."""

    def __init__(self, batches: Sequence[Batches], flatten: bool):
        first = batches[0]
        self.sources = list(batches)
        self.size, self.shuffle, self.n = first.size, first.shuffle, first.n
        self.x = Rows([b.x for b in batches], flatten)
        self.y = Rows([b.y for b in batches])
        self.order: Tensor | None = None  # (N, n): each job's shuffled row order of the current epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.size)

    def begin(self, epochs: Sequence[int]) -> None:
        """Start an epoch; `epochs[r]` is the epoch number of the job in stack row r."""
        if self.shuffle:
            self.order = torch.stack([b.order(e) for b, e in zip(self.sources, epochs)])  # (N, n)

    def batch(self, k: int) -> tuple[Tensor, Tensor]:
        """Batch number k of the current epoch: (N, B, F) inputs, (N, B, ...) targets."""
        if self.size == self.n:  # full batch: the tensors themselves
            return self.x.full(), self.y.full()
        start, stop = k * self.size, (k + 1) * self.size
        if self.shuffle:
            if self.order is None:
                raise RuntimeError("A shuffled batch was asked for before begin() drew the epoch's order.")
            index = self.order[:, start:stop]  # (N, B)
            return self.x.gather(index), self.y.gather(index)
        return self.x.slice(start, stop), self.y.slice(start, stop)

    def select(self, keep: list[int], index: Tensor) -> None:
        self.sources = [self.sources[r] for r in keep]
        self.x.select(index)
        self.y.select(index)
        if self.order is not None:
            self.order = self.order.index_select(0, index)
