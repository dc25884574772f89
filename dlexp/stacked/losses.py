"""Per-job losses of a stack: each job's value is its loss adapter's own mean over that job's batch.

Every stacked loss computes the adapter's elementwise loss with `reduction="none"` and averages each job's
numbers, which is what the adapter's mean reduction does for one job. Adapters without an entry in `STACKED`
cannot be stacked (a reason, never a guess).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from dlexp.parts import losses

Elementwise = Callable[[Any, Tensor, Tensor], Tensor]


def pointwise(fn: Elementwise) -> Callable[[object, Tensor, Tensor], Tensor]:
    def loss(adapter, out: Tensor, target: Tensor) -> Tensor:  # (N, B, K), (N, B, K) -> (N,)
        return fn(adapter, out, target).flatten(1).mean(1)

    return loss


def _categorical(adapter, out: Tensor, target: Tensor) -> Tensor:
    """(N, B, K) logits, (N, B, K) probabilities or (N, B) labels -> (N,)."""
    n, b, k = out.shape
    flat_target = target.reshape(n * b, k) if target.dim() == 3 else target.reshape(n * b)
    return F.cross_entropy(out.reshape(n * b, k), flat_target, reduction="none").view(n, b).mean(1)


def _gaussian_nll(adapter, out: Tensor, target: Tensor) -> Tensor:
    mean, raw = out.chunk(2, dim=-1)  # (N, B, D) each
    variance = F.softplus(raw) + adapter.eps  # as GaussianNLL.variance
    return (
        F.gaussian_nll_loss(mean, target, variance, full=adapter.full, eps=adapter.eps, reduction="none")
        .flatten(1)
        .mean(1)
    )


# adapter class -> (adapter, outputs (N, B, K), targets (N, B, ...)) -> (N,) losses; exact types only
STACKED: dict[type, Callable[[Any, Tensor, Tensor], Tensor]] = {  # Any: the adapter of the key's class
    losses.MSE: pointwise(lambda a, o, t: F.mse_loss(o, t, reduction="none")),
    losses.MAE: pointwise(lambda a, o, t: F.l1_loss(o, t, reduction="none")),
    losses.Huber: pointwise(lambda a, o, t: F.huber_loss(o, t, reduction="none", delta=a.delta)),
    losses.BCE: pointwise(lambda a, o, t: F.binary_cross_entropy_with_logits(o, t, reduction="none")),
    losses.BCEProbs: pointwise(lambda a, o, t: F.binary_cross_entropy(o, t, reduction="none")),
    losses.CE: _categorical,
    losses.SparseCE: _categorical,
    losses.GaussianNLL: _gaussian_nll,
}


def loss_problem(adapter) -> str | None:
    if type(adapter) not in STACKED:
        return f"loss {getattr(adapter, 'name', type(adapter).__name__)} cannot be stacked"
    return None


def loss_key(adapter) -> tuple:
    """What jobs must share to be scored by one stacked loss: the adapter and its settings."""
    return type(adapter).__name__, tuple(sorted((k, repr(v)) for k, v in vars(adapter).items()))


class StackedLoss:
    """One adapter's loss and predictions for a whole stack."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.fn = STACKED[type(adapter)]

    def __call__(self, out: Tensor, target: Tensor) -> Tensor:
        """(N, B, K) outputs, (N, B, ...) targets -> (N,) each job's mean loss."""
        return self.fn(self.adapter, out, target)

    def predict(self, out: Tensor) -> Tensor | None:
        """(N, B, K) -> (N, B) class indices, by the adapter's own rule (it works row by row)."""
        n, b = out.shape[:2]
        predicted = self.adapter.predict(out.reshape(n * b, -1))
        return None if predicted is None else predicted.view(n, b)
