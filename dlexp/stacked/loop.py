"""The training loop of a stack: `dlexp.run.loop.fit` for N jobs at once, each job living its own life.

Per job, the bookkeeping and the notifications are those of `loop.fit` with that job's own `Schedule`: one
`TrainState` and one observer list per job, on_start, a capture at the start, on_capture_next before a step its
schedule captures, on_step(state, that job's 0-d loss), on_capture after a captured step, on_epoch(state, metrics)
at its evaluated epochs followed by the epoch's capture, the job's own scheduler stepped at each epoch end (on_end
is the caller's). A job leaves the stack when it has done its epochs, when its loss or gradients stop being finite
(the DivergenceGuard's rule, applied once for the whole stack: the job ends with `Diverged` at its own step), when
an observer raises, or when its `state.stop` is set; it is written back into its own model and optimizer as it
leaves, and the others carry on unchanged. A job stopped by its guard is captured at that step first, as
`loop.fit` captures a run that diverges.

Some observers' work is done once for the whole stack (`SHARED`), each job still getting its own numbers: the
guard's rules (the losses read once, each job's own guard judging its own); a checkpoint by time (the job's weights,
optimizer state and loss sum written back first); the histogram capture (one pass over the stack, one host read, each job's `Histograms.write`); the
step-loss scalar (one host read, each job's `ScalarLogger.step_loss`); the model over the pictures' grids (one
batched pass, each job's `Pictures.paint`). Any other observer is called per job; one that reads the model at a
capture finds the job's own parameters written back first.

The per-step work that is not the stack's tensors is a few attribute updates per job; decisions that depend on a
job's step (guard, scalars, captures) are taken once when the jobs' steps and schedules agree, as they do in a
fresh sweep; the losses are read from the device once per step for the whole group, and only when something
looks at them.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlexp.run.checkpoint import Checkpointer
from dlexp.run.loop import Schedule, Stop, TrainState, notify
from dlexp.observe.guard import DivergenceGuard
from dlexp.observe.histograms import Histograms
from dlexp.observe.pictures import Pictures
from dlexp.observe.tensorboard import ScalarLogger
from dlexp.stacked import histograms as stacked_histograms
from dlexp.stacked import pictures as stacked_pictures
from dlexp.stacked.group import StackedGroup

# Observers whose work the stack does once for all its jobs: class -> the methods never called per job.
SHARED = {DivergenceGuard: ("on_step",), Histograms: ("on_capture_next", "on_capture"), ScalarLogger: ("on_step",),
          Pictures: ("on_capture",), Checkpointer: ("on_step",)}


@dataclass
class Outcome:
    """How a job's training ended: its state, and what stopped it early (None: completed, or `state.stop`)."""

    state: TrainState
    error: BaseException | None = None       # Stop (Diverged), or the exception one of its observers raised


def fit_stacked(group: StackedGroup, states: Sequence[TrainState] | None = None,
                observers: Sequence[Sequence] | None = None, schedules: Sequence[Schedule] | None = None,
                stop=None, sync_on_epoch: bool = True) -> list[Outcome]:
    """Train every job of `group` until it has done its schedule's epochs or stops; one Outcome per job.

    states / observers / schedules: per job, in job order (as `loop.fit` takes them for one run); without
    schedules, each job trains `exp.epochs` epochs, evaluated after each one, captured at the start and the end.
    stop: an object whose `.stop` (set by `signals.stop_on_signals(stop)`) stops every job at its next step.
    sync_on_epoch: write a job's parameters and optimizer state into its own model and optimizer before its
    on_epoch observers run (they may save a checkpoint or read the weights); its gradients are written as it leaves.
    All jobs still training must stand at the same batch of their epoch (`plan_groups(states=...)` keys on it).
    """
    return _Fit(group, states, observers, schedules, stop, sync_on_epoch).run()


def _own(observer, method: str) -> bool:
    """Does the job's loop call this method of the observer (rather than the stack, once for all)?"""
    return hasattr(observer, method) and method not in SHARED.get(type(observer), ())


def _first(observers, kind):
    return next((o for o in observers if type(o) is kind), None)


