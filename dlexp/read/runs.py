"""Run directories on disk, read back: what a run directory holds, what its status means, who writes it.

A run directory holds status.json (its status, final metrics, versions, the process writing it), config.yaml,
metrics.csv (one row per evaluated epoch), train.log and .lock (held by the process writing it, while it lives);
dlexp/run/record.py writes them. Reading never needs the code that wrote them.
"""

from __future__ import annotations

import json
import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATUS = "status.json"
CONFIG = "config.yaml"
LOG = "train.log"
LOCK = ".lock"  # held (flock) by the one process writing the run, while it lives
METRICS = "metrics.csv"  # one row per evaluated epoch (a run that trains)
MULTIRUN = "multirun.yaml"  # in a sweep directory: Hydra's record of how the sweep was launched
SWEEP_RECORDS = (MULTIRUN, LOCK)  # what a sweep directory holds before its first job starts
# A run's status and the exit code it gives a command (a sweep exits with its most serious one). `running` is
# what status.json says while a process writes the run; readers call it `crashed` once that process is gone.
EXIT_CODES = {
    "completed": 0,
    "failed": 1,
    "crashed": 1,
    "refused": 2,
    "diverged": 3,
    "interrupted": 130,
    "terminated": 143,
}
SERIOUSNESS = (143, 130, 1, 2, 3)  # most serious first: a stop by the user, a crash, a bad config, ...
STATUS_STYLES = {"completed": "green", "diverged": "bold red", "failed": "red", "crashed": "red", "refused": "red"}
FINISHED = ("completed", "diverged", "failed", "refused")  # nothing more will happen to these runs by itself
CONTINUABLE = ("interrupted", "terminated", "crashed")  # stopped early: `dlexp resume` continues them


def worst_exit_code(statuses: list[str]) -> int:
    """The exit code of a command whose runs ended with these statuses."""
    codes = {EXIT_CODES.get(s, 1) for s in statuses}
    return next((code for code in SERIOUSNESS if code in codes), 0)


def status_style(status: str) -> str:
    """How a status is coloured wherever it is shown (rich style); unknown and running ones in yellow."""
    return STATUS_STYLES.get(status, "yellow")


# The best-metric rule, read by the HParams observer, `dlexp compare` and the verdict: these metrics have a best
# epoch, the lowest loss or the highest accuracy.
RANKED = ("loss", "acc")


def ranked(tag: str) -> bool:
    """val/loss, train/acc: metrics with a best value (best/<tag>)."""
    return tag.split("/")[-1] in RANKED


def lower_is_better(tag: str) -> bool:
    return tag.endswith("loss")


def is_better(tag: str, new: float, old: float | None) -> bool:
    return old is None or (new < old if lower_is_better(tag) else new > old)


def best_of(tag: str, values: list[float]) -> float:
    return min(values) if lower_is_better(tag) else max(values)


def locked(path: Path) -> bool | None:
    """Does a live process hold `path`'s lock? None when this cannot be told (no lock file, no flock)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(Path(path) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False  # closing the file below releases this shared lock at once
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    """'process 4242 on node7', from the lock file."""
    try:
        found = json.loads((Path(path) / LOCK).read_text())
        return f"process {found['pid']} on {found['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True  # it exists (another user's), or the record cannot tell: assume alive
    return True


STALE_HEARTBEATS = 10  # a run on another host is taken for dead after this many missed heartbeats (>= 60 s)


def writer_alive(path: Path, status: dict[str, Any]) -> bool:
    """Is the process that wrote this `running` status still at work?"""
    here = status.get("host") in (None, platform.node())
    held = locked(path)
    if held:
        return True
    if here:
        return _pid_alive(status.get("pid")) if held is None else False
    every, beat = status.get("heartbeat_secs"), status.get("heartbeat")
    if not every or not beat:
        return True  # another host and no heartbeat: nothing here can tell
    try:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(beat)).total_seconds()
    except (TypeError, ValueError):
        return True
    return age < max(STALE_HEARTBEATS * float(every), 60.0)


def read_status(path: Path) -> dict[str, Any]:
    """A run's status.json; a `running` run whose writer is gone reads as `crashed`."""
    try:
        status = json.loads((Path(path) / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    if status.get("status") == "running" and not writer_alive(path, status):
        status["status"] = "crashed"
    return status


def job_number(path: Path, status: dict | None = None) -> int | None:
    """A sweep job's number: status.json's sweep_job (names start with what sets the job apart, lr=0.001_3), else the
    number a directory name starts with (3_optimizer=adam, as older sweeps named their jobs); None for a run."""
    status = read_status(path) if status is None else status
    if isinstance(status.get("sweep_job"), int):
        return status["sweep_job"]
    match = re.match(r"(\d+)_", Path(path).name)
    return int(match.group(1)) if match else None


def find_runs(*roots: Path) -> list[Path]:
    """Every run directory (one holding status.json) under the given folders, in name order."""
    found = set()
    for root in roots:
        root = Path(root)
        if (root / STATUS).exists():
            found.add(root)
        found.update(p.parent for p in root.rglob(STATUS))
    return sorted(found)
