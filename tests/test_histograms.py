"""Per-layer histograms and their numbers: oracles for each number, hook hygiene, the capture schedule,
the classic sigmoid-initialisation picture, and the event file read back by TensorBoard's own reader."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import histogram_tags
from rich.console import Console
from torch import nn

from dlexp.observe.histograms import (
    Histograms,
    find_layers,
    histogram_proto_fields,
    histogram_stats,
    moments,
    span_buckets,
)
from dlexp.observe.hparams import SKIP_KEYS, SKIP_TOP, HParams, hyperparameters
from dlexp.observe.tensorboard import histogram_buckets
from dlexp.parts.batching import Batches
from dlexp.read.rows import flatten
from dlexp.run import loop


class Recorder:
    """A Board stand-in keeping what a capture writes: {step: (histograms, scalars)}."""

    def __init__(self):
        self.captures: dict[int, tuple[dict, dict]] = {}

    def summary(self, histograms, scalars, step):
        assert step not in self.captures, "two captures at one step"
        self.captures[step] = (histograms, scalars)

    def scalars_at(self, step: int) -> dict:
        return self.captures[step][1]


def stats_of(x: torch.Tensor, bins: int = 30) -> list[float]:
    """histogram_stats of one network's tensor, read back as `Histograms.write` reads it."""
    return torch.cat(histogram_stats(x.unsqueeze(0), bins), dim=1)[0].tolist()


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def capture_once(model: nn.Module, probe: torch.Tensor, extra: bool = True) -> tuple[dict, dict]:
    """One capture; `extra`: also the kinds captured only on request (pre-activations, biases)."""
    board = Recorder()
    Histograms(board, model, probe, extra=extra).capture(0)
    return board.captures[0]


# --- the numbers -----------------------------------------------------------------------------------------


def test_layers_are_named_by_position_and_type():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.Tanh(),
        nn.Dropout(0.1),
        nn.Linear(8, 8),
        nn.ReLU(),
        nn.Linear(8, 2),
    )
    layers = find_layers(model)
    assert [layer.name for layer in layers] == ["1_linear", "2_linear", "3_linear"]
    assert [layer.act_name if layer.activation is not None else None for layer in layers] == ["1_tanh", "2_relu", None]
    assert [tag for _, tag, _ in layers[0].parameters()] == ["1_linear", "1_linear", "1_batchnorm1d", "1_batchnorm1d"]


def test_histogram_matches_numpy():
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 3 + 1
    values = stats_of(x, 30)
    xs = x.double().numpy()
    counts, _ = np.histogram(xs, bins=30, range=(xs.min(), xs.max()))
    assert values[:2] == [xs.min(), xs.max()]
    assert values[4:] == counts.tolist()
    assert moments(values, x.numel()) == pytest.approx((xs.mean(), xs.std()), rel=1e-5)
    fields = histogram_proto_fields(values, x.numel(), 30)
    assert (fields["sum"], fields["sum_squares"]) == pytest.approx((xs.sum(), (xs * xs).sum()), rel=1e-5)
    assert sum(fields["bucket_counts"]) == x.numel() == fields["num"]
    assert fields["bucket_limits"] == sorted(fields["bucket_limits"]) and fields["bucket_limits"][-1] == fields["max"]


def test_the_spread_of_a_narrow_spike_far_from_zero_survives_float32():
    x = 0.5 + 1e-4 * torch.randn(50_000, generator=torch.Generator().manual_seed(1))  # float32, std 1e-4
    mean, std = moments(stats_of(x), x.numel())
    assert mean == pytest.approx(x.double().mean().item(), abs=1e-7)
    assert std == pytest.approx(x.double().std(unbiased=False).item(), rel=1e-3)


SEEDED = torch.Generator().manual_seed(0)


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(5000, generator=SEEDED) * 0.4 + 0.3,
        torch.randn(5000, generator=SEEDED) * 0.012 + 0.5,
        torch.full((9,), 0.25),
    ],
)
def test_a_bounded_activation_is_re_binned_over_its_whole_range(x):
    """Buckets over 0..1 (every one written) from the capture's buckets over min..max: the same total, and each
    bucket within one source bucket's count of numpy's exact histogram over 0..1."""
    stats = stats_of(x, 30)
    buckets = span_buckets(stats, 30, (0.0, 1.0))["buckets"]
    assert len(buckets) == 30 and (buckets[0][0], buckets[-1][1]) == (0.0, 1.0)
    exact, _ = np.histogram(x.double().numpy(), bins=30, range=(0.0, 1.0))
    ours = [count for _, _, count in buckets]
    assert sum(ours) == pytest.approx(x.numel())
    assert max(abs(a - b) for a, b in zip(ours, exact)) <= max(stats[4:])


