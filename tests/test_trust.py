"""Trust: divergence, failures, signals, exact resume and safe loading — each through the real CLI in a subprocess."""

from __future__ import annotations

import csv
import hashlib
import json
import math
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

from dlexp.observe.guard import Diverged, DivergenceGuard
from dlexp.read import runs

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
# 1,438 steps per epoch (batch size 1): long enough to interrupt in the middle of an epoch.
SLOW_RUN = ["data=digits", "batch=stochastic", "trainer.epochs=3", "log.progress=lines", "log.every=200"]


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*dlexp_cmd(), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


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
    wait_for_line(proc, "epoch 1/3")  # the first epoch is done; 2,876 steps are left, far more than a signal takes
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

    result = cli(
        "train",
        "data=sine",
        "loss=mse",
        "optimizer=sgd",
        "optimizer.lr=1000",
        "trainer.epochs=20",
        "log.progress=lines",
        "hydra.run.dir=boom",
    )
    assert result.returncode == 3, result.stderr
    assert "diverged at step" in result.stdout
    status = status_of(tmp_path / "boom")
    assert status["status"] == "diverged" and status["diverged_at_step"] >= 1
    events = EventAccumulator(str(tmp_path / "boom"))
    events.Reload()
    assert "val/loss" in events.Tags()["scalars"]  # what was logged before the divergence is readable


def test_a_sweep_continues_past_a_diverged_job(cli, tmp_path):
    result = cli(
        "train",
        "-m",
        "data=sine",
        "loss=mse",
        "optimizer=sgd",
        "optimizer.lr=0.01,1000",
        "trainer.epochs=3",
        "log.progress=none",
    )
    assert result.returncode == 3
    statuses = sorted(status_of(p)["status"] for p in run_dirs(tmp_path / "runs"))
    assert statuses == ["completed", "diverged"]


BROKEN = """
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
"""


def test_an_exception_in_the_loop_fails_the_run_and_the_sweep_goes_on(cli, tmp_path):
    (tmp_path / "mymodels.py").write_text(BROKEN)
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("# dlexp train model=broken\n# A model that fails.\n_target_: mymodels.broken\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = cli(
        "train",
        "-m",
        "--config-dir",
        str(tmp_path / "conf"),
        "model=broken,mlp",
        "allow_targets=[mymodels]",
        "trainer.epochs=1",
        "log.progress=none",
        env={**ENV, **env},
    )
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
    assert (
        cli(
            "train", "data=xor", "trainer.epochs=2", "model.hidden=[8]", "log.progress=none", "hydra.run.dir=a"
        ).returncode
        == 0
    )
    assert (
        cli(
            "train", "data=xor", "trainer.epochs=2", "model.hidden=[16]", "log.progress=none", "hydra.run.dir=b"
        ).returncode
        == 0
    )
    more = cli("resume", "a", "trainer.epochs=4", "log.progress=none")
    assert more.returncode == 0, more.stderr
    assert status_of(tmp_path / "a")["step"] == 4
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    refused = cli("resume", "b")
    assert refused.returncode == 4 and "model.hidden" in refused.stderr
    changed = cli("resume", "a", "data=moons")
    assert changed.returncode == 4 and "data._target_" in changed.stderr


