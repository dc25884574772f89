"""Run directories on disk: status.json, the composed config, the log — and reading runs back."""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlexp.errors import ConfigError

STATUS = "status.json"
CONFIG = "config.yaml"
LOG = "train.log"
# A run's final status and the exit code it gives a command (a sweep exits with its most serious one).
EXIT_CODES = {"completed": 0, "failed": 1, "refused": 2, "diverged": 3, "interrupted": 130, "terminated": 143}
SERIOUSNESS = (143, 130, 1, 2, 3)            # most serious first: a stop by the user, a crash, a bad config, ...
STATUS_STYLES = {"completed": "green", "diverged": "bold red", "failed": "red", "refused": "red"}


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

log = logging.getLogger("dlexp")


def write_json_atomic(path: Path, data: dict) -> None:
    """Temp file + rename: a reader never sees half a file, a crash never leaves one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    import dlexp

    found = {"python": platform.python_version(), "dlexp": dlexp.__version__}
    for name in ("torch", "hydra", "omegaconf", "numpy", "tensorboard"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


class Run:
    """One run directory. Created once, never overwritten."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.status: dict[str, Any] = {}
        self.started = time.perf_counter()

    @classmethod
    def create(cls, path: Path, config_yaml: str, overrides: list[str], choices: dict[str, str]) -> "Run":
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if (path / STATUS).exists():
            raise ConfigError(f"{path} already holds a run and is never overwritten; "
                              "choose another directory with hydra.run.dir=...")
        run = cls(path)
        (path / CONFIG).write_text(config_yaml)
        run.status = {"status": "running", "run_id": secrets.token_hex(4), "name": path.name,
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "overrides": list(overrides), "choices": dict(choices), "versions": versions(),
                      "pid": os.getpid(), "command": " ".join(["dlexp", "train", *overrides])}
        run.save()
        run.attach_log()
        return run

    @classmethod
    def refused(cls, path: Path, overrides: list[str], choices: dict[str, str], problems: list[str]) -> "Run":
        """The record of a sweep job whose configuration could not run (values a sweeper sampled)."""
        run = cls(path)
        run.status = {"status": "refused", "name": Path(path).name, "overrides": list(overrides),
                      "choices": dict(choices), "problems": list(problems), "versions": versions()}
        run.save()
        return run

    @classmethod
    def open(cls, path: Path) -> "Run":
        run = cls(path)
        run.status = read_status(path)
        run.attach_log()
        return run

    def attach_log(self) -> None:
        """The "dlexp" log goes to this run's train.log (a launcher training many runs moves it from run to run)."""
        handler = logging.FileHandler(self.path / LOG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
            old.close()
            log.removeHandler(old)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    def save(self) -> None:
        write_json_atomic(self.path / STATUS, self.status)

    def update(self, **fields) -> None:
        self.status.update(fields)
        self.save()

    def finish(self, status: str, **fields) -> None:
        self.update(status=status, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    wall_time=round(self.status.get("wall_time_before", 0.0) + time.perf_counter() - self.started, 3),
                    **fields)
        log.info("run %s: %s", self.path, status)
        for handler in list(log.handlers):
            handler.close()
            log.removeHandler(handler)


def read_status(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / STATUS).read_text())
    except (OSError, ValueError):
        return {}


def find_runs(*roots: Path) -> list[Path]:
    """Every run directory (one holding status.json) under the given folders, in name order."""
    found = set()
    for root in roots:
        root = Path(root)
        if (root / STATUS).exists():
            found.add(root)
        found.update(p.parent for p in root.rglob(STATUS))
    return sorted(found)