def test_constant_and_non_finite_tensors():
    values = stats_of(torch.full((7,), 0.25), 30)
    fields = histogram_proto_fields(values, 7, 30)
    assert fields["bucket_counts"] == [7] and fields["min"] == fields["max"] == 0.25
    values = stats_of(torch.tensor([1.0, float("nan")]), 30)
    assert histogram_proto_fields(values, 2, 30) is None  # skipped, not a crash


def test_saturation_of_sigmoid_and_tanh_against_the_formula():
    torch.manual_seed(0)
    z = torch.randn(64, 50) * 4  # pre-activations, many of them saturating
    for act, saturated in ((nn.Sigmoid(), lambda a: (a < 0.01) | (a > 0.99)), (nn.Tanh(), lambda a: a.abs() > 0.99)):
        model = nn.Sequential(nn.Linear(50, 50), act)
        with torch.no_grad():
            model[0].weight.copy_(torch.eye(50))
            model[0].bias.zero_()
        _, scalars = capture_once(model, z)
        name = f"1_{type(act).__name__.lower()}"
        expected = saturated(act(z)).float().mean().item()
        assert 0.2 < expected < 0.9
        assert scalars[f"saturation/{name}"] == pytest.approx(expected)
        assert scalars["hist/saturated"] == pytest.approx(expected)
        assert scalars[f"act_mean/{name}"] == pytest.approx(act(z).mean().item(), abs=1e-5)
        assert scalars[f"act_std/{name}"] == pytest.approx(act(z).std(unbiased=False).item(), rel=1e-4)


def test_dead_relu_on_a_hand_made_layer():
    # positive inputs: unit 0 = x0 + x1 lives, unit 1 = -(x0 + x1) is dead, unit 2 = x0 - x1 lives for some rows,
    # unit 3 = -1 (bias only) is dead: half of the units are dead.
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [0.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -1.0]))
    probe = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)) + 0.1
    hists, scalars = capture_once(model, probe)
    assert scalars["dead/1_relu"] == 0.5 and scalars["hist/dead"] == 0.5
    assert hists["activations/1_relu"]["min"] == 0.0
    assert hists["preactivations/1_linear"]["min"] < 0 < hists["preactivations/1_linear"]["max"]
    assert "preactivations/2_linear" in hists and "activations/2_linear" not in hists  # the output layer


def test_dead_conv_filters():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 2))
    with torch.no_grad():
        model[0].weight[3].zero_()
        model[0].bias[3] = -1.0  # filter 3 outputs -1 everywhere: dead
    _, scalars = capture_once(model, torch.randn(8, 1, 4, 4))
    assert scalars["dead/1_relu"] == pytest.approx(0.25)


def test_an_in_place_activation_keeps_its_pre_activations():
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
    hists, _ = capture_once(model, torch.randn(32, 3))
    assert hists["preactivations/1_linear"]["min"] < 0  # not overwritten by the ReLU
    assert hists["activations/1_relu"]["min"] == 0
    assert hooks(model) == 0


def test_capture_restores_training_mode_and_removes_hooks_on_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Sigmoid(), nn.Linear(4, 1))
    model.train()
    board = Recorder()
    observer = Histograms(board, model, torch.randn(5, 7))  # wrong width
    with pytest.raises(RuntimeError):
        observer.capture(0)
    assert hooks(model) == 0 and model.training


def test_event_checksums_equal_tensorboards_own():
    import os

    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
    from tensorboard.summary.writer import record_writer

    from dlexp.observe.tensorboard import fast_checksums

    assert fast_checksums()
    fast = record_writer.masked_crc32c
    assert stub.masked_crc32c is fast  # reading event files uses it too
    own = fast.reference  # TensorBoard's own
    assert own is not fast and own.__module__ == stub.__name__
    for n in [*range(0, 300, 7), *range(300, 1100), 4096, 5149, 65_537]:
        data = os.urandom(n)
        assert fast(data) == own(data), n


