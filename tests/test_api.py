"""The Python API (dlexp/api.py): the same runs as the command line, read back as DataFrames, and a process left as
it was found after every call, so that a notebook's cell can run again."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_dirs, status_of

import dlexp
from dlexp import ConfigError, UsageError
from dlexp.read import runs
from dlexp.run import record
from dlexp.run import signals as run_signals

XOR = ("experiment=xor_mlp", "trainer.epochs=300", "log.progress=none")
SEEDS = (*XOR, "optimizer=sgd,adam", "seed=0,1,2")


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The API writes under the working directory, as the command line does."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def process_state() -> dict:
    """What a command could leave behind in the process."""
    from hydra.core.global_hydra import GlobalHydra

    locks = []
    for fd in os.listdir("/proc/self/fd"):  # the listing's own descriptor is gone when read
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(runs.LOCK):
                locks.append(fd)
        except OSError:
            pass
    return {
        "handlers": {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)},
        "hydra": GlobalHydra.instance().is_initialized(),
        "root": list(logging.getLogger().handlers),
        "sweep": (run_signals.watched_sweep(), run_signals.stop_requested()),
        "locks": (len(locks), len(record._held)),
        "cwd": os.getcwd(),
        "argv": list(sys.argv),
    }


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / runs.METRICS).open() as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def test_importing_dlexp_and_its_api_names_does_not_import_torch_or_hydra():
    code = "import sys, dlexp; dlexp.train, dlexp.Sweep; print('torch' in sys.modules, 'hydra' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_a_run_from_python_writes_what_dlexp_train_writes(cli, here):
    cli_dir = here / "shell"
    cli_dir.mkdir()
    assert cli("train", *XOR, cwd=cli_dir).returncode == 0
    (shell_run,) = run_dirs(cli_dir / "runs")
    before = process_state()
    run = dlexp.train(*XOR)
    assert process_state() == before
    assert run.status == "completed" and run.dir.parent.parent == here / "runs"
    assert run.metrics == status_of(shell_run)["metrics"]  # the same ops on the same data: exactly
    assert metrics_rows(run.dir) == metrics_rows(shell_run)
    history = run.history
    assert list(history["epoch"]) == [int(r["epoch"]) for r in metrics_rows(shell_run)]
    assert history["val/loss"].iloc[-1] == run.metrics["val/loss"]
    assert run.config.trainer.epochs == 300 and run.config.optimizer.lr == 1.0
    assert "completed" in run._repr_html_() and "\x1b" not in run._repr_html_()
    again = dlexp.train(*XOR)  # a second call in the same process: a run of its own, the same numbers
    assert again.dir != run.dir and again.metrics == run.metrics
    assert isinstance(dlexp.load(run.dir), dlexp.Run)


def test_a_bad_override_raises_the_sentence_the_command_line_prints(cli, here):
    said = cli("train", "optimizer.lr=fast")
    assert said.returncode == 2
    before = process_state()
    with pytest.raises(ConfigError) as refused:
        dlexp.train("optimizer.lr=fast")
    assert str(refused.value) in said.stderr and "optimizer.lr" in str(refused.value)
    assert process_state() == before and not (here / "runs").exists()  # nothing written
    with pytest.raises(UsageError, match="dlexp.sweep"):
        dlexp.train("-m", "seed=0,1")
    with pytest.raises(ConfigError, match="optimizer"):
        dlexp.sweep("optimizer=sgd,adamm")


def test_a_diverged_run_is_a_result(here):
    run = dlexp.train("experiment=learning_rate", "optimizer.lr=1.0", "trainer.epochs=50", "log.progress=none")
    assert run.status == "diverged"  # exit code 3 on the command line; a result here, not an exception
    assert run.record["diverged_at_step"] < 50


def test_a_sweep_from_python_tables_as_dlexp_compare_csv(cli, here):
    sweep = dlexp.sweep(*SEEDS, "hydra/launcher=vectorized")
    assert isinstance(sweep, dlexp.Sweep) and len(sweep.runs) == 6
    assert {run.status for run in sweep.runs} == {"completed"} and sweep.status == "completed"
    assert cli("compare", str(sweep.dir), "--csv", "table.csv").returncode == 0
    written = pd.read_csv(here / "table.csv")
    table = sweep.table()
    assert list(table["completed"]) == ["3/3", "3/3"]
    pd.testing.assert_frame_equal(table.drop(columns="completed"), written, check_dtype=False)
    verdict = sweep.verdict
    assert verdict is not None and verdict.metric == "val/loss"
    assert {verdict.best, verdict.runner_up} == {"optimizer=sgd", "optimizer=adam"}
    assert verdict.p_value is not None and 0.0 <= verdict.p_value <= 1.0 and verdict.standard_error is not None
    best = table.set_index("optimizer").loc[verdict.best.split("=")[1], "val/loss_mean"]
    second = table.set_index("optimizer").loc[verdict.runner_up.split("=")[1], "val/loss_mean"]
    assert verdict.difference == pytest.approx(best - second)
    assert verdict.sentence in cli("compare", str(sweep.dir)).stdout
    fig = sweep.plot()
    assert fig.axes and fig.axes[0].get_lines()
    shown = sweep._repr_html_()
    assert "<table" in shown and "image/png" in shown and "\x1b" not in shown


def test_load_reads_a_sweep_the_command_line_wrote_and_resume_finishes_it(cli, here):
    assert cli("train", "-m", *XOR, "seed=0,1").returncode == 0
    (sweep_dir,) = (here / "runs" / "multirun").iterdir()
    sweep = dlexp.load(sweep_dir)
    assert isinstance(sweep, dlexp.Sweep) and sorted(r.status for r in sweep.runs) == ["completed", "completed"]
    assert list(sweep.table()["n"]) == [2]  # runs that differ only in seed: one group
    finished = sweep.resume()  # nothing left to run: the same sweep back, untouched
    assert finished.dir == sweep_dir.absolute() and len(finished.runs) == 2
    with pytest.raises(UsageError, match="holds no run"):
        dlexp.load(here)


def test_an_error_inside_a_sweep_leaves_no_lock_handler_or_sweep_behind(here, monkeypatch):
    """A job that raises ends the sweep past its callbacks' end (which would release the lock and handlers)."""
    from dlexp.run import recipe

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a job")

    monkeypatch.setattr(recipe, "complete", broken)
    before = process_state()
    sweep = dlexp.sweep(*XOR, "seed=0,1")  # said as the command line says a launcher's failure, then the summary
    assert sweep.dir.is_dir()
    assert process_state() == before  # the sweep's lock released, its Ctrl-C handlers gone, Hydra cleared


