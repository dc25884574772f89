"""Runs read as evidence: groups of seeds, mean ± std against the runs' own status.json, Welch's p-value against
scipy, the verdict, the grouped CSV / Markdown, and the aggregate TensorBoard runs read back with TensorBoard's
own reader."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats
from test_compare import make_run

from dlexp import DlexpError
from dlexp.read import compare, evidence
from dlexp.read.rows import collect
from dlexp.read.table import Table, build_table, sort_records, verdict_for
from dlexp.sweeps.summary import write_summary

ADAM = [0.30, 0.32, 0.29, 0.31]  # final val/loss of four seeds
SGD = [0.45, 0.47, 0.44]  # three completed seeds; a fourth diverges


def curve(final: float) -> list[tuple[float, float, float]]:
    """(train/loss, val/loss, val/acc) per epoch, ending at `final`."""
    return [(2.0, 2.0, 0.1), (final + 0.2, final + 0.1, 0.8), (final + 0.1, final, 0.9 - final / 10)]


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A sweep optimizer=adam,sgd x seed=0,1,2,3 as dlexp leaves it; sgd's seed 3 diverged."""
    root = tmp_path / "sweep"
    job = 0
    for seed in range(4):
        for optimizer, finals in (("adam", ADAM), ("sgd", SGD)):
            overrides = [f"optimizer={optimizer}", f"seed={seed}", "trainer.epochs=2"]
            name = f"{job}_optimizer={optimizer},seed={seed}"
            if optimizer == "sgd" and seed == 3:
                make_run(root, name, overrides, "diverged", [(2.0, 2.0, 0.1), (9.0, 1e23, 0.1)])
            else:
                make_run(root, name, overrides, "completed", curve(finals[seed]), {"hist/dead": 0.1 * seed})
            job += 1
    return root


def grouped(root: Path, **kwargs) -> Table:
    return build_table(collect([root]), **kwargs)


def status_values(root: Path, optimizer: str, metric: str) -> list[float]:
    """The metric of every completed run of one optimizer, read straight from status.json (the oracle)."""
    found = []
    for path in sorted(root.iterdir()):
        status = json.loads((path / "status.json").read_text())
        if f"optimizer={optimizer}" in status["overrides"] and status["status"] == "completed":
            found.append(status["metrics"][metric])
    return found


def test_runs_that_differ_only_in_seed_form_one_row_per_group(seeds):
    t = grouped(seeds)
    assert t.groups is not None and t.labels == ["optimizer"]
    assert [r["optimizer"] for r in t.records] == ["adam", "sgd"]
    assert [r["completed"] for r in t.records] == ["4/4", "3/4"]  # the diverged run is counted ...
    assert [r["n"] for r in t.records] == [4, 3]  # ... and not averaged
    assert "seed" not in t.columns and "trainer.epochs" not in t.columns


def test_group_statistics_equal_those_of_the_runs_status_json(seeds):
    t = grouped(seeds)
    for record in t.records:
        for metric in ("val/loss", "train/loss", "val/acc", "hist/dead", "best/val/loss"):
            values = status_values(seeds, record["optimizer"], metric) if not metric.startswith("best/") else None
            if values is None:  # best/val/loss: the lowest val/loss of each run's metrics.csv
                values = [min(row[1] for row in curve(f)) for f in (ADAM if record["optimizer"] == "adam" else SGD)]
            s = record[metric]
            assert s.n == len(values)
            assert s.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
            assert s.std == pytest.approx(statistics.stdev(values), rel=1e-12)
            assert (s.min, s.max) == (min(values), max(values))


