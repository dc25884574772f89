"""Sweeps through Hydra's own plugins: joblib and submitit launchers, the Optuna sweeper, the sweep summary.

The launcher tests run the real `dlexp train -m` in a subprocess and check what a user sees: every job's run
directory completed, the jobs ran outside the launching process, the summary table in the sweep directory has
one row per job, and the exit code says how the sweep went.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import dlexp_cmd, run_dirs, status_of
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dlexp.config import callbacks, catalog
from dlexp.config import compose as composer
from dlexp.read import runs
from dlexp.run import record as records
from dlexp.sweeps import summary

TINY = ["data=xor", "trainer.epochs=3", "log.histograms=false", "log.progress=none"]


def plugin(module: str, extra: str):
    """Skip (with the reason) the tests of a Hydra plugin that is not installed."""
    import importlib.util

    installed = importlib.util.find_spec(module) is not None
    return pytest.mark.skipif(not installed, reason=f"{module} is not installed (pip install -e '.[{extra}]')")


joblib_plugin = plugin("hydra_plugins.hydra_joblib_launcher", "launchers")
submitit_plugin = plugin("hydra_plugins.hydra_submitit_launcher", "launchers")
optuna_plugin = plugin("hydra_plugins.hydra_optuna_sweeper", "optuna")


def sweep_dir(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "runs" / "multirun").iterdir()  # one sweep per test
    return found


def summary_rows(sweep: Path) -> dict[str, int]:
    """Data rows of every table file the summary wrote into the sweep directory (CSV and Markdown)."""
    rows = {}
    for path in sorted(sweep.glob("*.csv")):
        rows[path.name] = len([line for line in path.read_text().splitlines() if line.strip()]) - 1  # - header
    for path in sorted(sweep.glob("*.md")):
        table = [line for line in path.read_text().splitlines() if line.lstrip().startswith("|")]
        rows[path.name] = len(table) - 2  # - header, - |---| separator
    return rows


def run_sweep(tmp_path: Path, *args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, int]:
    """`dlexp train -m ARGS` in a subprocess; returns the result and the launching process's pid."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(
        [*dlexp_cmd(), "train", "-m", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), proc.pid


def check_two_job_sweep_ran_elsewhere(tmp_path: Path, result, launcher_pid: int) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    sweep = sweep_dir(tmp_path)
    found = run_dirs(sweep)
    statuses = sorted((status_of(p) for p in found), key=lambda s: s["sweep_job"])
    assert [(s["sweep_job"], s["name"]) for s in statuses] == [(0, "optimizer=sgd_0"), (1, "optimizer=adam_1")]
    assert [s["status"] for s in statuses] == ["completed", "completed"]
    assert all(s["pid"] != launcher_pid for s in statuses)  # the launcher ran them elsewhere
    assert {"optimizer=sgd", "optimizer=adam"} == {o for s in statuses for o in s["overrides"] if "optimizer" in o}
    rows = summary_rows(sweep)
    assert any(n.endswith(".csv") for n in rows) and any(n.endswith(".md") for n in rows), rows
    assert set(rows.values()) == {2}, rows
    assert "sweep finished: 2 runs (2 completed)" in result.stdout
    assert sum(line.lstrip().startswith("completed") for line in result.stdout.splitlines()) >= 2


# --- presets: they compose into the plugins' own schemas ---------------------------------------------------


@submitit_plugin
def test_slurm_preset_sets_cluster_resources_on_the_submitit_schema():
    cfg = composer.load(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 30)  # command line beats the preset
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.array_parallelism) == (1, 4, 16)
    assert "qos" in launcher and "setup" in launcher  # the rest of the plugin's schema is still there


@optuna_plugin
@pytest.mark.parametrize("overrides", [["experiment=search"], ["hydra/sweeper=search", "experiment=xor_mlp"]])
def test_search_preset_is_an_optuna_space_over_lr_batch_and_optimizer(overrides):
    cfg = composer.load(overrides)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "minimize" and sweeper.sampler.seed == 0 and sweeper.n_trials > 0
    assert set(sweeper.params) == {"optimizer", "optimizer.lr", "batch.size"}
    lr, batch, optimizer = OverridesParser.create().parse_overrides(
        [f"{k}={sweeper.params[k]}" for k in ("optimizer.lr", "batch.size", "optimizer")]
    )
    assert "log" in lr.value().tags and lr.value().start < lr.value().end  # log-uniform interval
    assert all(isinstance(size, int) and size >= 1 for size in batch.value().list)
    options = catalog.options("optimizer")
    for name in optimizer.value().list:  # every optimizer in the space exists and has the lr being searched
        assert "lr" in yaml.safe_load(options[name].path.read_text()), name
    if "experiment=xor_mlp" in overrides:
        assert composer.choices(cfg)["data"] == "xor"  # the sweeper preset composes with any experiment


