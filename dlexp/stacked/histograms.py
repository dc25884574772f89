"""What a histogram capture measures of a whole stack, in one pass: the probe batch through the stack, every job's
layer outputs, parameters, gradients and update ratios as (N, ...) tensors. The statistics themselves are the
single run's rule, applied to all jobs at once (dlexp/observe/histograms.py `capture_values`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlexp.observe.histograms import LayerTensors, find_layers
from dlexp.stacked.group import StackedGroup


def probe(group: StackedGroup, size: int = 256) -> Tensor:
    """(N, P, F): each job's `probe_batch`, its first `size` validation inputs (training inputs without any, or
    without labels)."""
    rows = group.x_val if group.trainable and group.x_val.n else group.x_train
    return rows.slice(0, size)


@torch.no_grad()
def layer_outputs(group: StackedGroup, x: Tensor) -> list[tuple[Tensor, Tensor | None]]:
    """Per Linear, in order: (its output (N, P, out), the activation after it or None), as the forward hooks
    of `Histograms.activations` see them on one job."""
    seen: list[tuple[Tensor, Tensor | None]] = []
    group.model.walk(x, layers=seen)  # (N, P, width) each
    return seen


def layer_tensors(group: StackedGroup, x: Tensor, ratios: dict[str, Tensor] | None = None) -> dict[str, LayerTensors]:
    """What a histogram capture measures of every job of the stack, per layer, on the probe inputs x (N, P, F): each
    job's layer outputs, weights, biases and gradients as (N, ...) tensors, laid out as `Histograms.capture` lays out
    one job's (N = 1)."""
    layers = find_layers(group.exps[group.jobs[0]].model)  # names and kinds, as each job's own
    measured = {}
    for layer, (pre, act), weight, bias in zip(
        layers, layer_outputs(group, x), group.model.weights, group.model.biases
    ):
        module_name = f"{layer.index}_{type(layer.module).__name__.lower()}"
        params = [(kind, module_name, p) for kind, p in (("weights", weight), ("biases", bias)) if p is not None]
        measured[layer.name] = LayerTensors(
            pre=pre,
            act=act,
            params=params,
            weight=weight,
            grads={id(p): p.grad for _, _, p in params if p.grad is not None},
            ratio=None if ratios is None else ratios.get(layer.name),
        )
    return measured


def snapshot(group: StackedGroup) -> list[Tensor]:
    """Copies of the stacked weights (N, out, in), taken before the step whose update ratio is wanted."""
    return [w.detach().clone() for w in group.model.weights]


def update_ratios(group: StackedGroup, before: list[Tensor]) -> dict[str, Tensor]:
    """layer name -> (N,) ||W - W_before|| / ||W|| per job, on the device until the capture reads it."""
    layers = find_layers(group.exps[group.jobs[0]].model)
    with torch.no_grad():
        return {
            layer.name: (w - b).flatten(1).norm(dim=1) / w.flatten(1).norm(dim=1).clamp_min(1e-12)
            for layer, w, b in zip(layers, group.model.weights, before)
        }
