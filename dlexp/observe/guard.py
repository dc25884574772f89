"""Watches a run go wrong: a loss or gradient that stops being finite, a loss that explodes, a loss far above its
start while nothing moves any more (all: `diverged`, the run stops at that step), and gradients that are all
exactly zero (`stalled`: a notice, the run goes on).

The rules and their numbers live in the config (`guard:` in conf/config.yaml); README "How a run can end" says
them in words. The checks are split from the observer protocol so that a loop training many jobs at once can apply
them to each job's numbers: `check_loss(step, value)`, `wants_grads(step)`, `check_grads(step, total)`; a stack of
networks calls them through `stack_step`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

from dlexp.run.loop import Stop

GRADS_EVERY = 50  # steps between gradient checks (one fused reduction); every step while a stall is suspected


class Diverged(Stop):
    def __init__(self, step: int, what: str, why: str = "is not finite"):
        self.step, self.what, self.why = step, what, why
        super().__init__(f"diverged at step {step}: {what} {why}")


class DivergenceGuard:
    """Checks the loss every step on the CPU (a free read there), every `every` steps on a GPU (a host sync).

    Diverged: the loss or a gradient is not finite; or the loss is above `explode_factor` x the fresh network's
    loss (its val/loss at epoch 0) at half or more of the last `explode_window` checks. Half, not all: a loss
    thrown too far jumps between two values, one of them sometimes below the line. Stalled: the sum of |gradient|
    over every parameter is exactly 0 at every step of `stall_steps` consecutive steps (checked every GRADS_EVERY
    steps and, once one is 0, at every step until one is not). A stall with the loss above `stuck_factor` x its
    start is a divergence too: the updates threw the network into saturation (sigmoids pinned at 0 and 1, a
    loss on probabilities clipped), where its loss is far worse than at the start and can never move again.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        every: int,
        explode_factor: float | None = None,
        explode_window: int = 10,
        stall_steps: int | None = None,
        stuck_factor: float | None = None,
        notice: Callable[[str], None] | None = None,
    ):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.every = 1 if device.type == "cpu" else every
        self.explode_factor, self.explode_window = explode_factor or None, max(int(explode_window), 1)
        self.stall_steps, self.stuck_factor, self.notice = stall_steps or None, stuck_factor or None, notice
        self.reference: float | None = None  # the fresh network's loss, the scale of "exploded"
        self.last: float | None = None  # the last loss checked
        self.above: deque[bool] = deque(maxlen=self.explode_window)  # the last checks: above the line?
        self.zero_since: int | None = None  # first step of the current run of all-zero gradients
        self.first: int | None = None  # the first step this process checks
        self.status_fields: dict[str, int] = {}  # joins status.json: stalled_at_step

    # --- observer protocol --------------------------------------------------------------------------
    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        if self.reference is None:  # the first evaluation: the fresh network (epoch 0)
            value = metrics.get("val/loss", math.nan)
            self.reference = value if math.isfinite(value) else None

    def on_start(self, state) -> None:
        self.first = state.step + 1

    def on_step(self, state, loss: Tensor) -> None:
        step = state.step
        if step % self.every:
            return
        self.check_loss(step, loss.item())
        if self.wants_grads(step):
            grads = [p.grad.abs().sum() for p in self.params if p.grad is not None]
            if grads:  # gradient-free optimizers have none
                self.check_grads(step, torch.stack(grads).sum().item())

    @staticmethod
    def stack_step(members: list, stack) -> dict:
        """on_step for many networks trained as one stack ((row, state, guard) each): the losses read from the
        device once for all, the gradients summed in one reduction when a guard asks; each guard judges its own.
        Returns {row: Diverged} for the networks to stop at this step."""
        sums = None
        stopped = {}
        for row, state, guard in members:
            step = state.step
            if step % guard.every:
                continue
            try:
                guard.check_loss(step, stack.losses()[row])
                if guard.wants_grads(step):
                    sums = sums if sums is not None else stack.grad_sums()
                    guard.check_grads(step, sums[row])
            except Diverged as err:
                stopped[row] = err
        return stopped

    def state_dict(self) -> dict:
        return {
            "reference": self.reference,
            "above": list(self.above),
            "zero_since": self.zero_since,
            "status_fields": dict(self.status_fields),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.reference, self.zero_since = saved["reference"], saved["zero_since"]
        self.above.extend(saved["above"])
        self.status_fields = dict(saved["status_fields"])

    # --- the rules --------------------------------------------------------------------------------------
    def check_loss(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            raise Diverged(step, "the loss")
        self.last = value
        if self.reference is None:
            self.reference = value  # no validation split: the first step's loss is the scale
        if self.explode_factor is None or self.reference == 0:
            return
        limit = self.explode_factor * abs(self.reference)
        self.above.append(value > limit)
        if 2 * sum(self.above) >= self.explode_window:
            raise Diverged(
                step,
                f"the loss ({value:.3g})",
                f"was above {self.explode_factor:g} x its start ({self.reference:.3g}) at "
                f"{sum(self.above)} of the last {len(self.above)} steps",
            )

    def wants_grads(self, step: int) -> bool:
        suspect = self.zero_since is not None and "stalled_at_step" not in self.status_fields
        return step % max(self.every, GRADS_EVERY) == 0 or step == self.first or (suspect and bool(self.stall_steps))

    def check_grads(self, step: int, total: float) -> None:
        """`total`: the sum of |gradient| over every parameter at this step."""
        if not math.isfinite(total):
            raise Diverged(step, "a gradient")
        if total != 0:
            self.zero_since = None
            return
        if self.zero_since is None:
            self.zero_since = step
        if (
            self.stall_steps
            and "stalled_at_step" not in self.status_fields
            and step - self.zero_since + 1 >= self.stall_steps
        ):
            if (
                self.stuck_factor
                and self.reference
                and self.last is not None
                and self.last > self.stuck_factor * abs(self.reference)
            ):
                raise Diverged(
                    step,
                    f"the loss ({self.last:.3g})",
                    f"stayed above {self.stuck_factor:g} x its start ({self.reference:.3g}) while every "
                    f"gradient was exactly 0 for {self.stall_steps} steps: the updates threw the network "
                    "into saturation, where nothing moves any more",
                )
            self.status_fields["stalled_at_step"] = self.zero_since
            if self.notice is not None:
                self.notice(
                    f"stalled at step {self.zero_since}: every gradient has been exactly 0 for "
                    f"{self.stall_steps} steps, so nothing changes (a symmetric start such as "
                    "initializer=zeros? units that never fire?); the run goes on."
                )
