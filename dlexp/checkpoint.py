"""Checkpoints: everything needed to continue a run bit-for-bit, saved atomically, loaded without pickle code.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)` reads it;
anything else in the file (a crafted pickle that would run code) is refused, never executed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from dlexp.errors import CheckpointError

FILE = "checkpoint.pt"
FORMAT = 1


def save(path: Path, *, model, optimizer, scheduler, state, config_yaml: str) -> Path:
    """Write atomically: a temp file in the same folder, then rename over the old checkpoint."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "state": {"epoch": state.epoch, "step": state.step, "batch": state.batch,
                  "loss_sum": state.loss_sum.detach().cpu() if state.loss_sum is not None else None},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "config": config_yaml,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; every failure is a CheckpointError sentence (exit 4)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}; a run writes one at the end, on Ctrl-C, "
                              "and every trainer.checkpoint_every epochs.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported" in str(err) or "global" in str(err).lower():
            raise CheckpointError(f"Refused to load {path}: it contains Python objects other than tensors and "
                                  "plain data, which could run code; it was not made by dlexp.") from None
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt): "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}.") from None
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
    torch.set_rng_state(payload["rng"]["torch"])
    if payload["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])


class Checkpointer:
    """Saves every `every` epochs (0: never mid-run), and at the end of any run that can be continued."""

    def __init__(self, path: Path, exp, config_yaml: str, every: int):
        self.path, self.exp, self.config_yaml, self.every = path, exp, config_yaml, every

    def save(self, state) -> None:
        save(self.path, model=self.exp.model, optimizer=self.exp.optimizer, scheduler=self.exp.scheduler,
             state=state, config_yaml=self.config_yaml)

    def on_epoch(self, state, metrics) -> None:
        if self.every and state.epoch > 0 and state.epoch % self.every == 0:
            self.save(state)

    def on_end(self, state, status: str) -> None:
        if status in ("completed", "interrupted", "terminated"):
            self.save(state)
