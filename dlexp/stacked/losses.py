"""Per-job losses of a stack: each job's value is its loss adapter's own mean over that job's batch.

An adapter's `elementwise` form (dlexp/parts/losses.py) is its loss before the mean, on any leading axes; a stack
averages each job's numbers, which is what the adapter's mean does for one job. An adapter whose loss (`__call__`)
is not defined by the same class as its `elementwise` form cannot be stacked (a reason, never a guess): a subclass
that changes the loss but inherits the form would be scored by its parent's rule.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def _defined_by(cls: type, name: str) -> type | None:
    """The class in cls's method resolution order whose body defines `name`, or None."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def loss_problem(adapter: Any) -> str | None:
    """Why this job's loss cannot be stacked, or None."""
    kind = type(adapter)
    form = _defined_by(kind, "elementwise")
    if form is None or form is not _defined_by(kind, "__call__"):
        return f"loss {getattr(adapter, 'name', kind.__name__)} cannot be stacked"
    return None


def loss_key(adapter: Any) -> tuple:
    """What jobs must share to be scored by one stacked loss: the adapter and its settings."""
    return type(adapter).__name__, tuple(sorted((k, repr(v)) for k, v in vars(adapter).items()))


class StackedLoss:
    """One adapter's loss and predictions for a whole stack."""

    def __init__(self, adapter: Any):
        self.adapter = adapter

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        """(N, B, K) outputs, (N, B, ...) targets -> (N,) each job's mean loss."""
        return self.adapter.elementwise(out, target).flatten(1).mean(1)

    def predict(self, out: Tensor) -> Tensor | None:
        """(N, B, K) -> (N, B) class indices, by the adapter's own rule (it works row by row)."""
        n, b = out.shape[:2]
        predicted = self.adapter.predict(out.reshape(n * b, -1))
        return None if predicted is None else predicted.view(n, b)