# --- the multirun-end callback ------------------------------------------------------------------------------


def fake_sweep(root: Path, statuses: list[str], legacy_names: bool = True) -> Path:
    """Job directories named as older sweeps named them (3_optimizer=x3), or as now (optimizer=x3_3, with the
    job's number in status.json)."""
    sweep = root / "multirun" / "sweep"
    for i, status in enumerate(statuses):
        run = sweep / (f"{i}_optimizer=x{i}" if legacy_names else f"optimizer=x{i}_{i}")
        run.mkdir(parents=True)
        record = {"status": status, "metrics": {"val/loss": 0.5 + i}}
        records.write_json_atomic(run / runs.STATUS, record if legacy_names else {**record, "sweep_job": i})
    return sweep


@pytest.fixture
def recorded_summaries(monkeypatch):
    """dlexp.sweeps.summary.write_summary replaced by a recorder: these tests are about the callback, not the table."""
    from dlexp.sweeps import summary

    calls = []
    monkeypatch.setattr(summary, "write_summary", lambda sweep: calls.append(Path(sweep)) or [])
    return calls


def test_callbacks_are_registered_in_the_config_summary_first():
    """Hydra notifies end events in reverse order: the Summary, first in the list, ends the command last."""
    cfg = composer.load([])
    assert list(cfg.hydra.callbacks) == ["summary", "preflight", "sweep_stops", "forked_workers", "own_launchers"]
    assert cfg.hydra.callbacks.summary._target_ == "dlexp.config.callbacks.Summary"
    assert cfg.hydra.callbacks.preflight._target_ == "dlexp.config.callbacks.Preflight"
    assert cfg.hydra.callbacks.sweep_stops._target_ == "dlexp.config.callbacks.SweepStops"
    assert cfg.hydra.callbacks.forked_workers._target_ == "dlexp.config.callbacks.ForkedWorkers"


@joblib_plugin
@submitit_plugin
@pytest.mark.parametrize("launcher, start_method", [("joblib", "fork"), ("basic", None), ("submitit_local", None)])
def test_joblib_workers_are_forked_from_the_launching_process(launcher, start_method, monkeypatch):
    from joblib.externals.loky.backend import context

    monkeypatch.setattr(context, "_DEFAULT_START_METHOD", None)  # loky's process-wide setting, restored after
    cfg = composer.load([f"hydra/launcher={launcher}"])
    callbacks.ForkedWorkers().on_multirun_start(cfg)
    assert context.get_start_method() == start_method


