"""The lessons: each preset in conf/experiment/ produces the outcome its idea predicts.

Every assertion is read from what a user sees: status.json, metrics.csv, the TensorBoard event file, or the
trained model itself (kept by a spy on `build.assemble` while the real recipe runs). Fast versions (fewer
epochs, a subset of a sweep) run by default; the full presets and the scripts are marked slow.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import compose_cfg, run_dirs, status_of, train_inprocess
from dlexp import build
from dlexp.config import catalog
from dlexp.config.validate import validate

REPO = Path(__file__).resolve().parents[1]
LN2 = math.log(2.0)  # BCE of a model that answers 50/50 everywhere
# Presets of the lessons (conf/experiment/), with the overrides that make them runnable here.
PRESETS = {
    "xor_perceptron": [], "xor_mlp": [], "and_or_perceptron": [], "init_study": [], "symmetry": [],
    "learning_rate": [], "batch_size": [], "optimizer_race": [], "adam_then_sgd": [], "losses_regression": [],
    "losses_classification": [], "losses_gaussian_nll": [], "mnist_mlp": ["data=mnist_5k"], "moons": [],
}
RANDOM_SEARCHES = ("random_search", "random_local_search")
GRADIENT_METHODS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


# ---------------------------------------------------------------------------------------------
# Reading runs back


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one TensorBoard scalar curve."""
    return [(e.step, e.value) for e in events(run_dir).Scalars(tag)]


def last_scalar(run_dir: Path, tag: str) -> float:
    return scalars(run_dir, tag)[-1][1]


def metrics_rows(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv as numbers, one dict per evaluated epoch (epoch 0 = the fresh network)."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def share_within(run_dir: Path, tag: str, low: float, high: float) -> float:
    """Lower bound on the share of a histogram's values <= low or >= high, from the event file's buckets."""
    hist = events(run_dir).Histograms(tag)[-1].histogram_value
    left, inside = hist.min, 0.0
    for right, count in zip(hist.bucket_limit, hist.bucket):
        if right <= low + 1e-6 or left >= high - 1e-6:  # the whole bucket lies in the tail
            inside += count
        left = right
    return inside / hist.num


def noise(losses: list[float]) -> float:
    """Step-to-step wiggle of a loss curve: mean |l[t+1] - l[t]| relative to the mean loss."""
    values = np.asarray(losses)
    return float(np.abs(np.diff(values)).mean() / values.mean())


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]  # the last one is the output layer


def row_spread(layer: nn.Linear) -> float:
    """Largest difference between a unit's incoming weights (and bias) and those of unit 0: 0 = all units alike."""
    w = torch.cat([layer.weight, layer.bias.unsqueeze(1)], dim=1).detach()  # (units, fan_in + 1)
    return float((w - w[:1]).abs().max())


@pytest.fixture
def train_keep(tmp_path, monkeypatch):
    """Like train_inprocess, also returning the Experiment (model, loss, data) the real recipe trained."""
    built = []
    original = build.assemble

    def spy(cfg, dry=False):
        exp = original(cfg, dry)
        if not dry:
            built.append(exp)
        return exp

    monkeypatch.setattr(build, "assemble", spy)

    def run(*overrides: str, name: str = "run"):
        status, metrics, run_dir, _ = train_inprocess(tmp_path, *overrides, name=name)
        return status, metrics, run_dir, built[-1]

    return run


def sweep(tmp_path: Path, experiment: str, key: str, values, *extra: str) -> dict:
    """One in-process run per value: {value: (status, metrics, run_dir)}."""
    found = {}
    for value in values:
        status, metrics, run_dir, _ = train_inprocess(tmp_path, f"experiment={experiment}", f"{key}={value}", *extra,
                                                      name=f"{key}={value}".replace("/", "_"))
        found[value] = (status, metrics, run_dir)
    return found


# ---------------------------------------------------------------------------------------------
# The presets themselves


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_header_and_commented_values(name):
    path = catalog.conf_dir() / "experiment" / f"{name}.yaml"
    lines = path.read_text().splitlines()
    assert lines[0] == "# @package _global_"
    option = catalog.options("experiment")[name]
    assert option.command.startswith(f"dlexp train experiment={name}") and option.description
    in_defaults = False
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        in_defaults = line.startswith("defaults:") or (in_defaults and line.startswith(" "))
        key, _, value = line.partition(":")
        if value.split("#")[0].strip() and not in_defaults:  # a leaf value says what it is
            assert "#" in value, f"{name}.yaml: '{line.strip()}' has no comment"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates(name):
    cfg, choices = compose_cfg(f"experiment={name}", *PRESETS[name])
    assert validate(cfg, choices) == []


