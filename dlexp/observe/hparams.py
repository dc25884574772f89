"""HParams: each run's hyper-parameters and final metrics, so a sweep is one row per job in TensorBoard.

Each run records its own hyper-parameters (a session). Which of them become the table's columns is the sweep's
to say, since only the sweep knows what its jobs vary: at its end it writes the columns (write_sweep_columns).
TensorBoard's HParams table shows the first five hyper-parameters (those marked as differing first) and the first
five metrics: the swept keys and `status`, then the metrics in COLUMNS' order.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from dlexp.read.rows import Scalar, flatten
from dlexp.read.runs import is_better, ranked

SKIP_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_"}  # how objects are built, not what they are
SKIP_TOP = {"log", "allow_targets"}  # logging knobs and the import allow-list are not hyper-parameters
# The metric columns of a sweep's HParams table, in order (TensorBoard shows the first five); those no run has are
# left out. The per-layer numbers (act_mean/..., a column each) stay in Scalars.
COLUMNS = (
    "val/loss",
    "val/acc",
    "best/val/loss",
    "best/val/acc",
    "train/loss",
    "train/acc",
    "best/train/loss",
    "best/train/acc",
    "hist/saturated",
    "hist/dead",
)
STATUS = "status"  # the hyper-parameter saying how the run ended


def hyperparameters(config: Mapping, choices: Mapping[str, str] | None = None) -> dict[str, Scalar]:
    """The option chosen in each config group (optimizer: adam) plus every flattened config value, except a
    group's key that only repeats its option's name (initializer.scheme: xavier_normal, device.type: cpu)."""
    chosen = {str(k): str(v) for k, v in (choices or {}).items()}
    flat = {
        k: v
        for k, v in flatten(config, skip_keys=SKIP_KEYS, skip_top=SKIP_TOP).items()
        if chosen.get(k.split(".")[0]) != v
    }
    return {**chosen, **flat}


def write_sweep_columns(rows, varied: list[str]) -> Path | None:
    """The columns of a sweep's HParams table: `varied` (the override keys the sweep varies) with the values its
    runs had, `status`, then the metrics of COLUMNS the runs have. Written once the sweep is finished (no job left
    to continue), beside the events of the job that finished last (a record of its own would be a run of its own in
    TensorBoard): a job finished before `dlexp resume SWEEP_DIR` is never touched. Returns where, else None.

    `rows` are dlexp.read.compare RunRows. A run's session names a hyper-parameter by its config key (optimizer.lr) or
    group (optimizer); a swept key without one (log.every) is no column.
    """
    from dlexp.observe import tensorboard
    from dlexp.read import runs

    if not rows or any(row.status in runs.CONTINUABLE for row in rows):
        return None
    columns: dict[str, list[Scalar]] = {}
    for name in (key.lstrip("+") for key in varied):
        if name.split(".")[0] in SKIP_TOP:
            continue
        values = [row.choices[name] if name in row.choices else row.config.get(name) for row in rows]
        if any(value is not None for value in values):
            columns[name] = [value for value in values if value is not None]
    columns[STATUS] = [row.status for row in rows]
    present = {tag for row in rows for tag in row.metrics}
    last = max(rows, key=lambda row: str(runs.read_status(row.path).get("finished", "")))
    return tensorboard.write_columns([last.path], columns, [m for m in COLUMNS if m in present])


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class HParams:
    """Observer: tracks the best epoch metrics and, at the end, logs hparams + final/best metrics.

    `sources` are other observers whose `final` dict (e.g. hist/saturated) joins the metrics.
    `final` exposes the best values (best/val/loss, ...) so the recipe can keep them in status.json.
    `history` (the run's metrics.csv) holds the epochs of an earlier attempt when a run is resumed.
    """

    def __init__(self, board, hparams: dict[str, Scalar], sources=(), history: Path | None = None):
        self.board, self.hparams, self.sources, self.history = board, dict(hparams), list(sources), history
        self.final: dict[str, float] = {}  # best/<metric>: lowest loss / highest accuracy seen
        self.logged: set[str] = set()  # metric tags that already have a curve in the event file

    def on_start(self, state) -> None:
        if self.history is not None and self.history.exists():
            with self.history.open(newline="") as f:
                for row in csv.DictReader(f):
                    self._best({k: _number(v) for k, v in row.items() if "/" in k})

    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        self.logged.update(tag for tag, value in metrics.items() if math.isfinite(value))
        self._best(metrics)

    def _best(self, metrics: dict[str, float]) -> None:
        for tag, value in metrics.items():
            if math.isfinite(value) and ranked(tag) and is_better(tag, value, self.final.get(f"best/{tag}")):
                self.final[f"best/{tag}"] = value

    def on_end(self, state, status: str) -> None:
        metrics = {k: v for k, v in state.metrics.items() if math.isfinite(v)}
        written = set(self.logged)
        for source in self.sources:
            found = getattr(source, "final", None) or {}
            metrics.update(found)
            written.update(found)  # their owners logged them as scalars already
        metrics.update(self.final)
        self.board.hparams({**self.hparams, STATUS: status}, metrics, step=state.step, written=written)