def test_the_dry_build_computes_with_one_thread_and_restores_the_count():
    """The launching process of a sweep must never start OpenMP's pool: a fork of it could hang (ForkedWorkers)."""
    code = textwrap.dedent("""
        import torch
        from dlexp.run import build
        from dlexp.parts import data
        from dlexp.config import compose as composer
        seen = []
        load = data.digits
        data.digits = lambda *a, **k: (seen.append(torch.get_num_threads()), load(*a, **k))[1]
        torch.set_num_threads(2)
        build.assemble(composer.without_hydra(composer.load([])), dry=True)
        print(seen, torch.get_num_threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[1] 2", out.stdout + out.stderr


@pytest.mark.parametrize("legacy_names", [True, False])
def test_summary_reads_statuses_from_disk_and_ends_with_the_most_serious(
    tmp_path, recorded_summaries, capsys, legacy_names
):
    sweep = fake_sweep(tmp_path, ["completed"] * 10 + ["diverged"], legacy_names)
    with pytest.raises(callbacks.Finished) as ended:
        callbacks.Summary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert ended.value.code == runs.EXIT_CODES["diverged"] and ended.value.path == sweep
    assert recorded_summaries == [sweep]
    out = capsys.readouterr().out
    assert "11 runs (10 completed, 1 diverged)" in out
    lines = [line.split()[-1] for line in out.splitlines() if line.lstrip().startswith(("completed", "diverged"))]
    numbers = [name.split("_")[0 if legacy_names else -1] for name in lines]
    assert numbers == [str(i) for i in range(11)]  # job 10 after job 9


def test_a_completed_sweep_ends_with_exit_code_0(tmp_path, recorded_summaries):
    sweep = fake_sweep(tmp_path, ["completed", "completed"])
    with pytest.raises(callbacks.Finished) as ended:
        callbacks.Summary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert ended.value.code == 0 and ended.value.path == sweep
    assert recorded_summaries == [sweep]


@pytest.mark.parametrize(
    "statuses, code",
    [
        ([], 0),
        (["completed", "diverged"], 3),
        (["diverged", "refused"], 2),
        (["refused", "failed"], 1),
        (["failed", "interrupted"], 130),
        (["interrupted", "terminated"], 143),
    ],
)
def test_the_most_serious_outcome_decides_the_exit_code(statuses, code):
    assert runs.worst_exit_code(statuses) == code


def test_best_trial_reads_the_optuna_results_file(tmp_path):
    assert summary.best_trial(tmp_path) is None
    OmegaConf.save(
        OmegaConf.create(
            {
                "name": "optuna",
                "best_value": 0.0123456,
                "best_params": {"optimizer": "adam", "optimizer.lr": 0.00314159},
            }
        ),
        tmp_path / summary.OPTUNA_RESULTS,
    )
    line = summary.best_trial(tmp_path)
    assert line.startswith("val/loss 0.01235 with optimizer=adam optimizer.lr=0.003142")


# --- real sweeps ----------------------------------------------------------------------------------------------


@optuna_plugin
def test_optuna_search_runs_a_handful_of_trials_and_reports_the_best(cli, tmp_path):
    result = cli("train", "experiment=search", "hydra.sweeper.n_trials=4", *TINY)  # -m is implied by the preset
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    sweep = sweep_dir(tmp_path)
    found = run_dirs(sweep)
    statuses = [status_of(p) for p in found]
    assert len(found) == 4 and all(s["status"] == "completed" for s in statuses)
    results = yaml.safe_load((sweep / summary.OPTUNA_RESULTS).read_text())
    best = min(statuses, key=lambda s: s["metrics"]["val/loss"])  # oracle: the runs' own final val/loss
    assert results["best_value"] == pytest.approx(best["metrics"]["val/loss"])
    assert f"optimizer={results['best_params']['optimizer']}" in best["overrides"]
    assert f"batch.size={results['best_params']['batch.size']}" in best["overrides"]
    assert "best trial: val/loss" in result.stdout
    assert set(summary_rows(sweep).values()) == {4}


@pytest.mark.slow
@joblib_plugin
def test_joblib_launcher_runs_two_jobs_in_worker_processes(tmp_path):
    result, pid = run_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,adam", *TINY)
    check_two_job_sweep_ran_elsewhere(tmp_path, result, pid)


@pytest.mark.slow
@submitit_plugin
def test_submitit_local_launcher_runs_two_jobs_in_their_own_processes(tmp_path):
    result, pid = run_sweep(tmp_path, "hydra/launcher=submitit_local", "optimizer=sgd,adam", *TINY)
    check_two_job_sweep_ran_elsewhere(tmp_path, result, pid)
    assert list(sweep_dir(tmp_path).glob(".submitit/*/*_log.out"))  # submitit's own logs, one per job


@pytest.mark.slow
@joblib_plugin
def test_joblib_sweep_exit_code_reports_a_diverged_job(tmp_path):
    result, _ = run_sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "data=linear",
        "model=perceptron",
        "optimizer=sgd",
        "optimizer.lr=0.01,1e6",
        "trainer.epochs=3",
        "log.progress=none",
    )
    statuses = sorted(status_of(p)["status"] for p in run_dirs(sweep_dir(tmp_path)))
    assert statuses == ["completed", "diverged"]
    assert result.returncode == runs.EXIT_CODES["diverged"], result.stdout[-2000:] + result.stderr[-2000:]