# ---------------------------------------------------------------------------------------------
# 1. XOR: perceptron vs MLP


def test_xor_perceptron_never_passes_75_percent(tmp_path):
    status, metrics, run_dir, _ = train_inprocess(tmp_path, "experiment=xor_perceptron", "trainer.epochs=500")
    assert status == "completed"
    assert max(row["val/acc"] for row in metrics_rows(run_dir)) <= 0.75  # at every evaluated epoch
    assert metrics["val/loss"] == pytest.approx(LN2, abs=1e-3)  # the best a line can do on XOR: 50/50 everywhere


def test_xor_mlp_reaches_100_percent(tmp_path):
    # The preset's seed escapes the sigmoid plateau at ~5,200 epochs (the full 10,001 run is the slow test).
    status, metrics, run_dir, _ = train_inprocess(tmp_path, "experiment=xor_mlp", "trainer.epochs=6000",
                                                  "log.histograms=false")
    assert status == "completed" and metrics["val/acc"] == 1.0 and metrics["val/loss"] < 0.05


# ---------------------------------------------------------------------------------------------
# 2. AND, OR: one perceptron suffices


@pytest.mark.parametrize("gate", ["and", "or"])
def test_perceptron_learns_and_and_or(tmp_path, gate):
    status, metrics, _, _ = train_inprocess(tmp_path, "experiment=and_or_perceptron", f"data={gate}",
                                            "trainer.epochs=200")
    assert status == "completed" and metrics["val/acc"] == 1.0 and metrics["val/loss"] < 0.3


# ---------------------------------------------------------------------------------------------
# 3. Initialisation: activations of a fresh 5 x 100 network on N(0, 1) inputs


@pytest.fixture(scope="module")
def init_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("init_study")
    found = {}
    for act, init in [("sigmoid", "normal"), ("sigmoid", "normal_small"), ("sigmoid", "xavier_normal"),
                      ("relu", "he_normal"), ("relu", "normal_small")]:
        status, _, run_dir, _ = train_inprocess(root, "experiment=init_study", f"model.activation={act}",
                                                f"initializer={init}", name=f"{act}_{init}")
        assert status == "completed"
        found[act, init] = run_dir
    return found


def test_init_normal_saturates_the_sigmoids(init_runs):
    run_dir = init_runs["sigmoid", "normal"]
    assert share_within(run_dir, "activations/5_sigmoid", 0.1, 0.9) > 0.6  # most within 0.1 of 0 or 1 (~0.71)
    assert last_scalar(run_dir, "saturation/5_sigmoid") > 0.3              # even within 0.01: ~0.44


def test_init_normal_small_squeezes_the_sigmoids_around_one_half(init_runs):
    run_dir = init_runs["sigmoid", "normal_small"]
    assert last_scalar(run_dir, "act_std/5_sigmoid") < 0.02                # ~0.012
    assert last_scalar(run_dir, "act_mean/5_sigmoid") == pytest.approx(0.5, abs=0.01)


def test_init_xavier_saturates_far_fewer_units_than_normal(init_runs):
    xavier, normal = init_runs["sigmoid", "xavier_normal"], init_runs["sigmoid", "normal"]
    assert share_within(xavier, "activations/5_sigmoid", 0.1, 0.9) < 0.05
    assert last_scalar(xavier, "saturation/5_sigmoid") < 0.1 * last_scalar(normal, "saturation/5_sigmoid")
    assert status_of(xavier)["metrics"]["hist/saturated"] < 0.1 * status_of(normal)["metrics"]["hist/saturated"]


def test_init_he_keeps_relu_std_while_normal_small_shrinks_it(init_runs):
    he = [last_scalar(init_runs["relu", "he_normal"], f"act_std/{i}_relu") for i in range(1, 6)]
    small = [last_scalar(init_runs["relu", "normal_small"], f"act_std/{i}_relu") for i in range(1, 6)]
    assert max(he) / min(he) < 1.5                                         # ~0.74 .. 0.85
    assert all(after < 0.2 * before for before, after in zip(small, small[1:]))  # ~x0.07 per layer


