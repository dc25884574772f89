"""hydra/launcher=vectorized through the real CLI: every job of a stacked sweep writes what it writes alone.

The oracle for a stacked job is the same job run alone: the same sweep run by Hydra's basic launcher (one job after
another, each its own single run) into a second sweep directory. Job by job, the two run directories are compared
the way a user reads them: status.json, metrics.csv, config.yaml and Hydra's .hydra record, every TensorBoard scalar,
histogram and image read back with TensorBoard's own reader, the checkpoint and boundary.npz.

What may differ, and by how much: the stack's batched products round differently from a run's single ones, by a
last bit that depends on the CPU (tests/tolerance.py): training numbers (losses, accuracies, weights, optimizer
state) within the tolerances stated there; the histograms' probe batch and the pictures' grid, evaluated by the
stack, within rounding too (a value on a bucket's edge, a pixel's colour on the edge of a step). A stack continued
from its checkpoints against the same stack uninterrupted, and a run alone against its own resume: exactly equal.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dlexp_cmd, in_process, run_dirs, status_of
from test_trust import ENV, wait_for_checkpoint_past_start, wait_for_line
from tolerance import STEP_RTOL, TENSOR_RTOL, assert_close_losses, assert_same_state, close

from dlexp.read import runs

VECTORIZED = "hydra/launcher=vectorized"
# 25 mini-batches an epoch, histograms and pictures every 20 steps and at each epoch, the step loss every 5 steps
MOONS = [
    "data=moons",
    "model.hidden=[16,16]",
    "model.activation=tanh",
    "trainer.epochs=3",
    "batch=mini",
    "log.every=5",
    "log.hist_every=20",
]
OPTIMIZERS = "optimizer=sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,adam_then_sgd"


def sweep(cli, tmp_path: Path, name: str, *args: str, vectorized: bool = True, code: int = 0):
    """`dlexp train -m ARGS` into tmp_path/name; returns (sweep directory, the CompletedProcess)."""
    result = cli("train", "-m", f"hydra.sweep.dir={name}", *([VECTORIZED] if vectorized else []), *args)
    assert result.returncode == code, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path / name, result


def jobs(sweep_dir: Path) -> dict[str, Path]:
    """Run directory name -> path, for every job of a sweep."""
    return {p.name: p for p in run_dirs(sweep_dir) if p.parent == sweep_dir}


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def assert_same_job(
    alone: Path, stacked: Path, rtol: float = STEP_RTOL, tensor_rtol: float | None = TENSOR_RTOL
) -> None:
    """The stacked job's run directory says what the single run's says (see the module's docstring); `rtol`: the
    training numbers (losses, accuracies, metrics), relative; `tensor_rtol`: the checkpoint's tensors, relative to
    their scale."""
    atol = 1e-7
    for name in ("config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (stacked / name).read_text() == (alone / name).read_text(), name
    a, s = status_of(alone), status_of(stacked)
    for key in ("status", "epoch", "step", "overrides", "choices", "diverged_at_step", "name"):
        assert s.get(key) == a.get(key), (key, s.get(key), a.get(key))
    assert set(s["metrics"]) == set(a["metrics"])
    for key, value in a["metrics"].items():
        exact = not key.startswith("hist/")
        assert close(s["metrics"][key], value, rtol if exact else 1e-5, atol if exact else 1e-7), (
            key,
            s["metrics"][key],
            value,
        )

    assert (stacked / "metrics.csv").exists() == (alone / "metrics.csv").exists()  # none for an untrained run
    rows_a, rows_s = (metrics_rows(d) if (d / "metrics.csv").exists() else [] for d in (alone, stacked))
    assert [list(r) for r in rows_s] == [list(r) for r in rows_a]
    for ra, rs in zip(rows_a, rows_s):
        for key in ra:
            if key != "time":
                assert (
                    (rs[key] == ra[key])
                    if key in ("epoch", "step") or not ra[key]
                    else close(float(rs[key]), float(ra[key]), rtol, atol)
                ), (key, rs[key], ra[key])

    ea, es = events(alone), events(stacked)
    for kind in ("scalars", "histograms", "images"):
        assert sorted(es.Tags()[kind]) == sorted(ea.Tags()[kind]), kind
    for tag in ea.Tags()["scalars"]:
        pa, ps = ea.Scalars(tag), es.Scalars(tag)
        assert [e.step for e in ps] == [e.step for e in pa], tag
        # histogram summaries (act_std/, grad_norm/, ...) come from the stack's batched probe pass and its gradients
        training = tag == "epoch" or tag.split("/")[0] in ("train", "val", "optim", "best", "data")
        for x, y in zip(ps, pa):
            assert close(x.value, y.value, *((rtol, atol) if training else (TENSOR_RTOL, 1e-6))), (
                tag,
                x.step,
                x.value,
                y.value,
            )
    for tag in ea.Tags()["histograms"]:
        pa, ps = ea.Histograms(tag), es.Histograms(tag)
        assert [e.step for e in ps] == [e.step for e in pa], tag
        for x, y in zip(ps, pa):
            hx, hy = x.histogram_value, y.histogram_value
            scale = TENSOR_RTOL * max(abs(hy.min), abs(hy.max))  # weights and gradients: their tolerance
            assert hx.num == hy.num and abs(hx.min - hy.min) <= scale and abs(hx.max - hy.max) <= scale, tag
            # a value on a bucket's edge may fall on either side of it, and the edges move with min and max: Adam's
            # gradients on digits after 20 epochs, one unit in the last place off, moved 44 of 2,560 (1.7%)
            assert sum(abs(c - d) for c, d in zip(hx.bucket, hy.bucket)) <= 0.05 * hx.num + 2, tag
    for tag in ea.Tags()["images"]:
        pa, ps = ea.Images(tag), es.Images(tag)
        assert [e.step for e in ps] == [e.step for e in pa], tag
        for x, y in zip(ps, pa):
            px, py = picture(x.encoded_image_string), picture(y.encoded_image_string)
            assert px.shape == py.shape
            differ = np.abs(px.astype(int) - py.astype(int)).max(axis=-1) > 2
            assert differ.mean() <= 0.001, (tag, x.step, differ.sum())  # a colour on the edge of a step

    assert (stacked / "checkpoint.pt").exists() == (alone / "checkpoint.pt").exists()  # none for a diverged run
    if (alone / "checkpoint.pt").exists():
        assert_same_checkpoint(alone, stacked, rtol=tensor_rtol)
    if (alone / "boundary.npz").exists():
        ba, bs = np.load(alone / "boundary.npz"), np.load(stacked / "boundary.npz")
        assert sorted(bs.files) == sorted(ba.files)
        for key in ba.files:
            assert (
                np.allclose(bs[key], ba[key], rtol=1e-3, atol=1e-3)
                if ba[key].dtype.kind == "f"
                else (bs[key] == ba[key]).all()
            ), key


def assert_same_checkpoint(alone: Path, stacked: Path, exact: bool = False, rtol: float | None = TENSOR_RTOL) -> None:
    """The same position, config, scheduler and random state; weights and optimizer state bit for bit (`exact`) or
    within `rtol` of each tensor's scale (None: dtype and shape only)."""
    ca, cs = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (alone, stacked))
    assert cs["state"]["epoch"] == ca["state"]["epoch"] and cs["state"]["step"] == ca["state"]["step"]
    assert cs["config"] == ca["config"] and cs["scheduler"] == ca["scheduler"]
    assert torch.equal(cs["rng"]["torch"], ca["rng"]["torch"])  # the random state its single run holds
    assert_same_state(ca["model"], cs["model"], "model", exact, rtol)
    assert_same_state(ca["optimizer"], cs["optimizer"], "optimizer", exact, rtol)


