"""The end of a big sweep (dlexp/sweeps/summary.py): past COMPACT_JOBS jobs, its table as `dlexp compare` prints it and
the jobs that did not complete, not one line a job; summary.csv is the table of any sweep, every job counted."""

from __future__ import annotations

import csv

from conftest import run_dirs

from dlexp.sweeps import summary

# 24 tiny jobs in one stack: two learning rates x 12 seeds; every run of the second diverges at step 2
BIG = [
    "hydra/launcher=vectorized",
    "data=xor",
    "model=mlp",
    "trainer.epochs=3",
    "log.progress=none",
    "optimizer.lr=0.5,1e20",
    "seed=range(12)",
]


def test_a_big_sweep_ends_with_its_table_and_the_jobs_that_did_not_complete(cli, tmp_path):
    assert summary.COMPACT_JOBS < 24
    result = cli("train", "-m", *BIG, "hydra.sweep.dir=sweep")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]  # diverged runs: exit code 3
    out = result.stdout
    end = out[out.index("sweep finished: 24 runs (12 completed, 12 diverged)") :].splitlines()
    names = [p.name for p in run_dirs(tmp_path / "sweep")]
    assert len(names) == 24
    listed = [name for name in names if any(line.rstrip().endswith(name) for line in end)]
    assert sorted(listed) == sorted(n for n in names if n.startswith("lr=1e+20"))  # the diverged ones, only
    assert any(line.startswith("  diverged") for line in end)
    assert not any(line.startswith("  completed") for line in end)
    assert any("24 runs in 2 groups" in line for line in end)  # the grouped table, as dlexp compare titles it
    table = [line for line in end if "optimizer.lr" in line or "0.5" in line or "1e+20" in line]
    assert table, end
    assert len(end) < 40  # not a line a job

    with (tmp_path / "sweep" / summary.SUMMARY_CSV).open(newline="") as f:
        groups = list(csv.DictReader(f))  # the grouped table, every job counted in its group, as for any sweep
    assert [(g["optimizer.lr"], g["runs"], g["statuses"]) for g in groups] == [
        ("0.5", "12", "12 completed"),
        ("1e+20", "12", "12 diverged"),
    ]


def test_a_small_sweep_still_ends_with_a_line_a_job(cli, tmp_path):
    result = cli("train", "-m", *BIG[:-1], "seed=0,1", "hydra.sweep.dir=sweep")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    end = result.stdout[result.stdout.index("sweep finished: 4 runs") :].splitlines()
    assert sum(line.startswith(("  completed", "  diverged")) for line in end) == 4
    assert not any("runs in 2 groups" in line for line in end)
