"""`dlexp compare`: the table, sorting, CSV / Markdown / PNG, write_summary — on hand-made runs and a real sweep."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from dlexp import DlexpError
from dlexp.read import compare
from dlexp.read.rows import collect
from dlexp.read.table import RUNS_CAPTION, add_columns, sort_records, table
from dlexp.sweeps.summary import write_summary


def make_run(
    root: Path,
    name: str,
    overrides: list[str],
    status: str,
    curve: list[tuple[float, float, float]],
    extra: dict | None = None,
) -> Path:
    """A run directory as dlexp train leaves it: status.json + metrics.csv (epoch, step, val/loss, val/acc)."""
    path = root / name
    path.mkdir(parents=True)
    with (path / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "train/loss", "val/loss", "val/acc", "time"])
        for epoch, (train_loss, val_loss, val_acc) in enumerate(curve):
            writer.writerow([epoch, epoch * 10, "" if epoch == 0 else train_loss, val_loss, val_acc, epoch * 0.1])
    last = curve[-1]
    metrics = {"train/loss": last[0], "val/loss": last[1], "val/acc": last[2], **(extra or {})}
    (path / "status.json").write_text(
        json.dumps(
            {
                "status": status,
                "name": name,
                "overrides": overrides,
                "epoch": len(curve) - 1,
                "wall_time": 1.5,
                "metrics": metrics,
            }
        )
    )
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    make_run(
        root,
        "0_optimizer=sgd",
        ["optimizer=sgd", "trainer.epochs=3"],
        "completed",
        [(2.3, 2.3, 0.1), (1.0, 0.9, 0.6), (0.8, 0.7, 0.7), (0.75, 0.72, 0.69)],
        {"hist/dead": 0.25},
    )
    make_run(
        root,
        "1_optimizer=adam",
        ["optimizer=adam", "trainer.epochs=3"],
        "completed",
        [(2.3, 2.3, 0.1), (0.5, 0.4, 0.9), (0.3, 0.35, 0.93), (0.2, 0.3, 0.95)],
        {"hist/dead": 0.0},
    )
    make_run(
        root,
        "2_optimizer=sgd_lr10",
        ["optimizer=sgd", "trainer.epochs=3", "optimizer.lr=10"],
        "diverged",
        [(2.3, 2.3, 0.1), (9.0, 50.0, 0.1)],
    )
    return root


def rows_of(sweep: Path, sort: str | None = None, columns: list[str] | None = None):
    rows = collect([sweep])
    if columns:
        add_columns(rows, columns)
    t = sort_records(table(rows, columns), sort)
    return t.columns, t.records


def test_columns_are_the_overrides_that_differ(sweep):
    columns, records = rows_of(sweep)
    assert "optimizer" in columns and "optimizer.lr" in columns
    assert "trainer.epochs" not in columns  # the same in every run
    assert [r["optimizer"] for r in records] == ["sgd", "adam", "sgd"]
    assert [r["optimizer.lr"] for r in records] == ["", "", "10"]
    assert [r["status"] for r in records] == ["completed", "completed", "diverged"]


def test_best_values_come_from_every_epoch(sweep):
    _, records = rows_of(sweep)
    sgd = records[0]
    assert sgd["val/loss"] == pytest.approx(0.72)  # final
    assert sgd["best/val/loss"] == pytest.approx(0.7)  # epoch 2 was better
    assert sgd["best/val/acc"] == pytest.approx(0.7)
    assert sgd["best/train/loss"] == pytest.approx(0.75)  # the step-0 row has no train/loss
    assert sgd["hist/dead"] == pytest.approx(0.25)
    assert sgd["epochs"] == 3 and sgd["wall_time"] == pytest.approx(1.5)


def test_sort_ascending_descending_and_by_override(sweep):
    _, records = rows_of(sweep, "val/loss")
    assert [r["run"] for r in records] == ["1_optimizer=adam", "0_optimizer=sgd", "2_optimizer=sgd_lr10"]
    _, records = rows_of(sweep, "-val/acc")
    assert [r["run"] for r in records] == ["1_optimizer=adam", "0_optimizer=sgd", "2_optimizer=sgd_lr10"]
    _, records = rows_of(sweep, "best/val/loss")
    assert records[0]["run"] == "1_optimizer=adam"
    _, records = rows_of(sweep, "optimizer")
    assert [r["optimizer"] for r in records] == ["adam", "sgd", "sgd"]


def test_missing_values_sort_last_both_ways(sweep):
    for key in ("hist/dead", "-hist/dead"):
        _, records = rows_of(sweep, key)
        assert records[-1]["run"] == "2_optimizer=sgd_lr10"  # the diverged run has no hist/dead


def test_unknown_sort_key_names_the_columns(sweep):
    with pytest.raises(DlexpError, match=r"val/los.*not a column.*val/loss"):
        rows_of(sweep, "val/los")


def test_missing_path_and_empty_folder_are_one_sentence(tmp_path):
    with pytest.raises(DlexpError, match="does not exist"):
        collect([tmp_path / "nope"])
    with pytest.raises(DlexpError, match="no runs under"):
        collect([tmp_path])


def test_csv_and_markdown(sweep, tmp_path):
    out = io.StringIO()
    code = compare.main(
        [sweep],
        sort="val/loss",
        csv_path=tmp_path / "t.csv",
        markdown_path=tmp_path / "t.md",
        console=Console(file=out, width=200),
    )
    assert code == 0
    with (tmp_path / "t.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["optimizer"] for r in table] == ["adam", "sgd", "sgd"]  # sorted like the screen
    assert float(table[0]["val/loss"]) == pytest.approx(0.3)
    assert table[2]["status"] == "diverged" and table[2]["hist/dead"] == ""
    assert Path(table[0]["path"]).name == "1_optimizer=adam"
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[0].startswith("| run | optimizer | optimizer.lr |") and "val/loss" in md[0]
    assert set(md[1].replace("|", "")) <= set("-:")
    assert len(md) == 2 + 3
    assert "| adam |" in md[2] and "| 0.3 |" in md[2]
    assert "diverged" in md[4]
    screen = out.getvalue()
    assert "diverged" in screen and "adam" in screen and "sorted by val/loss" in screen


def test_table_fits_80_columns_without_losing_numbers(sweep):
    out = io.StringIO()
    compare.main([sweep], console=Console(file=out, width=80))
    screen = out.getvalue()
    assert "0.72" in screen and "completed" in screen and "diverged" in screen


def test_the_table_says_which_number_is_final_and_which_best(sweep):
    out = io.StringIO()
    compare.main([sweep], console=Console(file=out, width=120))
    screen = out.getvalue()
    assert "(best)" not in screen
    assert RUNS_CAPTION.split(";")[0] in " ".join(screen.split())


def test_80_columns_through_the_cli_keep_the_overrides_readable(tmp_path, cli):
    """Long job names: the table names each run by the overrides that set it apart, whole, within 80 columns."""
    root = tmp_path / "lr"
    for i, lr in enumerate(["0.0001", "0.001", "0.01", "0.1", "1.0"]):
        name = f"{i}_experiment=learning_rate,optimizer.lr={lr},log.progress=none"
        make_run(
            root,
            name,
            ["experiment=learning_rate", f"optimizer.lr={lr}", "log.progress=none"],
            "diverged" if lr == "1.0" else "completed",
            [(0.26, 0.26, 0.5), (0.1 * i + 0.01, 1e23 if lr == "1.0" else 0.02 * i + 0.01, 0.5)],
            {"hist/saturated": 0.017, "hist/dead": 0.1},
        )
    result = cli("compare", str(root), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # nothing cut
    values = [line.split()[0] for line in lines if re.match(r"\d+\.\d+ ", line)]
    assert values == ["0.0001", "0.001", "0.01", "0.1", "1.0"]  # one row per run, named by its lr
    assert "experiment=" not in result.stdout and "diverged" in result.stdout


@pytest.mark.parametrize("width", [80, 100, 120])
def test_a_grouped_sweep_fits_the_terminal_and_keeps_its_group_names_whole(tmp_path, cli, width):
    """optimizer=sgd,momentum optimizer.lr=0.01,0.1 seed=0,1,2: the mean±std cells give up their width first (the
    ± goes under the mean), the columns that name the groups last."""
    root = tmp_path / "sweep"
    for job, (optimizer, lr, seed) in enumerate(
        (o, lr, seed) for o in ("sgd", "momentum") for lr in ("0.01", "0.1") for seed in range(3)
    ):
        spread = 0.0123 * seed + 0.00071 * job
        make_run(
            root,
            f"optimizer={optimizer},lr={lr},seed={seed}_{job}",
            [f"optimizer={optimizer}", f"optimizer.lr={lr}", f"seed={seed}"],
            "completed",
            [(2.3, 2.3, 0.1), (2.2071 - spread, 2.1713 - spread, 0.5478 + spread)],
            {"train/acc": 0.5515 + spread, "hist/dead": 0.04948 + spread / 10},
        )
    result = cli("compare", str(root), env={"COLUMNS": str(width)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width, result.stdout
    assert "…" not in result.stdout, result.stdout  # nothing cut: group names, headers
    names = [line.split()[0] for line in lines if line.startswith(("sgd ", "momentum "))]
    assert sorted(names) == ["momentum", "momentum", "sgd", "sgd"], result.stdout
    assert "±" in result.stdout and "in 4 groups" in result.stdout


def test_columns_name_any_logged_scalar(tmp_path):
    """--columns: metrics from status.json / metrics.csv, and scalars only the event files hold (last value)."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "fit"
    for i, slope in enumerate([3.36, 1.98]):
        run = make_run(
            root,
            f"{i}_loss={('mse', 'mae')[i]}",
            [f"loss={('mse', 'mae')[i]}"],
            "completed",
            [(1.0, 1.0, 0.0), (0.5, 0.4, 0.0)],
        )
        with SummaryWriter(str(run)) as writer:  # an independent writer: TensorBoard's own, through torch
            for step, value in [(0, 0.1), (50, slope / 2), (100, slope)]:
                writer.add_scalar("weight/1_linear", value, step)
    columns, records = rows_of(root, columns=["weight/1_linear", "val/loss", "epochs"])
    assert columns == ["run", "loss", "weight/1_linear", "val/loss", "best/val/loss", "epochs", "status"]
    assert [r["weight/1_linear"] for r in records] == [pytest.approx(3.36), pytest.approx(1.98)]
    with pytest.raises(DlexpError, match=r"no run logged weight/2_linear; these runs have: .*weight/1_linear"):
        rows_of(root, columns=["weight/2_linear"])