def picture(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def launcher_lines(result) -> list[str]:
    """The launcher's own lines (Hydra's log), without the time stamp."""
    return [line.split("[HYDRA] ", 1)[1].strip() for line in result.stdout.splitlines() if "[HYDRA] " in line]


# --- every optimizer, in one stack per family, against each job alone --------------------------------------------


@pytest.fixture(scope="module")
def optimizer_sweeps(tmp_path_factory):
    """The same 16-job sweep (8 optimizers x 2 seeds) vectorized and with the basic launcher."""
    root = tmp_path_factory.mktemp("optimizers")
    found = {}
    for name, launcher in (("stacked", [VECTORIZED]), ("alone", [])):
        result = in_process(
            ["train", "-m", f"hydra.sweep.dir={name}", *launcher, *MOONS, OPTIMIZERS, "seed=0,1"],
            root,
            {"COLUMNS": "200"},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        found[name] = (root / name, result)
    return found


@pytest.mark.kernels
def test_each_optimizer_stack_writes_what_each_job_writes_alone(optimizer_sweeps):
    (stacked, result), (alone, _) = optimizer_sweeps["stacked"], optimizer_sweeps["alone"]
    lines = launcher_lines(result)
    stacks = [line for line in lines if line.startswith("one stacked model")]
    assert stacks == [
        "one stacked model of 6 jobs: #0 #1 #2 #3 #4 #5",  # sgd, momentum, nesterov
        "one stacked model of 2 jobs: #6 #7",
        "one stacked model of 2 jobs: #8 #9",  # adagrad, rmsprop
        "one stacked model of 4 jobs: #10 #11 #12 #13",  # adam, adamw
        "one stacked model of 2 jobs: #14 #15",
    ], lines  # adam_then_sgd
    assert not any("runs alone" in line for line in lines)
    mine, theirs = jobs(stacked), jobs(alone)
    assert sorted(mine) == sorted(theirs) and len(mine) == 16
    for name in sorted(theirs):
        assert_same_job(theirs[name], mine[name])
    assert (stacked / "summary.csv").read_text().count("\n") == (alone / "summary.csv").read_text().count("\n")


def test_a_stacked_sweep_reports_like_any_sweep(optimizer_sweeps):
    stacked, result = optimizer_sweeps["stacked"]
    assert "sweep finished: 16 runs (16 completed)" in result.stdout
    finished = [line for line in result.stdout.splitlines() if line.startswith("completed ")]
    assert len(finished) == 16  # one line per job as it ends
    statuses = [status_of(p) for p in jobs(stacked).values()]
    assert len({s["pid"] for s in statuses}) == 1  # every job in the launching process
    assert all(
        s["status"] == "completed" and (p / "train.log").read_text().count("run ") >= 2
        for p, s in zip(jobs(stacked).values(), statuses)
    )  # each job's log: its start and its end


@pytest.mark.kernels
def test_untrained_stacks_capture_what_each_fresh_network_shows_alone(cli, tmp_path):
    """experiment=init_study (unlabelled, never trained): one stack per activation, histograms as alone."""
    args = ["experiment=init_study", "initializer=normal,xavier_normal", "model.activation=sigmoid,relu"]
    stacked, result = sweep(cli, tmp_path, "stacked", *args)
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False)
    assert launcher_lines(result).count("one stacked model of 2 jobs: #0 #2") == 1
    assert "one stacked model of 2 jobs: #1 #3" in launcher_lines(result)
    for name, run in jobs(alone).items():
        assert_same_job(run, stacked / name)


# --- XOR: the numbers --------------------------------------------------------------------------------


@pytest.mark.kernels
def test_xor_step_losses_equal_alone_over_2000_steps(cli, tmp_path):
    """Every step's loss of experiment=xor_mlp jobs, read from TensorBoard, within 1e-5 of the job alone."""
    args = ["experiment=xor_mlp", "seed=777,0,1,2", "trainer.epochs=2000", "log.every=1"]
    stacked, _ = sweep(cli, tmp_path, "stacked", *args)
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False)
    for name, run in jobs(alone).items():
        ours = [e.value for e in events(stacked / name).Scalars("train/step_loss")]
        theirs = [e.value for e in events(run).Scalars("train/step_loss")]
        assert len(ours) == len(theirs) == 2000
        assert_close_losses(theirs, ours, rtol=1e-5)
        assert_same_job(run, stacked / name, rtol=1e-5)


@pytest.mark.slow
def test_xor_final_metrics_within_1e_2_after_10001_steps(cli, tmp_path):
    """The plateau escape amplifies rounding: after the full 10,001 epochs, final metrics within 1e-2."""
    args = ["experiment=xor_mlp", "seed=777,0", "log.histograms=false", "log.boundaries=false"]
    stacked, _ = sweep(cli, tmp_path, "stacked", *args)
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False)
    for name, run in jobs(alone).items():
        ours, theirs = status_of(stacked / name)["metrics"], status_of(run)["metrics"]
        for key in ("val/loss", "val/acc", "train/loss", "train/acc"):
            assert abs(ours[key] - theirs[key]) <= 1e-2, (name, key, ours[key], theirs[key])


# --- a diverging job in a stack; digits Adam ------------------------------------------------------------------


@pytest.mark.kernels
def test_a_diverging_job_stops_alone_and_digits_adam_equals_alone(cli, tmp_path):
    """Digits, Adam, batch 32, 5 epochs: lr 1e20 is non-finite at step 2; the others complete as alone, to float32
    rounding (Adam on digits: 1e-4, tests/test_stacked.py; measured 1.1e-6 with DLEXP_TEST_ROUNDING=ulp)."""
    args = [
        "optimizer=adam",
        "batch.size=32",
        "trainer.epochs=5",
        "optimizer.lr=0.001,1e20,0.01",
        "log.boundaries=false",
    ]
    stacked, result = sweep(cli, tmp_path, "stacked", *args, code=runs.EXIT_CODES["diverged"])
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False, code=runs.EXIT_CODES["diverged"])
    assert "one stacked model of 3 jobs: #0 #1 #2" in launcher_lines(result)
    assert "diverged at step 2: the loss is not finite" in result.stdout
    assert "sweep finished: 3 runs (2 completed, 1 diverged)" in result.stdout
    mine = jobs(stacked)
    for name, run in jobs(alone).items():
        assert_same_job(run, mine[name], rtol=1e-4)
    (diverged,) = [status_of(p) for p in mine.values() if status_of(p)["status"] == "diverged"]
    assert diverged["diverged_at_step"] == 2 and diverged["step"] == 2


# --- composing each job once per family of siblings ---------------------------------------------------------------


class CountingLoader:
    """Hydra's config loader, counting the jobs it composes."""

    def __init__(self, loader):
        self.loader, self.composed = loader, 0

    def load_sweep_config(self, master, overrides):
        self.composed += 1
        return self.loader.load_sweep_config(master, overrides)


@pytest.mark.parametrize(
    "jobs, composed",
    [
        ([["experiment=xor_mlp", f"seed={s}"] for s in range(5)], 2),  # 3 derived
        (
            [
                ["optimizer.lr=0.1", "model.hidden=[4,4]", "log.dir=a", "log.boundaries=false"],
                ["optimizer.lr=0.2", "model.hidden=[8]", "log.dir=b", "log.boundaries=true"],
                ["optimizer.lr=1e-3", "model.hidden=[]", "log.dir=${oc.env:HOME}", "log.boundaries=auto"],
            ],
            2,
        ),
        ([["optimizer=sgd", "seed=0"], ["optimizer=adam", "seed=0"], ["optimizer=sgd", "seed=1"]], 3),  # groups differ
        ([["+extra=1", "seed=0"], ["+extra=2", "seed=1"], ["+extra=3", "seed=2"]], 3),  # additions: composed
    ],
)
def test_sibling_jobs_share_one_composition_and_equal_hydras_own(jobs, composed):
    """Each job's config is exactly what load_sweep_config composes; jobs differing only in plain values are derived
    from their family's first (after a second one, composed in full, agreed)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from dlexp.config import catalog, resolvers
    from dlexp.config import compose as composer
    from hydra_plugins.dlexp_launchers.vectorized_launcher import Siblings, numbered

    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(catalog.conf_dir()), version_base="1.3", job_name="dlexp"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [VECTORIZED], RunMode.MULTIRUN)
        counting = CountingLoader(loader)
        siblings = Siblings(counting, master)
        for idx, overrides in enumerate(jobs):
            ours = siblings.config(idx, overrides)
            theirs = numbered(loader.load_sweep_config(master, overrides), idx)
            assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs), overrides
            task = [OmegaConf.to_yaml(composer.without_hydra(c), resolve=True) for c in (ours, theirs)]
            assert task[0] == task[1]  # (resolving Hydra's run.dir draws a new id each time)
    assert counting.composed == composed


def test_the_sweepers_check_of_a_batch_is_the_composition_the_launcher_uses():
    """Hydra's sweeper composes every job of a batch to check it (`validate_batch_is_legal`) right before the
    launcher composes them again: the launcher's setup makes both one composition per job (per family here)."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    from dlexp.config import app, catalog, resolvers
    from hydra_plugins.dlexp_launchers.vectorized_launcher import VectorizedLauncher, numbered

    resolvers.register()
    GlobalHydra.instance().clear()
    batch = [["experiment=xor_mlp", f"seed={s}"] for s in range(5)]
    with initialize_config_dir(config_dir=str(catalog.conf_dir()), version_base="1.3", job_name="dlexp"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [VECTORIZED], RunMode.MULTIRUN)
        counting = CountingLoader(loader)
        context = HydraContext(config_loader=counting, callbacks=Callbacks())
        launcher = VectorizedLauncher()
        launcher.setup(hydra_context=context, task_function=app.task, config=master)
        sweeper = BasicSweeper(max_batch_size=None)
        sweeper.hydra_context, sweeper.config = context, master  # what BasicSweeper.setup keeps
        sweeper.validate_batch_is_legal(batch)
        assert counting.composed == 2  # the family's first, and its check
        configs = [launcher.composer.config(idx, overrides) for idx, overrides in enumerate(batch)]
        assert counting.composed == 2  # the launch composed nothing again
        for idx, (ours, overrides) in enumerate(zip(configs, batch)):
            theirs = numbered(loader.load_sweep_config(master, overrides), idx)
            assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs), overrides


# --- grouping, and the jobs that run alone ---------------------------------------------------------------------


def test_jobs_that_cannot_join_a_stack_run_alone_each_with_its_reason(cli, tmp_path):
    """... and each writes what its single run writes: random search draws from the random state its build left."""
    args = ["data=xor", "trainer.epochs=5", "log.histograms=false", "batch.size=2,4,4", "optimizer=sgd,random_search"]
    stacked, result = sweep(cli, tmp_path, "mixed", *args)
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False)
    for name, run in jobs(alone).items():
        assert_same_job(run, stacked / name)
    lines = launcher_lines(result)
    assert "one stacked model of 2 jobs: #2 #4" in lines  # sgd, batch 4
    assert any(line.startswith("#0 runs alone (batch.size differs):") and "batch.size=2" in line for line in lines)
    for job in (1, 3, 5):
        assert any(
            line.startswith(f"#{job} runs alone (optimizer random_search cannot be stacked):") for line in lines
        ), lines
    assert "sweep finished: 6 runs (6 completed)" in result.stdout


@pytest.mark.kernels
def test_an_activation_with_parameters_runs_alone_and_writes_what_it_writes_alone(cli, tmp_path, prelu):
    """model.activation=prelu (registered by the test): each of its jobs runs alone with its reason, and every job,
    stacked or alone, writes what the basic launcher's single run writes."""
    args = ["data=xor", "trainer.epochs=20", "log.histograms=false", "model.activation=prelu,tanh", "seed=0,1"]
    stacked, result = sweep(cli, tmp_path, "stacked", *args)
    alone, _ = sweep(cli, tmp_path, "alone", *args, vectorized=False)
    lines = launcher_lines(result)
    assert "one stacked model of 2 jobs: #2 #3" in lines  # tanh
    for job in (0, 1):
        assert any(
            line.startswith(f"#{job} runs alone (activation prelu cannot be stacked: it has parameters of its own):")
            for line in lines
        ), lines
    assert len(jobs(alone)) == 4
    for name, run in jobs(alone).items():
        assert_same_job(run, stacked / name)


def test_max_group_splits_a_stack(cli, tmp_path):
    _, result = sweep(
        cli, tmp_path, "split", "data=xor", "trainer.epochs=3", "seed=0,1,2,3,4", "hydra.launcher.max_group=2"
    )
    lines = launcher_lines(result)
    assert "one stacked model of 2 jobs: #0 #1" in lines and "one stacked model of 2 jobs: #2 #3" in lines
    assert any(line.startswith("#4 runs alone (max_group=2 split its stack)") for line in lines)


def test_a_sweep_with_a_bad_job_is_refused_whole_and_writes_nothing(cli, tmp_path):
    result = cli(
        "train", "-m", VECTORIZED, "data=xor", "trainer.epochs=1", "model.hidden=[4],[0]", "optimizer.lr=0.1,-1"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stderr.replace("\n", " ")
    assert "[model.hidden=[0] optimizer.lr=0.1] model.hidden=[0] is out of range" in text
    assert "optimizer.lr=-1" in text and "Traceback" not in text
    assert not (tmp_path / "runs").exists()
    unknown = cli("train", "-m", VECTORIZED, "data=xor", "optimizer=sgd,adamm")
    assert unknown.returncode == 2 and "Unknown optimizer 'adamm'" in unknown.stderr
    assert not (tmp_path / "runs").exists()


# --- Ctrl-C, SIGTERM and dlexp resume of a stacked job --------------------------------------------------------

LONG = MOONS[:-3] + [
    "trainer.epochs=200",
    "trainer.checkpoint_secs=0.2",
    "log.progress=none",
    "seed=0,1",
    "optimizer=adam",
]


def stop_stacked_sweep(tmp_path: Path, sig: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*dlexp_cmd(), "train", "-m", "hydra.sweep.dir=cut", VECTORIZED, *LONG],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    seen = wait_for_line(proc, "one stacked model of 2 jobs")
    deadline = time.time() + 120
    while len(list((tmp_path / "cut").glob("*/status.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    for status in (tmp_path / "cut").glob("*/status.json"):  # both jobs training, each past its first checkpoint
        wait_for_checkpoint_past_start(status.parent)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return proc, "".join(seen) + out + err


def test_ctrl_c_checkpoints_every_job_of_the_stack_and_resume_continues_one_alone(cli, tmp_path):
    proc, out = stop_stacked_sweep(tmp_path, signal.SIGINT)
    assert proc.returncode == runs.EXIT_CODES["interrupted"], out
    cut = jobs(tmp_path / "cut")
    statuses = {name: status_of(p) for name, p in cut.items()}
    assert [s["status"] for s in statuses.values()] == ["interrupted", "interrupted"], out
    steps = {s["step"] for s in statuses.values()}
    assert len(steps) == 1 and 0 < steps.pop() < 200 * 25  # both stopped at the same step, mid-run
    assert all((p / "checkpoint.pt").exists() for p in cut.values())
    assert "sweep stopped (interrupted): 2 runs (2 interrupted)" in out

    name = sorted(cut)[0]
    resumed = cli("resume", str(cut[name]), "log.progress=none")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status_of(cut[name])["status"] == "completed"
    full, _ = sweep(
        cli,
        tmp_path,
        "full",
        *LONG[:-2],
        status_of(cut[name])["overrides"][-2],
        status_of(cut[name])["overrides"][-1],
        "log.progress=none",
        vectorized=False,
    )
    (uninterrupted,) = jobs(full).values()
    assert_same_checkpoint(uninterrupted, cut[name])  # stacked, then alone: to float32 rounding
    assert_same_val_losses(uninterrupted, cut[name])


def test_a_stopped_stacked_sweep_resumes_as_one_stack_and_equals_the_uninterrupted_sweep(cli, tmp_path):
    """dlexp resume SWEEP_DIR: both jobs continue from their checkpoints, stacked again, to exactly what the same
    stack gives uninterrupted (the same operations on the same numbers)."""
    proc, out = stop_stacked_sweep(tmp_path, signal.SIGINT)
    assert proc.returncode == runs.EXIT_CODES["interrupted"], out
    resumed = cli("resume", "cut")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "one stacked model of 2 jobs" in resumed.stdout + resumed.stderr
    full, _ = sweep(cli, tmp_path, "full", *LONG)
    cut, uninterrupted = jobs(tmp_path / "cut"), jobs(full)
    assert sorted(cut) == sorted(uninterrupted)
    for name in uninterrupted:
        assert status_of(cut[name])["status"] == "completed"
        assert_same_checkpoint(uninterrupted[name], cut[name], exact=True)
        assert metrics_rows(cut[name])[-1]["val/loss"] == metrics_rows(uninterrupted[name])[-1]["val/loss"]
        assert [r["val/loss"] for r in metrics_rows(cut[name])] == [
            r["val/loss"] for r in metrics_rows(uninterrupted[name])
        ]


def assert_same_val_losses(alone: Path, stacked: Path) -> None:
    """metrics.csv's val/loss at every evaluated epoch, to float32 rounding (Adam: 1e-4, see tests/test_stacked.py)."""
    assert_close_losses(
        [float(r["val/loss"]) for r in metrics_rows(alone)],
        [float(r["val/loss"]) for r in metrics_rows(stacked)],
        rtol=1e-4,
    )


def test_sigterm_terminates_every_job_of_the_stack(tmp_path):
    proc, out = stop_stacked_sweep(tmp_path, signal.SIGTERM)
    assert proc.returncode == runs.EXIT_CODES["terminated"], out
    cut = jobs(tmp_path / "cut")
    assert [status_of(p)["status"] for p in cut.values()] == ["terminated", "terminated"]
    assert all((p / "checkpoint.pt").exists() for p in cut.values())


# --- a sampling sweeper: Optuna's trials, a batch at a time -----------------------------------------------------


def test_optuna_trials_are_stacked_batch_by_batch(cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = cli(
        "train",
        "experiment=search",
        VECTORIZED,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=4",
        "data=xor",
        "trainer.epochs=3",
        "log.progress=none",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "runs" / "multirun").iterdir()
    statuses = [status_of(p) for p in jobs(sweep_dir).values()]
    assert len(statuses) == 4 and all(s["status"] == "completed" for s in statuses)
    best = json.loads(json.dumps(__import__("yaml").safe_load((sweep_dir / "optimization_results.yaml").read_text())))
    assert best["best_value"] == pytest.approx(min(s["metrics"]["val/loss"] for s in statuses))
    assert "best trial: val/loss" in result.stdout
