"""The training loop of a stack: `dlexp.loop.fit` for N jobs at once, each job living its own life.

Per job, the bookkeeping and the notifications are those of `loop.fit`: one `TrainState` and one observer list
per job, on_start, on_step(state, that job's 0-d loss), on_epoch(state, metrics) at evaluated epochs, the
job's own scheduler stepped at each epoch end (on_end is the caller's). A job leaves the stack when it has done
its epochs, when its loss or gradients stop being finite (the DivergenceGuard's rule, applied once for the
whole stack: the job ends with `Diverged` at its own step), when an observer raises, or when its `state.stop`
is set; it is written back into its own model and optimizer as it leaves, and the others carry on unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlexp.loop import TrainState, notify
from dlexp.observe.guard import DivergenceGuard, Diverged
from dlexp.stacked.group import StackedGroup


@dataclass
class Outcome:
    """How a job's training ended: its state, and what stopped it early (None: completed, or `state.stop`)."""

    state: TrainState
    error: BaseException | None = None       # Diverged, or the exception one of its observers raised


def fit_stacked(group: StackedGroup, states: Sequence[TrainState] | None = None,
                observers: Sequence[Sequence] | None = None, eval_every: int | Sequence[int] = 1,
                stop=None, sync_on_epoch: bool = True) -> list[Outcome]:
    """Train every job of `group` until it has done `exp.epochs` epochs or stops; one Outcome per job.

    states / observers / eval_every: per job, in job order (as `loop.fit` takes them for one run).
    stop: an object whose `.stop` (set by `signals.stop_on_signals(stop)`) stops every job at its next step.
    sync_on_epoch: write a job's parameters and optimizer state into its own model and optimizer before its
    on_epoch observers run (they may save a checkpoint or read the weights).
    All jobs still training must stand at the same batch of their epoch (the grouping keys on it).
    """
    n = len(group.exps)
    states = list(states) if states is not None else [TrainState() for _ in range(n)]
    observers = [list(o) for o in observers] if observers is not None else [[] for _ in range(n)]
    every = [int(eval_every)] * n if isinstance(eval_every, int) else [int(e) for e in eval_every]
    epochs = [int(e.epochs) for e in group.exps]
    outcomes = [Outcome(s) for s in states]
    # the guards' rule runs here once for the stack; their `every` says how often, as for one run
    guard_every = [min((o.every for o in obs if isinstance(o, DivergenceGuard)), default=0) for obs in observers]
    on_step = [[o.on_step for o in obs if hasattr(o, "on_step") and not isinstance(o, DivergenceGuard)]
               for obs in observers]

    for j in range(n):
        try:
            notify(observers[j], "on_start", states[j])
        except Exception as err:  # noqa: BLE001  (the job ends; the caller reports it as a single run would)
            outcomes[j].error = err

    def done(j: int) -> bool:
        return outcomes[j].error is not None or bool(states[j].stop) or states[j].epoch >= epochs[j]

    sums = _sums(group, states)                   # (N,) each job's loss sum of the current epoch
    sums = _leave(group, states, sums, [j for j in group.jobs if done(j)])
    if len({states[j].batch for j in group.jobs}) > 1:
        raise ValueError("jobs of one stack must stand at the same batch of their epoch")

    while group.jobs:
        group.batches.begin([states[j].epoch for j in group.jobs])
        for k in range(states[group.jobs[0]].batch, len(group.batches)):
            x, y = group.batches.batch(k)
            losses = group.train_step(x, y)       # (N,)
            sums.add_(losses)                     # 0 + l1 + l2 ...: the single run's sum, on the device
            values: list[float] | None = None     # the one host read of this step's losses
            finite: list[bool] | None = None
            leaving = []
            for r, j in enumerate(group.jobs):
                state = states[j]
                state.step += 1
                state.batch += 1
                if state.loss_sum is None:
                    state.loss_sum = sums[r]      # a view: follows the sum in place
                if guard_every[j] and state.step % guard_every[j] == 0:
                    if values is None:
                        values = losses.tolist()
                    what = None if math.isfinite(values[r]) else "the loss"
                    if what is None and state.step % max(guard_every[j], 50) == 0:
                        if finite is None:
                            finite = group.finite_grads().tolist()
                        what = None if finite[r] else "a gradient"
                    if what is not None:
                        outcomes[j].error = Diverged(state.step, what)
                        leaving.append(j)
                        continue
                try:
                    for observe in on_step[j]:
                        observe(state, losses[r])
                except Exception as err:  # noqa: BLE001
                    outcomes[j].error = err
                    leaving.append(j)
                    continue
                if stop is not None and stop.stop and not state.stop:
                    state.stop = stop.stop
                if state.stop:
                    leaving.append(j)
            if leaving:
                sums = _leave(group, states, sums, leaving)
                if not group.jobs:
                    break
        if not group.jobs:
            break
        sums = _end_epoch(group, states, outcomes, observers, sums, every, epochs, sync_on_epoch)
        sums = _leave(group, states, sums, [j for j in group.jobs if done(j)])
    return outcomes


def _end_epoch(group, states, outcomes, observers, sums, every, epochs, sync: bool):
    """Epoch bookkeeping, schedulers, evaluation and on_epoch, as `loop.fit` does after an epoch's batches."""
    rows = list(group.jobs)
    steps = states[rows[0]].batch
    train_loss = sums / max(steps, 1)                                       # (N,)
    for j in rows:
        state = states[j]
        state.epoch += 1
        state.batch, state.loss_sum = 0, None
    stepped = False
    with warnings.catch_warnings():
        # the jobs' own optimizers never run step() here: their updates are the stack's
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        for j in rows:
            scheduler = group.exps[j].scheduler
            if scheduler is not None:
                scheduler.step()
                stepped = True
    if stepped:
        group.optimizer.refresh()
    due = [r for r, j in enumerate(rows) if states[j].epoch % every[j] == 0 or states[j].epoch == epochs[j]]
    if due:
        names, values = group.evaluate()                                    # (metrics, N)
        table = torch.cat([train_loss.unsqueeze(0), values]).tolist()       # one host read for the group
        for r in due:
            j = rows[r]
            state = states[j]
            state.metrics = {"train/loss": table[0][r], **{name: table[m + 1][r] for m, name in enumerate(names)}}
            if sync:
                group.write_back(r)
            try:
                notify(observers[j], "on_epoch", state, state.metrics)
            except Exception as err:  # noqa: BLE001
                outcomes[j].error = err
    return torch.zeros_like(sums)


def _sums(group: StackedGroup, states) -> torch.Tensor:
    """(N,) loss sums of the current epoch, starting from those restored with the jobs' states."""
    sums = torch.zeros(group.size, device=group.device)
    for r, j in enumerate(group.jobs):
        if states[j].loss_sum is not None:
            sums[r] = states[j].loss_sum.to(group.device)
            states[j].loss_sum = sums[r]
    return sums


def _leave(group: StackedGroup, states, sums: torch.Tensor, jobs: list[int]) -> torch.Tensor:
    """Write the leaving jobs back, drop them from the stack, and keep the others' loss sums in step."""
    if not jobs:
        return sums
    for j in jobs:
        if states[j].loss_sum is not None:       # its own tensor from now on, not a view into the stack's
            states[j].loss_sum = states[j].loss_sum.clone()
    index = group.leave(jobs)
    if index is None:
        return sums[:0]
    sums = sums.index_select(0, index)
    for r, j in enumerate(group.jobs):
        if states[j].loss_sum is not None:
            states[j].loss_sum = sums[r]
    return sums
