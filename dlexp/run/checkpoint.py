"""Checkpoints: everything needed to continue a run bit-for-bit, saved atomically, loaded without pickle code.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)` reads it;
anything else in the file (a crafted pickle that would run code) is refused, never executed.

When: at the start of a run, every `trainer.checkpoint_secs` seconds of training (so a run killed without warning
loses at most that much), every `trainer.checkpoint_every` epochs if set, and at the end of a run that can be
continued (completed, interrupted, terminated). A run continued from a checkpoint taken at step s logs again from
`purge_step(s)`: what the earlier attempt logged after that is dropped (TensorBoard's purge_step, metrics.csv rows).
"""

from __future__ import annotations

import math
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from dlexp import CheckpointError
from dlexp.run import faults, record

FILE = "checkpoint.pt"
FORMAT = 1


def purge_step(step: int) -> int:
    """The first step a run continued from a checkpoint taken at `step` logs again.

    A checkpoint is taken once everything its step logs is logged, except the one taken at the very start (step 0),
    which comes before the first capture: a run continued from there logs its start afresh.
    """
    return step + 1 if step else 0


def save(path: Path, *, model, optimizer, scheduler, state, config_yaml: str, observers: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then rename over the old checkpoint. If writing fails
    (a full disk), the temp file goes and the previous checkpoint stays as it was."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "state": {
            "epoch": state.epoch,
            "step": state.step,
            "batch": state.batch,
            "loss_sum": state.loss_sum.detach().cpu() if state.loss_sum is not None else None,
            # the latest epoch's metrics: a run stopped after its last epoch resumes with nothing left to train,
            # and still ends with them
            "metrics": {k: float(v) for k, v in state.metrics.items()},
        },
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "config": config_yaml,
        "observers": observers or {},  # the observers' own state (the divergence guard's streaks)
    }
    with record.replacing(path) as tmp:
        torch.save(payload, tmp)
        faults.point("checkpoint_write")
    return path


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; every failure is a CheckpointError sentence (exit 4)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}; a run writes one when it starts, every "
            "trainer.checkpoint_secs seconds, on Ctrl-C and at the end."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported" in str(err) or "global" in str(err).lower():
            raise CheckpointError(
                f"Refused to load {path}: it contains Python objects other than tensors and "
                "plain data, which could run code; it was not made by dlexp."
            ) from None
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dlexp checkpoint (format {FORMAT}).")
    return payload


def restore(payload: dict, *, model, optimizer, scheduler, state) -> None:
    """Load model/optimizer/scheduler/state and, last, the RNG states (building the objects consumed RNG)."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload.get("scheduler") is not None:
        scheduler.load_state_dict(payload["scheduler"])
    saved = payload["state"]
    state.epoch, state.step, state.batch = int(saved["epoch"]), int(saved["step"]), int(saved["batch"])
    device = next(iter(model.parameters())).device
    state.loss_sum = saved["loss_sum"].to(device) if saved["loss_sum"] is not None else None
    state.metrics = dict(saved.get("metrics") or {})
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])


def observer_states(observers) -> dict:
    """{observer class name: its state_dict()} for the observers that keep state across a resume; an observer
    without one that summarises the run for status.json (`final`: hist/dead of its last capture) keeps that."""
    found = {}
    for o in observers:
        if hasattr(o, "state_dict"):
            found[type(o).__name__] = o.state_dict()
        elif getattr(o, "final", None):
            found[type(o).__name__] = {"final": {k: float(v) for k, v in o.final.items()}}
    return found


def restore_observers(payload: dict, observers) -> None:
    saved = payload.get("observers") or {}
    for observer in observers:
        mine = saved.get(type(observer).__name__)
        if mine is None:
            continue
        if hasattr(observer, "load_state_dict"):
            observer.load_state_dict(mine)
        elif "final" in mine:  # a run resumed with nothing left to capture still ends with it
            observer.final = dict(mine["final"])


class Checkpointer:
    """Saves at the start, every `secs` seconds of training, every `every` epochs (0: not by epochs), and at the end
    of any run that can be continued. Each save also updates status.json (epoch, step, heartbeat).

    A save by time waits for a step that logs nothing after it (not a capture step, not the end of an epoch),
    or for an evaluated epoch's end, so a continued run never logs a step twice. The clock is read once a step.
    """

    def __init__(self, path: Path, exp, config_yaml: str, every: int, secs: float, schedule, record=None, observers=()):
        self.path, self.exp, self.config_yaml, self.every = path, exp, config_yaml, every
        self.secs, self.schedule, self.record, self.observers = float(secs), schedule, record, observers
        self.due = math.inf
        self.decided: tuple[int, bool] | None = None  # (step, is a save due at this epoch's end?), once asked

    def save(self, state) -> None:
        save(
            self.path,
            model=self.exp.model,
            optimizer=self.exp.optimizer,
            scheduler=self.exp.scheduler,
            state=state,
            config_yaml=self.config_yaml,
            observers=observer_states(o for o in self.observers if o is not self),
        )
        if self.record is not None:
            self.record.beat(state.epoch, state.step, self.secs)
        self.due = time.monotonic() + self.secs if self.secs > 0 else math.inf

    def on_start(self, state) -> None:
        if state.step == 0:  # a run killed at any moment from now on can be continued
            self.save(state)
        else:
            self.due = time.monotonic() + self.secs if self.secs > 0 else math.inf

    def on_step(self, state, loss) -> None:
        if self.due_now(state, time.monotonic()):
            self.save(state)

    def due_now(self, state, now: float) -> bool:
        """Is a save by time due after this step? Not at a step that still logs after us (its capture, its epoch's
        end): then at the next one."""
        if now < self.due:
            return False
        return state.batch < self.schedule.steps_per_epoch and not self.schedule.captures_step(state.step)

    @staticmethod
    def stack_step(members: list, stack) -> dict:
        """on_step for many networks trained as one stack ((row, state, checkpointer) each): one clock read for
        all; a network due for a save has its own model, optimizer, loss sum and random state brought up to date
        from the stack first (`stack.sync`). Returns {row: error} for the saves that failed."""
        now = time.monotonic()
        failed = {}
        for row, state, saver in members:
            if saver.due_now(state, now):
                try:
                    stack.sync(row)
                    saver.save(state)
                except Exception as err:
                    failed[row] = err
        return failed

    def on_epoch(self, state, metrics) -> None:
        decided, self.decided = self.decided, None
        if decided[1] if decided is not None and decided[0] == state.step else self.epoch_reads_model(state):
            self.save(state)

    def epoch_reads_model(self, state) -> bool:
        """Is a save due at this epoch's end (every `every` epochs, or its time has come)? Decided once: a stack
        that asked writes the job's numbers back for the save that follows, and the clock must not change it."""
        due = state.epoch > 0 and bool((self.every and state.epoch % self.every == 0) or time.monotonic() >= self.due)
        self.decided = (state.step, due)
        return due

    def on_end(self, state, status: str) -> None:
        if status in ("completed", "interrupted", "terminated"):
            self.save(state)