def early_divergence(root: Path, name: str, overrides: list[str], metrics: dict) -> Path:
    """A run as dlexp train leaves one that diverged before its first evaluated epoch: metrics.csv holds the fresh
    network's row (epoch 0, no train/loss), the event file val/loss at step 0, status.json no last train/loss or
    val/loss (`metrics`: what it does hold)."""
    from dlexp.observe.tensorboard import write_scalars

    run = make_run(root, name, overrides, "diverged", [(None, 0.26, 0.5)])
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "metrics": metrics, "diverged_at_step": 8}))
    write_scalars(run, {"val/loss": [(0, 0.26)], "val/acc": [(0, 0.5)], "train/step_loss": [(8, 3.5e12)]})
    return run


@pytest.mark.parametrize(
    "metrics", [{"best/val/loss": 0.26, "hist/saturated": 0.99}, {}], ids=["best-kept", "no-metrics"]
)
@pytest.mark.parametrize("columns", [None, "train/loss,val/loss,val/acc,epochs"], ids=["default", "columns"])
def test_a_diverged_run_never_shows_its_fresh_networks_loss_as_its_last(tmp_path, metrics, columns):
    """Its last train/loss, val/loss, val/acc read "—" on the screen and are empty in the CSV, as in summary.csv;
    its best/ values stay (they are what it reached)."""
    root = tmp_path / "lr"
    make_run(root, "lr=0.1_0", ["optimizer.lr=0.1"], "completed", [(None, 0.26, 0.5), (0.05, 0.04, 0.9)])
    early_divergence(root, "lr=1.0_1", ["optimizer.lr=1.0"], metrics)
    out = io.StringIO()
    compare.main([root], columns=columns, csv_path=tmp_path / "t.csv", console=Console(file=out, width=200))
    with (tmp_path / "t.csv").open() as f:
        diverged = list(csv.DictReader(f))[1]
    assert diverged["status"] == "diverged"
    assert diverged["train/loss"] == diverged["val/loss"] == diverged["val/acc"] == "", diverged
    assert float(diverged["best/val/loss"]) == pytest.approx(0.26)
    (row,) = [line for line in out.getvalue().splitlines() if line.startswith("1.0 ")]
    assert "0.26" not in row and row.split()[1:4] == ["—", "—", "—"], out.getvalue()