def test_welch_p_value_equals_scipy():
    rng = np.random.default_rng(0)
    for n_a, n_b, spread_b, shift in [(4, 4, 1.0, 0.5), (3, 7, 3.0, 2.0), (2, 2, 0.1, 0.0), (8, 5, 0.5, -1.0)]:
        a, b = rng.normal(0, 1, n_a), rng.normal(shift, spread_b, n_b)
        diff, se, p = evidence.welch(evidence.describe(list(a)), evidence.describe(list(b)))
        oracle = stats.ttest_ind(a, b, equal_var=False)
        assert p == pytest.approx(oracle.pvalue, rel=1e-9)
        assert diff / se == pytest.approx(oracle.statistic, rel=1e-9)
        assert se == pytest.approx(math.sqrt(a.var(ddof=1) / n_a + b.var(ddof=1) / n_b), rel=1e-12)


def test_verdict_on_the_groups_is_scipys_p_value_and_says_clear(seeds):
    t = grouped(seeds)
    found = verdict_for(t, collect([seeds]), None)
    assert found.metric == "val/loss"
    oracle = stats.ttest_ind(
        status_values(seeds, "adam", "val/loss"), status_values(seeds, "sgd", "val/loss"), equal_var=False
    )
    assert found.p == pytest.approx(oracle.pvalue, rel=1e-9) and found.p < evidence.SIGNIFICANCE
    assert found.clear is True
    text = "\n".join(found.lines)
    assert text.startswith("verdict on val/loss (lower is better): clear.")
    assert "best       optimizer=adam" in text and "runner-up  optimizer=sgd" in text
    assert "optimizer=sgd: 1 diverged, counted but not averaged" in text


def test_verdict_follows_the_sort_metric_and_its_direction(seeds):
    t = sort_records(grouped(seeds), "-val/acc")
    found = verdict_for(t, collect([seeds]), "-val/acc")
    assert found.metric == "val/acc" and "higher is better" in found.lines[0]
    assert "best       optimizer=adam" in found.lines[1]  # higher accuracy: adam's lower loss


def test_overlapping_groups_are_within_noise(tmp_path):
    root = tmp_path / "close"
    for seed, (a, b) in enumerate([(0.30, 0.31), (0.34, 0.29), (0.28, 0.33), (0.33, 0.30)]):
        for optimizer, final in (("adam", a), ("adamw", b)):
            make_run(root, f"{optimizer}_{seed}", [f"optimizer={optimizer}", f"seed={seed}"], "completed", curve(final))
    found = verdict_for(grouped(root), collect([root]), None)
    oracle = stats.ttest_ind([0.30, 0.34, 0.28, 0.33], [0.31, 0.29, 0.33, 0.30], equal_var=False)
    assert found.p == pytest.approx(oracle.pvalue, rel=1e-9) and found.p > 0.5
    assert found.clear is False and "within noise, run more seeds" in found.lines[0]


def test_one_run_per_group_gives_no_verdict(tmp_path):
    root = tmp_path / "single"
    for optimizer, final in (("adam", 0.3), ("sgd", 0.5)):
        make_run(root, optimizer, [f"optimizer={optimizer}"], "completed", curve(final))
    t = grouped(root, by=["optimizer"])
    assert [r["completed"] for r in t.records] == ["1/1", "1/1"]
    assert t.records[0]["val/loss"].std is None  # no spread from one run
    found = verdict_for(t, collect([root]), None)
    assert found.clear is None and found.p is None
    assert "no verdict possible" in found.lines[0]
    assert grouped(root).groups is None  # nothing differs only in seed: single runs


def test_by_groups_across_the_other_keys(tmp_path):
    root = tmp_path / "grid"
    for lr in ("0.1", "0.01"):
        for seed in range(2):
            for optimizer in ("adam", "sgd"):
                make_run(
                    root,
                    f"{optimizer}_{lr}_{seed}",
                    [f"optimizer={optimizer}", f"optimizer.lr={lr}", f"seed={seed}"],
                    "completed",
                    curve(0.3),
                )
    assert len(grouped(root).groups) == 4  # default: optimizer x lr
    t = grouped(root, by=["optimizer"])
    assert t.labels == ["optimizer"] and [r["completed"] for r in t.records] == ["4/4", "4/4"]
    t = grouped(root, by=["optimizer.lr", "optimizer"])
    assert sorted((r["optimizer.lr"], r["optimizer"], r["completed"]) for r in t.records) == [
        ("0.01", "adam", "2/2"),
        ("0.01", "sgd", "2/2"),
        ("0.1", "adam", "2/2"),
        ("0.1", "sgd", "2/2"),
    ]
    with pytest.raises(
        DlexpError,
        match=r"--by optimiser: no run has a value for optimiser; keys these runs "
        r"differ in: optimizer, optimizer.lr, seed",
    ):
        grouped(root, by=["optimiser"])


