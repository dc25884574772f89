"""The training loop of a stack: `dlexp.run.loop.fit` for N jobs at once, each job living its own life.

Per job, the bookkeeping and the notifications are those of `loop.fit` with that job's own `Schedule`: one
`TrainState` and one observer list per job, on_start, a capture at the start, on_capture_next before a step its
schedule captures, on_step after each step, on_capture after a captured step, on_epoch(state, metrics) at its
evaluated epochs followed by the epoch's capture, the job's own scheduler stepped at each epoch end (on_end is the
caller's). A job leaves the stack when it has done its epochs, when an observer stops it (`loop.Stop`: the guard's
`Diverged`, at its own step, captured at that step first as `loop.fit` captures a run that stops) or raises, or
when its `state.stop` is set; it is written back into its own model and optimizer as it leaves, and the others
carry on unchanged.

The observer protocol (dlexp/run/loop.py) lets an observer class do its work for many jobs at once: a class that
defines `stack_step`, `stack_capture_next` or `stack_capture` is called once per step (or capture) with all its
members, (row, state, observer) each, and the stack's `StackView` (losses read once, gradients summed in one
reduction, histograms and pictures from one batched pass, a job's own numbers synced before a save). Every other
observer method is called per job, as alone; one that reads the model at a capture finds the job's own parameters
written back first. This loop names no observer class and reads no observer's fields.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dlexp.run.loop import Schedule, Stop, TrainState, epoch_reads_model, notify
from dlexp.stacked import histograms as stacked_histograms
from dlexp.stacked import pictures as stacked_pictures
from dlexp.stacked.group import StackedGroup

STACK_FORMS = {"on_step": "stack_step", "on_capture_next": "stack_capture_next", "on_capture": "stack_capture"}


@dataclass
class Ending:
    """How a job's training ended: its state, and what stopped it early (None: completed, or `state.stop`)."""

    state: TrainState
    error: BaseException | None = None  # Stop (Diverged), or the exception one of its observers raised


def fit_stacked(
    group: StackedGroup,
    states: Sequence[TrainState] | None = None,
    observers: Sequence[Sequence] | None = None,
    schedules: Sequence[Schedule] | None = None,
    stop=None,
    sync_on_epoch: bool = True,
    rng_states: Sequence[tuple] | None = None,
) -> list[Ending]:
    """Train every job of `group` until it has done its schedule's epochs or stops; one Ending per job.

    states / observers / schedules: per job, in job order (as `loop.fit` takes them for one run); without
    schedules, each job trains `exp.epochs` epochs, evaluated after each one, captured at the start and the end.
    stop: an object whose `.stop` (set by `signals.stop_on_signals(stop)`) stops every job at its next step.
    sync_on_epoch: write a job's parameters and optimizer state into its own model and optimizer before its
    on_epoch observers run, when one of them reads them (`Observer.epoch_reads_model`: a checkpoint save); its
    gradients are written as it leaves.
    rng_states: per job, the global random state its single run holds while it trains (`StackView.sync` sets it).
    All jobs still training must stand at the same batch of their epoch (`plan_groups(states=...)` keys on it).
    """
    return _Fit(group, states, observers, schedules, stop, sync_on_epoch, rng_states).run()


def stack_form(observer, event: str):
    """The observer's class's form of `event` for many jobs at once, or None."""
    return getattr(type(observer), STACK_FORMS[event], None)