def test_the_checksum_patch_still_fits_tensorboard(tmp_path, monkeypatch):
    """`fast_checksums` replaces module globals of TensorBoard's: the writer and the reader must still look the
    checksum up there, and TensorBoard's own reader (with its own checksum) must accept every record written."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
    from tensorboard.summary.writer import record_writer
    from tensorboard.util.tensor_util import make_ndarray

    from dlexp.observe.tensorboard import Board, fast_checksums, read_histograms, read_scalars

    assert fast_checksums()
    fast = record_writer.masked_crc32c
    own = fast.reference
    assert len(stub.CRC_TABLE) == 256 and own.__name__ == "masked_crc32c" and own.__module__ == stub.__name__
    sample = bytes(range(256)) * 5
    assert fast(sample) == own(sample) == stub.masked_crc32c(sample)

    checked: list[int] = []  # record lengths the writer, then the reader, checksummed

    def spy(data: bytes) -> int:
        checked.append(len(data))
        return fast(data)

    board = Board(tmp_path)  # installs the fast checksum (here: already installed)
    monkeypatch.setattr(record_writer, "masked_crc32c", spy)  # the writer looks the global up at every record
    buckets = [(i / 10, (i + 1) / 10, float(i)) for i in range(200)]  # a record well past the block size
    board.summary({"activations/0": {"buckets": buckets}}, {"train/loss": 0.5}, step=3)
    board.close()
    assert max(checked, default=0) > 4 * 64, "TensorBoard's writer no longer calls record_writer.masked_crc32c"
    monkeypatch.setattr(record_writer, "masked_crc32c", fast)

    checked.clear()
    monkeypatch.setattr(stub, "masked_crc32c", spy)  # the reader `dlexp compare` uses without TensorFlow
    assert read_histograms(tmp_path, "activations/", 3)[0] == 3  # through TensorBoard's EventAccumulator
    assert max(checked, default=0) > 4 * 64, "TensorBoard's reader no longer calls pywrap_tensorflow.masked_crc32c"
    checked.clear()
    assert read_scalars(tmp_path)["train/loss"] == [(3, 0.5)]  # dlexp's own reader of scalars, the same checksum
    assert max(checked, default=0) > 4 * 64

    monkeypatch.setattr(stub, "masked_crc32c", own)  # TensorBoard's reader with TensorBoard's own checksum
    (path,) = tmp_path.glob("events.out.tfevents.*")
    events = list(EventFileLoader(str(path)).Load())  # a record failing its check would end the reading here
    values = {v.tag: v for e in events for v in e.summary.value}
    assert make_ndarray(values["activations/0"].tensor).tolist() == [list(b) for b in buckets]
    assert make_ndarray(values["train/loss"].tensor).item() == 0.5


# --- in the loop --------------------------------------------------------------------------------------------


class Oracle:
    """Notified before Histograms: keeps each step's weights, gradient norm and probe activations."""

    def __init__(self, model, probe):
        self.model, self.probe = model, probe
        self.weights = {0: model[0].weight.detach().clone()}
        self.grad_norm, self.act = {}, {}

    def on_step(self, state, loss):
        self.weights[state.step] = self.model[0].weight.detach().clone()
        grads = torch.cat([self.model[0].weight.grad.reshape(-1), self.model[0].bias.grad])
        self.grad_norm[state.step] = grads.norm().item()
        with torch.no_grad():
            self.act[state.step] = self.model[1](self.model[0](self.probe))


