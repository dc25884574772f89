"""One path for every job: Hydra's public API only, a single build per run, the recipe against a hand-written loop."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
import torch.nn.functional as F
from conftest import run_dirs, status_of
from torch import nn

DLEXP = Path(__file__).resolve().parents[1] / "dlexp"


def test_no_module_reaches_into_hydras_private_modules():
    offenders = [
        f"{path.relative_to(DLEXP.parent)}:{n}"
        for path in DLEXP.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "hydra._internal" in line
    ]
    assert offenders == []


def test_a_single_run_builds_its_experiment_once(tmp_path):
    code = textwrap.dedent("""
        from dlexp.run import build
        from dlexp.cli.commands import train_command
        calls = []
        assemble = build.assemble
        build.assemble = lambda *a, **k: (calls.append(k.get("dry", False)), assemble(*a, **k))[1]
        code = train_command(["data=xor", "trainer.epochs=2", "log.progress=none"])
        print("builds", calls, "exit", code)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "builds [False] exit 0", out.stdout + out.stderr
    (run,) = run_dirs(tmp_path / "runs")
    assert status_of(run)["status"] == "completed"


def test_every_job_of_a_sweep_is_checked_before_the_first_starts(cli, tmp_path):
    """The last job's problem stops the sweep before job 0 writes anything."""
    result = cli("train", "-m", "model.hidden=[4],[0]", "data=xor", "trainer.epochs=1")
    assert result.returncode == 2
    assert (
        "[model.hidden=[0]] model.hidden=[0] is out of range: it must be >= 1 (each entry)."
        in result.stderr.replace("\n", " ")
    )
    assert not (tmp_path / "runs").exists()


def test_the_default_recipe_equals_a_hand_written_loop(cli, tmp_path):
    """digits, MLP, Adam, mini-batches of 32 in a seeded shuffled order: every step's loss and the final weights."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dlexp.parts.data import digits

    epochs = 3
    result = cli(
        "train",
        f"trainer.epochs={epochs}",
        "log.every=1",
        "log.histograms=false",
        "log.progress=none",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0}).Reload()
    ours = [e.value for e in events.Scalars("train/step_loss")]
    weights = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]

    # The hand-written loop: the same data and seed, PyTorch's own modules, optimizer and loss.
    data = digits(seed=0)
    x, y = data.x_train, data.y_train
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    theirs = []
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0 * 1_000_003 + epoch))
        xs, ys = x[order], y[order]
        for i in range(0, len(x), 32):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xs[i : i + 32]), ys[i : i + 32])
            loss.backward()
            optimizer.step()
            theirs.append(loss.item())
    assert len(ours) == len(theirs) == epochs * 45
    assert torch.allclose(torch.tensor(ours), torch.tensor(theirs), rtol=1e-6, atol=0), max(
        abs(a - b) / b for a, b in zip(ours, theirs)
    )
    for name, tensor in model.state_dict().items():
        assert torch.allclose(weights[name], tensor, rtol=1e-6, atol=1e-7), name


def test_an_activation_the_model_offers_gets_its_histograms(tmp_path):
    """Mish is in the model's list of activations, so the histograms find it as a layer's activation."""
    from dlexp.observe.histograms import find_layers
    from dlexp.parts.models import mlp

    layers = find_layers(mlp((2,), 1, hidden=[4, 4], activation="mish"))
    assert [layer.act_name for layer in layers[:2]] == ["1_mish", "2_mish"]


def test_hydra_flags_pass_through(cli, tmp_path):
    result = cli("train", "--cfg", "job", "optimizer=sgd", "--resolve")
    assert result.returncode == 0 and re.search(r"_target_: torch\.optim\.SGD", result.stdout)
    assert not (tmp_path / "runs").exists()