# ---------------------------------------------------------------------------------------------
# 4. Symmetry


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_symmetric_start_keeps_every_hidden_unit_identical(train_keep, init):
    status, metrics, run_dir, exp = train_keep("experiment=symmetry", f"initializer={init}", "trainer.epochs=500")
    assert status == "completed"
    assert [row_spread(layer) for layer in hidden_linears(exp.model)] == [0.0, 0.0]
    assert metrics["val/acc"] == 0.5                                       # chance: 2 of the 4 XOR points
    if init == "zeros":  # every gradient is exactly 0 on balanced data: nothing ever moves
        assert all(row["val/loss"] == pytest.approx(LN2, abs=1e-6) for row in metrics_rows(run_dir))
    else:                # the units did move, in lockstep: the output weights left their 0.5
        assert (exp.model[-1].weight - 0.5).abs().min() > 0.1


def test_small_constant_learns_only_what_one_unit_per_layer_can(train_keep):
    # initializer.value=0.1 avoids the saturation of 0.5: the lockstep units then find the best a single
    # hidden unit can do on XOR, 3 of 4 points (BCE 0.477), and never 4 of 4.
    status, metrics, _, exp = train_keep("experiment=symmetry", "initializer=constant", "initializer.value=0.1",
                                         "trainer.epochs=500")
    assert status == "completed"
    assert [row_spread(layer) for layer in hidden_linears(exp.model)] == [0.0, 0.0]
    assert metrics["val/acc"] <= 0.75


def test_random_start_breaks_symmetry_and_solves_xor(train_keep):
    status, metrics, _, exp = train_keep("experiment=symmetry", "initializer=xavier_normal", "trainer.epochs=500")
    assert status == "completed" and metrics["val/acc"] == 1.0
    assert min(row_spread(layer) for layer in hidden_linears(exp.model)) > 0.5


# ---------------------------------------------------------------------------------------------
# 5. Learning rate


def test_learning_rate_too_small_good_too_large(tmp_path):
    runs = sweep(tmp_path, "learning_rate", "optimizer.lr", [0.0001, 0.1, 1.0])
    start = metrics_rows(runs[0.1][2])[0]["val/loss"]                      # the fresh network (~0.26)
    small, good, large = (runs[lr] for lr in (0.0001, 0.1, 1.0))
    assert small[0] == "completed" and small[1]["val/loss"] > 0.5 * start  # 500 epochs: ~0.26 -> ~0.15
    assert good[0] == "completed" and good[1]["val/loss"] < 0.1 * start    # ~0.018 (noise floor ~0.01)
    assert large[0] == "diverged" and status_of(large[2])["diverged_at_step"] < 50  # ~step 16


def test_diverged_run_exits_3_and_compare_shows_it(cli, tmp_path):
    result = cli("train", "experiment=learning_rate", "optimizer.lr=1.0", "log.progress=none")
    assert result.returncode == 3, result.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert status_of(run_dir)["status"] == "diverged"
    table = cli("compare", str(run_dir))
    assert table.returncode == 0 and "diverged" in table.stdout


# ---------------------------------------------------------------------------------------------
# 6. Batch size


def test_batch_size_steps_per_epoch_noise_and_learning(tmp_path):
    from dlexp.data import digits

    n = digits(seed=0).n_train                                             # 1,438 after the validation split
    runs = sweep(tmp_path, "batch_size", "batch.size", ["null", 128, 32])
    runs.update(sweep(tmp_path, "batch_size", "batch.size", [1], "trainer.epochs=1"))  # 1,438 steps: 1 epoch
    wiggle = {}
    for size, (status, metrics, run_dir) in runs.items():
        per_epoch = 1 if size == "null" else math.ceil(n / size)
        assert status == "completed"
        assert last_scalar(run_dir, "data/steps_per_epoch") == per_epoch
        assert status_of(run_dir)["step"] == status_of(run_dir)["epoch"] * per_epoch
        assert metrics["val/acc"] > 0.8                                    # all learn (chance is 0.1)
        wiggle[size] = noise([v for _, v in scalars(run_dir, "train/step_loss")])
    assert wiggle[1] > wiggle[32] > wiggle[128] > wiggle["null"]          # ~1.6 > 0.3 > 0.14 > 0.06


# ---------------------------------------------------------------------------------------------
# 7. Optimizer race


def race(tmp_path: Path, *extra: str) -> dict[str, float]:
    runs = sweep(tmp_path, "optimizer_race", "optimizer", GRADIENT_METHODS + RANDOM_SEARCHES, *extra)
    assert all(status == "completed" for status, _, _ in runs.values())
    return {name: metrics["val/loss"] for name, (_, metrics, _) in runs.items()}


def test_gradient_methods_beat_random_search_at_equal_steps(tmp_path):
    loss = race(tmp_path, "trainer.epochs=100", "log.histograms=false")   # 100 full-batch steps each
    assert max(loss[m] for m in GRADIENT_METHODS) < min(loss[m] for m in RANDOM_SEARCHES)


# ---------------------------------------------------------------------------------------------
# 8. Adam, then SGD


def test_adam_then_sgd_switch_shows_in_the_event_file(tmp_path):
    status, _, run_dir, _ = train_inprocess(tmp_path, "experiment=adam_then_sgd", "trainer.epochs=4",
                                            "optimizer.switch_epoch=2", "log.histograms=false")
    assert status == "completed"
    spe = int(last_scalar(run_dir, "data/steps_per_epoch"))               # 45 on digits with 32 per step
    # The value at step s is what the NEXT step uses: the switch happens right after step 2 * spe.
    assert scalars(run_dir, "optim/phase") == [(0, 0.0), (spe, 0.0), (2 * spe, 1.0), (3 * spe, 1.0), (4 * spe, 1.0)]
    lrs = scalars(run_dir, "optim/lr")
    assert [s for s, _ in lrs] == [0, spe, 2 * spe, 3 * spe, 4 * spe]
    assert [v for _, v in lrs] == pytest.approx([0.001, 0.001, 0.1, 0.1, 0.1])


def test_adam_then_sgd_adam_and_sgd_all_learn_digits(tmp_path):
    runs = sweep(tmp_path, "adam_then_sgd", "optimizer", ["adam_then_sgd", "adam", "sgd"], "log.histograms=false")
    for name, (status, metrics, _) in runs.items():
        assert status == "completed" and metrics["val/acc"] > 0.93, name  # ~0.96-0.97 each
    assert scalars(runs["adam_then_sgd"][2], "optim/phase")[-1] == (900, 1.0)


# ---------------------------------------------------------------------------------------------
# 9. Losses


def readme_fit(what: str, truth: str) -> dict[str, float]:
    """The fitted values the README's losses lesson states, e.g. readme_fit("slope", "2.0") -> {"mse": 3.36, ...}."""
    text = " ".join((REPO / "README.md").read_text().split())
    number = r"(-?\d+\.\d+)"
    found = re.search(rf"{what} \(true {re.escape(truth)}\): mse {number}.*?mae {number}, huber {number}", text)
    assert found, f"the README no longer states the fitted {what}s"
    return dict(zip(("mse", "mae", "huber"), map(float, found.groups())))


def test_robust_losses_recover_the_true_slope(train_keep, tmp_path):
    from dlexp import compare

    slopes, biases = {}, {}
    for loss in ("mse", "mae", "huber"):
        status, _, _, exp = train_keep("experiment=losses_regression", f"loss={loss}", name=loss)
        assert status == "completed"
        slopes[loss], biases[loss] = exp.model[-1].weight.item(), exp.model[-1].bias.item()
    # the lesson's table: `dlexp compare --columns weight/1_linear` shows each trained model's slope,
    # and the README states them to two decimals
    rows = compare.collect([tmp_path / loss for loss in slopes])
    compare.add_columns(rows, ["weight/1_linear", "bias/1_linear"])
    column = {row.overrides["loss"]: row.metrics["weight/1_linear"] for row in rows}
    assert column == pytest.approx(slopes, abs=1e-6)
    assert column == pytest.approx(readme_fit("slope", "2.0"), abs=0.005)           # stated to two decimals
    intercepts = {row.overrides["loss"]: row.metrics["bias/1_linear"] for row in rows}
    assert intercepts == pytest.approx(biases, abs=1e-6)
    assert intercepts == pytest.approx(readme_fit("intercept", "0.5"), abs=0.005)
    # Oracle for mse: the least-squares line through the same (outlier-laden) training data.
    x, y = exp.data.x_train, exp.data.y_train                             # (N, 1), (N, 1)
    design = torch.cat([x, torch.ones_like(x)], dim=1)                    # (N, 2)
    least_squares = torch.linalg.lstsq(design, y).solution[0, 0].item()
    assert slopes["mse"] == pytest.approx(least_squares, abs=0.02)        # ~3.36: tilted by the outliers
    assert abs(slopes["mae"] - 2.0) < 0.1 and abs(slopes["huber"] - 2.0) < 0.25  # true slope 2 (~1.98, ~2.14)
    assert abs(slopes["mse"] - 2.0) > 4 * max(abs(slopes["mae"] - 2.0), abs(slopes["huber"] - 2.0))


def test_ce_and_sparse_ce_give_identical_losses(tmp_path):
    runs = sweep(tmp_path, "losses_classification", "loss", ["ce", "sparse_ce"], "trainer.epochs=3",
                 "log.histograms=false")
    ce, sparse = (metrics_rows(runs[name][2]) for name in ("ce", "sparse_ce"))
    assert len(ce) == len(sparse) == 4
    for a, b in zip(ce, sparse):
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-5)
        assert b.get("train/loss", 0) == pytest.approx(a.get("train/loss", 0), rel=1e-5)
    steps = [scalars(runs[name][2], "train/step_loss") for name in ("ce", "sparse_ce")]
    assert [v for _, v in steps[1]] == pytest.approx([v for _, v in steps[0]], rel=1e-5)


def test_gaussian_nll_learns_a_variance_that_grows_with_the_noise(train_keep):
    from dlexp.data import sine_noise_std

    status, metrics, _, exp = train_keep("experiment=losses_gaussian_nll")
    assert status == "completed"
    x = torch.linspace(-3.0, 3.0, 13).unsqueeze(1)                         # (13, 1)
    with torch.no_grad():
        out = exp.model(x)                                                 # (13, 2): mean, raw variance
        learned = exp.loss.variance(out).sqrt().squeeze(1)                 # (13,)
    true = sine_noise_std(x, 0.3, True).squeeze(1)                         # (13,) grows linearly 0.03 -> 0.6
    rank = lambda t: t.argsort().argsort().float()  # noqa: E731
    assert torch.corrcoef(torch.stack([rank(learned), rank(true)]))[0, 1] > 0.9  # Spearman
    assert learned[-1] > 4 * learned[0]                                    # ~0.47 vs ~0.05 (true 0.59 vs 0.04)
    # Better than ANY constant variance with the same means: that one scores 0.5 * (ln mse + 1) (full=false).
    with torch.no_grad():
        val_out = exp.model(exp.data.x_val)
        mse = (exp.loss.mean(val_out) - exp.data.y_val).square().mean().item()
    assert metrics["val/loss"] < 0.5 * (math.log(mse) + 1) - 0.05


# ---------------------------------------------------------------------------------------------
# 10. MNIST MLP (on a small synthetic MNIST in IDX format)


def write_idx(path: Path, array: np.ndarray) -> None:
    """uint8 array -> gzipped IDX file (magic 0x0000 0x08 ndim, big-endian uint32 dims, then the bytes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def synthetic_mnist(root: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> Path:
    """28x28 'digits': class k lights a horizontal bar in row band k, plus pixel noise. Learnable, not trivial."""
    rng = np.random.RandomState(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.randint(0, 10, size=n).astype(np.uint8)              # (n,)
        images = rng.randint(0, 90, size=(n, 28, 28)).astype(np.uint8)    # (n, 28, 28) background noise
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k:4 + 2 * k, 4:24] = 255                    # bar of class k
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def test_mnist_mlp_on_synthetic_idx(tmp_path):
    root = synthetic_mnist(tmp_path / "mnist")
    status, metrics, run_dir, _ = train_inprocess(tmp_path, "experiment=mnist_mlp", f"data.root={root}",
                                                  "trainer.epochs=2")
    assert status == "completed" and metrics["val/acc"] > 0.9
    assert "203530 parameters" in (run_dir / "train.log").read_text()      # 784-256-10: full-size MNIST input


def test_mnist_mlp_through_the_cli(cli, tmp_path):
    root = synthetic_mnist(tmp_path / "mnist", n_train=300, n_test=50)
    result = cli("train", "experiment=mnist_mlp", f"data.root={root}", "trainer.epochs=1", "log.progress=none")
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    status = status_of(run_dir)
    assert status["status"] == "completed" and "experiment=mnist_mlp" in status["overrides"]


# ---------------------------------------------------------------------------------------------
# Slow: the full presets and the scripts, as a user runs them


def run_script(name: str, tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "RUNS": str(tmp_path / "runs"),
           "COLUMNS": "200", "PYTHONWARNINGS": "ignore", "DLEXP": f"{sys.executable} -m dlexp"}
    return subprocess.run(["bash", str(REPO / "scripts" / f"{name}.sh"), "log.progress=none", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout, env=env)


def sweep_runs(tmp_path: Path, lesson: str) -> dict[str, dict]:
    """{job directory name: status.json} of the script's single sweep."""
    (sweep_dir,) = (tmp_path / "runs" / "lessons" / lesson).iterdir()
    return {p.name: status_of(p) for p in run_dirs(sweep_dir)}


def swept(status: dict, key: str) -> str:
    """The value a sweep gave `key` in this job (from status.json's overrides)."""
    return dict(o.split("=", 1) for o in status["overrides"])[key]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_finishes_in_under_a_minute(tmp_path, name):
    started = time.perf_counter()
    status, _, _, _ = train_inprocess(tmp_path, f"experiment={name}", *PRESETS[name])
    assert status == "completed"
    assert time.perf_counter() - started < 60


@pytest.mark.slow
def test_script_xor_perceptron_fails_mlp_succeeds(tmp_path):
    result = run_script("xor", tmp_path)
    assert result.returncode == 0, result.stderr
    found = sweep_runs(tmp_path, "xor")
    perceptron, mlp = found["0_experiment=xor_perceptron"], found["1_experiment=xor_mlp"]
    assert perceptron["metrics"]["best/val/acc"] <= 0.75 and mlp["metrics"]["val/acc"] == 1.0
    # the README's reading of the table: the perceptron's val/acc cell is 0.25 over (best) 0.75
    assert (perceptron["metrics"]["val/acc"], perceptron["metrics"]["best/val/acc"]) == (0.25, 0.75)
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("xor_perceptron"))
    assert row[1] == "0.25"
    (sweep_dir,) = (tmp_path / "runs" / "lessons" / "xor").iterdir()
    assert "xor_perceptron" in result.stdout and (sweep_dir / "val_loss.png").exists()
    assert "(2 panels)" in result.stdout and (sweep_dir / "boundaries.png").exists()


@pytest.mark.slow
def test_script_learning_rate_prints_the_table_despite_the_divergence(tmp_path):
    result = run_script("learning_rate", tmp_path)
    assert result.returncode == 0, result.stderr                           # the sweep's 3 is expected here
    statuses = {swept(s, "optimizer.lr"): s["status"] for s in sweep_runs(tmp_path, "learning_rate").values()}
    assert statuses == {"0.0001": "completed", "0.001": "completed", "0.01": "completed", "0.1": "completed",
                        "1.0": "diverged"}
    assert "diverged" in result.stdout and "optimizer.lr" in result.stdout


@pytest.mark.slow
def test_script_optimizer_race(tmp_path):
    result = run_script("optimizer_race", tmp_path)
    assert result.returncode == 0, result.stderr
    loss = {swept(s, "optimizer"): s["metrics"]["val/loss"] for s in sweep_runs(tmp_path, "optimizer_race").values()}
    assert sorted(loss) == sorted(GRADIENT_METHODS + RANDOM_SEARCHES)
    assert max(loss[m] for m in GRADIENT_METHODS) < min(loss[m] for m in RANDOM_SEARCHES)


@pytest.mark.slow
def test_script_batch_size_full_sweep(tmp_path):
    result = run_script("batch_size", tmp_path)
    assert result.returncode == 0, result.stderr
    found = {swept(s, "batch.size"): s for s in sweep_runs(tmp_path, "batch_size").values()}
    assert {k: s["step"] for k, s in found.items()} == {"null": 10, "1": 14380, "32": 450, "128": 120}
    assert all(s["metrics"]["val/acc"] > 0.85 for s in found.values())


@pytest.mark.slow
def test_script_init_study_and_symmetry_and_losses(tmp_path):
    for name in ("init_study", "symmetry", "losses"):
        result = run_script(name, tmp_path)
        assert result.returncode == 0, name + result.stderr
    init = {(swept(s, "initializer"), swept(s, "model.activation")): s["metrics"]
            for s in sweep_runs(tmp_path, "init_study").values()}
    (init_dir,) = (tmp_path / "runs" / "lessons" / "init_study").iterdir()
    assert (init_dir / "activations.png").exists()
    assert init["normal", "sigmoid"]["hist/saturated"] > 10 * init["xavier_normal", "sigmoid"]["hist/saturated"]
    symmetry = {swept(s, "initializer"): s["metrics"]["val/acc"] for s in sweep_runs(tmp_path, "symmetry").values()}
    assert symmetry == {"zeros": 0.5, "constant": 0.5, "xavier_normal": 1.0}
    losses = next((tmp_path / "runs" / "lessons" / "losses").iterdir())
    assert {p.name for p in losses.iterdir()} == {"regression", "classification", "gaussian_nll"}
    for loss, slope in readme_fit("slope", "2.0").items():      # the losses table shows each fitted slope
        row = next(line.split() for line in result.stdout.splitlines() if line.startswith(f"{loss} "))
        assert float(row[1]) == pytest.approx(slope, abs=0.005)


@pytest.mark.slow
def test_script_mnist_falls_back_to_mnist_5k(tmp_path, monkeypatch):
    monkeypatch.setenv("DLEXP_DATA", str(tmp_path / "no-data"))           # a data folder without MNIST files
    result = run_script("mnist_mlp", tmp_path, "trainer.epochs=1")
    assert result.returncode == 0, result.stderr
    assert "using data=mnist_5k" in result.stdout
    (found,) = sweep_runs(tmp_path, "mnist_mlp").values()
    assert found["status"] == "completed" and found["metrics"]["val/acc"] > 0.8


@pytest.mark.slow
def test_script_seeds_escapes_as_the_readme_says(tmp_path):
    """scripts/seeds.sh: 16 seeds of xor_mlp as one stacked model; who leaves the ln 2 plateau, and when."""
    result = run_script("seeds", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "one stacked model of 16 jobs" in result.stdout
    readme = " ".join((REPO / "README.md").read_text().split())
    said = re.search(r"(\d+) of the 16 seeds escape .*? below 0\.5 at epoch ([\d,]+) \(seed (\d+)\), the last at "
                     r"epoch ([\d,]+) \(seed (\d+)\) — and (\d+) \(seeds ([\d, and]+)\) are still at 0\.693", readme)
    assert said, "the README no longer tells the seeds lesson's numbers"
    escaped, first, first_seed, last, last_seed, stuck, stuck_seeds = said.groups()
    (sweep_dir,) = (tmp_path / "runs" / "lessons" / "seeds").iterdir()
    escape, final = {}, {}
    for run in run_dirs(sweep_dir):
        if run.parent != sweep_dir:
            continue                                                       # aggregate/: the group's mean
        seed = int(swept(status_of(run), "seed"))
        rows = metrics_rows(run)
        escape[seed] = next((int(r["epoch"]) for r in rows if r["val/loss"] < 0.5), None)
        final[seed] = rows[-1]
    assert len(final) == 16
    left = {s: e for s, e in escape.items() if e is not None}
    assert len(left) == int(escaped) and all(final[s]["val/acc"] == 1.0 for s in left)
    assert min(left.values()) == pytest.approx(int(first.replace(",", "")), abs=100)
    assert min(left, key=left.get) == int(first_seed)
    assert max(left.values()) == pytest.approx(int(last.replace(",", "")), abs=100)
    assert max(left, key=left.get) == int(last_seed)
    never = sorted(s for s, e in escape.items() if e is None)
    assert len(never) == int(stuck) and never == [int(s) for s in re.findall(r"\d+", stuck_seeds)]
    assert all(abs(final[s]["val/loss"] - LN2) < 0.002 for s in never)
    accuracy = np.array([row["val/acc"] for row in final.values()])
    mean, std = re.search(r"the sixteen as one group: val/acc ([\d.]+) ± ([\d.]+)", readme).groups()
    assert accuracy.mean() == pytest.approx(float(mean), abs=0.005)
    assert accuracy.std(ddof=1) == pytest.approx(float(std), abs=0.05)
    assert (sweep_dir / "val_loss.png").exists()
