"""Trust: divergence, failures, signals, exact resume and safe loading — each through the real CLI in a subprocess."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import dlexp_cmd, run_dirs, status_of

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
# 1,438 steps per epoch (batch size 1): long enough to interrupt in the middle of an epoch.
SLOW_RUN = ["data=digits", "batch=stochastic", "trainer.epochs=3", "log.progress=lines", "log.every=200"]


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*dlexp_cmd(), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 120) -> list[str]:
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never printed {text!r}: {seen} {proc.stderr.read() if proc.poll() is not None else ''}")


def model_tensors(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def val_losses(run_dir: Path) -> list[str]:
    return [row["val/loss"] for row in csv.DictReader((run_dir / "metrics.csv").open())]


def test_sigint_checkpoints_and_resume_is_bit_identical(cli, tmp_path):
    base = cli("train", *SLOW_RUN, "hydra.run.dir=base")
    assert base.returncode == 0, base.stderr

    proc = start(tmp_path, "train", *SLOW_RUN, "hydra.run.dir=cut")
    wait_for_line(proc, "epoch 0/3")  # training has started
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    cut = tmp_path / "cut"
    status = status_of(cut)
    total = status_of(tmp_path / "base")["step"]
    assert status["status"] == "interrupted" and 0 < status["step"] < total
    assert "dlexp resume" in out and (cut / "checkpoint.pt").exists()

    resumed = cli("resume", "cut", "log.progress=lines")
    assert resumed.returncode == 0, resumed.stderr
    assert status_of(cut)["status"] == "completed" and status_of(cut)["step"] == total
    ours, theirs = model_tensors(cut), model_tensors(tmp_path / "base")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert val_losses(cut) == val_losses(tmp_path / "base")


def test_sigterm_marks_terminated_and_exits_143(tmp_path):
    proc = start(tmp_path, "train", *SLOW_RUN, "hydra.run.dir=term")
    wait_for_line(proc, "epoch 0/3")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert status_of(tmp_path / "term")["status"] == "terminated"
    assert (tmp_path / "term" / "checkpoint.pt").exists()


def test_second_ctrl_c_aborts_at_once(tmp_path):
    proc = start(tmp_path, "train", *SLOW_RUN, "hydra.run.dir=twice")
    wait_for_line(proc, "epoch 0/3")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130


def test_divergence_stops_the_run_with_exit_3(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("train", "data=sine", "loss=mse", "optimizer=sgd", "optimizer.lr=1000", "trainer.epochs=20",
                 "log.progress=lines", "hydra.run.dir=boom")
    assert result.returncode == 3, result.stderr
    assert "diverged at step" in result.stdout
    status = status_of(tmp_path / "boom")
    assert status["status"] == "diverged" and status["diverged_at_step"] >= 1
    events = EventAccumulator(str(tmp_path / "boom"))
    events.Reload()
    assert "val/loss" in events.Tags()["scalars"]  # what was logged before the divergence is readable


def test_a_sweep_continues_past_a_diverged_job(cli, tmp_path):
    result = cli("train", "-m", "data=sine", "loss=mse", "optimizer=sgd", "optimizer.lr=0.01,1000",
                 "trainer.epochs=3", "log.progress=none")
    assert result.returncode == 3
    statuses = sorted(status_of(p)["status"] for p in run_dirs(tmp_path / "runs"))
    assert statuses == ["completed", "diverged"]


BROKEN = '''
import torch
from torch import nn

class Boom(nn.Module):
    calls = 0
    def forward(self, x):
        Boom.calls += 1
        if Boom.calls > 5:
            raise RuntimeError("boom at call 6")
        return x

def broken(in_shape, out_features):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, out_features), Boom())
'''


def test_an_exception_in_the_loop_fails_the_run_and_the_sweep_goes_on(cli, tmp_path):
    (tmp_path / "mymodels.py").write_text(BROKEN)
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("# dlexp train model=broken\n# A model that fails.\n_target_: mymodels.broken\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = cli("train", "-m", "--config-dir", str(tmp_path / "conf"), "model=broken,mlp",
                 "allow_targets=[mymodels]", "trainer.epochs=1", "log.progress=none", env={**ENV, **env})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    by_model = {status_of(p)["choices"]["model"]: p for p in run_dirs(tmp_path / "runs")}
    failed = status_of(by_model["broken"])
    assert failed["status"] == "failed" and "boom at call 6" in failed["error"]
    assert "Traceback" in (by_model["broken"] / "train.log").read_text()
    assert status_of(by_model["mlp"])["status"] == "completed"


@pytest.mark.slow
def test_eight_runs_in_the_same_second_get_eight_directories(tmp_path):
    procs = [start(tmp_path, "train", "data=xor", "trainer.epochs=1", "log.progress=none") for _ in range(8)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    found = run_dirs(tmp_path / "runs")
    assert len(found) == 8 and len({p.name for p in found}) == 8


def test_an_existing_run_directory_is_never_overwritten(cli, tmp_path):
    first = cli("train", "data=xor", "trainer.epochs=1", "log.progress=none", "hydra.run.dir=same")
    assert first.returncode == 0
    before = (tmp_path / "same" / "status.json").read_text()
    again = cli("train", "data=xor", "trainer.epochs=2", "log.progress=none", "hydra.run.dir=same")
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert (tmp_path / "same" / "status.json").read_text() == before


def test_a_log_dir_that_cannot_be_created_is_one_sentence(cli, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    result = cli("train", "data=xor", "trainer.epochs=1", f"log.dir={tmp_path / 'a-file' / 'runs'}")
    assert result.returncode == 2, result.stderr
    assert "Cannot create the run directory" in result.stderr and "choose another log.dir" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert (tmp_path / "a-file").read_text() == "not a directory"


def test_resume_refuses_another_architecture_and_allows_more_epochs(cli, tmp_path):
    assert cli("train", "data=xor", "trainer.epochs=2", "model.hidden=[8]", "log.progress=none",
               "hydra.run.dir=a").returncode == 0
    assert cli("train", "data=xor", "trainer.epochs=2", "model.hidden=[16]", "log.progress=none",
               "hydra.run.dir=b").returncode == 0
    more = cli("resume", "a", "trainer.epochs=4", "log.progress=none")
    assert more.returncode == 0, more.stderr
    assert status_of(tmp_path / "a")["step"] == 4
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    refused = cli("resume", "b")
    assert refused.returncode == 4 and "model.hidden" in refused.stderr
    changed = cli("resume", "a", "data=moons")
    assert changed.returncode == 4 and "data._target_" in changed.stderr


def test_a_crafted_pickle_is_refused_and_never_runs(cli, tmp_path):
    assert cli("train", "data=xor", "trainer.epochs=1", "log.progress=none", "hydra.run.dir=r").returncode == 0
    marker = tmp_path / "code-ran"
    payload = f"import os, torch\nclass Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n" \
              f"torch.save({{'format': 1, 'model': Evil()}}, '{tmp_path / 'r' / 'checkpoint.pt'}')\n"
    subprocess.run([sys.executable, "-c", payload], check=True)
    result = cli("resume", "r")
    assert result.returncode == 4 and "Refused to load" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_truncated_checkpoint_gets_a_clear_message(cli, tmp_path):
    assert cli("train", "data=xor", "trainer.epochs=1", "log.progress=none", "hydra.run.dir=t").returncode == 0
    path = tmp_path / "t" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = cli("resume", "t")
    assert result.returncode == 4 and "truncated or corrupt" in result.stderr
    assert "Traceback" not in result.stderr
    missing = cli("resume", "nowhere")
    assert missing.returncode == 4 and "not a dlexp run directory" in missing.stderr
