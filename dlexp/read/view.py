"""The folder TensorBoard reads for `dlexp board`: one folder per run, named by what sets the run apart, holding links
to the run's event files, kept in step with the runs on disk for as long as the board runs.

TensorBoard names a run by its path under the folder it reads. Under runs/ that path opens with a date, a time and an
id (multirun/2026-12-05_06-13-11_bc4e16_xor_mlp/optimizer=adam,seed=0_0), and the sidebar cuts off the difference.
Here the names open with it:

    a job of a sweep      <sweep>/<job>               xor_mlp/optimizer=adam,seed=0_0    06-20/lr=0.01_0
    a group of seeds      (seeds) <sweep>/<group>     (seeds) xor_mlp/optimizer=adam     (its aggregate run)
    a single run          <experiment>/<overrides>    xor_mlp/epochs=5    data=moons,epochs=3    defaults

<sweep> is the sweep's experiment in at most SWEEP_CHARS characters (a lesson script's sweep: its lesson) or, without
one, the time it started (the keys it varies, the rest of its directory's name, open its jobs' names already); on a
board of one sweep its jobs keep their own names (optimizer=adam_1). A name, once given, stays while the board runs; a name another run has already gets the
time its run started (xor_mlp@06-13), else its id. A group of seeds comes first in name order, so its band charts
open TensorBoard's Custom Scalars page (which lays out the runs' charts in name order).

Each folder also holds an event file of the board's own (observe/tensorboard.py write_board_record): where the run
lives, on TensorBoard's Text page, and for a group of seeds its band charts.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from itertools import chain, count
from pathlib import Path

from dlexp.config.resolvers import short_key
from dlexp.observe import tensorboard
from dlexp.read import runs
from dlexp.read.evidence import AGGREGATE_DIR

EVENTS = "events.out.tfevents."  # how every event file's name starts (TensorBoard's own rule: "tfevents" in it)
# How dlexp names a sweep directory and a single run's directory (conf/config.yaml, hydra.sweep.dir and hydra.run.dir)
SWEEP_NAME = re.compile(r"(?P<day>\d{4}-\d\d-\d\d)_(?P<time>\d\d-\d\d-\d\d)_(?P<id>[0-9a-f]{6})_?(?P<label>.*)")
RUN_NAME = re.compile(r"(?P<time>\d\d-\d\d-\d\d)_(?P<id>[0-9a-f]{6})_?(?P<label>.*)")
# How a lesson script names its sweep directory (scripts/_lesson.sh): runs/lessons/<lesson>/<day>-<time>-<pid>
LESSON_NAME = re.compile(r"\d{8}-(?P<time>\d{6})-\d+")
SWEEP_CHARS = 14  # a sweep's part of a name: room is left in the first 30 characters for what sets its jobs apart
SEEDS = "(seeds) "  # opens a group of seeds' name: "(" sorts before any character dlexp puts in a run's name
DEFAULTS = "defaults"  # a single run without overrides
EXPERIMENT = short_key("experiment") + "="  # how a single run's directory names its experiment
FOLDER_TAG = "folder"  # the Text page's entry holding each run's full path
REFRESH_SECS = 2.0  # how often the folder catches up with the runs on disk


class View:
    """The folder of readable names over the runs under `root`; `refresh()` catches up with the disk, `start()` keeps
    doing it in a thread until `close()`, which removes the folder (never the runs)."""

    def __init__(self, root: Path, every: float = REFRESH_SECS):
        self.root = Path(root).resolve()
        self.every = every
        self.path = Path(tempfile.mkdtemp(prefix="dlexp-board-")) / (self.root.name or "runs")
        self.path.mkdir()
        self.names: dict[Path, str] = {}  # run folder -> its name, for as long as the board runs
        self.sweeps: dict[Path, str] = {}  # sweep folder -> the part of its jobs' names it gives
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> View:
        self.refresh()
        self.thread = threading.Thread(target=self._keep_up, name="dlexp-board-view", daemon=True)
        self.thread.start()
        return self

    def _keep_up(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                self.refresh()
            except OSError:  # a run moved or removed while it was looked at: the next round sees it as it is
                pass

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        shutil.rmtree(self.path.parent, ignore_errors=True)

    def refresh(self) -> None:
        """Name the runs that appeared (oldest first), link event files that appeared, drop runs that went away."""
        found = event_folders(self.root, skip=self.path.parent)
        for folder in sorted(set(found) - set(self.names), key=lambda f: (started(f), str(f))):
            self._add(folder, found[folder])
        for folder, name in list(self.names.items()):
            if folder in found:
                self._link(folder, found[folder])
            else:  # TensorBoard forgets a run whose folder is gone
                shutil.rmtree(self.path / name, ignore_errors=True)
                del self.names[folder]

    def _add(self, folder: Path, files: list[str]) -> None:
        name = self._unique(folder, self._name(folder))
        self.names[folder] = name
        target = self.path / name
        target.mkdir(parents=True, exist_ok=True)
        bands = []
        if folder.parent.name == AGGREGATE_DIR:
            tags = tensorboard.read_scalars(folder)
            bands = [tag for tag in tensorboard.BANDS if {f"{tag}/{part}" for part in tensorboard.BAND} <= tags.keys()]
        # before the links: TensorBoard reads this file first only if it is there when it first reads the run
        tensorboard.write_board_record(target, started(folder), {FOLDER_TAG: f"`{folder}`"}, bands)
        self._link(folder, files)

    def _link(self, folder: Path, files: list[str]) -> None:
        target = self.path / self.names[folder]
        linked = {p.name for p in target.iterdir() if p.is_symlink()}
        for file in files:
            if file not in linked:
                (target / file).symlink_to(folder / file)
        for gone in linked - set(files):
            (target / gone).unlink()

    def _name(self, folder: Path) -> str:
        """What sets the run in `folder` apart, first (the module's docstring)."""
        parent = folder.parent
        if parent.name == AGGREGATE_DIR and folder != self.root and parent != self.root:
            return SEEDS + self._in_sweep(parent.parent, folder.name)
        if folder != self.root and is_sweep(parent, folder):
            return self._in_sweep(parent, folder.name)
        if (folder / runs.STATUS).exists():
            return run_label(folder.name)
        return folder.relative_to(self.root).as_posix() if folder != self.root else folder.name

    def _in_sweep(self, sweep: Path, leaf: str) -> str:
        if sweep == self.root:
            return leaf  # a board of one sweep: its jobs' own names
        if sweep not in self.sweeps:
            taken = set(self.sweeps.values())
            self.sweeps[sweep] = next(label for label in sweep_labels(sweep) if label not in taken)
        return f"{self.sweeps[sweep]}/{leaf}"

    def _unique(self, folder: Path, name: str) -> str:
        """`name`, else `name` marked with when its run started (its head, before any "/"), else with its id."""
        taken = set(self.names.values())
        found = SWEEP_NAME.fullmatch(folder.name) or RUN_NAME.fullmatch(folder.name)
        head, slash, tail = name.partition("/")
        marks = [found["time"][:5], found["time"], found["id"]] if found else []
        tried = [name, *(f"{head}@{mark}{slash}{tail}" for mark in marks)]
        numbered = (f"{head}@{n}{slash}{tail}" for n in count(2))
        return next(c for c in chain(tried, numbered) if c not in taken)


def sweep_labels(sweep: Path) -> Iterator[str]:
    """The part of its jobs' names a sweep gives, and the next ones to try while another sweep has it: its experiment
    (cut to SWEEP_CHARS), marked with when it started if need be; without one, when it started (the keys it varies,
    its directory's other name, are in its jobs' names already); a directory dlexp did not name: that name."""
    found = SWEEP_NAME.fullmatch(sweep.name)
    lesson = LESSON_NAME.fullmatch(sweep.name)
    if lesson is not None:  # a lesson script's sweep: the lesson's name, then when it started
        clock = "-".join(lesson["time"][i : i + 2] for i in (0, 2, 4))
        short = shorten(sweep.parent.name)
        labels = [short, f"{short}@{clock[:5]}", f"{short}@{clock}", f"{short}@{sweep.name}"]
    elif found is None:
        labels = [shorten(sweep.name)]
    else:
        clock, uid = found["time"], found["id"]
        experiment = next((c for c in map(choices_of, sorted(sweep.iterdir())) if c), {}).get("experiment", "")
        if found["label"] and found["label"] == experiment:
            short = shorten(experiment)
            labels = [short, f"{short}@{clock[:5]}", f"{short}@{clock}", f"{short}@{uid}"]
        else:
            labels = [clock[:5], clock, f"{clock}@{uid}"]
    yield from labels
    yield from (f"{labels[0]}@{n}" for n in count(2))


def choices_of(folder: Path) -> dict[str, str]:
    """The config groups' options of the run in `folder` ({} if it is not a run)."""
    if not (folder / runs.STATUS).exists():
        return {}
    return {str(k): str(v) for k, v in (runs.read_status(folder).get("choices") or {}).items()}


def event_folders(root: Path, skip: Path) -> dict[Path, list[str]]:
    """Every folder under `root` (itself included) holding event files -> their names; not those under `skip` (the
    view itself, when the board is on a folder that holds it)."""
    found = {}
    for here, folders, files in os.walk(root):
        folders[:] = [f for f in folders if Path(here, f) != skip]
        events = sorted(f for f in files if f.startswith(EVENTS))
        if events:
            found[Path(here)] = events
    return found


def is_sweep(parent: Path, folder: Path) -> bool:
    """Is `folder` a job of the sweep in `parent`? (Hydra's record of the sweep is there, or the job says so.)"""
    return (parent / runs.MULTIRUN).exists() or isinstance(runs.read_status(folder).get("sweep_job"), int)


def run_label(name: str) -> str:
    """A single run's name from its directory's: the overrides without the time and id, its experiment first
    (06-14-46_8425d4_exp=xor_mlp,epochs=5 -> xor_mlp/epochs=5, 06-14-46_8425d4_exp=xor_mlp -> xor_mlp); DEFAULTS
    without overrides."""
    found = RUN_NAME.fullmatch(name)
    label = found.group("label") if found else name
    if label.startswith(EXPERIMENT):
        experiment, _, rest = label[len(EXPERIMENT) :].partition(",")
        label = f"{shorten(experiment)}/{rest}" if rest else shorten(experiment)
    return label or DEFAULTS


def shorten(label: str) -> str:
    return label if len(label) <= SWEEP_CHARS else label[: SWEEP_CHARS - 1] + "~"


def started(folder: Path) -> float:
    """When the run in `folder` started: the second its first event file was created in (from the file's name)."""
    stamps = [int(f.split(".")[3]) for f in os.listdir(folder) if f.startswith(EVENTS) and f.split(".")[3].isdigit()]
    stamps = [s for s in stamps if s > 0]  # not the board's own record
    return float(min(stamps)) if stamps else time.time()