def test_what_may_change_on_resume_is_one_list_said_the_same_everywhere(cli, tmp_path):
    """resume.MAY_CHANGE: its sentence is the refusal's, the help's and the README's, and each key in it may change."""
    from conftest import README

    from dlexp.run.resume import MAY_CHANGE, may_change

    sentence = may_change()
    assert all(key.rstrip("._") in sentence for key in MAY_CHANGE)
    assert cli("train", "data=xor", "trainer.epochs=1", "log.progress=none", "hydra.run.dir=a").returncode == 0
    refused = cli("resume", "a", "optimizer.lr=0.5")
    assert refused.returncode == 4, refused.stderr
    assert f"(optimizer.lr); only {sentence}." in " ".join(refused.stderr.split()), refused.stderr
    helped = cli("resume", "--help")
    assert f"Only {sentence}." in " ".join(helped.stdout.split()), helped.stdout
    assert f"Only {sentence}" in " ".join(README.read_text().replace("`", "").split())
    allowed = cli(
        "resume",
        "a",
        "trainer.epochs=2",
        "trainer.checkpoint_secs=10",
        "guard.stall_steps=50",
        "log.every=5",
        "device.threads=1",
        "log.progress=none",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert status_of(tmp_path / "a")["epoch"] == 2


def test_a_crafted_pickle_is_refused_and_never_runs(cli, tmp_path):
    assert cli("train", "data=xor", "trainer.epochs=1", "log.progress=none", "hydra.run.dir=r").returncode == 0
    marker = tmp_path / "code-ran"
    payload = (
        f"import os, torch\nclass Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'format': 1, 'model': Evil()}}, '{tmp_path / 'r' / 'checkpoint.pt'}')\n"
    )
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


# --- exploding losses and stalls ---------------------------------------------------------------------------------


def judged(losses: list[float], reference: float = 1.0, **rule) -> int | None:
    """The step DivergenceGuard stops a run at, fed these step losses after a fresh network of loss `reference`."""
    guard = DivergenceGuard(
        torch.nn.Linear(1, 1), torch.device("cpu"), every=1, **{"explode_factor": 1000, "explode_window": 10, **rule}
    )
    guard.on_epoch(None, {"val/loss": reference})
    for step, value in enumerate(losses, 1):
        try:
            guard.check_loss(step, value)
        except Diverged as err:
            return err.step
    return None


def test_the_explosion_rule_counts_half_of_the_last_ten_steps():
    assert judged([0.7] + [476.9, 12023.1] * 20, reference=0.695) == 11  # XOR at lr 10,000: a two-value cycle
    assert judged([0.26 * 100**k for k in range(1, 12)], reference=0.26) == 6  # x100 a step: above from step 2
    assert judged([1.0] * 30 + [1e6] + [1.0] * 30) is None  # one spike is not an explosion
    assert judged(([2000.0] * 4 + [1.0] * 6) * 5) is None  # 4 of any 10: below half
    assert judged(([2000.0] * 5 + [1.0] * 5) * 5) == 5  # 5 of the first 5
    assert judged([999.0] * 40) is None and judged([1001.0] * 40) == 5  # the line is factor x the start, exactly
    assert judged([2000.0] * 40, explode_factor=None) is None  # null: only non-finite losses stop a run
    assert judged([1.0, 2.0, math.nan], explode_factor=None) == 3  # NaN: at once, whatever the rule


def test_stalled_gradients_are_counted_step_by_step():
    guard = DivergenceGuard(torch.nn.Linear(1, 1), torch.device("cpu"), every=1, stall_steps=100)
    notices = []
    guard.notice = notices.append
    for step in range(1, 100):
        guard.check_grads(step, 0.0)
    assert guard.status_fields == {} and notices == []  # 99 steps of zeros: not yet
    guard.check_grads(100, 0.0)
    assert guard.status_fields == {"stalled_at_step": 1} and len(notices) == 1
    stuck = DivergenceGuard(torch.nn.Linear(1, 1), torch.device("cpu"), every=1, stall_steps=100, stuck_factor=10)
    stuck.on_epoch(None, {"val/loss": 0.7})
    for step in range(1, 100):
        stuck.check_loss(step, 7.1)  # above 10 x its start, and nothing moves
        stuck.check_grads(step, 0.0)
    with pytest.raises(Diverged) as ended:
        stuck.check_grads(100, 0.0)
    assert ended.value.step == 100 and stuck.status_fields == {}
    moving = DivergenceGuard(torch.nn.Linear(1, 1), torch.device("cpu"), every=1, stall_steps=100)
    for step in range(1, 300):
        moving.check_grads(step, 0.0 if step % 99 else 1e-12)  # one tiny gradient every 99 steps
    assert moving.status_fields == {}


def test_an_exploding_loss_is_diverged_exit_3_and_its_step_is_captured(cli, tmp_path):
    from dlexp.observe.tensorboard import read_scalars

    result = cli(
        "train",
        "experiment=xor_mlp",
        "loss=bce",
        "model.output_activation=null",
        "optimizer.lr=10000",
        "log.progress=none",
        "hydra.run.dir=boom",
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "diverged at step 11: the loss (1.2e+04) was above 1000 x its start (0.695)" in result.stdout
    status = status_of(tmp_path / "boom")
    assert status["status"] == "diverged" and status["diverged_at_step"] == 11
    captured = [step for step, _ in read_scalars(tmp_path / "boom")["act_std/3_sigmoid"]]
    assert captured == [0, 11]  # the fresh network, and the one that diverged


def test_a_loss_thrown_into_saturation_is_diverged_not_stalled(cli, tmp_path):
    """The classic XOR (BCE on probabilities, clipped) at lr 10,000: its loss sits at 50 and nothing moves."""
    result = cli("train", "experiment=xor_mlp", "optimizer.lr=10000", "log.progress=none", "hydra.run.dir=stuck")
    assert result.returncode == 3, result.stdout + result.stderr
    assert (
        "diverged at step 149: the loss (50) stayed above 10 x its start (0.695) while every gradient was "
        "exactly 0 for 100 steps"
    ) in result.stdout
    status = status_of(tmp_path / "stuck")
    assert status["status"] == "diverged" and status["diverged_at_step"] == 149 and "stalled_at_step" not in status


def test_a_stalled_run_is_named_once_and_still_completes(cli, tmp_path):
    result = cli(
        "train",
        "-m",
        "experiment=symmetry",
        "initializer=zeros,xavier_normal",
        "trainer.epochs=300",
        "log.progress=none",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = {status_of(p)["choices"]["initializer"]: status_of(p) for p in run_dirs(tmp_path / "runs")}
    assert found["zeros"]["status"] == "completed" and found["zeros"]["stalled_at_step"] == 1
    assert "stalled_at_step" not in found["xavier_normal"]
    notices = [line for line in result.stdout.splitlines() if "stalled at step" in line]
    assert len(notices) == 1 and "every gradient has been exactly 0 for 100 steps" in notices[0]


def test_a_stall_notice_in_a_sweep_names_its_job(cli, tmp_path):
    """Jobs trained as one stacked model share one terminal: each notice starts with its job's directory name; a
    single run's does not need one."""
    result = cli(
        "train",
        "-m",
        "hydra/launcher=vectorized",
        "experiment=symmetry",
        "seed=0,1",
        "trainer.epochs=110",
        "log.progress=none",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    notices = sorted(line for line in result.stdout.splitlines() if "stalled at step" in line)
    assert [line.partition(": stalled at step 1: ")[0] for line in notices] == ["seed=0_0", "seed=1_1"], notices
    alone = cli("train", "experiment=symmetry", "trainer.epochs=110", "log.progress=none", "hydra.run.dir=alone")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert [line for line in alone.stdout.splitlines() if "stalled" in line][0].startswith("stalled at step 1: ")


# --- crashes, one writer, resume ---------------------------------------------------------------------------------


def files_of(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under `root`: (sha256, modification time in ns). Equal before and after: nothing rewritten."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def wait_for_checkpoint_past_start(run_dir: Path, timeout: float = 300) -> int:
    """The step of a checkpoint taken after the start (status.json follows each checkpoint)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            step = json.loads((run_dir / "status.json").read_text()).get("step", 0)
        except (OSError, ValueError):
            step = 0
        if step > 0:
            return step
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint past the start in {run_dir}")


KILLED_RUN = [
    "data=digits",
    "batch=stochastic",
    "trainer.epochs=4",
    "log.progress=lines",
    "log.every=200",
    "trainer.checkpoint_secs=0.2",
]


def test_a_run_killed_midway_is_crashed_and_resumes_exactly(cli, tmp_path):
    from dlexp.observe.tensorboard import read_scalars

    base = cli("train", *KILLED_RUN, "hydra.run.dir=base")
    assert base.returncode == 0, base.stderr
    proc = start(tmp_path, "train", *KILLED_RUN, "hydra.run.dir=killed")
    wait_for_line(proc, "epoch 1/4")
    saved = wait_for_checkpoint_past_start(tmp_path / "killed")
    proc.kill()  # SIGKILL: no handler, no last checkpoint, status.json left at running
    proc.communicate(timeout=60)
    killed = tmp_path / "killed"
    assert status_of(killed)["status"] == "running" and runs.read_status(killed)["status"] == "crashed"
    table = cli("compare", "killed", "--no-group")
    assert table.returncode == 0 and "crashed" in table.stdout

    resumed = cli("resume", "killed", "log.progress=none")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    line = next(line for line in resumed.stdout.splitlines() if line.startswith("resuming"))
    step = int(line.rsplit("step ", 1)[1])
    assert step >= saved > 0  # from a checkpoint past its start
    status, total = status_of(killed), status_of(tmp_path / "base")["step"]
    assert status["status"] == "completed" and status["step"] == total
    assert status["resumes"][0]["from"] == "crashed" and status["resumes"][0]["step"] == step
    ours, theirs = model_tensors(killed), model_tensors(tmp_path / "base")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert val_losses(killed) == val_losses(tmp_path / "base")
    assert read_scalars(killed)["val/loss"] == read_scalars(tmp_path / "base")["val/loss"]  # no step twice


def test_resume_is_refused_while_a_live_process_writes_the_run(cli, tmp_path):
    proc = start(tmp_path, "train", *SLOW_RUN[:2], "trainer.epochs=1000", "log.progress=lines", "hydra.run.dir=live")
    wait_for_line(proc, "epoch 1/1000")  # it cannot finish on its own during this test
    refused = cli("resume", "live")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"is being written by process {proc.pid}" in refused.stderr and "Traceback" not in refused.stderr
    wait_for_line(proc, "epoch 2/1000")  # the live run goes on undisturbed
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    status = status_of(tmp_path / "live")
    assert status["status"] == "interrupted" and status["epoch"] >= 2 and "resumes" not in status


def test_resume_of_a_completed_run_writes_nothing_and_more_epochs_extend_it(cli, tmp_path):
    tiny = ["data=xor", "log.progress=none"]
    assert cli("train", *tiny, "trainer.epochs=2", "hydra.run.dir=two").returncode == 0
    assert cli("train", *tiny, "trainer.epochs=4", "hydra.run.dir=four").returncode == 0
    before = files_of(tmp_path / "two")
    again = cli("resume", "two")
    assert again.returncode == 0, again.stderr
    assert "has completed its 2 epochs: nothing to do" in again.stdout and "trainer.epochs=3" in again.stdout
    assert files_of(tmp_path / "two") == before

    more = cli("resume", "two", "trainer.epochs=4")
    assert more.returncode == 0, more.stderr
    (entry,) = status_of(tmp_path / "two")["resumes"]
    assert entry["from"] == "completed" and entry["trainer.epochs"] == [2, 4] and entry["epoch"] == 2
    ours, theirs = model_tensors(tmp_path / "two"), model_tensors(tmp_path / "four")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # 2 + 2 epochs = 4 epochs
    assert val_losses(tmp_path / "two") == val_losses(tmp_path / "four")


def test_resume_help_says_that_overrides_extend_a_run(cli):
    result = cli("resume", "--help")
    text = " ".join(result.stdout.split())  # as the help wraps it
    assert result.returncode == 0 and "resume RUN trainer.epochs=210` trains a 200-epoch run 10 epochs more" in text
    assert "crashed" in text and "sweep directory" in text


# --- a full disk -------------------------------------------------------------------------------------------------

FILE_LIMIT = 300_000  # bytes per file: the event file reaches it within a few epochs, the checkpoint (86 KB) never


def small_files() -> None:
    """In the child: files may not grow past FILE_LIMIT, as on a disk that fills up (writes fail with EFBIG)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing the write
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def test_a_full_disk_is_one_sentence_and_the_checkpoint_survives(cli, tmp_path):
    import errno

    result = subprocess.run(
        [
            *dlexp_cmd(),
            "train",
            "data=digits",
            "trainer.epochs=300",
            "log.hist_every=5",
            "log.progress=none",
            "hydra.run.dir=full",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        preexec_fn=small_files,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and result.stderr == ""
    (sentence,) = [line for line in result.stdout.splitlines() if "cannot write" in line]
    events = next((tmp_path / "full").glob("events.out.tfevents.*"))
    assert f"cannot write {events}: {os.strerror(errno.EFBIG)}" in sentence
    status = status_of(tmp_path / "full")
    assert status["status"] == "failed" and str(events) in status["error"]
    saved = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)  # intact, readable
    assert 0 <= saved["state"]["step"] <= status["step"]
    assert not list((tmp_path / "full").glob(".*.tmp"))  # no half-written temp file left

    room = cli("resume", "full", "trainer.epochs=8", "log.hist_every=500")  # with room again, it goes on
    assert room.returncode == 0, room.stdout + room.stderr
    assert status_of(tmp_path / "full")["status"] == "completed"


def test_the_readme_states_the_rules_the_config_and_the_code_hold():
    from dlexp.config import compose as composer

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    cfg = composer.without_hydra(composer.load([]))
    guard, trainer = cfg.guard, cfg.trainer
    for fragment in (
        f"above `guard.explode_factor` ({guard.explode_factor:g}) times the loss of the freshly",
        f"half or more of the last `guard.explode_window` ({guard.explode_window}) steps",
        f"exactly 0 for `guard.stall_steps` ({guard.stall_steps}) steps in a row",
        f"above `guard.stuck_factor` ({guard.stuck_factor:g}) times its start is a divergence too",
        f"every `trainer.checkpoint_secs` ({trainer.checkpoint_secs:g}) seconds of training",
        f"loses at most about {trainer.checkpoint_secs:g} seconds of training",
        f"missed {runs.STALE_HEARTBEATS} checkpoints "
        f"({runs.STALE_HEARTBEATS * trainer.checkpoint_secs / 60:g} minutes by default)",
    ):
        assert fragment in readme, fragment
    for status, code in runs.EXIT_CODES.items():  # the table of statuses and exit codes
        if status != "refused":
            assert f"| {status} | {code} |" in readme, status
    assert "Other exit codes: 2 a configuration that cannot run" in readme and "status `refused`" in readme


def test_a_disk_full_before_the_run_starts_is_one_sentence_naming_the_run(tmp_path):
    import errno
    import resource

    def tiny_files() -> None:  # not even Hydra's record of the run (.hydra/hydra.yaml) fits
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    result = subprocess.run(
        [*dlexp_cmd(), "train", "data=xor", "log.progress=none", "hydra.run.dir=nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        preexec_fn=tiny_files,
        timeout=600,
    )
    assert result.returncode == 1
    assert result.stdout == "" and result.stderr == f"error: cannot write nowhere: {os.strerror(errno.EFBIG)}.\n"
    assert not (tmp_path / "nowhere" / "status.json").exists()


def test_a_run_resumed_within_the_second_it_stopped_is_read_in_order(tmp_path):
    """TensorBoard reads a run's event files in name order, and a name starts with its second: a continuation
    written in the same second as the file it continues (by a process with a lower id) is named to sort after it."""
    from dlexp.observe.tensorboard import Board, read_scalars

    first = Board(tmp_path)
    first.scalar("val/loss", 2.0, 0)
    first.scalar("val/loss", 1.0, 10)
    first.writer.close()
    earlier = next(tmp_path.glob("events.out.tfevents.*"))
    stamp = int(time.time()) + 1  # as if written by another process a moment from now
    earlier.rename(earlier.with_name(".".join([*earlier.name.split(".")[:3], str(stamp), "host", "99999", "0"])))
    resumed = Board(tmp_path, purge_step=10)
    resumed.scalar("val/loss", 0.5, 10)
    resumed.writer.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert int(names[-1].split(".")[3]) > stamp  # the continuation is read last
    assert read_scalars(tmp_path)["val/loss"] == [(0, 2.0), (10, 0.5)]


def test_scalars_are_read_back_as_tensorboard_reads_them_up_to_a_damaged_record(tmp_path):
    """read_scalars against TensorBoard's own reader (EventAccumulator): a run resumed twice (each continuation
    drops what the earlier files logged from its purge step on) with pictures and histograms between the scalars;
    then a file cut in the middle of a record and one whose scalar record does not check are read up to there."""
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea

    from dlexp.observe.tensorboard import Board, read_scalars

    def tensorboards(path):
        acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.IMAGES: 1, ea.HISTOGRAMS: 1})
        acc.Reload()
        return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()[ea.SCALARS]}

    picture = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
    for purge in (None, 6, 3):
        board = Board(tmp_path, purge_step=purge)
        for step in range(purge or 0, 9):
            board.scalars({"val/loss": 1.0 / (step + 1), "val/acc": step / 10}, step)
            board.summary({"weights/1": {"buckets": [(0.0, 1.0, step + 1.0)]}}, {"act_std/1": 0.1 * step}, step)
            board.images({"boundary": picture}, step)
        board.close()
    read = read_scalars(tmp_path)
    assert read == tensorboards(tmp_path)
    assert read["val/loss"] == [(step, float(np.float32(1.0 / (step + 1)))) for step in range(9)]  # stored as float32

    cut = tmp_path / "cut"
    board = Board(cut)
    for step in range(5):
        board.scalar("val/loss", float(step), step)
    board.close()
    [events] = cut.glob("events.out.tfevents.*")
    data = events.read_bytes()
    events.write_bytes(data[:-7])  # the last record cut short: a kill while writing
    assert read_scalars(cut)["val/loss"] == [(step, float(step)) for step in range(4)]
    damaged = bytearray(data)
    damaged[-6] ^= 0xFF  # a byte of the last record's contents: its checksum no longer agrees
    events.write_bytes(bytes(damaged))
    assert read_scalars(cut)["val/loss"] == [(step, float(step)) for step in range(4)]


def test_each_event_is_on_disk_when_written_and_two_threads_keep_records_whole(tmp_path):
    """A Board writes each record in the calling thread, flushed (no writer thread of TensorBoard's left running):
    what the training thread logged is in the file at once, whatever becomes of the process later. The painting
    thread writes pictures into the same file meanwhile: every record checks (TensorBoard's reader), none is lost."""
    import threading

    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea

    from dlexp.observe.tensorboard import Board, read_scalars

    before = set(threading.enumerate())
    board = Board(tmp_path)
    assert not [t for t in set(threading.enumerate()) - before if type(t).__module__.startswith("tensorboard.")]
    board.scalar("val/loss", 0.5, 0)
    assert read_scalars(tmp_path)["val/loss"] == [(0, 0.5)]  # not closed, not flushed: on disk already

    picture = np.zeros((64, 64, 3), np.uint8)
    for step in range(1, 201):
        board.images({"boundary": picture}, step)  # written on the painting thread while this one writes scalars
        board.scalars({"train/loss": 1.0 / step}, step)
    board.close()
    acc = ea.EventAccumulator(str(tmp_path), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 201))
    assert sorted(e.step for e in acc.Images("boundary")) == list(range(1, 201))


def test_a_tensorboard_whose_event_writer_is_built_otherwise_keeps_its_own():
    from types import SimpleNamespace

    from dlexp.observe.tensorboard import Records

    theirs = SimpleNamespace(write=print)  # no writer thread of the kind Records replaces
    other = SimpleNamespace(_async_writer=theirs, _file_name="events.out.tfevents.x")
    Records.replace(other)
    assert other._async_writer is theirs
