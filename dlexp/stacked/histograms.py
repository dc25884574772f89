"""Histogram captures of a whole stack in one pass: per layer, per job, what `Histograms.capture` computes alone.

`capture` runs the probe batch through the stack once, computes every job's histogram statistics with one
reduction per tensor along the model axis, and reads everything back with ONE host read for the group. It
returns the `uses` list and, per stack row, the flat list of numbers that `Histograms.write` consumes, laid
out exactly as a capture of that job alone lays them out. When to capture (and the snapshot before the step
an update ratio needs) stays the observer's business: `snapshot` and `update_ratios` give the numbers.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor

from dlexp.observe.histograms import BINS, SINGULAR, find_layers, unit_health
from dlexp.stacked.group import StackedGroup

Uses = list[tuple[str, str, int]]   # (kind, tag, numel) per piece, as Histograms.capture builds them


def histogram_stats(x: Tensor, bins: int = BINS) -> list[Tensor]:
    """Per job: [(N, 4) min, max, sum(x - min), sum((x - min)^2); (N, bins) bucket counts over min..max].

    `dlexp.observe.histograms.histogram_stats` for every row of x (N, ...) at once: one bincount for all jobs.
    """
    n = x.shape[0]
    x = x.detach().reshape(n, -1)                                         # (N, M)
    if x.dtype != torch.float32:
        x = x.float()
    lo, hi = torch.aminmax(x, dim=1)                                      # (N,) each
    shifted = x - lo.unsqueeze(1)                                         # (N, M) in [0, hi - lo]
    sums = torch.stack([lo, hi, shifted.sum(1), (shifted * shifted).sum(1)], dim=1)  # (N, 4)
    index = shifted.mul_(bins).div_((hi - lo).clamp_min_(1e-30).unsqueeze(1)).int().clamp_(0, bins - 1)
    index += torch.arange(n, device=x.device, dtype=index.dtype).unsqueeze(1) * bins  # job r: buckets r*bins...
    counts = torch.bincount(index.reshape(-1), minlength=n * bins).view(n, bins)      # (N, bins)
    return [sums, counts]


def probe(group: StackedGroup, size: int = 256) -> Tensor:
    """(N, P, F): each job's `probe_batch`, its first `size` validation inputs (training inputs without any, or
    without labels)."""
    rows = group.x_val if group.trainable and group.x_val.n else group.x_train
    return rows.slice(0, size)


@torch.no_grad()
def layer_outputs(group: StackedGroup, x: Tensor) -> list[tuple[Tensor, Tensor | None]]:
    """Per Linear, in order: (its output (N, P, out), the activation after it or None), as the forward hooks
    of `Histograms.activations` see them on one job."""
    seen: list[list] = []
    h = x
    for step in group.model.plan:
        if isinstance(step, int):
            h = group.model.forward_linear(step, h)                        # (N, P, out)
            seen.append([h, None])
        else:
            pre = h.clone() if getattr(step, "inplace", False) else h
            h = step.forward(h)
            if seen and seen[-1][1] is None:                               # the first activation after a Linear
                seen[-1] = [pre, h]
    return [(pre, act) for pre, act in seen]


def capture(group: StackedGroup, x: Tensor, bins: int = BINS, ratios: dict[str, Tensor] | None = None,
            skipped: Collection[str] = ()) -> tuple[Uses, list[list[float]]]:
    """Every job's capture on the probe inputs x (N, P, F): (uses, one list of numbers per stack row), without the
    histogram kinds in `skipped` (those no job of the capture writes)."""
    layers = find_layers(group.exps[group.jobs[0]].model)                 # names and kinds, as each job's own
    pieces: list[Tensor] = []                                             # (N, k) device tensors
    uses: Uses = []

    def hist(tag: str, t: Tensor) -> None:
        if t[0].numel() and tag.split("/", 1)[0] not in skipped:
            pieces.extend(histogram_stats(t, bins))
            uses.append(("hist", tag, t[0].numel()))

    def value(kind: str, tag: str, t: Tensor, n: int = 1) -> None:      # t: (N,)
        pieces.append(t.reshape(-1, 1))
        uses.append((kind, tag, n))

    outputs = layer_outputs(group, x)
    with torch.no_grad():
        for layer, (pre, act), weight, bias in zip(layers, outputs, group.model.weights, group.model.biases):
            hist(f"preactivations/{layer.name}", pre)
            if act is not None and act[0].numel():
                name = layer.act_name
                hist(f"activations/{name}", act)
                health = unit_health(layer.activation, act)
                if health is not None:
                    kind, prefix, count, out_of = health
                    value(kind, f"{prefix}/{name}", count, out_of)
            module_name = f"{layer.index}_{type(layer.module).__name__.lower()}"
            grads = []
            for kind, p in (("weights", weight), ("biases", bias)):
                if p is None:
                    continue
                hist(f"{kind}/{module_name}", p)
                if p[0].numel() == 1:                                     # a lone weight: a number, as alone
                    value("scalar", f"{SINGULAR[kind]}/{module_name}", p.detach().reshape(-1))
                if p.grad is not None:
                    grads.append(p.grad.flatten(1).norm(dim=1))           # (N,)
                    if p is weight:
                        hist(f"grads/{layer.name}", p.grad)
            if grads:
                value("scalar", f"grad_norm/{layer.name}", torch.stack(grads).norm(dim=0))
            if ratios is not None and layer.name in ratios:
                value("scalar", f"update_ratio/{layer.name}", ratios[layer.name])
    if not pieces:
        return uses, [[] for _ in group.jobs]
    return uses, torch.cat([p.float() for p in pieces], dim=1).tolist()  # (N, total): the one host read


def without(uses: Uses, values: list[float], prefix: str) -> tuple[Uses, list[float]]:
    """One row's capture without the pieces whose tag starts with `prefix` (a job that has no update ratio at
    this step while others of the stack have)."""
    kept_uses, kept, at = [], [], 0
    for use in uses:
        width = 4 + BINS if use[0] == "hist" else 1
        if not use[1].startswith(prefix):
            kept_uses.append(use)
            kept += values[at:at + width]
        at += width
    return kept_uses, kept


def snapshot(group: StackedGroup) -> list[Tensor]:
    """Copies of the stacked weights (N, out, in), taken before the step whose update ratio is wanted."""
    return [w.detach().clone() for w in group.model.weights]


def update_ratios(group: StackedGroup, before: list[Tensor]) -> dict[str, Tensor]:
    """layer name -> (N,) ||W - W_before|| / ||W|| per job, on the device until the capture reads it."""
    layers = find_layers(group.exps[group.jobs[0]].model)
    with torch.no_grad():
        return {layer.name: (w - b).flatten(1).norm(dim=1) / w.flatten(1).norm(dim=1).clamp_min(1e-12)
                for layer, w, b in zip(layers, group.model.weights, before)}
