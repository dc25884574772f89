"""metrics.csv: one row per evaluated epoch, readable by any spreadsheet and by `dlexp compare`."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TextIO

from dlexp.run import record


class MetricsCSV:
    """Appends a row at each evaluated epoch, flushed at once (a run that crashes keeps every row it wrote); the
    file stays open between rows (opening it again costs more than the row)."""

    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None
        self.started = time.perf_counter()
        self.purged = False
        self.file: TextIO | None = None
        self.writer: csv.DictWriter | None = None

    def _purge(self, state) -> None:
        """A continued run first drops the rows an earlier attempt wrote after its checkpoint (as TensorBoard's
        purge_step drops their events), and a row a crash cut short; then it appends to its own file."""
        from dlexp.run.checkpoint import purge_step

        self.purged = True
        if not self.path.exists():
            return
        keep = purge_step(state.step)
        with self.path.open(newline="") as f:
            header, *rows = list(csv.reader(f)) or [[]]
        where = header.index("step") if "step" in header else None
        rows = [r for r in rows if where is not None and len(r) == len(header) and _int(r[where]) < keep]
        if not rows:
            self.path.unlink()
            return
        with record.replacing(self.path) as tmp, tmp.open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        self.columns = header

    def on_start(self, state) -> None:
        if not self.purged:
            self._purge(state)

    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        if not self.purged:  # a fresh start's epoch 0 comes before on_start
            self._purge(state)
        row = {
            "epoch": state.epoch,
            "step": state.step,
            **metrics,
            "time": round(time.perf_counter() - self.started, 3),
        }
        if self.writer is None or self.file is None:
            new = self.columns is None
            columns = self.columns or ["epoch", "step", "train/loss"] + [
                k for k in row if k not in ("epoch", "step", "train/loss")
            ]  # train/loss is absent from the step-0 row (no epoch yet) but belongs in the header
            self.columns = columns
            self.file = self.path.open("a", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
            if new:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()

    def on_end(self, state, status: str) -> None:
        if self.file is not None:
            self.file.close()
            self.file, self.writer = None, None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1 << 62