def test_an_untrained_run_ends_on_its_fresh_networks_numbers(tmp_path):
    """trainer.epochs=0: status.json holds no val/loss (only epoch 0 was evaluated), and epoch 0 is its last epoch."""
    run = make_run(tmp_path, "untrained", ["trainer.epochs=0"], "completed", [(None, 0.69, 0.5)])
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "metrics": {"best/val/loss": 0.69, "hist/dead": 0.27}}))
    _, (record,) = rows_of(tmp_path)
    assert record["val/loss"] == pytest.approx(0.69) and record["val/acc"] == pytest.approx(0.5)


def test_columns_no_run_logged_are_left_out_and_said_so(tmp_path, cli):
    """A sweep whose one job diverged before any train/loss (scripts/learning_rate.sh optimizer.lr=0.5): the table
    prints without that column; only when no asked column was logged is it an error."""
    root = tmp_path / "lr"
    early_divergence(root, "lr=0.5_0", ["optimizer.lr=0.5"], {"best/val/loss": 0.26, "hist/saturated": 0.99})
    result = cli(
        "compare", str(root), "--columns", "train/loss,val/loss,hist/saturated,epochs", "--csv", str(tmp_path / "t.csv")
    )
    assert result.returncode == 0, result.stderr
    assert "diverged" in result.stdout and "saturated" in result.stdout
    assert "val/loss" not in result.stdout.partition("─")[0]  # a number column's header, split at "/"
    assert "--columns: no run logged train/loss; left out." in result.stdout
    with (tmp_path / "t.csv").open() as f:
        assert next(csv.reader(f)) == [
            "run",
            "optimizer.lr",
            "val/loss",
            "best/val/loss",
            "hist/saturated",
            "epochs",
            "status",
            "path",
        ]
    nothing = cli("compare", str(root), "--columns", "train/loss,weight/9_linear")
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    assert "--columns: no run logged train/loss, weight/9_linear; these runs have: " in nothing.stderr


