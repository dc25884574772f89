"""Ctrl-C and SIGTERM: a run finishes its step, checkpoints and ends as interrupted / terminated; a sweep starts no
new job. A second signal aborts at once.

A signal only sets flags. For a single run, `stop_on_signals(state)` sets `state.stop`, which the loop reads after
each step. A sweep is stopped for every process working on it, whichever launcher runs its jobs, through a file in
its directory (STOP, holding "interrupted" or "terminated"):

* the process that launches the sweep keeps handlers installed for the whole sweep (`watch_sweep`), and a job
  joins its sweep (`join_sweep`); any of these processes that gets the signal writes the file;
* a job about to start asks `stop_requested()` and does not start; a running job's `SweepStop` observer reads the
  file once a second and stops its run (its own handler does at once when the signal reaches its process);
* `dlexp resume SWEEP_DIR` removes the file and finishes the sweep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from dlexp.run import record

STOP = "STOP"  # in a sweep directory: the sweep was asked to stop (and why)
REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
POLL_SECS = 1.0  # how often a running sweep job looks for the sweep's STOP file

_requested: str | None = None  # this process got a signal: "interrupted" / "terminated"
_sweep_dir: Path | None = None  # the sweep this process works for
_previous: dict | None = None  # handlers watch_sweep replaced


def request_stop(reason: str) -> None:
    """Remember that this process was asked to stop and, in a sweep, tell every process of it."""
    global _requested
    _requested = _requested or reason
    if _sweep_dir is not None and _sweep_dir.is_dir():
        with contextlib.suppress(OSError):  # a full disk: this process still stops
            with record.replacing(_sweep_dir / STOP) as tmp:
                tmp.write_text(_requested + "\n")


def stop_requested(sweep_dir: Path | None = None) -> str | None:
    """ "interrupted" / "terminated" once this process, or any process of its sweep, was asked to stop."""
    if _requested:
        return _requested
    where = sweep_dir or _sweep_dir
    if where is None:
        return None
    try:
        return (Path(where) / STOP).read_text().strip() or "interrupted"
    except OSError:
        return None


def join_sweep(sweep_dir: Path) -> None:
    """This process runs jobs of the sweep in `sweep_dir` (it may be a worker the signal never reaches)."""
    global _sweep_dir
    _sweep_dir = Path(sweep_dir)


def clear(sweep_dir: Path) -> None:
    """Forget an earlier stop of this sweep (`dlexp resume` finishes it)."""
    global _requested
    _requested = None
    (Path(sweep_dir) / STOP).unlink(missing_ok=True)


def _handler(on_first):
    def handler(signum, frame):
        if _requested:  # second signal: do not wait for anything
            os._exit(130 if signum == signal.SIGINT else 143)
        on_first(REASONS.get(signum, "terminated"))

    return handler


def watch_sweep(sweep_dir: Path) -> None:
    """In the process launching a sweep, from its start to its summary: a signal stops the sweep, not the
    process (a launcher waiting for its workers keeps waiting for them to checkpoint). Workers forked from
    this process inherit the handlers."""
    global _previous
    join_sweep(sweep_dir)
    if threading.current_thread() is threading.main_thread() and _previous is None:
        _previous = {sig: signal.signal(sig, _handler(request_stop)) for sig in REASONS}


def watched_sweep() -> Path | None:
    """The sweep this process launches (between watch_sweep and unwatch_sweep), else None."""
    return _sweep_dir if _previous is not None else None


def unwatch_sweep() -> None:
    """The sweep's end in its launching process: the handlers it replaced come back (its STOP file stays)."""
    global _previous, _sweep_dir
    if _previous is not None:
        for sig, old in _previous.items():
            signal.signal(sig, old)
        _previous, _sweep_dir = None, None


def forget() -> None:
    """This process's part in any sweep and any stop it was asked for, forgotten (a command's end in a process that
    goes on: a notebook's kernel)."""
    global _requested, _sweep_dir
    unwatch_sweep()
    _requested, _sweep_dir = None, None


@contextlib.contextmanager
def stop_on_signals(state):
    """While active, the first Ctrl-C (or SIGTERM) asks the loop to stop; a second Ctrl-C aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(reason: str) -> None:
        state.stop = reason
        request_stop(reason)

    previous = {sig: signal.signal(sig, _handler(first)) for sig in REASONS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class SweepStop:
    """Observer of a sweep job: stops its run when the sweep is asked to stop, whichever process got the signal.
    Reads the STOP file at most once a second (one clock read per step otherwise)."""

    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        self.due = time.monotonic() + POLL_SECS

    def on_step(self, state, loss) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + POLL_SECS
        reason = stop_requested(self.sweep_dir)
        if reason and not state.stop:
            state.stop = reason

    @staticmethod
    def stack_step(members: list, stack) -> dict:
        """on_step for many jobs of one stack ((row, state, watcher) each): the clock read once for all, each
        sweep's STOP file at most once a second, each job stopped as its own watcher stops it."""
        now = time.monotonic()
        read: dict[Path, str | None] = {}
        for _, state, watcher in members:
            if now < watcher.due:
                continue
            watcher.due = now + POLL_SECS
            if watcher.sweep_dir not in read:
                read[watcher.sweep_dir] = stop_requested(watcher.sweep_dir)
            reason = read[watcher.sweep_dir]
            if reason and not state.stop:
                state.stop = reason
        return {}
