"""The record a run leaves while it is made: its directory, status.json, log and lock, each file written whole.

The process writing a run (or launching a sweep) holds an exclusive flock on the directory's .lock file for as
long as it writes. The kernel releases it when the process ends, however it ends (kill -9, the OOM killer), so
"is a live process writing this?" is one non-blocking lock attempt (dlexp/read/runs.py `locked`): no pid that may
have been reused, no clock. status.json names the writer (host, pid) for the messages. A run written on another
host (a cluster node) whose lock cannot be seen from here is judged by its heartbeat, the time of its last
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlexp import ConfigError, UsageError
from dlexp.read.runs import CONFIG, LOCK, LOG, STATUS, holder, read_status

log = logging.getLogger("dlexp")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Write `path` whole, then rename it into place: yields the temporary file to write (beside it, so the rename
    is atomic). A reader never sees half a file; a failure (a full disk, Ctrl-C) leaves neither half a file nor the
    temporary one, and whatever `path` held before stays."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


# The libraries whose versions decide a run's numbers: import name -> the distribution pip installs it from.
LIBRARIES = {
    "torch": "torch",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "numpy": "numpy",
    "tensorboard": "tensorboard",
}


def versions() -> dict[str, str]:
    """Python's, dlexp's and the loaded libraries' versions, as a run records them."""
    import dlexp

    found = {"python": platform.python_version(), "dlexp": dlexp.__version__}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


def installed_versions() -> dict[str, str]:
    """The same, read from the installed packages' metadata: nothing is imported (`dlexp --version` stays fast)."""
    from importlib import metadata

    import dlexp

    found = {"python": platform.python_version(), "dlexp": dlexp.__version__}
    for name, distribution in LIBRARIES.items():
        try:
            found[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Busy(Exception):
    """Another live process holds the directory's lock."""


_held: set[int] = set()  # the locks this process holds (release_all lets them all go)


def hold(path: Path) -> int | None:
    """Take `path`'s lock for this process (released by `release` or when the process ends); None where the
    system has no flock (Windows: liveness then comes from the pid). Raises Busy while another process holds it."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(Path(path) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + 1.0  # a reader (`dlexp compare`) may hold it shared for an instant
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise Busy(str(path)) from None
            time.sleep(0.02)
    try:  # who holds it, for the message another process prints
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": platform.node(), "pid": os.getpid()}).encode())
    except OSError:  # a full disk: the lock itself still holds
        pass
    _held.add(fd)
    return fd


def release(fd: int | None) -> None:
    if fd is not None and fd in _held:
        _held.discard(fd)
        os.close(fd)


def release_all() -> None:
    """Every lock this process still holds let go: a command that ended in an error in a process that goes on."""
    for fd in list(_held):
        release(fd)


class Run:
    """One run directory, written by one process at a time (which holds its lock). Created once, never
    overwritten; `dlexp resume` continues it in place."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.status: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.lock: int | None = None

    @classmethod
    def create(
        cls, path: Path, config_yaml: str, overrides: list[str], choices: dict[str, str], sweep_job: int | None = None
    ) -> Run:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if (path / STATUS).exists():
            raise ConfigError(
                f"{path} already holds a run and is never overwritten; choose another directory with hydra.run.dir=..."
            )
        run = cls(path)
        run.claim()
        (path / CONFIG).write_text(config_yaml)
        run.status = {
            "status": "running",
            "run_id": secrets.token_hex(4),
            "name": path.name,
            "started": now(),
            "overrides": list(overrides),
            "choices": dict(choices),
            "versions": versions(),
            "host": platform.node(),
            "pid": os.getpid(),
            "command": " ".join(["dlexp", "train", *overrides]),
        }
        if sweep_job is not None:
            run.status["sweep_job"] = sweep_job  # its number in the sweep: `dlexp resume SWEEP_DIR` goes by it
        run.save()
        run.attach_log()
        return run

    @classmethod
    def refused(
        cls,
        path: Path,
        overrides: list[str],
        choices: dict[str, str],
        problems: list[str],
        sweep_job: int | None = None,
    ) -> Run:
        """The record of a sweep job whose configuration could not run (values a sweeper sampled)."""
        run = cls(path)
        run.status = {
            "status": "refused",
            "name": Path(path).name,
            "overrides": list(overrides),
            "choices": dict(choices),
            "problems": list(problems),
            "versions": versions(),
        }
        if sweep_job is not None:
            run.status["sweep_job"] = sweep_job
        run.save()
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        """An existing run, to be continued by this process (which takes its lock: one writer per run)."""
        run = cls(path)
        run.claim()
        run.status = read_status(path)
        run.status.update(host=platform.node(), pid=os.getpid())
        run.attach_log()
        return run

    def claim(self) -> None:
        try:
            self.lock = hold(self.path)
        except Busy:
            raise UsageError(
                f"{self.path} is being written by {holder(self.path)}; a run has one writer at a "
                "time: wait for it to end, or stop it (Ctrl-C) and resume it then."
            ) from None

    def attach_log(self) -> None:
        """The "dlexp" log goes to this run's train.log (a launcher training many runs moves it from run to run)."""
        handler = RunLog(self.path / LOG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
            old.close()
            log.removeHandler(old)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    def save(self) -> None:
        write_json_atomic(self.path / STATUS, self.status)

    def update(self, **fields: Any) -> None:
        self.status.update(fields)
        self.save()

    def elapsed(self) -> float:
        """Seconds of training so far, earlier attempts included."""
        return round(self.status.get("wall_time_before", 0.0) + time.perf_counter() - self.started, 3)

    def beat(self, epoch: int, step: int, every: float) -> None:
        """The progress a checkpoint keeps, and the proof of life readers on other hosts go by."""
        self.update(epoch=epoch, step=step, wall_time=self.elapsed(), heartbeat=now(), heartbeat_secs=every)

    def finish(self, status: str, **fields: Any) -> None:
        """The final status (where the disk still takes it); the lock is released whatever happens."""
        try:
            self.update(status=status, finished=now(), wall_time=self.elapsed(), **fields)
        finally:
            log.info("run %s: %s", self.path, status)
            for handler in list(log.handlers):
                handler.close()
                log.removeHandler(handler)
            release(self.lock)
            self.lock = None


class RunLog(logging.FileHandler):
    """The run's train.log. A log line that cannot be written (a full disk) is dropped silently: the run reports
    the cause itself, once, instead of logging's traceback for every line."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass
