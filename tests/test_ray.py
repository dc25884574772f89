"""hydra/launcher=ray: sweeps on a real local Ray instance, started by the launcher and ended with the process.

Each sweep runs the real `dlexp train -m` in a subprocess (one Ray start per test) and is checked the way the
other launchers are: run directories, statuses, the summary table, one result line per job, the exit code. No Ray
process may outlive the sweep: the processes it started are recorded by pid while it runs (never `ray stop`,
which would end every Ray process on the machine).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import dlexp_cmd, run_dirs, status_of
from test_sweeps import TINY, summary_rows, sweep_dir
from test_trust import BROKEN

from dlexp.config import compose as composer
from dlexp.read import runs

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (pip install -e '.[ray]'; make test installs it)",
)
ENV = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


# --- watching the processes a sweep starts -------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, command line) of every live process (zombies are dead: left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while being read
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ..., starttime (22nd)
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), fields[19], cmdline)
    return found


def _descendants(root: int) -> dict[tuple[int, str], str]:
    """(pid, start time) -> command line of every process below `root` (the pair survives pid reuse)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[(pid, procs[pid][1])] = procs[pid][2]
        todo += children.get(pid, [])
    return found


class Watched:
    """A command in its own session (as a terminal runs it: its own process group), and the processes it starts."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict | None = None):
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**ENV, **(env or {})},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.started: dict[tuple[int, str], str] = {}

    def watch_until(self, done, timeout: float) -> None:
        """Record the processes it starts until done() or its end."""
        deadline = time.time() + timeout
        while self.proc.poll() is None and not done() and time.time() < deadline:
            self.started.update(_descendants(self.proc.pid))
            time.sleep(0.2)

    def finish(self, timeout: float = 600) -> subprocess.CompletedProcess:
        self.watch_until(lambda: False, timeout)
        out, err = self.proc.communicate(timeout=30)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def survivors(self, grace: float = 15) -> list[str]:
        """The processes it started that are still alive `grace` seconds after its end."""
        deadline = time.time() + grace
        while True:
            alive = {(pid, start) for pid, (_, start, _) in _processes().items()}
            left = [cmd for key, cmd in self.started.items() if key in alive]
            if not left or time.time() > deadline:
                return left
            time.sleep(0.5)


def Sweep(cwd: Path, *args: str, env: dict | None = None) -> Watched:
    """`dlexp train -m ARGS hydra/launcher=ray` (Hydra's flags, such as --config-dir, come before the overrides)."""
    return Watched([*dlexp_cmd(), "train", "-m", *args, "hydra/launcher=ray"], cwd, env)


def job_lines(stdout: str) -> list[str]:
    """The sweep summary's one line per job: '  <status> val/loss ... <job directory>'."""
    statuses = tuple(runs.EXIT_CODES)
    return [line for line in stdout.splitlines() if line.startswith("  ") and line.split()[0] in statuses]


# --- the preset ----------------------------------------------------------------------------------------------


def test_ray_preset_starts_a_local_instance_one_cpu_per_job():
    from hydra.plugins.launcher import Launcher
    from hydra.utils import get_class

    cfg = composer.load(["hydra/launcher=ray"])
    launcher = cfg.hydra.launcher
    assert issubclass(get_class(launcher._target_), Launcher)  # a Hydra launcher plugin, importable without Ray
    assert launcher.ray.init.address == "local" and launcher.ray.init.num_cpus is None
    assert (launcher.ray.remote.num_cpus, launcher.ray.remote.max_retries) == (1, 0)
    assert cfg.device.threads == 1  # the preset's comment: each job computes with one torch thread by default
    joined = composer.load(
        ["hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.7:6379", "+hydra.launcher.ray.remote.num_gpus=1"]
    )  # the README's commands compose
    assert joined.hydra.launcher.ray.init.address == "10.0.0.7:6379" and joined.hydra.launcher.ray.remote.num_gpus == 1


def test_without_ray_a_ray_sweep_says_how_to_add_it_and_writes_nothing(tmp_path):
    # sys.modules[name] = None is how Python makes a package unimportable: as if it were not installed
    code = (
        "import sys; sys.modules['ray'] = None; from dlexp.cli.entry import main; "
        "sys.argv = ['dlexp', 'train', '-m', 'hydra/launcher=ray', 'optimizer=sgd,adam', 'data=xor']; main()"
    )
    result = subprocess.run(
        [dlexp_cmd()[0], "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hydra/launcher=ray needs the optional package ray: pip install -e '.[ray]'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()


# --- real sweeps -----------------------------------------------------------------------------------------------


@needs_ray
def test_two_jobs_run_in_ray_workers_on_a_local_instance_that_ends_with_the_sweep(tmp_path):
    sweep = Sweep(tmp_path, "optimizer=sgd,adam", *TINY)
    result = sweep.finish()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = run_dirs(sweep_dir(tmp_path))
    statuses = [status_of(p) for p in found]
    assert [s["status"] for s in statuses] == ["completed", "completed"]
    assert {"optimizer=sgd", "optimizer=adam"} == {o for s in statuses for o in s["overrides"] if "optimizer" in o}
    # the jobs ran in two processes the sweep started (Ray's workers), beside the local Ray instance it started
    assert len({s["pid"] for s in statuses}) == 2, statuses
    assert {s["pid"] for s in statuses} <= {pid for pid, _ in sweep.started}, (statuses, sweep.started)
    assert any("raylet" in cmd for cmd in sweep.started.values()), sweep.started
    assert sweep.survivors() == []
    assert set(summary_rows(sweep_dir(tmp_path)).values()) == {2}
    assert "sweep finished: 2 runs (2 completed)" in result.stdout
    assert [line.split()[0] for line in job_lines(result.stdout)] == ["completed", "completed"]


@needs_ray
@pytest.mark.slow
def test_a_failing_job_fails_the_others_complete_and_the_sweep_exits_1(tmp_path):
    (tmp_path / "mymodels.py").write_text(BROKEN)  # a model that raises in its 6th forward pass
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("# dlexp train model=broken\n# A model that fails.\n_target_: mymodels.broken\n")
    # the Ray workers inherit the launching process's environment, PYTHONPATH included
    sweep = Sweep(
        tmp_path,
        "--config-dir",
        str(tmp_path / "conf"),
        "model=broken,mlp",
        "allow_targets=[mymodels]",
        "data=digits",
        "trainer.epochs=1",
        "log.histograms=false",
        "log.progress=none",
        env={"PYTHONPATH": str(tmp_path)},
    )
    result = sweep.finish()
    assert result.returncode == runs.EXIT_CODES["failed"], result.stdout[-2000:] + result.stderr[-3000:]
    by_model = {status_of(p)["choices"]["model"]: status_of(p) for p in run_dirs(sweep_dir(tmp_path))}
    assert by_model["broken"]["status"] == "failed" and "boom at call 6" in by_model["broken"]["error"]
    assert by_model["mlp"]["status"] == "completed"
    assert set(summary_rows(sweep_dir(tmp_path)).values()) == {2}
    assert sorted(line.split()[0] for line in job_lines(result.stdout)) == ["completed", "failed"]
    assert "Traceback" not in result.stdout + result.stderr  # the traceback is in the failed run's train.log
    assert sweep.survivors() == []


@needs_ray
@pytest.mark.slow
def test_ctrl_c_stops_the_ray_jobs_with_checkpoints_and_they_resume(tmp_path, cli):
    # long jobs: both are still training when Ctrl-C comes; one metrics row every 200 epochs keeps the files small
    sweep = Sweep(
        tmp_path,
        "optimizer=sgd,adam",
        "data=xor",
        "trainer.epochs=100000000",
        "log.epoch_every=200",
        "log.histograms=false",
        "log.progress=none",
    )

    def training() -> bool:  # the first metrics row is written inside the loop, with its Ctrl-C handler in place
        metrics = list(tmp_path.glob("runs/multirun/*/*/metrics.csv"))
        return len(metrics) == 2 and all(len(p.read_text().splitlines()) >= 2 for p in metrics)

    sweep.watch_until(training, timeout=300)
    assert training(), "the jobs never started training"
    os.killpg(sweep.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground process group
    result = sweep.finish(timeout=120)
    assert result.returncode == runs.EXIT_CODES["interrupted"], result.stdout[-2000:] + result.stderr[-3000:]
    found = run_dirs(sweep_dir(tmp_path))
    assert [status_of(p)["status"] for p in found] == ["interrupted", "interrupted"]
    assert all((p / "checkpoint.pt").is_file() for p in found)
    assert set(summary_rows(sweep_dir(tmp_path)).values()) == {2}
    assert [line.split()[0] for line in job_lines(result.stdout)] == ["interrupted", "interrupted"]
    assert sweep.survivors() == []

    # the checkpoint is a real one: the run continues from it, two epochs further, and completes
    stopped = status_of(found[0])
    resumed = cli("resume", str(found[0]), f"trainer.epochs={stopped['epoch'] + 2}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = status_of(found[0])
    assert (after["status"], after["epoch"]) == ("completed", stopped["epoch"] + 2)
    assert after["step"] > stopped["step"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
@pytest.mark.slow
def test_a_sweep_joins_a_running_cluster_and_its_jobs_write_where_it_was_launched(tmp_path):
    """`ray start --head` as on a cluster's head node (here), then a sweep given its address."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    port = _free_port()
    home = {"HOME": str(tmp_path)}  # the cluster's token goes to this test's ~/.ray, not to the user's
    ray_cli = str(Path(sys.executable).parent / "ray")
    subprocess.run(
        [ray_cli, "get-auth-token", "--generate"], env={**ENV, **home}, capture_output=True, check=True, timeout=120
    )  # as the README says: a token first, then `ray start` protects the cluster with it
    head = Watched(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            f"--ray-client-server-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
        ],
        cwd=temp,
        env=home,
    )
    try:
        for line in head.proc.stdout:  # --block: it prints its address, then stays in the foreground
            if "Ray runtime started" in line:
                break
        head.watch_until(lambda: True, timeout=1)
        sweep = Sweep(
            tmp_path,
            "optimizer=sgd,adam",
            *TINY,
            f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
            env={**home, "RAY_AUTH_MODE": "token"},
        )
        result = sweep.finish()
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        # the head's workers started in the head's folder; the jobs ran in the launching one
        assert [status_of(p)["status"] for p in run_dirs(sweep_dir(tmp_path))] == ["completed", "completed"]
        assert not list(temp.rglob(runs.STATUS))
        assert "sweep finished: 2 runs (2 completed)" in result.stdout
        assert sweep.survivors() == []  # the sweep started no Ray of its own
    finally:
        head.proc.send_signal(signal.SIGTERM)  # what ends `ray start --block` and the cluster it started
        head.finish(timeout=60)
        assert head.survivors() == []
        shutil.rmtree(temp, ignore_errors=True)