def test_no_group_shows_every_run(seeds):
    t = grouped(seeds, group=False)
    assert t.groups is None and len(t.records) == 8 and "seed" in t.columns
    with pytest.raises(DlexpError, match="--by and --no-group exclude each other"):
        compare.main([seeds], by="optimizer", group=False, console=Console(file=io.StringIO()))


def test_grouped_csv_has_mean_std_and_n(seeds, tmp_path):
    out = io.StringIO()
    compare.main(
        [seeds],
        sort="val/loss",
        csv_path=tmp_path / "g.csv",
        markdown_path=tmp_path / "g.md",
        console=Console(file=out, width=120),
    )
    with (tmp_path / "g.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["optimizer"] for r in rows] == ["adam", "sgd"]
    for row, values in zip(rows, (ADAM, SGD)):
        assert float(row["val/loss_mean"]) == pytest.approx(statistics.fmean(values))
        assert float(row["val/loss_std"]) == pytest.approx(statistics.stdev(values))
        assert int(row["n"]) == len(values) and {"best/val/loss_mean", "hist/dead_std"} <= set(row)
    assert rows[1]["runs"] == "4" and rows[1]["statuses"] == "3 completed, 1 diverged"
    md = (tmp_path / "g.md").read_text()
    assert "| adam | 4/4 | " in md and "0.305 ± 0.013" in md and "verdict on val/loss" in md
    screen = out.getvalue()
    assert "8 runs in 2 groups" in screen and "3/4" in screen and "1 diverged" in screen
    assert "clear." in screen and "0.305±0.013" in screen


def scalar_run(root: Path, name: str, overrides: list[str], status: str, val_losses: list[float]) -> Path:
    """A run with metrics.csv / status.json and an event file written by TensorBoard's own SummaryWriter."""
    from torch.utils.tensorboard import SummaryWriter

    path = make_run(root, name, overrides, status, [(v, v, 0.5) for v in val_losses])
    with SummaryWriter(str(path)) as writer:
        for step, value in enumerate(val_losses):
            writer.add_scalar("val/loss", value, step * 10)
            writer.add_scalar("optim/lr", 0.1, step * 10)
    return path


def test_sweep_summary_groups_and_writes_one_aggregate_run_per_group(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tmp_path / "sweep"
    curves = {"adam": [[1.0, 0.5, 0.3], [1.1, 0.6, 0.35], [0.9, 0.45, 0.32]], "sgd": [[1.0, 0.8, 0.7], [1.2, 0.9, 0.6]]}
    for optimizer, runs_ in curves.items():
        for seed, values in enumerate(runs_):
            scalar_run(root, f"{optimizer}_{seed}", [f"optimizer={optimizer}", f"seed={seed}"], "completed", values)
    scalar_run(root, "sgd_2", ["optimizer=sgd", "seed=2"], "diverged", [1.0, 1e20])
    written = write_summary(root)
    assert [p.name for p in written] == ["summary.csv", "summary.md", "aggregate"]
    assert "verdict on val/loss" in (root / "summary.md").read_text()
    with (root / "summary.csv").open() as f:
        assert [(r["optimizer"], r["n"], r["runs"]) for r in csv.DictReader(f)] == [
            ("adam", "3", "3"),
            ("sgd", "2", "3"),
        ]
    for optimizer, runs_ in curves.items():
        acc = EventAccumulator(str(root / "aggregate" / f"optimizer={optimizer}"))
        acc.Reload()
        assert {"val/loss", "val/loss/std", "val/loss/min", "val/loss/max", "optim/lr"} <= set(acc.Tags()["scalars"])
        for tag, reduce in (
            ("val/loss", statistics.fmean),
            ("val/loss/mean", statistics.fmean),
            ("val/loss/std", statistics.stdev),
            ("val/loss/min", min),
            ("val/loss/max", max),
        ):
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            expected = [(10 * i, reduce([r[i] for r in runs_])) for i in range(3)]  # the diverged run is left out
            assert [s for s, _ in got] == [s for s, _ in expected]
            assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)  # float32 in the file
    write_summary(root)  # written again: replaced, not appended to
    assert len(list((root / "aggregate" / "optimizer=adam").glob("events.out.tfevents.*"))) == 1


def test_ungrouped_compare_imports_neither_torch_nor_scipy(tmp_path):
    root = tmp_path / "plain"
    make_run(root, "a", ["optimizer=adam"], "completed", curve(0.3))
    make_run(root, "b", ["optimizer=sgd"], "completed", curve(0.4))
    code = (
        "import sys, io; from rich.console import Console; from dlexp.read import compare; "
        f"compare.main([{str(root)!r}], console=Console(file=io.StringIO())); "
        "print(sorted(m for m in ('torch', 'scipy', 'tensorboard') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_real_seed_sweep_through_the_cli(tmp_path, cli):
    """dlexp train -m over seeds, then dlexp compare at 80 columns, as a user runs them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli(
        "train",
        "-m",
        "data=xor",
        "model=mlp",
        "trainer.epochs=20",
        "batch=full",
        "seed=0,1,2",
        "optimizer=sgd,adam",
        "log.progress=none",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    assert (sweep / "aggregate" / "optimizer=sgd").is_dir() and (sweep / "aggregate" / "optimizer=adam").is_dir()
    table = cli("compare", "sweep", "--plot", "bands.png", "--band", "minmax", env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    assert "6 runs in 2 groups" in table.stdout and table.stdout.count("3/3") == 2
    assert "verdict on val/loss (lower is better)" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()[:12]) <= 80
    assert (tmp_path / "bands.png").read_bytes()[:4] == b"\x89PNG"
    for optimizer in ("sgd", "adam"):
        statuses = [json.loads(p.read_text()) for p in sweep.glob("*/status.json")]
        finals = [s["metrics"]["val/loss"] for s in statuses if s["choices"]["optimizer"] == optimizer]
        acc = EventAccumulator(str(sweep / "aggregate" / f"optimizer={optimizer}"))
        acc.Reload()
        assert len(finals) == 3
        assert acc.Scalars("val/loss")[-1].value == pytest.approx(statistics.fmean(finals), rel=1e-5)
        assert acc.Scalars("val/loss/std")[-1].value == pytest.approx(statistics.stdev(finals), rel=1e-4)
        assert acc.Scalars("val/loss")[-1].step == 20


def test_clear_means_p_below_the_readmes_threshold(tmp_path):
    """The README: `clear` means p < 0.05. Two pairs of groups whose p-values lie either side of it."""
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert "`clear` means p < 0.05" in readme and evidence.SIGNIFICANCE == 0.05
    for shift in (2.2, 2.5):  # p = 0.054 and 0.038
        root = tmp_path / str(shift)
        for seed, base in enumerate((0.0, 1.0, 2.0)):
            for optimizer, final in (("adam", 1 + base / 10), ("sgd", 1 + (base + shift) / 10)):
                make_run(
                    root, f"{optimizer}_{seed}", [f"optimizer={optimizer}", f"seed={seed}"], "completed", curve(final)
                )
        found = verdict_for(grouped(root), collect([root]), None)
        p = stats.ttest_ind([0, 1, 2], [shift, shift + 1, shift + 2], equal_var=False).pvalue
        assert found.p == pytest.approx(p, rel=1e-6)
        assert found.clear is bool(p < 0.05) and found.lines[0].endswith("clear.") is bool(p < 0.05)
