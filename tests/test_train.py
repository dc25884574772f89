"""The recipe end to end on tiny configs: every option trains, outcomes match oracles (PyTorch, a hand-written loop)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import compose_cfg, readme, status_of, train_inprocess
from torch import nn

from dlexp.config import catalog
from dlexp.parts.batching import Batches
from dlexp.run import build

# Each option is trained on data it makes sense on (other choices default).
PARTNER = {
    ("loss", "bce"): ["data=xor"],
    ("loss", "bce_probs"): ["data=xor", "model.output_activation=sigmoid"],
    ("loss", "mse"): ["data=sine"],
    ("loss", "mae"): ["data=sine"],
    ("loss", "huber"): ["data=sine"],
    ("loss", "gaussian_nll"): ["data=sine"],
    ("optimizer", "random_search"): ["batch=full"],
    ("optimizer", "random_local_search"): ["batch=full"],
    ("batch", "stochastic"): ["data=xor"],
}
SKIP = {("device", "cuda"), ("device", "mps"), ("data", "mnist"), ("data", "fashion_mnist")}


def all_options():
    for group in catalog.GROUPS:
        if group == "experiment":
            continue
        for name in catalog.options(group):
            if (group, name) not in SKIP:
                yield group, name


@pytest.mark.parametrize("group, name", list(all_options()))
def test_every_option_composes_and_trains_one_epoch(tmp_path, group, name):
    status, metrics, run_dir, _ = train_inprocess(
        tmp_path, f"{group}={name}", *PARTNER.get((group, name), []), "trainer.epochs=1"
    )
    assert status == "completed", status_of(run_dir)
    record = status_of(run_dir)
    assert record["choices"][group] == name
    if name != "gaussian":
        assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
        assert record["epoch"] == 1


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets_train_from_a_folder(tmp_path, name):
    from test_data import write_idx_set  # tiny IDX files written by the data tests

    root = tmp_path / name
    write_idx_set(root, n_train=60, n_test=20)
    status, metrics, _, _ = train_inprocess(tmp_path, f"data={name}", f"data.root={root}", "trainer.epochs=1")
    assert status == "completed" and 0.0 <= metrics["val/acc"] <= 1.0


def test_unavailable_device_is_a_config_error():
    from dlexp.config.validate import validate

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg, choices = compose_cfg("device=cuda")
    assert validate(cfg, choices) == [
        "device=cuda was asked for, but this machine has no CUDA device; use device=cpu or device=auto."
    ]
    assert build.resolve_device("auto") == torch.device("cpu")


def test_default_run_reaches_97_percent_on_digits(tmp_path):
    status, metrics, run_dir, _ = train_inprocess(tmp_path)
    assert status == "completed"
    low, high = readme("it reaches about {}–{}% validation accuracy")  # what `make run` trains
    assert low / 100 <= metrics["val/acc"] <= high / 100 + high.tolerance / 100, metrics
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(0, 21))  # epoch 0 = the fresh network


def test_xor_mlp_preset_learns_xor(tmp_path):
    status, metrics, run_dir, _ = train_inprocess(tmp_path, "experiment=xor_mlp")
    assert status == "completed"
    assert metrics["val/acc"] == 1.0 and metrics["train/acc"] == 1.0
    assert status_of(run_dir)["step"] == 10001


def test_seeded_model_equals_plain_sequential():
    cfg, _ = compose_cfg("experiment=xor_mlp")
    exp = build.assemble(cfg)
    torch.manual_seed(777)
    reference = nn.Sequential(
        nn.Linear(2, 10),
        nn.Sigmoid(),
        nn.Linear(10, 10),
        nn.Sigmoid(),
        nn.Linear(10, 10),
        nn.Sigmoid(),
        nn.Linear(10, 1),
        nn.Sigmoid(),
    )
    assert [type(m) for m in exp.model] == [type(m) for m in reference]
    ours = list(exp.model.parameters())
    theirs = list(reference.parameters())
    assert len(ours) == len(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_same_numbers_as_a_hand_written_loop(tmp_path):
    """XOR, 2-10-10-10-1 sigmoid, BCE on probabilities, SGD lr=1, full batch: dlexp's losses equal a plain loop's."""
    epochs = 200
    status, metrics, _, _ = train_inprocess(
        tmp_path, "experiment=xor_mlp", f"trainer.epochs={epochs}", "log.epoch_every=1"
    )
    assert status == "completed"
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    torch.manual_seed(777)
    net = nn.Sequential(
        nn.Linear(2, 10),
        nn.Sigmoid(),
        nn.Linear(10, 10),
        nn.Sigmoid(),
        nn.Linear(10, 10),
        nn.Sigmoid(),
        nn.Linear(10, 1),
        nn.Sigmoid(),
    )
    criterion = nn.BCELoss()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # train/loss of the last epoch is the loss computed in its (only) step, before the update
    assert metrics["train/loss"] == pytest.approx(losses[-1], rel=1e-6, abs=1e-9)
    with torch.no_grad():
        final = criterion(net(x), y).item()
    assert metrics["val/loss"] == pytest.approx(final, rel=1e-6, abs=1e-9)


def test_the_loop_clears_gradients_and_keeps_an_optimizers_own_zero_grad():
    from dlexp.run import loop

    class Counting(torch.optim.SGD):
        calls = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            Counting.calls += 1
            super().zero_grad(set_to_none)

    x, y = torch.randn(12, 3), torch.randn(12, 1)
    for make in (torch.optim.SGD, Counting):
        torch.manual_seed(0)
        net = nn.Linear(3, 1)
        opt = make(net.parameters(), lr=0.1)
        loop.fit(net, nn.functional.mse_loss, opt, Batches(x, y, 4, False, 0), loop.Schedule(2, 3), lambda state: {})
        torch.manual_seed(0)
        ref = nn.Linear(3, 1)
        ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
        for _ in range(2):
            for i in range(0, 12, 4):  # oracle: a plain loop where gradients would pile up if never cleared
                ref_opt.zero_grad()
                nn.functional.mse_loss(ref(x[i : i + 4]), y[i : i + 4]).backward()
                ref_opt.step()
        assert torch.equal(net.weight, ref.weight) and torch.equal(net.bias, ref.bias)
    assert Counting.calls == 6


def test_event_file_holds_the_expected_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    status, _, run_dir, _ = train_inprocess(tmp_path, "trainer.epochs=2", "log.every=10")
    assert status == "completed"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "train/acc", "val/acc", "optim/lr", "train/step_loss"} <= tags
    assert [e.step for e in events.Scalars("val/loss")] == [0, 45, 90]
    assert [e.step for e in events.Scalars("train/step_loss")] == list(range(10, 91, 10))


def test_batches_slice_a_seeded_order():
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    mini = Batches(x, y, 4, shuffle=True, seed=3)
    assert len(mini) == 3  # ceil(10 / 4)
    first = torch.cat([yb for _, yb in mini.epoch(0)])
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([yb for _, yb in Batches(x, y, 4, True, 3).epoch(0)]))
    assert not torch.equal(first, torch.cat([yb for _, yb in mini.epoch(1)]))
    resumed = torch.cat([yb for _, yb in mini.epoch(0, start=1)])
    assert torch.equal(resumed, first[4:])
    full = Batches(x, y, None, shuffle=True, seed=3)
    assert len(full) == 1 and torch.equal(next(full.epoch(0))[1], y)
    assert len(Batches(x, y, 1, True, 0)) == 10
