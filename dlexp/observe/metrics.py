"""metrics.csv: one row per evaluated epoch, readable by any spreadsheet and by `dlexp compare`."""

from __future__ import annotations

import csv
import time
from pathlib import Path


class MetricsCSV:
    """Appends a row at each evaluated epoch, flushed at once (a run that crashes keeps every row it wrote); the
    file stays open between rows (opening it again costs more than the row)."""

    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None
        self.started = time.perf_counter()
        self.file = None
        self.writer: csv.DictWriter | None = None

    def on_start(self, state) -> None:
        if self.path.exists() and self.columns is None:  # a resumed run appends to its own file
            with self.path.open() as f:
                self.columns = next(csv.reader(f), None)

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        row = {"epoch": state.epoch, "step": state.step, **metrics,
               "time": round(time.perf_counter() - self.started, 3)}
        if self.writer is None:
            new = self.columns is None
            if new:  # train/loss is absent from the step-0 row (no epoch yet) but belongs in the header
                self.columns = ["epoch", "step", "train/loss"] + [k for k in row
                                                                  if k not in ("epoch", "step", "train/loss")]
            self.file = self.path.open("a", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction="ignore")
            if new:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()

    def on_end(self, state, status: str) -> None:
        if self.file is not None:
            self.file.close()
            self.file, self.writer = None, None
