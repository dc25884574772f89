"""`dlexp diff RUN_A RUN_B`: only what differs, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from dlexp.read import diff
from dlexp.read.rows import read_config

TINY = ["data=xor", "model=mlp", "trainer.epochs=3", "batch=full", "log.progress=none"]


def section(stdout: str, title: str) -> list[str]:
    """The rows of one table of the output: the lines after its title and header rule, up to a blank line."""
    lines = stdout.splitlines()
    if title not in stdout:
        return []
    start = next(i for i, line in enumerate(lines) if title in line)
    rule = next(i for i in range(start, len(lines)) if set(lines[i].strip()) == {"─"})
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_two_runs_differing_in_one_key_show_that_key_only(cli, tmp_path):
    for name, lr in (("a", "0.1"), ("b", "0.5")):
        result = cli("train", *TINY, f"optimizer.lr={lr}", f"hydra.run.dir={name}")
        assert result.returncode == 0, result.stderr
    assert diff.differences(read_config(tmp_path / "a"), read_config(tmp_path / "b")) == [
        ("optimizer.lr", 0.1, 0.5)
    ]  # the oracle: config.yaml itself
    result = cli("diff", "a", "b")
    assert result.returncode == 0, result.stderr
    assert section(result.stdout, "config keys that differ") == [["optimizer.lr", "0.1", "0.5"]]
    assert "config groups that differ" not in result.stdout  # the same options were chosen
    metrics = {row[0]: row[1:] for row in section(result.stdout, "final metrics")}
    statuses = [json.loads((tmp_path / n / "status.json").read_text()) for n in ("a", "b")]
    assert metrics["status"] == ["completed", "completed"] and metrics["epochs"][:2] == ["3", "3"]
    a, b = (s["metrics"]["val/loss"] for s in statuses)
    assert metrics["val/loss"] == [f"{a:.4g}", f"{b:.4g}", f"{b - a:+.4g}"]


def fake_run(root: Path, name: str, optimizer: str, lr: float) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"seed: 0\noptimizer:\n  _target_: torch.optim.{optimizer}\n  lr: {lr}\n")
    (path / "status.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "choices": {"optimizer": optimizer.lower(), "data": "xor"},
                "metrics": {"val/loss": lr},
                "epoch": 1,
            }
        )
    )
    return path


def test_group_choices_and_every_differing_key(cli, tmp_path):
    fake_run(tmp_path, "sgd", "SGD", 0.1)
    fake_run(tmp_path, "adam", "Adam", 0.001)
    result = cli("diff", "sgd", "adam")
    assert result.returncode == 0, result.stderr
    assert section(result.stdout, "config groups that differ") == [["optimizer", "sgd", "adam"]]
    assert section(result.stdout, "config keys that differ") == [
        ["optimizer._target_", "torch.optim.SGD", "torch.optim.Adam"],
        ["optimizer.lr", "0.1", "0.001"],
    ]


def test_identical_runs_say_so(cli, tmp_path):
    fake_run(tmp_path, "one", "SGD", 0.1)
    fake_run(tmp_path, "two", "SGD", 0.1)
    result = cli("diff", "one", "two")
    assert result.returncode == 0 and "The two runs have the same configuration." in result.stdout


def test_a_missing_path_or_a_folder_that_is_no_run_is_one_sentence(cli, tmp_path):
    fake_run(tmp_path, "run", "SGD", 0.1)
    (tmp_path / "empty").mkdir()
    for args, message in (
        (["run", "nope"], "nope does not exist; give two run directories"),
        (["empty", "run"], "empty is not a run directory: it holds no status.json"),
    ):
        result = cli("diff", *args)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
