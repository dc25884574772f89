"""The training loop of a stack: `dlexp.loop.fit` for N jobs at once, each job living its own life.

Per job, the bookkeeping and the notifications are those of `loop.fit`: one `TrainState` and one observer list
per job, on_start, on_step(state, that job's 0-d loss), on_epoch(state, metrics) at evaluated epochs, the
job's own scheduler stepped at each epoch end (on_end is the caller's). A job leaves the stack when it has done
its epochs, when its loss or gradients stop being finite (the DivergenceGuard's rule, applied once for the
whole stack: the job ends with `Diverged` at its own step), when an observer raises, or when its `state.stop`
is set; it is written back into its own model and optimizer as it leaves, and the others carry on unchanged.

The per-step work that is not the stack's tensors is a few attribute updates per job; the losses are read
from the device once per step for the whole group, and only when a guard or an observer looks at them.
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
    All jobs still training must stand at the same batch of their epoch (`plan_groups(states=...)` keys on it).
    """
    return _Fit(group, states, observers, eval_every, stop, sync_on_epoch).run()


class _Fit:
    def __init__(self, group, states, observers, eval_every, stop, sync):
        n = len(group.exps)
        self.group, self.stop, self.sync = group, stop, sync
        self.states = list(states) if states is not None else [TrainState() for _ in range(n)]
        self.observers = [list(o) for o in observers] if observers is not None else [[] for _ in range(n)]
        self.every = [int(eval_every)] * n if isinstance(eval_every, int) else [int(e) for e in eval_every]
        self.epochs = [int(e.epochs) for e in group.exps]
        self.outcomes = [Outcome(s) for s in self.states]
        # the guards' rule runs here once for the stack; their `every` says how often, as for one run
        self.guard_every = [min((o.every for o in obs if isinstance(o, DivergenceGuard)), default=0)
                            for obs in self.observers]
        self.on_step = [[o.on_step for o in obs if hasattr(o, "on_step") and not isinstance(o, DivergenceGuard)]
                        for obs in self.observers]
        self.on_epoch = [any(hasattr(o, "on_epoch") for o in obs) for obs in self.observers]
        self.sums = torch.zeros(0)

    def run(self) -> list[Outcome]:
        group, states = self.group, self.states
        for j, state in enumerate(states):
            try:
                notify(self.observers[j], "on_start", state)
            except Exception as err:  # noqa: BLE001  (the job ends; the caller reports it as a single run would)
                self.outcomes[j].error = err
        self.sums = torch.zeros(group.size, device=group.device)   # (N,) each job's loss sum of this epoch
        for r, j in enumerate(group.jobs):                         # restored mid-epoch: its sum so far
            if states[j].loss_sum is not None:
                self.sums[r] = states[j].loss_sum.to(group.device)
        self.leave([j for j in group.jobs if self.done(j)])
        if len({states[j].batch for j in group.jobs}) > 1:
            raise ValueError("jobs of one stack must stand at the same batch of their epoch")
        while group.jobs:
            if group.batches.shuffle:
                group.batches.begin([state.epoch for state in self.row_states])
            for k in range(states[group.jobs[0]].batch, len(group.batches)):
                self.step(*group.batches.batch(k))
                if not group.jobs:
                    return self.outcomes
            self.leave(self.end_epoch())
        return self.outcomes

    def done(self, j: int) -> bool:
        return self.outcomes[j].error is not None or bool(self.states[j].stop) or self.states[j].epoch >= self.epochs[j]

    def rows(self) -> None:
        """Per-row facts of the jobs still in the stack (rebuilt when it changes)."""
        group, states = self.group, self.states
        self.row_states = [states[j] for j in group.jobs]
        self.guarded = [(r, j, self.guard_every[j]) for r, j in enumerate(group.jobs) if self.guard_every[j]]
        # every job guarded, at one interval: one check of the whole step when the jobs' steps agree
        self.same_guard = len(self.guarded) == len(group.jobs) and len({g[2] for g in self.guarded}) == 1
        # the same epoch, evaluation interval and length for all: one decision at each epoch end
        self.same_epochs = len({(states[j].epoch, self.every[j], self.epochs[j]) for j in group.jobs}) == 1
        self.schedulers = [group.exps[j].scheduler for j in group.jobs if group.exps[j].scheduler is not None]
        self.observed = [(r, j) for r, j in enumerate(group.jobs) if self.on_step[j]]
        if self.row_states[0].batch:
            self.point_sums()

    def point_sums(self) -> None:
        """state.loss_sum of the jobs whose observers may look at it: views that follow the sums in place.
        The others get theirs when they leave the stack (the sum is what a checkpoint saves mid-epoch)."""
        views = self.sums.unbind(0)
        for r, _ in self.observed:
            self.row_states[r].loss_sum = views[r]

    def step(self, x, y) -> None:
        losses = self.group.train_step(x, y)                       # (N,)
        self.sums.add_(losses)                                     # 0 + l1 + l2 ...: the single run's sum
        rows = self.row_states
        if rows[0].batch == 0 and self.observed:                   # the epoch's first step: loss_sum starts
            self.point_sums()
        for state in rows:
            state.step += 1
            state.batch += 1
        leaving: dict[int, None] = {}
        if self.guarded:
            self.guard(losses, leaving)
        if self.observed:
            per_job = losses.unbind(0)                             # 0-d views, one call for all
            for r, j in self.observed:
                if j in leaving:
                    continue
                try:
                    for observe in self.on_step[j]:
                        observe(rows[r], per_job[r])
                except Exception as err:  # noqa: BLE001
                    self.outcomes[j].error = err
                    leaving[j] = None
        flag = self.stop.stop if self.stop is not None else None
        for r, state in enumerate(rows):
            if flag and not state.stop:
                state.stop = flag
            if state.stop:
                leaving[self.group.jobs[r]] = None
        if leaving:
            self.leave(list(leaving))

    def guard(self, losses, leaving: dict) -> None:
        """DivergenceGuard.on_step for every guarded job: the loss each `every` steps, gradients less often."""
        rows = self.row_states
        step = rows[0].step
        if self.same_guard and all(state.step == step for state in rows):   # the usual case: one decision
            if step % self.guarded[0][2]:
                return
            values = losses.tolist()                                 # the one host read of this step's losses
            if all(map(math.isfinite, values)) and step % max(self.guarded[0][2], 50):
                return
        else:
            values = losses.tolist()
        finite = None
        for r, j, every in self.guarded:
            step = rows[r].step
            if step % every:
                continue
            what = None if math.isfinite(values[r]) else "the loss"
            if what is None and step % max(every, 50) == 0:
                if finite is None:
                    finite = self.group.finite_grads().tolist()
                what = None if finite[r] else "a gradient"
            if what is not None:
                self.outcomes[j].error = Diverged(step, what)
                leaving[j] = None

    def end_epoch(self) -> list[int]:
        """Epoch bookkeeping, schedulers, evaluation and on_epoch, as `loop.fit` does after an epoch's batches.

        Returns the jobs that are done.
        """
        group, rows = self.group, self.row_states
        train_loss = self.sums / max(rows[0].batch, 1)                       # (N,)
        for state in rows:
            state.epoch += 1
            state.batch, state.loss_sum = 0, None
        if self.same_epochs:
            epoch, j = rows[0].epoch, group.jobs[0]
            due = list(range(len(rows))) if epoch % self.every[j] == 0 or epoch == self.epochs[j] else []
            done = list(group.jobs) if epoch >= self.epochs[j] else []
        else:
            due = [r for r, j in enumerate(group.jobs)
                   if rows[r].epoch % self.every[j] == 0 or rows[r].epoch == self.epochs[j]]
            done = [j for r, j in enumerate(group.jobs) if rows[r].epoch >= self.epochs[j]]
        if self.schedulers:
            with warnings.catch_warnings():
                # the jobs' own optimizers never run step() here: their updates are the stack's
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                for scheduler in self.schedulers:
                    scheduler.step()
            group.optimizer.refresh()
        self.sums.zero_()
        if due:
            names, values = group.evaluate()                                     # (metrics, N)
            table = torch.cat([train_loss.unsqueeze(0), values]).tolist()        # one host read for the group
            for r in due:
                j, state = group.jobs[r], self.row_states[r]
                state.metrics = {"train/loss": table[0][r],
                                 **{name: table[m + 1][r] for m, name in enumerate(names)}}
                if not self.on_epoch[j]:
                    continue
                if self.sync:
                    group.write_back(r)
                try:
                    notify(self.observers[j], "on_epoch", state, state.metrics)
                except Exception as err:  # noqa: BLE001
                    self.outcomes[j].error = err
                if (self.outcomes[j].error is not None or state.stop) and j not in done:
                    done.append(j)
        return done

    def leave(self, jobs: list[int]) -> None:
        """Write the leaving jobs back, drop them from the stack, keep the others' loss sums in step."""
        if jobs:
            for j in jobs:                        # its own tensor from now on, not a view into the stack's sums
                state = self.states[j]
                state.loss_sum = self.sums[self.group.jobs.index(j)].clone() if state.batch else None
            index = self.group.leave(jobs)
            self.sums = self.sums.index_select(0, index) if index is not None else self.sums[:0]
        if self.group.jobs and (jobs or not hasattr(self, "row_states")):
            self.rows()
