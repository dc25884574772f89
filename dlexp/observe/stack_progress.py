"""What a person watching a stack of jobs train sees (`hydra/launcher=vectorized`): one live line per stack on a
terminal, one plain line every few seconds otherwise, and each job that diverges or fails named when it happens.

    stack of 64: epoch 3,200/10,001  61 running, 1 diverged, 2 finished  loss best 0.0123 median 0.693  0:07 left

One `StackProgress` serves every job of a stack: the same object stands in each job's observer list, so the stacked
loop calls its `stack_step` once a step with every job still training (dlexp/stacked/loop.py). It reads what the
stack offers: the step's losses, read from the device once for all, and why a job left early (`StackView.error`).
A job's stall is named by its own guard (dlexp/observe/guard.py), with the job's name, as it happens.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from dlexp.observe.guard import Diverged

PLAIN_SECS = 5.0  # between two plain lines (not a terminal)
LIVE_SECS = 0.25  # between two refreshes of the live line (a terminal)
MIN_PACE_SECS = 1.0  # of steps timed before the time left is told


class StackProgress:
    """Observer shared by the jobs of one stack: `names`, `states` (their TrainStates, the objects the loop
    advances), `epochs` and `steps_per_epoch` per job, in the stack's job order. `live`: a rich live line (a
    terminal), else plain lines every `every` seconds."""

    def __init__(
        self,
        console: Console,
        names: Sequence[str],
        states: Sequence[Any],
        epochs: Sequence[int],
        steps_per_epoch: Sequence[int],
        live: bool,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.console, self.names, self.states = console, list(names), list(states)
        self.epochs, self.steps_per_epoch = list(epochs), list(steps_per_epoch)
        self.every = every if every is not None else (LIVE_SECS if live else PLAIN_SECS)
        self.clock = clock
        self.job = {id(state): j for j, state in enumerate(self.states)}
        self.running: set[int] = set(range(len(self.states)))  # jobs still in the stack
        self.ended: dict[int, str] = {}  # job -> finished / diverged / failed / stopped
        self.losses: dict[int, float] = {}  # job -> its last step loss read
        self.started: float | None = None
        self.first_step = min((s.step for s in self.states), default=0)
        self.due = 0.0
        self.view: Any = None  # the stack's StackView, once seen
        self.closed = False
        self.live = None
        if live:
            from rich.live import Live

            self.live = Live(Text(""), console=console, refresh_per_second=4, transient=False)

    # --- observer protocol (per job) ------------------------------------------------------------------
    def on_start(self, state) -> None:
        if self.live is not None and not self.live.is_started:
            self.live.start()

    def on_step(self, state, loss) -> None:
        """A job's own step: nothing (the loop calls `stack_step` for all of them instead)."""

    # --- once a step, for every job still training --------------------------------------------------------
    @staticmethod
    def stack_step(members: list, stack) -> dict:
        """on_step for the stack ((row, state, progress) each; every member shares one progress)."""
        progress = members[0][2]
        progress.step(members, stack)
        return {}

    def step(self, members: list[tuple[int, Any, Any]], stack) -> None:
        """Once a step, the stack's jobs still training ((row, state, ...) each): the line every `every` seconds."""
        self.view = stack
        if self.started is None:  # the pace is the steps' (the start's captures and checkpoints come before)
            self.started, self.first_step = self.clock(), min(member[1].step for member in members) - 1
        if len(members) != len(self.running):  # jobs only ever leave a stack
            self.leave(self.running - {self.job[id(member[1])] for member in members})
        now = self.clock()
        if now < self.due:
            return
        self.due = now + self.every
        values = stack.losses()  # one host read for the stack, shared with the guard
        self.losses = {self.job[id(member[1])]: values[member[0]] for member in members}
        self.show(now)

    def leave(self, jobs: set[int]) -> None:
        """Jobs that left the stack since the last step: each says why, at once when it ended early."""
        for j in sorted(jobs):
            self.running.discard(j)
            state = self.states[j]
            error = self.view.error(state) if self.view is not None else None
            if error is None and state.epoch >= self.epochs[j]:
                self.ended[j] = "finished"
                continue
            if error is None:
                self.ended[j] = "stopped"
                continue
            self.ended[j] = "diverged" if isinstance(error, Diverged) else "failed"
            colour = "red" if self.ended[j] == "diverged" else "bold red"
            what = str(error) if self.ended[j] == "diverged" else f"failed at step {state.step}: {error}"
            self.print(f"[{colour}]{escape(self.names[j])}: {escape(what)}[/]")

    def on_end(self, state, status: str) -> None:
        """The first job that ends closes the progress: the stack is done by then, and its line comes first."""
        if not self.closed:
            self.close()

    def close(self) -> None:
        """The stack is done: its last line, then the live line stops."""
        self.closed = True
        if self.running:
            self.leave(set(self.running))
        self.show(self.clock(), final=True)
        if self.live is not None:
            self.live.stop()

    # --- the line --------------------------------------------------------------------------------------
    def line(self, now: float) -> str:
        running = [self.states[j] for j in sorted(self.running)]
        total = max(self.epochs, default=0)
        epoch = max((s.epoch for s in running), default=max((s.epoch for s in self.states), default=0))
        counts = [f"{len(self.running)} running"]
        for outcome in ("diverged", "failed", "stopped", "finished"):
            n = sum(1 for e in self.ended.values() if e == outcome)
            if n or outcome in ("diverged", "finished"):
                counts.append(f"{n} {outcome}")
        text = f"stack of {len(self.states)}: epoch {epoch:,}/{total:,}  {', '.join(counts)}"
        losses = [v for j, v in self.losses.items() if j in self.running and v == v]  # finite or inf, not NaN
        if losses:
            text += f"  loss best {min(losses):.4g} median {statistics.median(losses):.4g}"
        left = self.seconds_left(now)
        if left is not None:
            text += f"  {clock_text(left)} left"
        return text

    def seconds_left(self, now: float) -> float | None:
        """The time the slowest job still needs, at the pace of the steps taken so far in this process."""
        if self.started is None or not self.running or now - self.started < MIN_PACE_SECS:
            return None
        done = max(self.states[j].step for j in self.running) - self.first_step
        if done <= 0:
            return None
        remaining = max(self.epochs[j] * self.steps_per_epoch[j] - self.states[j].step for j in self.running)
        return (now - self.started) / done * max(remaining, 0)

    def show(self, now: float, final: bool = False) -> None:
        text = self.line(now)
        if self.live is not None:
            self.live.update(Text(text, overflow="fold"), refresh=True)  # a narrow terminal: two lines, not cut
        elif final or self.started is not None:
            self.console.print(text, highlight=False, soft_wrap=True)

    def print(self, markup: str) -> None:
        """A line above the live one (or among the plain ones)."""
        (self.live.console if self.live is not None else self.console).print(markup, soft_wrap=True)


def clock_text(seconds: float) -> str:
    """'0:07', '12:30', '1:02:03'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
