"""metrics.csv: one row per evaluated epoch, readable by any spreadsheet and by `dlexp compare`."""

from __future__ import annotations

import csv
import time
from pathlib import Path


class MetricsCSV:
    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None
        self.started = time.perf_counter()

    def on_start(self, state) -> None:
        if self.path.exists():  # a resumed run appends to its own file
            with self.path.open() as f:
                self.columns = next(csv.reader(f), None)

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        row = {"epoch": state.epoch, "step": state.step, **metrics,
               "time": round(time.perf_counter() - self.started, 3)}
        new = self.columns is None
        if new:  # train/loss is absent from the step-0 row (no epoch yet) but belongs in the header
            self.columns = ["epoch", "step", "train/loss"] + [k for k in row if k not in ("epoch", "step", "train/loss")]
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
