"""Started runs (`dlexp.run.recipe.start`: run directory, build, observers) trained as one stack, each ended as a single
run ends (`dlexp.run.recipe.end`): the vectorized launcher's training, which knows nothing of Hydra.

    group = [train.start(...) for each job of a stack]        # each job's run directory and observers
    fit_together(group, stop, rng_states)                     # fit_stacked for all, then train.end for each

What differs from a single run is only who does the work in between: the stack trains every job, evaluates every
job, captures every job's histograms in one pass and reads every job's step loss in one host read. Each job's
observers are those of its single run and are told what they are told there (dlexp/stacked/loop.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlexp.run import build, loop
from dlexp.run import recipe as train
from dlexp.stacked.group import StackedGroup
from dlexp.stacked.loop import fit_stacked


class StopFlag:
    """Set by `signals.stop_on_signals(flag)`: every job of the stack stops at its next step."""

    stop: str | None = None


def rng_state() -> tuple:
    """The global random state now (CPU and CUDA), as a checkpoint records it."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


class OwnRng:
    """Observer, first in a stacked job's list: the global random state its single run would hold, set before its
    other observers run at an epoch end and at the end.

    A stackable job draws no random number while it trains (its batches come from its own seeded generator), so
    its single run holds, from the end of its build to the end of the run, the state the build left. A checkpoint
    records that state; with many jobs built in one process, each job's is restored before its checkpoint is saved.
    """

    def __init__(self, state: tuple):
        self.state = state

    def restore(self, *args) -> None:
        cpu, cuda = self.state
        torch.set_rng_state(cpu)
        if cuda:
            torch.cuda.set_rng_state_all(cuda)

    on_epoch = on_end = restore

    def epoch_reads_model(self, state) -> bool:  # the random state is the job's own, not the stack's
        return False


def fit_together(runs: Sequence[train.Started], stop: StopFlag, rng_states: Sequence[tuple] | None = None) -> None:
    """Train started runs (ready, stackable, at the same batch of their epoch) as one stack, then end each one.

    rng_states: per run, the global random state its build left (`rng_state()` right after it).
    """
    runs = list(runs)
    if rng_states is not None:
        for run, state in zip(runs, rng_states):
            run.observers.insert(0, OwnRng(state))
    for shared in build.stack_observers(runs):  # last: a job its guard stops at a step has left when they look
        for run in runs:
            run.observers.append(shared)
    group = StackedGroup([run.exp for run in runs], [run.state for run in runs])
    try:
        fresh = [r for r, run in enumerate(runs) if run.exp.trainable and run.state.step == 0]
        if fresh:  # the start of every curve: the fresh networks at step 0 (also continued from there), at once
            metrics = group.metrics()
            for r in fresh:
                loop.notify(runs[r].observers, "on_epoch", runs[r].state, metrics[r])
        outcomes = fit_stacked(
            group,
            [run.state for run in runs],
            [run.observers for run in runs],
            [run.schedule for run in runs],
            stop=stop,
            rng_states=rng_states,
        )
    except Exception as err:  # the stack itself failed (not one job's observer): each of its jobs failed with it
        for run in runs:
            run.record.attach_log()
            run.stopped_by(err)
            train.end(run)
        return
    for run, outcome in zip(runs, outcomes):
        run.record.attach_log()  # what the job logs from now on goes to its own train.log
        run.state = outcome.state
        if outcome.error is not None:
            run.stopped_by(outcome.error)
        else:
            run.status = outcome.state.stop or "completed"
        train.end(run)


def fit_alone(run: train.Started, stop: StopFlag, rng: tuple | None = None) -> None:
    """A job that cannot join a stack: the single-run loop, then its end. A stop of the sweep stops it too, and
    its own Ctrl-C stops the sweep.

    rng: the global random state its build left (`rng_state()` right after it), which its single run holds when it
    starts training: with many jobs built in one process, set again here (dropout masks, random search draw from it).
    A job continued from its checkpoint already holds the state the checkpoint recorded.
    """
    if rng is not None and run.resume is None:
        OwnRng(rng).restore()
    run.record.attach_log()
    if stop.stop:
        run.state.stop = stop.stop
    train.complete(run)
    if run.status in ("interrupted", "terminated"):
        stop.stop = stop.stop or run.status
