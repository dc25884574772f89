"""dlexp — a command-line laboratory for deep-learning fundamentals.

The package's face: its version and the errors it raises, each a sentence meant for the user (no traceback) with
the exit code the command line gives it. Importing the package is cheap on purpose: `dlexp --help` and `dlexp
list` must not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"


class DlexpError(Exception):
    """An error with a message meant for the user (no traceback) and an exit code."""

    exit_code = 1


class ConfigError(DlexpError):
    """The composed configuration cannot work; nothing has been written yet."""

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DataError(DlexpError):
    """A dataset cannot be loaded (missing files, bad checksum, unreadable IDX)."""

    exit_code = 2


class CheckpointError(DlexpError):
    """A checkpoint is missing, truncated, unsafe or does not match the run."""

    exit_code = 4


class UsageError(DlexpError):
    """A command was given something it cannot use (a missing path, an unknown column, a taken port)."""

    exit_code = 2


class StorageError(DlexpError):
    """A file of a run cannot be written (a full disk, a read-only folder); nothing already written is harmed."""

    exit_code = 1


def cannot_write(err: OSError, where: object) -> str:
    """'cannot write runs/x/events...: No space left on device', from an OSError and the folder it was writing."""
    return f"cannot write {err.filename or where}: {err.strerror or err}"


# The Python API (dlexp/api.py), imported when first used: `import dlexp` stays cheap (no torch, no Hydra).
API = ("train", "sweep", "load", "board", "Run", "Sweep", "Verdict", "Interrupted")


def __getattr__(name: str):
    if name in API:
        from dlexp import api

        return getattr(api, name)
    raise AttributeError(f"module 'dlexp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