class _Fit:
    def __init__(self, group, states, observers, schedules, stop, sync):
        n = len(group.exps)
        self.group, self.stop, self.sync = group, stop, sync
        self.states = list(states) if states is not None else [TrainState() for _ in range(n)]
        self.observers = [list(o) for o in observers] if observers is not None else [[] for _ in range(n)]
        self.schedules = list(schedules) if schedules is not None else \
            [Schedule(int(e.epochs), len(e.batches)) for e in group.exps]
        self.epochs = [s.epochs for s in self.schedules]
        self.outcomes = [Outcome(s) for s in self.states]
        # each job's guard judges its own losses, read once for the stack; its `every` says how often
        self.guards = [_first(obs, DivergenceGuard) for obs in self.observers]
        self.checkpointers = [_first(obs, Checkpointer) for obs in self.observers]
        self.own_rng = [next((o for o in obs if type(o).__name__ == "OwnRng"), None) for obs in self.observers]
        self.hist = [_first(obs, Histograms) for obs in self.observers]
        self.pictures = [_first(obs, Pictures) for obs in self.observers]
        self.logger = [_first(obs, ScalarLogger) for obs in self.observers]
        self.on_step = [[o.on_step for o in obs if _own(o, "on_step")] for obs in self.observers]
        self.ahead = [[o for o in obs if _own(o, "on_capture_next")] for obs in self.observers]
        self.capturing = [[o for o in obs if _own(o, "on_capture")] for obs in self.observers]
        self.on_epoch = [any(hasattr(o, "on_epoch") for o in obs) for obs in self.observers]
        self.captured = [-1] * n                 # per job: the step last captured (never twice at one step)
        self.previous: tuple[list[int], list[float]] | None = None  # the last step's jobs and losses (the guard's)
        self.before: list | None = None          # stacked weights kept before a captured step (update ratios)
        self.before_step = [-1] * n              # per job: the step whose result `before` precedes
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
        self.rows()
        self.capture([r for r, j in enumerate(group.jobs)                      # the start: the fresh networks
                      if self.outcomes[j].error is None and states[j].step == 0])
        if self.stop is not None and self.stop.stop:             # stopped before the first step: none is taken
            for state in states:
                state.stop = state.stop or self.stop.stop
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
        jobs = group.jobs
        self.row_states = [states[j] for j in jobs]
        # every row steps at once, so steps that agree now agree until the stack changes again
        lockstep = len({(s.step, s.epoch) for s in self.row_states}) == 1
        # the same schedule for every job: one decision per step and per epoch for all
        self.same = lockstep and len({(self.schedules[j], self.epochs[j]) for j in jobs}) == 1
        self.guarded = [(r, j, self.guards[j]) for r, j in enumerate(jobs) if self.guards[j] is not None]
        self.saving = [(r, j, self.checkpointers[j]) for r, j in enumerate(jobs) if self.checkpointers[j] is not None]
        self.logged = [(r, self.logger[j]) for r, j in enumerate(jobs) if self.logger[j] is not None]
        self.same_logged = lockstep and len({lg.every for _, lg in self.logged}) == 1
        self.watched = [r for r, j in enumerate(jobs)
                        if self.hist[j] is not None or self.pictures[j] is not None or self.capturing[j]]
        self.looking_ahead = [r for r, j in enumerate(jobs) if self.hist[j] is not None or self.ahead[j]]
        self.probe = stacked_histograms.probe(group) if any(self.hist[j] is not None for j in jobs) else None
        self.schedulers = [group.exps[j].scheduler for j in jobs if group.exps[j].scheduler is not None]
        self.observed = [(r, j) for r, j in enumerate(jobs) if self.on_step[j]]
        # only a job's own observers (or a signal) set its state.stop while it trains
        self.may_stop = any(self.on_step[j] or self.ahead[j] or self.capturing[j] for j in jobs)
        if self.row_states[0].batch:
            self.point_sums()

    def point_sums(self) -> None:
        """state.loss_sum of the jobs whose observers may look at it: views that follow the sums in place.
        The others get theirs when they leave the stack (the sum is what a checkpoint saves mid-epoch)."""
        views = self.sums.unbind(0)
        for r, _ in self.observed:
            self.row_states[r].loss_sum = views[r]

    def due(self, rows: list[int], when) -> list[int]:
        """The rows for which `when(schedule, state)` holds: one decision when the jobs agree."""
        if not rows:
            return []
        if self.same:
            r = rows[0]
            return list(rows) if when(self.schedules[self.group.jobs[r]], self.row_states[r]) else []
        jobs = self.group.jobs
        return [r for r in rows if when(self.schedules[jobs[r]], self.row_states[r])]

    def step(self, x, y) -> None:
        group, rows = self.group, self.row_states
        leaving: dict[int, None] = {}
        ahead = self.due(self.looking_ahead, Schedule.captures_next)
        if ahead:
            self.capture_next(ahead, leaving)
            if leaving:                                           # an observer raised before the step
                self.leave(list(leaving))
                if not group.jobs:
                    return
                leaving, rows = {}, self.row_states
        losses = group.train_step(x, y)                            # (N,)
        self.sums.add_(losses)                                     # 0 + l1 + l2 ...: the single run's sum
        if rows[0].batch == 0 and self.observed:                   # the epoch's first step: loss_sum starts
            self.point_sums()
        for state in rows:
            state.step += 1
            state.batch += 1
        values = self.guard(losses, leaving) if self.guarded else None
        if self.saving:
            self.checkpoint(leaving)
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
        if self.logged:
            self.step_scalars(losses, values, leaving)
        if self.watched:
            self.capture([r for r in self.due(self.watched, lambda s, st: s.captures_step(st.step))
                          if group.jobs[r] not in leaving], leaving)
        flag = self.stop.stop if self.stop is not None else None
        if flag or self.may_stop:
            for r, state in enumerate(rows):
                if flag and not state.stop:
                    state.stop = flag
                if state.stop:
                    leaving[group.jobs[r]] = None
        if leaving:
            self.leave(list(leaving))

    def guard(self, losses, leaving: dict) -> list[float]:
        """DivergenceGuard.on_step for every guarded job: each job's own guard judges its loss (read back once for
        the stack) and, when it asks, its gradients (one reduction for the stack). A job it stops is captured at
        that step, then leaves. Returns the losses read back."""
        rows, jobs = self.row_states, self.group.jobs
        values = losses.tolist()                                   # the one host read of this step's losses
        sums = None
        stopped = []
        previous, self.previous = self.previous, (list(jobs), values)
        for r, j, guard in self.guarded:
            step = rows[r].step
            if step % guard.every:
                continue
            try:
                guard.check_loss(step, values[r])
                if guard.wants_grads(step):
                    if sums is None:
                        sums = self.group.grad_sums().tolist()
                    guard.check_grads(step, sums[r])
            except Stop as err:
                self.outcomes[j].error = err
                stopped.append(r)
        if stopped:
            with contextlib.suppress(Exception):  # a capture tripping over wrecked weights must not hide the stop
                self.capture(stopped)
            for r in stopped:
                j = jobs[r]
                leaving[j] = None
                if self.logger[j] is not None and previous is not None and j in previous[0]:
                    # what its ScalarLogger saw last alone: the loss of the step before the guard stopped it
                    self.logger[j].last = (rows[r].step - 1, torch.tensor(previous[1][previous[0].index(j)]))
        return values

    def checkpoint(self, leaving: dict) -> None:
        """Checkpointer.on_step for every job whose save by time is due (one clock read a step): the job's
        weights, optimizer state and loss sum so far written back into its own objects first."""
        now = time.monotonic()
        due = [(r, j, saver) for r, j, saver in self.saving if now >= saver.due and j not in leaving]
        for r, j, saver in due:
            state = self.row_states[r]
            self.group.write_back(r, grads=False)
            state.loss_sum = self.sums[r].clone()
            if self.own_rng[j] is not None:
                self.own_rng[j].restore()
            self.call(j, lambda: saver.on_step(state, None), leaving)

    def step_scalars(self, losses, values: list[float] | None, leaving: dict) -> None:
        """ScalarLogger.on_step for every job: train/step_loss every `every` steps, one host read for all."""
        rows = self.row_states
        if self.same_logged:
            r0, logger0 = self.logged[0]
            due = self.logged if rows[r0].step % logger0.every == 0 else []
        else:
            due = [(r, lg) for r, lg in self.logged if rows[r].step % lg.every == 0]
        jobs = self.group.jobs
        for r, logger in due:
            j = jobs[r]
            if j in leaving:
                continue
            if values is None:
                values = losses.tolist()
            try:
                logger.step_loss(rows[r].step, values[r])
            except Exception as err:  # noqa: BLE001
                self.outcomes[j].error = err
                leaving[j] = None

    def capture_next(self, rows: list[int], leaving: dict) -> None:
        """The step about to be taken is captured for these rows: keep the weights before it (update ratios) and
        tell the jobs' own on_capture_next observers."""
        jobs = self.group.jobs
        kept = [r for r in rows if self.hist[jobs[r]] is not None]
        if kept:
            self.before = stacked_histograms.snapshot(self.group)
            for r in kept:
                self.before_step[jobs[r]] = self.row_states[r].step + 1
        for r in rows:
            j = jobs[r]
            if self.ahead[j]:
                try:
                    notify(self.ahead[j], "on_capture_next", self.row_states[r])
                except Exception as err:  # noqa: BLE001
                    self.outcomes[j].error = err
                    leaving[j] = None

    def capture(self, rows: list[int], leaving: dict | None = None) -> None:
        """A captured step for these rows: every job's histograms from one pass over the stack (one host read),
        every job's pictures from one pass over the grids, then each job's other capture observers, which find the
        job's own parameters written back."""
        group, jobs = self.group, self.group.jobs
        rows = [r for r in rows if self.captured[jobs[r]] != self.row_states[r].step]
        if not rows:
            return
        for r in rows:
            self.captured[jobs[r]] = self.row_states[r].step
        hist_rows = [r for r in rows if self.hist[jobs[r]] is not None]
        if hist_rows:
            with_ratios = [r for r in hist_rows if self.before_step[jobs[r]] == self.row_states[r].step]
            ratios = stacked_histograms.update_ratios(group, self.before) if with_ratios else None
            skipped = set.intersection(*(set(self.hist[jobs[r]].skipped) for r in hist_rows))  # no row writes
            uses, values = stacked_histograms.capture(group, self.probe, ratios=ratios, skipped=skipped)
            for r in hist_rows:
                j = jobs[r]
                own_uses, own = (uses, values[r]) if ratios is None or r in with_ratios else \
                    stacked_histograms.without(uses, values[r], "update_ratio/")
                self.call(j, lambda: self.hist[j].write(own, own_uses, self.row_states[r].step), leaving)
        by_step: dict[int, list] = {}
        for r in rows:
            if self.pictures[jobs[r]] is not None:
                by_step.setdefault(self.row_states[r].step, []).append((r, self.pictures[jobs[r]]))
        for step, painters in by_step.items():
            for r, err in stacked_pictures.paint(group, painters, step).items():
                self.fail(jobs[r], err, leaving)
        for r in rows:
            j = jobs[r]
            if self.capturing[j] and self.outcomes[j].error is None:
                group.write_back(r, optimizer=False)
                self.call(j, lambda: notify(self.capturing[j], "on_capture", self.row_states[r]), leaving)

    def call(self, j: int, fn, leaving: dict | None) -> None:
        """An observer call for job j: what it raises ends that job alone."""
        try:
            fn()
        except Exception as err:  # noqa: BLE001
            self.fail(j, err, leaving)

    def fail(self, j: int, err: BaseException, leaving: dict | None) -> None:
        self.outcomes[j].error = err
        if leaving is not None:
            leaving[j] = None

    def end_epoch(self) -> list[int]:
        """Epoch bookkeeping, schedulers, evaluation, on_epoch and the epoch's capture, as `loop.fit` does after
        an epoch's batches.

        Returns the jobs that are done.
        """
        group, rows = self.group, self.row_states
        steps = rows[0].batch
        for state in rows:
            state.epoch += 1
            state.batch, state.loss_sum = 0, None
        everyone = range(len(rows))
        due = self.due(everyone, lambda s, st: s.evaluates(st.epoch))
        done = [group.jobs[r] for r in self.due(everyone, lambda s, st: st.epoch >= s.epochs)]
        if self.schedulers:
            with warnings.catch_warnings():
                # the jobs' own optimizers never run step() here: their updates are the stack's
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                for scheduler in self.schedulers:
                    scheduler.step()
            group.optimizer.refresh()
        if not due:
            self.sums.zero_()
            return done
        train_loss = self.sums / max(steps, 1)                                   # (N,)
        self.sums.zero_()
        names, values = group.evaluate()                                         # (metrics, N)
        table = torch.cat([train_loss.unsqueeze(0), values]).tolist()            # one host read for the group
        for r in due:
            j, state = group.jobs[r], self.row_states[r]
            state.metrics = {"train/loss": table[0][r],
                             **{name: table[m + 1][r] for m, name in enumerate(names)}}
            if not self.on_epoch[j]:
                continue
            if self.sync:  # what an epoch's observers read: weights and optimizer state (a checkpoint), not gradients
                group.write_back(r, grads=False)
            self.call(j, lambda: notify(self.observers[j], "on_epoch", state, state.metrics), None)
        captured = [r for r in self.due(due, lambda s, st: s.captures_epoch(st.epoch))
                    if self.outcomes[group.jobs[r]].error is None]
        self.capture(captured)
        for r, j in enumerate(group.jobs):
            if (self.outcomes[j].error is not None or self.row_states[r].stop) and j not in done:
                done.append(j)
        return done

    def leave(self, jobs: list[int]) -> None:
        """Write the leaving jobs back, drop them from the stack, keep the others' loss sums in step."""
        if not jobs:
            return
        for j in jobs:                        # its own tensor from now on, not a view into the stack's sums
            state = self.states[j]
            state.loss_sum = self.sums[self.group.jobs.index(j)].clone() if state.batch else None
        index = self.group.leave(jobs)
        self.sums = self.sums.index_select(0, index) if index is not None else self.sums[:0]
        if self.before is not None and index is not None:
            self.before = [b.index_select(0, index) for b in self.before]
        if self.group.jobs:
            self.rows()
