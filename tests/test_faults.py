"""Faults at any moment: a signal or a kill at any instant loses at most the epochs since the last checkpoint, and
never a finished result.
"""

from __future__ import annotations

import csv
import json

from conftest import status_of

QUICK = ["data=xor", "trainer.epochs=5", "log.progress=none"]


def test_a_run_stopped_after_its_last_checkpoint_resumes_with_its_final_metrics(cli, tmp_path):
    """Stopped between its last epoch's checkpoint and its final status.json: the resume has nothing left to train,
    and ends with the metrics the uninterrupted run ended with, not only the best/* ones."""
    base = cli("train", *QUICK, "hydra.run.dir=base")
    assert base.returncode == 0, base.stderr
    cut = cli("train", *QUICK, "hydra.run.dir=cut")
    assert cut.returncode == 0, cut.stderr
    status = status_of(tmp_path / "cut")
    (tmp_path / "cut" / "status.json").write_text(json.dumps({**status, "status": "interrupted", "metrics": {}}))

    resumed = cli("resume", "cut")
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = status_of(tmp_path / "cut"), status_of(tmp_path / "base")
    assert ours["status"] == "completed"
    assert {"train/loss", "val/loss", "val/acc"} <= set(ours["metrics"])
    assert ours["metrics"] == theirs["metrics"]
    assert rows(tmp_path / "cut") == rows(tmp_path / "base")


def rows(run_dir):
    """metrics.csv without its column of seconds."""
    with (run_dir / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]
