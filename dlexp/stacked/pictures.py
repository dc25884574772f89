"""A whole stack over many points at once (the pictures' grids): the stacked model evaluated over every job's grid
in one batched pass, and, layer by layer, over its unit grid, as each job's own forward passes would give them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dlexp.stacked.group import StackedGroup
from dlexp.stacked.model import StackedMLP

BUDGET = 1 << 22  # floats of one layer's activations for all jobs at once (16 MB): wider layers, fewer points


def _inputs(grids: Sequence[Tensor | None], size: int) -> Tensor:
    """(N, G, F): row r's grid for the rows that have one, the first grid for the others (their outputs unused)."""
    first = next(g for g in grids if g is not None)
    if all(g is None or g is first or torch.equal(g, first) for g in grids):
        return first.expand(size, *first.shape)
    return torch.stack([first if g is None else g for g in grids])


class Frozen:
    """The stack's networks as they stood at a captured step (`StackedMLP.frozen`), over many points: what the
    painting thread evaluates while the stack trains on. `over` as `StackView.over` gives it at that step."""

    def __init__(self, group: StackedGroup):
        self.model = group.model.frozen()
        self.size = group.size

    def over(self, grids: Sequence[Tensor | None], layers: bool = False) -> tuple[Tensor, list]:
        return columns(self.model, _inputs(grids, self.size), layers=layers)


@torch.no_grad()
def columns(model: StackedMLP, x: Tensor, layers: bool = False) -> tuple[Tensor, list]:
    """The stack over many points x (N, G, F): its outputs (N, G, out) and, with `layers`, each Linear's
    (output, the activation after it or None), (N, G, width) each, as `histograms.layer_outputs` gives them.

    Computed with the points on the LAST axis, (N, width, G): for thousands of points through narrow layers one
    batched product per layer is then 5-8x faster than with the points first (the pictures' 14,400-point grid).
    """
    widest = max(w.shape[1] for w in model.weights)
    step = max(256, BUDGET // (model.size * widest))
    pieces = [_columns(model, x[:, i : i + step].transpose(1, 2), layers) for i in range(0, x.shape[1], step)]
    out = torch.cat([p[0] for p in pieces], dim=2).transpose(1, 2)  # (N, G, out)
    seen = []
    for k in range(len(pieces[0][1])):
        pre = torch.cat([p[1][k][0] for p in pieces], dim=2).transpose(1, 2)  # (N, G, width)
        acts = [p[1][k][1] for p in pieces]
        seen.append((pre, None if acts[0] is None else torch.cat(acts, dim=2).transpose(1, 2)))
    return out, seen


def _columns(model: StackedMLP, h: Tensor, layers: bool) -> tuple[Tensor, list]:
    """One piece of points, (N, F, G) -> (N, out, G), and with `layers` each Linear's (N, width, G) as `walk` lists
    them."""
    seen: list[tuple[Tensor, Tensor | None]] = []
    out = model.walk(h, model.linear_columns, seen if layers else None)
    return out, seen