class StackView:
    """What the stack offers its jobs' observers at a step, each a job's own numbers from the stack's tensors:
    rows are stack rows (`group.jobs[row]` is the job)."""

    def __init__(self, fit: _Fit):
        self.fit, self.group = fit, fit.group
        self.step_losses: Tensor | None = None  # (N,) this step's losses on the device
        self.values: list[float] | None = None  # the same, read back (once, when asked)
        self.sums: list[float] | None = None  # each row's sum of |gradient|, this step (once, when asked)
        self.before: list[Tensor] | None = None  # the stacked weights before a captured step (update ratios)
        self.before_step: dict[int, int] = {}  # job -> the step `before` precedes
        self.probe: Tensor | None = None  # (N, P, F) the histograms' probe batch of every row

    @property
    def size(self) -> int:
        return self.group.size

    def new_step(self, losses: Tensor) -> None:
        self.step_losses, self.values, self.sums = losses, None, None

    def losses_tensor(self) -> Tensor:
        """(N,) this step's losses on the device."""
        if self.step_losses is None:
            raise RuntimeError("The stack's losses were asked for before its first step.")
        return self.step_losses

    def losses(self) -> list[float]:
        """This step's losses, one per row: one host read for the stack."""
        if self.values is None:
            self.values = self.losses_tensor().tolist()
        return self.values

    def grad_sums(self) -> list[float]:
        """Each row's sum of |gradient| over every parameter: one fused reduction for the stack."""
        if self.sums is None:
            self.sums = self.group.grad_sums().tolist()
        return self.sums

    def sync(self, row: int) -> None:
        """The job in `row` gets its own numbers: its model's parameters and its optimizer's state, its epoch's
        loss sum so far, and the global random state its single run would hold (what a checkpoint saves)."""
        fit, j = self.fit, self.group.jobs[row]
        self.group.write_back(row, grads=False)
        fit.states[j].loss_sum = fit.sums[row].clone()
        fit.set_rng(j)

    def error(self, state: TrainState) -> BaseException | None:
        """What ended the job whose TrainState is `state` early (its guard's Diverged, an observer's exception), or
        None: a job that leaves the stack says why, as it leaves (dlexp/observe/stack_progress.py)."""
        found = next((j for j, s in enumerate(self.fit.states) if s is state), None)
        return None if found is None else self.fit.outcomes[found].error

    def model_of(self, row: int):
        """The job's own model (its architecture and names; its parameters are the stack's until synced)."""
        return self.group.exps[self.group.jobs[row]].model

    def keep_weights(self, rows: list[int]) -> None:
        """Keep the stacked weights before the step about to be taken, for these rows' update ratios."""
        self.before = stacked_histograms.snapshot(self.group)
        for row in rows:
            j = self.group.jobs[row]
            self.before_step[j] = self.fit.states[j].step + 1

    def layer_tensors(self, rows: list[int]):
        """What a histogram capture measures of every row, (N, ...) tensors per layer, and the rows among `rows`
        whose weights were kept before this step (their update ratios are in it)."""
        jobs = self.group.jobs
        with_ratios = {r for r in rows if self.before_step.get(jobs[r]) == self.fit.states[jobs[r]].step}
        ratios = stacked_histograms.update_ratios(self.group, self.before) if with_ratios and self.before else None
        if self.probe is None:
            self.probe = stacked_histograms.probe(self.group)
        return stacked_histograms.layer_tensors(self.group, self.probe, ratios), with_ratios

    def over(self, grids: list[Tensor | None], layers: bool = False) -> tuple[Tensor, list]:
        """The stack over many points: row r's grid for the rows that have one (G, F) each, the first grid for the
        others (their outputs unused): (N, G, out) and, with `layers`, each Linear's (output, activation)."""
        return stacked_pictures.columns(self.group.model, stacked_pictures._inputs(grids, self.size), layers=layers)

    def frozen(self) -> stacked_pictures.Frozen:
        """The stack's networks as they stand now, for `over` on another thread while the stack trains on."""
        return stacked_pictures.Frozen(self.group)

    def leave(self, index: Tensor | None) -> None:
        """Rows left the stack: keep what is kept per row in step with the rows that stay."""
        if self.before is not None and index is not None:
            self.before = [b.index_select(0, index) for b in self.before]
        self.probe = None