def test_columns_every_run_has_never_need_the_event_files(sweep, monkeypatch):
    from dlexp.observe import tensorboard

    monkeypatch.setattr(tensorboard, "read_scalars", lambda path: pytest.fail("read the event files"))
    columns, _ = rows_of(sweep, columns=["val/acc", "train/loss", "wall_time"])
    assert columns == [
        "run",
        "optimizer",
        "optimizer.lr",
        "val/acc",
        "best/val/acc",
        "train/loss",
        "best/train/loss",
        "wall_time",
        "status",
    ]


def test_write_summary_into_the_sweep(sweep):
    written = write_summary(sweep)
    assert [p.name for p in written] == ["summary.csv", "summary.md"]
    assert all(p.parent == sweep for p in written)
    assert "1_optimizer=adam" in (sweep / "summary.md").read_text()
    assert write_summary(sweep / "nothing-here") == []


def test_cli_compare_and_its_error(sweep, tmp_path):
    dlexp = [sys.executable, "-m", "dlexp", "compare"]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [*dlexp, str(sweep), "--sort", "-val/acc", "--markdown", str(tmp_path / "t.md")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if line.startswith(("adam", "sgd"))]
    assert names == ["adam", "sgd", "sgd"]  # named by the overrides that set them apart
    assert (tmp_path / "t.md").exists()
    result = subprocess.run([*dlexp, str(tmp_path / "missing")], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2  # a usage error
    assert "missing does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_real_sweep_through_the_cli(tmp_path):
    """dlexp train -m ... then dlexp compare on that sweep, both as a user types them."""
    dlexp = [sys.executable, "-m", "dlexp"]
    subprocess.run(
        [*dlexp, "train", "-m", "optimizer=sgd,adam", "trainer.epochs=2", "log.progress=lines", "model.hidden=[16]"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    sweep = next((tmp_path / "runs" / "multirun").iterdir())
    result = subprocess.run(
        [
            *dlexp,
            "compare",
            str(sweep),
            "--sort",
            "val/loss",
            "--csv",
            "t.csv",
            "--markdown",
            "t.md",
            "--plot",
            "t.png",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "optimizer" in result.stdout and "sgd" in result.stdout and "adam" in result.stdout
    with (tmp_path / "t.csv").open() as f:
        table = list(csv.DictReader(f))
    losses = [float(r["val/loss"]) for r in table]
    assert losses == sorted(losses) and {r["optimizer"] for r in table} == {"sgd", "adam"}
    assert all(r["status"] == "completed" and r["epochs"] == "2" for r in table)
    assert all(r["hist/dead"] != "" for r in table)  # relu MLP: the histogram observer's number
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert (sweep / "summary.csv").exists()  # written by the sweep's end-of-multirun callback