def test_ctrl_c_stops_a_run_checkpointed_raises_interrupted_and_resume_finishes_it(here):
    """Ctrl-C in a notebook is SIGINT to the kernel's main thread, as here."""
    before = process_state()
    overrides = ("experiment=xor_mlp", "trainer.epochs=20000", "log.progress=none")

    def interrupt():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = run_dirs(here / "runs")
            if found and (found[0] / "checkpoint.pt").exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(dlexp.Interrupted) as stopped:
        dlexp.train(*overrides)
    run = stopped.value.result
    assert isinstance(stopped.value, KeyboardInterrupt) and run.status == "interrupted"
    assert f"dlexp.load({str(run.dir)!r}).resume()" in str(stopped.value)
    assert process_state() == before  # Ctrl-C is the notebook's again
    finished = dlexp.load(run.dir).resume()
    assert finished.status == "completed"
    assert status_of(run.dir)["epoch"] == 20000


def test_board_serves_the_runs_and_returns_the_page_to_open(here):
    dlexp.train(*XOR)
    code = textwrap.dedent(f"""
        import json, urllib.request, dlexp
        url = dlexp.board({str(here / "runs")!r})
        print(url)
        print(json.dumps(json.load(urllib.request.urlopen(url.split("#")[0] + "data/runs", timeout=60))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    url, found = out.stdout.strip().splitlines()[-2:]
    assert url.startswith("http://") and url.endswith("#custom_scalars"), out.stderr
    assert len(json.loads(found)) == 1  # the one run