class _Fit:
    def __init__(self, group, states, observers, schedules, stop, sync, rng_states):
        n = len(group.exps)
        self.group, self.stop, self.sync = group, stop, sync
        self.states = list(states) if states is not None else [TrainState() for _ in range(n)]
        self.observers = [list(o) for o in observers] if observers is not None else [[] for _ in range(n)]
        self.schedules = (
            list(schedules) if schedules is not None else [Schedule(int(e.epochs), len(e.batches)) for e in group.exps]
        )
        self.rng_states = list(rng_states) if rng_states is not None else None
        self.epochs = [s.epochs for s in self.schedules]
        self.outcomes = [Ending(s) for s in self.states]
        self.on_epoch = [any(hasattr(o, "on_epoch") for o in obs) for obs in self.observers]
        self.captured = [-1] * n  # per job: the step last captured (never twice at one step)
        self.sums = torch.zeros(0)
        self.view = StackView(self)

    def run(self) -> list[Ending]:
        group, states = self.group, self.states
        for j, state in enumerate(states):
            try:
                notify(self.observers[j], "on_start", state)
            except Exception as err:
                self.outcomes[j].error = err
        self.sums = torch.zeros(group.size, device=group.device)  # (N,) each job's loss sum of this epoch
        for r, j in enumerate(group.jobs):  # restored mid-epoch: its sum so far
            if states[j].loss_sum is not None:
                self.sums[r] = states[j].loss_sum.to(group.device)
        self.rows()
        self.capture(
            [
                r
                for r, j in enumerate(group.jobs)  # the start: the fresh networks
                if self.outcomes[j].error is None and states[j].step == 0
            ]
        )
        if self.stop is not None and self.stop.stop:  # stopped before the first step: none is taken
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

    def set_rng(self, j: int) -> None:
        """The global random state job j's single run holds while it trains (its checkpoints record it)."""
        if self.rng_states is not None:
            cpu, cuda = self.rng_states[j]
            torch.set_rng_state(cpu)
            if cuda:
                torch.cuda.set_rng_state_all(cuda)

    def rows(self) -> None:
        """Per-row facts of the jobs still in the stack (rebuilt when it changes): who is called for what."""
        group, states = self.group, self.states
        jobs = group.jobs
        self.row_states = [states[j] for j in jobs]
        # every row steps at once, so steps that agree now agree until the stack changes again
        lockstep = len({(s.step, s.epoch) for s in self.row_states}) == 1
        # the same schedule for every job: one decision per step and per epoch for all
        self.same = lockstep and len({(self.schedules[j], self.epochs[j]) for j in jobs}) == 1
        self.forms = {event: self.stack_forms(event) for event in STACK_FORMS}
        self.own = {
            event: [
                [getattr(o, event) for o in self.observers[j] if hasattr(o, event) and stack_form(o, event) is None]
                for j in jobs
            ]
            for event in STACK_FORMS
        }
        self.stepped = [r for r in range(len(jobs)) if self.own["on_step"][r]]
        self.watched = [r for r, j in enumerate(jobs) if any(hasattr(o, "on_capture") for o in self.observers[j])]
        self.looking_ahead = [
            r for r, j in enumerate(jobs) if any(hasattr(o, "on_capture_next") for o in self.observers[j])
        ]
        self.schedulers = [group.exps[j].scheduler for j in jobs if group.exps[j].scheduler is not None]
        # only a job's own observers (or a signal) set its state.stop while it trains
        self.may_stop = any(self.observers[j] for j in jobs)
        if self.row_states[0].batch:
            self.point_sums()

    def stack_forms(self, event: str) -> list[tuple]:
        """(the class's form of `event` for many jobs, its members (row, state, observer)), one per observer class
        that has one, in the order the jobs' observer lists name the classes."""
        forms: dict[type, list] = {}
        for r, j in enumerate(self.group.jobs):
            for observer in self.observers[j]:
                if hasattr(observer, event) and stack_form(observer, event) is not None:
                    forms.setdefault(type(observer), []).append((r, self.row_states[r], observer))
        return [(getattr(kind, STACK_FORMS[event]), members) for kind, members in forms.items()]

    def point_sums(self) -> None:
        """state.loss_sum of the jobs whose own observers may look at it: views that follow the sums in place.
        The others get theirs when they leave the stack (the sum is what a checkpoint saves mid-epoch)."""
        views = self.sums.unbind(0)
        for r in self.stepped:
            self.row_states[r].loss_sum = views[r]

    def due(self, rows: Sequence[int], when) -> list[int]:
        """The rows for which `when(schedule, state)` holds: one decision when the jobs agree."""
        if not rows:
            return []
        if self.same:
            r = rows[0]
            return list(rows) if when(self.schedules[self.group.jobs[r]], self.row_states[r]) else []
        jobs = self.group.jobs
        return [r for r in rows if when(self.schedules[jobs[r]], self.row_states[r])]

    def call_forms(self, event: str, rows: list[int] | None, leaving: dict) -> None:
        """The observer classes' forms of `event` for the members in `rows` (all rows: None) that are not leaving;
        a member whose observer failed or stopped its job leaves, its later observers not told of this step."""
        jobs = self.group.jobs
        for form, members in self.forms[event]:
            if rows is None and not leaving:  # every member: the list made when the stack last changed
                chosen = members
            else:
                chosen = [m for m in members if jobs[m[0]] not in leaving and (rows is None or m[0] in rows)]
            if not chosen:
                continue
            try:
                failed = form(chosen, self.view)
            except Exception as err:
                failed = {r: err for r, _, _ in chosen}
            for r, error in failed.items():
                self.fail(jobs[r], error, leaving)

    def step(self, x, y) -> None:
        group, rows = self.group, self.row_states
        leaving: dict[int, None] = {}
        ahead = self.due(self.looking_ahead, Schedule.captures_next)
        if ahead:
            self.capture_next(ahead, leaving)
            if leaving:  # an observer raised before the step
                self.leave(list(leaving))
                if not group.jobs:
                    return
                leaving, rows = {}, self.row_states
        losses = group.train_step(x, y)  # (N,)
        self.sums.add_(losses)  # 0 + l1 + l2 ...: the single run's sum
        if rows[0].batch == 0 and self.stepped:  # the epoch's first step: loss_sum starts
            self.point_sums()
        for state in rows:
            state.step += 1
            state.batch += 1
        self.view.new_step(losses)
        self.call_forms("on_step", None, leaving)
        stopped = [r for r, j in enumerate(group.jobs) if isinstance(self.outcomes[j].error, Stop)]
        if stopped:  # a job an observer stopped (its guard: diverged) is captured at that step, as alone
            with contextlib.suppress(Exception):  # a capture tripping over wrecked weights must not hide the stop
                self.capture(stopped)
        if self.stepped:
            per_job = losses.unbind(0)  # 0-d views, one call for all
            for r in self.stepped:
                j = group.jobs[r]
                if j in leaving:
                    continue
                try:
                    for observe in self.own["on_step"][r]:
                        observe(rows[r], per_job[r])
                except Exception as err:
                    self.fail(j, err, leaving)
        if self.watched:
            self.capture(
                [
                    r
                    for r in self.due(self.watched, lambda s, st: s.captures_step(st.step))
                    if group.jobs[r] not in leaving
                ],
                leaving,
            )
        flag = self.stop.stop if self.stop is not None else None
        if flag or self.may_stop:
            for r, state in enumerate(rows):
                if flag and not state.stop:
                    state.stop = flag
                if state.stop:
                    leaving[group.jobs[r]] = None
        if leaving:
            self.leave(list(leaving))

    def capture_next(self, rows: list[int], leaving: dict) -> None:
        """The step about to be taken is captured for these rows: their observers' on_capture_next."""
        self.call_forms("on_capture_next", rows, leaving)
        for r in rows:
            j = self.group.jobs[r]
            if self.own["on_capture_next"][r] and j not in leaving:
                self.call(
                    j, lambda: [observe(self.row_states[r]) for observe in self.own["on_capture_next"][r]], leaving
                )

    def capture(self, rows: list[int], leaving: dict | None = None) -> None:
        """A captured step for these rows: the observer classes' forms for many jobs (one pass over the stack),
        then each job's own capture observers, which find the job's own parameters written back."""
        group, jobs = self.group, self.group.jobs
        rows = [r for r in rows if self.captured[jobs[r]] != self.row_states[r].step]
        if not rows:
            return
        for r in rows:
            self.captured[jobs[r]] = self.row_states[r].step
        self.call_forms("on_capture", rows, leaving if leaving is not None else {})
        for r in rows:
            j = jobs[r]
            if self.own["on_capture"][r] and self.outcomes[j].error is None:
                group.write_back(r, optimizer=False)
                self.call(j, lambda: [observe(self.row_states[r]) for observe in self.own["on_capture"][r]], leaving)

    def call(self, j: int, fn, leaving: dict | None) -> None:
        """An observer call for job j: what it raises ends that job alone."""
        try:
            fn()
        except Exception as err:
            self.fail(j, err, leaving)

    def fail(self, j: int, err: BaseException, leaving: dict | None) -> None:
        if self.outcomes[j].error is None:
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
        train_loss = self.sums / max(steps, 1)  # (N,)
        self.sums.zero_()
        names, values = group.evaluate()  # (metrics, N)
        table = torch.cat([train_loss.unsqueeze(0), values]).tolist()  # one host read for the group
        for r in due:
            j, state = group.jobs[r], self.row_states[r]
            state.metrics = {"train/loss": table[0][r], **{name: table[m + 1][r] for m, name in enumerate(names)}}
            if not self.on_epoch[j]:
                continue
            if self.sync and epoch_reads_model(self.observers[j], state):  # a checkpoint: weights and optimizer
                group.write_back(r, grads=False)
            self.call(j, lambda: notify(self.observers[j], "on_epoch", state, state.metrics), None)
        captured = [
            r
            for r in self.due(due, lambda s, st: s.captures_epoch(st.epoch))
            if self.outcomes[group.jobs[r]].error is None
        ]
        self.capture(captured)
        for r, j in enumerate(group.jobs):
            if (self.outcomes[j].error is not None or self.row_states[r].stop) and j not in done:
                done.append(j)
        return done

    def leave(self, jobs: list[int]) -> None:
        """Write the leaving jobs back, drop them from the stack, keep the others' loss sums in step."""
        if not jobs:
            return
        for j in jobs:  # its own tensor from now on, not a view into the stack's sums
            state = self.states[j]
            state.loss_sum = self.sums[self.group.jobs.index(j)].clone() if state.batch else None
        index = self.group.leave(jobs)
        self.sums = self.sums.index_select(0, index) if index is not None else self.sums[:0]
        self.view.leave(index)
        if self.group.jobs:
            self.rows()
