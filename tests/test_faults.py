"""Faults at any moment: a signal or a kill at any instant loses at most the epochs since the last checkpoint, and
never a finished result.
"""

from __future__ import annotations

import json

import faults
import pytest
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
    assert faults.csv_rows(tmp_path / "cut" / "metrics.csv") == faults.csv_rows(tmp_path / "base" / "metrics.csv")


# --- a fault at each named point (dlexp/run/faults.py: DLEXP_FAULT="POINT:SIGNAL[:N]", for tests only) -------------
# A sweep here is three seeds of two epochs each: epoch_end:4 is the second job's last epoch, job_start:3 the third
# job's start, checkpoint_write:3 the first job's checkpoint after its first epoch (the first is at its start).
BOUNDARIES = [
    ("basic", "SIGINT", "sweep_start"),
    ("basic", "SIGINT", "job_start:3"),
    ("basic", "SIGTERM", "mid_epoch:3"),
    ("basic", "SIGINT", "epoch_end:4"),
    ("basic", "SIGKILL", "checkpoint_write:3"),
    ("basic", "SIGINT", "job_end:2"),
    ("basic", "SIGINT", "summary"),
    ("single", "SIGTERM", "epoch_end:2"),
]
MORE = [
    ("basic", "SIGKILL", "mid_epoch:3"),
    ("basic", "SIGKILL", "summary"),
    ("single", "SIGINT", "job_start"),
    ("single", "SIGKILL", "checkpoint_write:2"),
    ("joblib", "SIGINT", "mid_epoch:2"),
    ("joblib", "SIGTERM", "job_start:2"),
    ("joblib", "SIGTERM", "summary"),  # its idle workers once outlived it (forks with the sweep's handlers)
    ("vectorized", "SIGINT", "epoch_end:2"),
    ("vectorized", "SIGKILL", "checkpoint_write:4"),
]


@pytest.fixture(scope="session")
def references(tmp_path_factory):
    return tmp_path_factory.mktemp("references")


def check(trial: faults.Trial, tmp_path, references) -> None:
    faults.run_trial(trial, tmp_path / "trial", references)
    assert not trial.problems, f"{trial} (exit {trial.code}): " + "; ".join(trial.problems)


@pytest.mark.parametrize(("kind", "sig", "point"), BOUNDARIES)
def test_a_signal_at_a_named_point_loses_nothing(kind, sig, point, tmp_path, references):
    check(faults.Trial(kind, sig, point=point), tmp_path, references)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "sig", "point"), MORE)
def test_a_signal_at_more_named_points_loses_nothing(kind, sig, point, tmp_path, references):
    check(faults.Trial(kind, sig, point=point), tmp_path, references)


@pytest.mark.slow
def test_signals_at_random_instants_lose_nothing(tmp_path, references):
    """Seeded: a failure names its trial (kind, signal, instant), and `python -m tests.faults` runs many more."""
    bad = []
    for trial in faults.random_trials(6, seed=24, kinds=("basic", "joblib", "vectorized")):
        faults.run_trial(trial, tmp_path / "trial", references)
        if trial.problems:
            bad.append(f"{trial} (exit {trial.code}): " + "; ".join(trial.problems))
    assert not bad, bad


def test_resume_of_an_optuna_search_says_why_not_and_what_to_do(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    made = cli("train", "experiment=search", "hydra.sweeper.n_trials=2", *QUICK, "hydra.sweep.dir=search")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    before = sorted(p.name for p in (tmp_path / "search").rglob("*"))

    resumed = cli("resume", "search")
    assert resumed.returncode != 0 and "Traceback" not in resumed.stdout + resumed.stderr
    said = " ".join((resumed.stdout + resumed.stderr).split())
    assert "is an Optuna search, which cannot be resumed" in said
    assert "run the search again" in said and "dlexp resume RUN_DIR" in said
    assert sorted(p.name for p in (tmp_path / "search").rglob("*")) == before  # nothing written


def test_a_stopped_sweep_whose_summary_fails_still_exits_130(cli, tmp_path, monkeypatch, capsys):
    """Hydra turns an exception in an end-of-sweep callback into a warning: a stopped sweep whose summary could not
    be written exited 0. Its exit code comes from its jobs on disk, and the failure is said in one sentence."""
    from omegaconf import OmegaConf

    from dlexp.config.callbacks import Summary
    from dlexp.sweeps import summary

    made = cli("train", "-m", "data=xor", "trainer.epochs=2", "log.progress=none", "seed=1,2", "hydra.sweep.dir=sw")
    assert made.returncode == 0, made.stderr
    sweep = tmp_path / "sw"
    (sweep / "STOP").write_text("interrupted\n")  # stopped after its last job
    config = OmegaConf.load(sweep / "multirun.yaml")
    config.hydra.sweep.dir = str(sweep)

    def broken(sweep_dir, config):
        raise ValueError("a table that cannot be drawn")

    monkeypatch.setattr(summary, "report", broken)
    from dlexp.config.callbacks import Finished

    with pytest.raises(Finished) as done:
        Summary().on_multirun_end(config)
    assert done.value.code == 130 and done.value.path == sweep
    said = capsys.readouterr().err
    assert "the sweep's summary could not be written: ValueError: a table that cannot be drawn" in said
    assert "Traceback" not in said
