"""A sweep stopped by Ctrl-C or SIGTERM stops as a whole, and `dlexp resume SWEEP_DIR` finishes it: finished jobs
untouched (byte for byte), stopped jobs continued from their checkpoints, jobs that never started run — with the
numbers of an uninterrupted sweep. Through the real CLI, with the basic and the joblib launcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import dlexp_cmd, run_dirs, status_of
from test_sweeps import joblib_plugin
from test_trust import files_of, model_tensors, val_losses, wait_for_checkpoint_past_start

from dlexp.config import compose as composer
from dlexp.read import runs
from dlexp.run import record

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
# Three jobs of 1,438 steps per epoch (batch size 1): long enough to stop in the middle of one.
JOBS = ["data=digits", "batch=stochastic", "trainer.epochs=2", "log.every=500", "optimizer=sgd,adam,rmsprop"]


def start_sweep(tmp_path: Path, *args: str) -> subprocess.Popen:
    """`dlexp train -m ARGS` in a session of its own: a signal to its process group is a Ctrl-C in a terminal."""
    return subprocess.Popen(
        [*dlexp_cmd(), "train", "-m", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,
    )


def read_until(proc: subprocess.Popen, *texts: str, timeout: float = 300) -> list[str]:
    """Lines of output up to the one holding the last of `texts`, each of them seen in this order."""
    seen, deadline, wanted = [], time.time() + timeout, list(texts)
    while wanted and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if wanted[0] in line:
            wanted.pop(0)
    assert not wanted, f"never printed {wanted}: {''.join(seen)}"
    return seen


def jobs_by_number(sweep: Path) -> dict[int, Path]:
    return {status_of(p)["sweep_job"]: p for p in run_dirs(sweep)}


def same_run(ours: Path, theirs: Path) -> None:
    a, b = model_tensors(ours), model_tensors(theirs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), ours
    assert val_losses(ours) == val_losses(theirs), ours
    assert status_of(ours)["step"] == status_of(theirs)["step"]


def test_ctrl_c_in_the_second_job_stops_the_sweep_and_resume_finishes_it(cli, tmp_path):
    proc = start_sweep(tmp_path, *JOBS, "log.progress=lines")
    read_until(proc, "#1 :", "epoch 1/2")  # the second job has done one of its two epochs
    os.killpg(proc.pid, signal.SIGINT)
    out = "".join(read_until(proc, "sweep stopped")) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    assert "sweep stopped (interrupted): 2 runs (1 completed, 1 interrupted), 1 not started" in out
    assert f"continue it: dlexp resume {sweep.relative_to(tmp_path)}" in out
    jobs = jobs_by_number(sweep)
    assert {n: status_of(p)["status"] for n, p in jobs.items()} == {0: "completed", 1: "interrupted"}
    assert (sweep / "summary.csv").exists()  # the summary of what ran
    finished = files_of(jobs[0])

    resumed = cli("resume", str(sweep))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 completed, 1 interrupted, 1 not started; running 2 of 3 jobs (1, 2)" in resumed.stdout
    assert files_of(jobs[0]) == finished  # the finished job: not a byte, not a timestamp changed
    jobs = jobs_by_number(sweep)
    assert {n: status_of(p)["status"] for n, p in jobs.items()} == {0: "completed", 1: "completed", 2: "completed"}
    assert status_of(jobs[1])["resumes"][0]["from"] == "interrupted" and "resumes" not in status_of(jobs[2])
    planned = composer.sweep_jobs(yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["overrides"]["task"])
    for number, path in jobs.items():  # each job in its own directory, with its own overrides
        assert yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text()) == planned[number]
    for number in (1, 2):  # each job equals the same run alone, uninterrupted
        alone = cli("train", *planned[number], "log.progress=none", f"hydra.run.dir=alone{number}")
        assert alone.returncode == 0, alone.stderr
        same_run(jobs[number], tmp_path / f"alone{number}")
    again = cli("resume", str(sweep))
    assert again.returncode == 0 and "nothing to do" in again.stdout


@pytest.mark.slow
@joblib_plugin
def test_sigterm_to_a_joblib_sweep_stops_its_workers_and_resume_finishes_it(cli, tmp_path):
    longer = [*JOBS[:2], "trainer.epochs=4", *JOBS[3:], "trainer.checkpoint_secs=0.2"]  # long enough to be stopped
    proc = start_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *longer, "log.progress=none")
    root = tmp_path / "runs" / "multirun"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(root.glob("*/*/status.json"))) < 2:
        time.sleep(0.05)
    for status in root.glob("*/*/status.json"):  # both workers are training
        wait_for_checkpoint_past_start(status.parent)
    os.kill(proc.pid, signal.SIGTERM)  # the launching process only: workers learn it from the sweep
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 143, out
    (sweep,) = root.iterdir()
    jobs = jobs_by_number(sweep)
    assert {n: status_of(p)["status"] for n, p in jobs.items()} == {0: "terminated", 1: "terminated"}, out
    assert "1 not started" in out

    resumed = cli("resume", str(sweep), process=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    jobs = jobs_by_number(sweep)
    statuses = [status_of(p) for p in jobs.values()]
    assert [s["status"] for s in statuses] == ["completed"] * 3
    assert len({s["pid"] for s in statuses} | {proc.pid}) > 2  # joblib's workers again, not the launcher
    reference = cli("train", "-m", *longer, "log.progress=none", "hydra.sweep.dir=reference")  # basic launcher
    assert reference.returncode == 0, reference.stderr
    for number, path in jobs_by_number(tmp_path / "reference").items():
        same_run(jobs[number], path)


@pytest.mark.slow
@joblib_plugin
def test_a_worker_killed_by_the_system_leaves_crashed_jobs_that_resume_finishes(cli, tmp_path):
    jobs = [*JOBS[:3], "optimizer=sgd,adam", "trainer.checkpoint_secs=0.2", "log.progress=none"]
    proc = start_sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *jobs)
    root, deadline = tmp_path / "runs" / "multirun", time.time() + 300
    while time.time() < deadline and not list(root.glob("*/*/status.json")):
        time.sleep(0.05)
    victim = next(root.glob("*/*/status.json")).parent
    wait_for_checkpoint_past_start(victim)
    os.kill(status_of(victim)["pid"], signal.SIGKILL)  # what the OOM killer does to a worker
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1 and "Traceback" not in out, out
    assert "error: the sweep's launcher stopped: TerminatedWorkerError" in out
    (sweep,) = root.iterdir()
    assert runs.read_status(victim)["status"] == "crashed"
    assert f"continue it: dlexp resume {sweep.relative_to(tmp_path)}" in out

    resumed = cli("resume", str(sweep), process=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [status_of(p)["status"] for p in run_dirs(sweep)] == ["completed", "completed"]
    assert status_of(victim)["resumes"][0]["from"] == "crashed" and status_of(victim)["resumes"][0]["step"] > 0


def test_resume_of_a_sweep_whose_launcher_is_alive_is_refused(cli, tmp_path):
    proc = start_sweep(tmp_path, *JOBS[:2], "trainer.epochs=1000", "optimizer=sgd,adam", "log.progress=lines")
    read_until(proc, "epoch 1/1000")  # it cannot finish on its own during this test
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    refused = cli("resume", str(sweep))
    assert refused.returncode == 2 and f"is being run by process {proc.pid}" in refused.stderr, refused.stderr
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert [status_of(p)["status"] for p in run_dirs(sweep)] == ["interrupted"]  # job 1 never started


# --- who writes a run ----------------------------------------------------------------------------------------------

HOLD = "import sys; from dlexp.run import record; record.hold(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


def test_a_running_status_whose_writer_is_gone_reads_as_crashed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    record.write_json_atomic(run / runs.STATUS, {"status": "running", "host": os.uname().nodename, "pid": 1})
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "held"
    assert runs.read_status(run)["status"] == "running"  # its lock is held: a live writer, whatever the pid says
    writer.kill()
    writer.wait()
    assert runs.read_status(run)["status"] == "crashed"  # the kernel released the lock of the killed process
    assert json.loads((run / runs.STATUS).read_text())["status"] == "running"  # reading never writes


def test_a_run_on_another_host_is_judged_by_its_heartbeat(tmp_path):
    from datetime import datetime, timedelta, timezone

    def status(age_secs: float) -> str:
        beat = (datetime.now(timezone.utc) - timedelta(seconds=age_secs)).isoformat(timespec="seconds")
        record.write_json_atomic(
            tmp_path / runs.STATUS,
            {"status": "running", "host": "node-elsewhere", "pid": 1, "heartbeat": beat, "heartbeat_secs": 30},
        )
        return runs.read_status(tmp_path)["status"]

    assert status(60) == "running"  # two missed checkpoints: still at work
    assert status(30 * runs.STALE_HEARTBEATS + 60) == "crashed"


@pytest.mark.parametrize(
    "statuses, code", [(["completed", "crashed"], 1), (["crashed", "diverged"], 1), (["crashed", "interrupted"], 130)]
)
def test_a_crashed_run_counts_as_a_failure(statuses, code):
    assert runs.worst_exit_code(statuses) == code
    assert runs.status_style("crashed") == runs.status_style("failed")


def test_a_resumed_sweep_launches_each_run_of_consecutive_job_numbers_once():
    from hydra_plugins.dlexp_sweepers.resume_sweeper import runs_of

    assert runs_of([7, 0, 2, 3, 3]) == [[0], [2, 3], [7]]
    assert runs_of([]) == [] and runs_of([4, 5, 6]) == [[4, 5, 6]]
