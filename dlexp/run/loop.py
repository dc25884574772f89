"""The training loop. It receives objects, never config, and does not know which optimizer family it drives."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch: int = 0  # batches done in the current epoch (resume position)
    loss_sum: Tensor | None = None  # running sum of this epoch's step losses, kept on the device
    stop: str | None = None  # set asynchronously (a signal): "interrupted" / "terminated"
    metrics: dict[str, float] = field(default_factory=dict)  # the latest epoch metrics


@dataclass(frozen=True)
class Schedule:
    """How long the loop runs, when it evaluates, and which steps it captures (histograms, pictures)."""

    epochs: int
    steps_per_epoch: int
    eval_every: int = 1  # epochs between evaluations; the last epoch is always evaluated
    capture_every: int = 0  # optimizer steps between captures; 0: only at evaluated epochs

    def evaluates(self, epoch: int) -> bool:
        return epoch % self.eval_every == 0 or epoch == self.epochs

    @property
    def captures_epochs(self) -> bool:
        """Evaluated epochs are captured too, except when an epoch is one step (full batch) and capture_every
        is set: then epochs are steps, and capture_every alone says how often (plus the start and the end)."""
        return self.capture_every <= 0 or self.steps_per_epoch > 1

    def captures_step(self, step: int) -> bool:
        return self.capture_every > 0 and step % self.capture_every == 0

    def captures_epoch(self, epoch: int) -> bool:
        return (self.captures_epochs and self.evaluates(epoch)) or epoch == self.epochs

    def captures_next(self, state: TrainState) -> bool:
        """Will the step about to be taken be captured (after it, or at the end of the epoch it completes)?"""
        if self.captures_step(state.step + 1):
            return True
        return state.batch + 1 >= self.steps_per_epoch and self.captures_epoch(state.epoch + 1)


class Stop(Exception):
    """Raised by an observer to end the run at this step (the divergence guard). The step is captured first, so
    the histograms show the network as it was when the run stopped."""


class Observer(Protocol):
    """Small objects the loop notifies; adding one never edits the loop. All methods are optional.

    What an observer carries across a resume it says with `state_dict()` / `load_state_dict(saved)` (the checkpoint
    keeps it). Many networks trained as one stack (dlexp/stacked/loop.py) call the same methods per network, except
    where the observer's class offers a form for many networks at once, which the stack calls once with all its
    members, (row, state, observer) each, and its view of the stack (`StackView`), and which returns {row: error}
    for the networks to stop: `stack_step` for on_step, `stack_capture_next`, `stack_capture`. Both loops know only
    these names, never an observer's class or fields.

    A stack keeps its networks' numbers in its own tensors and writes a network's back into its model and optimizer
    before on_epoch only when an observer of it will read them there (a checkpoint): `epoch_reads_model(state)`
    says whether on_epoch at this state does; an observer without it is taken to read them.
    """

    def on_start(self, state: TrainState) -> None: ...
    def on_step(self, state: TrainState, loss: Tensor) -> None: ...
    def on_epoch(self, state: TrainState, metrics: dict[str, float]) -> None: ...
    def on_capture_next(self, state: TrainState) -> None: ...  # the step about to be taken will be captured
    def on_capture(self, state: TrainState) -> None: ...  # a captured step (the schedule decides)
    def on_end(self, state: TrainState, status: str) -> None: ...
    def epoch_reads_model(self, state: TrainState) -> bool: ...  # on_epoch at this state reads weights / optimizer


def epoch_reads_model(observers: Iterable[object], state: TrainState) -> bool:
    """Will on_epoch at this state read the network's weights or its optimizer's state (Observer.epoch_reads_model)?"""
    for observer in observers:
        if hasattr(observer, "on_epoch"):
            reads = getattr(observer, "epoch_reads_model", None)
            if reads is None or reads(state):
                return True
    return False


def notify(observers: Iterable[object], event: str, *args: Any) -> None:
    for observer in observers:
        method = getattr(observer, event, None)
        if method is not None:
            method(*args)


def clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """What `Optimizer.zero_grad()` does by default (set_to_none=True), without its profiler and compiler
    wrappers, which cost 10-20 us a call on a CPU: as much as a tiny network's forward pass."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def fit(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    batches,
    schedule: Schedule,
    evaluate: Callable[[TrainState], dict[str, float]],
    observers: Sequence[object] = (),  # each offers any of Observer's methods
    scheduler=None,
    state: TrainState | None = None,
) -> TrainState:
    """Run epochs until `schedule.epochs` are done or `state.stop` is set. Observers may raise to stop the run."""
    state = state or TrainState()
    notify(observers, "on_start", state)
    on_step = [o.on_step for o in observers if hasattr(o, "on_step")]  # looked up once, called every step
    ahead = [o.on_capture_next for o in observers if hasattr(o, "on_capture_next")]
    capturing = [o for o in observers if hasattr(o, "on_capture")]
    captured = -1

    def capture() -> None:
        nonlocal captured
        if capturing and state.step != captured:  # never twice at one step (a step can end an epoch)
            captured = state.step
            notify(capturing, "on_capture", state)

    zero_grad = (
        optimizer.zero_grad
        if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad
        else lambda: clear_grads(optimizer)
    )
    if state.step == 0:  # the start: the fresh network (a resumed run's earlier attempt captured its steps)
        capture()
    model.train()
    try:
        while state.epoch < schedule.epochs and not state.stop:
            for xb, yb in batches.epoch(state.epoch, start=state.batch):

                def closure() -> Tensor:
                    loss = loss_fn(model(xb), yb)
                    if torch.is_grad_enabled():  # gradient-free optimizers call the closure under no_grad
                        zero_grad()
                        loss.backward()
                    return loss

                if ahead and schedule.captures_next(state):
                    for observe in ahead:
                        observe(state)
                loss = cast(Tensor, optimizer.step(closure))  # type: ignore[arg-type]  # torch types a closure's loss as float: it is the loss Tensor
                state.step += 1
                state.batch += 1
                # the epoch's loss is summed on the device: no host sync per step
                state.loss_sum = loss.detach().clone() if state.loss_sum is None else state.loss_sum + loss.detach()
                for observe in on_step:
                    observe(state, loss)
                if capturing and schedule.captures_step(state.step):
                    capture()
                if state.stop:
                    break
            if state.stop:
                break
            state.epoch += 1
            epoch_loss, steps = state.loss_sum, state.batch
            if epoch_loss is None:
                raise RuntimeError(f"Epoch {state.epoch} took no step: its batches are empty.")
            state.batch, state.loss_sum = 0, None  # observers (a checkpoint) see a clean epoch boundary
            if scheduler is not None:
                scheduler.step()
            if schedule.evaluates(state.epoch):
                state.metrics = {"train/loss": (epoch_loss / max(steps, 1)).item(), **evaluate(state)}
                notify(observers, "on_epoch", state, state.metrics)
                if schedule.captures_epoch(state.epoch):
                    capture()
    except Stop:
        with contextlib.suppress(Exception):  # a capture tripping over wrecked weights must not hide the stop
            capture()
        raise
    return state
