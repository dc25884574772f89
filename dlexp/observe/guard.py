"""Stops a run whose loss or gradients stop being finite."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Diverged(Exception):
    def __init__(self, step: int, what: str):
        self.step, self.what = step, what
        super().__init__(f"diverged at step {step}: {what} is not finite")


class DivergenceGuard:
    """Checks the loss every step on the CPU (a free read there), every `every` steps on a GPU (a host sync).

    Gradients are checked at the same interval: one fused reduction over all of them.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, every: int):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.every = 1 if device.type == "cpu" else every

    def on_step(self, state, loss: Tensor) -> None:
        if state.step % self.every:
            return
        if not math.isfinite(loss.item()):
            raise Diverged(state.step, "the loss")
        if state.step % max(self.every, 50) == 0:  # gradients less often: one reduction over all of them
            grads = [p.grad.abs().sum() for p in self.params if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.stack(grads).sum())):
                raise Diverged(state.step, "a gradient")
