"""Faults at named points, for the tests that check a signal or a kill at any moment loses nothing.

DLEXP_FAULT="POINT:SIGNAL[:N]" sends SIGNAL (SIGINT, SIGTERM, SIGKILL) the N-th time (default: the first) this
process reaches POINT. The signal goes where a terminal's Ctrl-C goes, to the command's process group, when the
command leads a group of its own (the tests start it with start_new_session=True; its joblib workers inherit the
group): every process of the command gets it. Otherwise it goes to this process only. Unset, every point is one
dictionary lookup, and no observer is added to a run.

Points, in the order a sweep meets them:
  sweep_start       the sweep's directory does not exist yet (its launching process is being set up)
  job_start         a job's status.json has just been written (`running`), nothing else of it yet
  mid_epoch         the middle step of an epoch
  epoch_end         an epoch evaluated and logged
  checkpoint_write  a checkpoint written to its temporary file, not yet renamed into place
  job_end           a job's final status.json written: between two jobs of a sweep
  summary           the sweep's end: its jobs' lines printed, its summary files not yet written
"""

from __future__ import annotations

import os
import signal
from typing import Any

ENV = "DLEXP_FAULT"
GROUP = "DLEXP_FAULT_GROUP"  # set by a command that leads its process group, for the workers it forks
POINTS = ("sweep_start", "job_start", "mid_epoch", "epoch_end", "checkpoint_write", "job_end", "summary")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}

_reached: dict[str, int] = {}  # point -> times this process reached it


def armed() -> tuple[str, signal.Signals, int] | None:
    """(point, signal, n) that DLEXP_FAULT names, or None."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    where, _, rest = spec.partition(":")
    name, _, nth = rest.partition(":")
    if where not in POINTS or name not in SIGNALS or not (nth or "1").isdigit():
        raise ValueError(
            f"{ENV}={spec} is not POINT:SIGNAL[:N]; points: {', '.join(POINTS)}; signals: {', '.join(SIGNALS)}."
        )
    return where, SIGNALS[name], int(nth or 1)


def point(name: str) -> None:
    """This process reached the point `name`: the armed fault fires if it is this point's turn."""
    if ENV not in os.environ:
        return
    if os.getpgrp() == os.getpid():
        os.environ[GROUP] = str(os.getpid())
    found = armed()
    if found is None or found[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == found[2]:
        fire(found[1])


def fire(sig: signal.Signals) -> None:
    leader = os.getpgrp()
    if leader == os.getpid() or str(leader) == os.environ.get(GROUP):  # the command's own group
        os.killpg(leader, sig)
    else:
        os.kill(os.getpid(), sig)


def wanted() -> bool:
    """Does the armed fault need the training loop's points (mid_epoch, epoch_end)?"""
    found = armed() if ENV in os.environ else None
    return found is not None and found[0] in ("mid_epoch", "epoch_end")


class FaultPoints:
    """Observer: the training loop's points, mid_epoch and epoch_end (added to a run only while a fault is armed)."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.middle = max(steps_per_epoch // 2, 1)

    def on_step(self, state: Any, loss: Any) -> None:
        if state.batch == self.middle:
            point("mid_epoch")

    def on_epoch(self, state: Any, metrics: dict[str, float]) -> None:
        if state.epoch > 0:
            point("epoch_end")