def train_with(observers_for, epochs=7, epoch_every=3, hist_every=5, n=8, batch=2, lr=0.1, extra=True):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1))
    x, y = torch.randn(n, 3), torch.randn(n, 1)
    probe = x[:4]
    batches = Batches(x, y, batch, True, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    board = Recorder()
    histograms = Histograms(board, model, probe, extra=extra)
    others = observers_for(model, probe)
    schedule = loop.Schedule(epochs, len(batches), eval_every=epoch_every, capture_every=hist_every)
    loop.fit(
        model,
        nn.functional.mse_loss,
        optimizer,
        batches,
        schedule,
        lambda state: {"val/loss": 0.0},
        [*others, histograms],
    )
    return model, board, histograms, others


def test_capture_schedule_start_interval_and_evaluated_epochs():
    model, board, histograms, _ = train_with(lambda m, p: [])
    # 4 steps per epoch: every 5th step, plus the ends of the evaluated epochs 3, 6 and 7 (the last one)
    assert sorted(board.captures) == [0, 5, 10, 12, 15, 20, 24, 25, 28]
    for step, (hists, scalars) in board.captures.items():
        assert {
            "activations/1_tanh",
            "preactivations/1_linear",
            "weights/1_linear",
            "biases/1_linear",
            "preactivations/2_linear",
        } <= set(hists)
        assert ("grads/1_linear" in hists) == (step > 0)  # no gradient before the first step
        assert ("update_ratio/1_linear" in scalars) == (step > 0)  # the weights before each captured step
    assert hooks(model) == 0  # nothing left over after 28 steps


def test_pre_activations_and_biases_are_captured_only_on_request():
    """Activations, weights and gradients always; pre-activations and biases with log.extra_histograms. The
    numbers read from them stay: a lone bias is still a scalar (y = w x + b: the fitted intercept)."""
    _, board, _, _ = train_with(lambda m, p: [], extra=False)
    for step, (hists, scalars) in board.captures.items():
        kinds = {tag.split("/")[0] for tag in hists}
        assert kinds == ({"activations", "weights", "grads"} if step else {"activations", "weights"}), step
        assert "bias/2_linear" in scalars and "act_std/1_tanh" in scalars
    _, board, _, _ = train_with(lambda m, p: [], extra=True)
    assert {tag.split("/")[0] for tag in board.captures[5][0]} == {
        "activations",
        "preactivations",
        "weights",
        "biases",
        "grads",
    }


def test_grad_norm_update_ratio_and_activation_stats_against_an_oracle():
    _, board, _, (oracle,) = train_with(lambda m, p: [Oracle(m, p)])
    for step in (5, 12, 28):
        scalars = board.scalars_at(step)
        w, before = oracle.weights[step], oracle.weights[step - 1]
        assert scalars["update_ratio/1_linear"] == pytest.approx(((w - before).norm() / w.norm()).item(), rel=1e-5)
        assert scalars["grad_norm/1_linear"] == pytest.approx(oracle.grad_norm[step], rel=1e-5)
        act = oracle.act[step]
        assert scalars["act_mean/1_tanh"] == pytest.approx(act.mean().item(), abs=1e-6)
        assert scalars["act_std/1_tanh"] == pytest.approx(act.std(unbiased=False).item(), rel=1e-4)


@pytest.mark.parametrize("hist_every, captured", [(120, [0, 120, 240, 300]), (0, [0, 100, 200, 300])])
def test_a_full_batch_run_captures_every_hist_every_steps_or_else_at_evaluated_epochs(hist_every, captured):
    # XOR-like: 1 step per epoch (epochs are steps), 300 epochs evaluated every 100; the start and the end always
    model, board, _, _ = train_with(lambda m, p: [], epochs=300, epoch_every=100, hist_every=hist_every, n=4, batch=4)
    assert sorted(board.captures) == captured
    assert hooks(model) == 0


# --- hparams --------------------------------------------------------------------------------------------------


def test_flatten_config_to_scalars_and_strings():
    config = {
        "seed": 0,
        "model": {"_target_": "dlexp.parts.models.mlp", "hidden": [64, 64], "batchnorm": False},
        "optimizer": {"lr": 0.001, "betas": [0.9, 0.999], "foreach": None},
        "log": {"every": 50},
        "allow_targets": [],
    }
    assert flatten(config, skip_keys=SKIP_KEYS, skip_top=SKIP_TOP) == {
        "seed": 0,
        "model.hidden": "[64, 64]",
        "model.batchnorm": False,
        "optimizer.lr": 0.001,
        "optimizer.betas": "[0.9, 0.999]",
        "optimizer.foreach": "null",
    }
    assert flatten(config)["model._target_"] == "dlexp.parts.models.mlp" and flatten(config)["log.every"] == 50
    assert hyperparameters({"seed": 1}, {"optimizer": "adam"}) == {"optimizer": "adam", "seed": 1}


def test_hparams_keeps_the_best_and_writes_only_new_curves():
    calls = []

    class Board:
        def hparams(self, hparams, metrics, *, step=None, written=frozenset()):
            calls.append((hparams, metrics, step, written))

    source = type("Source", (), {"final": {"hist/saturated": 0.7}})()
    observer = HParams(Board(), {"optimizer": "sgd"}, sources=[source])
    for loss, acc in ((2.0, 0.1), (0.5, 0.8), (0.9, 0.7), (float("nan"), 0.2)):
        observer.on_epoch(None, {"val/loss": loss, "val/acc": acc})
    state = loop.TrainState(step=40, metrics={"val/loss": 0.9, "val/acc": 0.7})
    observer.on_end(state, "completed")
    hparams, metrics, step, written = calls[0]
    assert hparams == {"optimizer": "sgd", "status": "completed"}
    assert metrics == {
        "val/loss": 0.9,
        "val/acc": 0.7,
        "hist/saturated": 0.7,
        "best/val/loss": 0.5,
        "best/val/acc": 0.8,
    }
    assert observer.final == {"best/val/loss": 0.5, "best/val/acc": 0.8}
    assert step == 40 and "best/val/loss" not in written and {"val/loss", "hist/saturated"} <= written


# --- the real recipe: event files read back with TensorBoard's reader ------------------------------------------


def train_in_process(run_dir: Path, overrides: list[str]) -> Path:
    from dlexp.config import compose as composer
    from dlexp.run import recipe

    full = composer.load([*overrides, "log.progress=none"])
    job = recipe.Job(run_dir=run_dir, overrides=overrides, choices=composer.choices(full))
    status, _ = recipe.run(composer.without_hydra(full), job, Console(file=io.StringIO()))
    assert status == "completed"
    return run_dir


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.HISTOGRAMS: 0, ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def first_values(acc, prefix: str) -> dict[str, float]:
    return {t: acc.Scalars(t)[0].value for t in acc.Tags()["scalars"] if t.startswith(prefix)}


def session_hparams(acc) -> dict:
    """The run's hyper-parameters as the HParams plugin reads them; no "experiment" record (see Board.hparams)."""
    from tensorboard.plugins.hparams import metadata

    content = acc.PluginTagToContent("hparams")
    assert metadata.EXPERIMENT_TAG not in content and metadata.SESSION_END_INFO_TAG in content
    info = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


CLASSIC = ["data=gaussian", "model=mlp", "model.hidden=[100,100,100,100,100]", "model.activation=sigmoid"]


@pytest.fixture(scope="module")
def classic(tmp_path_factory) -> dict[str, object]:
    """The classic experiment: a 5-layer sigmoid MLP on N(0, 1) inputs, three initialisations, fresh networks."""
    root = tmp_path_factory.mktemp("classic")
    return {
        init: read_events(train_in_process(root / init, [*CLASSIC, f"initializer={init}"]))
        for init in ("normal", "normal_small", "xavier_normal")
    }


def test_normal_init_saturates_sigmoids(classic):
    acc = classic["normal"]
    saturation = first_values(acc, "saturation/")
    assert len(saturation) == 5 and saturation["saturation/1_sigmoid"] > 0.6
    assert first_values(acc, "hist/")["hist/saturated"] > 0.5
    ((step, buckets),) = histogram_buckets(acc, "activations/5_sigmoid")
    counts = [count for _, _, count in buckets]
    assert counts[0] + counts[-1] > 0.3 * sum(counts)  # piled up at 0 and at 1


def test_small_init_collapses_to_one_half(classic):
    acc = classic["normal_small"]
    assert first_values(acc, "hist/")["hist/saturated"] == 0
    for tag, mean in first_values(acc, "act_mean/").items():
        assert mean == pytest.approx(0.5, abs=0.01), tag
    assert max(first_values(acc, "act_std/").values()) < 0.03  # a spike at 0.5 ...
    for i in range(1, 6):  # ... drawn on a 0..1 axis, as a needle
        ((_, buckets),) = histogram_buckets(acc, f"activations/{i}_sigmoid")
        assert (buckets[0][0], buckets[-1][1], len(buckets)) == (0.0, 1.0, 30)
        filled = [(left, right) for left, right, count in buckets if count]
        assert 0.35 < filled[0][0] and filled[-1][1] < 0.65, (i, filled)  # a few buckets around 0.5
    assert 0.42 < filled[0][0] and filled[-1][1] < 0.58, filled  # the last layer: three, a needle


def test_xavier_init_spreads(classic):
    spread, spike = (
        first_values(classic["xavier_normal"], "act_std/"),
        first_values(classic["normal_small"], "act_std/"),
    )
    assert len(spread) == 5 and min(spread.values()) > 0.1
    assert all(spread[tag] > 4 * spike[tag] for tag in spread)
    assert first_values(classic["xavier_normal"], "hist/")["hist/saturated"] < 0.05


def test_fresh_network_event_file_has_histograms_and_hparams(classic):
    acc = classic["normal"]
    histograms = histogram_tags(acc)
    assert histograms == {f"activations/{i}_sigmoid" for i in range(1, 6)} | {
        f"weights/{i}_linear" for i in range(1, 7)
    }
    assert {e.step for e in acc.Histograms("weights/1_linear")} == {0}
    hparams = session_hparams(acc)
    assert hparams["initializer"] == "normal" and hparams["model.activation"] == "sigmoid"
    assert hparams["model.hidden"] == "[100, 100, 100, 100, 100]" and hparams["status"] == "completed"
    assert "hist/saturated" in acc.Tags()["scalars"]  # the metric column the table reads


def test_training_run_event_file(tmp_path):
    run_dir = train_in_process(tmp_path / "digits", ["trainer.epochs=2", "model.hidden=[32]", "optimizer=sgd"])
    acc = read_events(run_dir)
    histograms = histogram_tags(acc)
    assert histograms == {
        "activations/1_relu",
        "weights/1_linear",
        "weights/2_linear",
        "grads/1_linear",
        "grads/2_linear",
    }
    steps_per_epoch = acc.Scalars("data/steps_per_epoch")[0].value
    assert [e.step for e in acc.Histograms("weights/1_linear")] == [0, steps_per_epoch, 2 * steps_per_epoch]
    scalars = set(acc.Tags()["scalars"])
    assert {
        "dead/1_relu",
        "grad_norm/1_linear",
        "update_ratio/1_linear",
        "act_mean/1_relu",
        "hist/dead",
        "best/val/loss",
    } <= scalars
    assert len(acc.Scalars("val/loss")) == 3  # the hparams metrics add no point to it
    hparams = session_hparams(acc)
    assert hparams["optimizer"] == "sgd" and hparams["trainer.epochs"] == 2 and hparams["model.hidden"] == "[32]"
    assert not any(k.startswith(("log.", "allow_targets")) or k.endswith("_target_") for k in hparams)
    assert acc.Scalars("best/val/loss")[0].value == min(e.value for e in acc.Scalars("val/loss"))
    import json

    status = json.loads((run_dir / "status.json").read_text())
    assert 0 <= status["metrics"]["hist/dead"] <= 1 and math.isfinite(status["metrics"]["best/val/loss"])


def test_extra_histograms_add_pre_activations_and_biases(tmp_path):
    acc = read_events(
        train_in_process(tmp_path / "extra", ["trainer.epochs=1", "model.hidden=[8]", "log.extra_histograms=true"])
    )
    assert {
        "preactivations/1_linear",
        "preactivations/2_linear",
        "biases/1_linear",
        "biases/2_linear",
        "activations/1_relu",
        "weights/1_linear",
        "grads/1_linear",
    } <= histogram_tags(acc)


def test_histograms_can_be_switched_off(tmp_path):
    acc = read_events(
        train_in_process(tmp_path / "off", ["trainer.epochs=1", "model.hidden=[8]", "log.histograms=false"])
    )
    assert histogram_tags(acc) == set()
    assert session_hparams(acc)["optimizer"] == "adam"  # hparams are logged all the same


@pytest.mark.slow
def test_classic_experiment_through_the_cli(tmp_path):
    """The issue's command, as a user types it (three initialisations in one sweep)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlexp",
            "train",
            "-m",
            *CLASSIC,
            "initializer=normal,normal_small",
            "log.progress=lines",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "runs" / "multirun").glob("*/init=*"))
    normal, small = (first_values(read_events(r), "hist/")["hist/saturated"] for r in runs)
    assert normal > 0.5 and small == 0


def test_a_resumed_run_keeps_the_best_of_its_earlier_epochs(tmp_path):
    history = tmp_path / "metrics.csv"
    history.write_text("epoch,step,val/loss,val/acc,time\n0,0,2.3,0.1,0.0\n1,10,0.4,0.9,1.0\n2,20,0.6,0.8,2.0\n")
    observer = HParams(board=None, hparams={}, history=history)
    observer.on_start(loop.TrainState(epoch=2, step=20))
    observer.on_epoch(None, {"val/loss": 0.5, "val/acc": 0.85})
    assert observer.final == {"best/val/loss": 0.4, "best/val/acc": 0.9}
