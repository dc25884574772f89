"""Shared fixtures: the real CLI in a subprocess, and the real recipe in-process on tiny configs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from dlexp import runs, train
from dlexp.config import compose as composer
from dlexp.config.validate import validate

QUIET = ["log.progress=none"]


def dlexp_cmd() -> list[str]:
    return [sys.executable, "-m", "dlexp"]


@pytest.fixture
def cli(tmp_path):
    """Run `dlexp ARGS` in a subprocess with cwd=tmp_path; returns CompletedProcess (stdout, stderr, returncode)."""

    def run(*args: str, timeout: float = 600, cwd: Path | None = None, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore", **(env or {})}
        return subprocess.run([*dlexp_cmd(), *args], cwd=cwd or tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=env, **kwargs)

    return run


def run_dirs(root: Path) -> list[Path]:
    return runs.find_runs(root) if root.exists() else []


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / runs.STATUS).read_text())


def histogram_tags(acc) -> set[str]:
    """Every histogram tag of an EventAccumulator, in either of TensorBoard's two formats."""
    tensors = {tag for tag in acc.Tags()["tensors"] if acc.SummaryMetadata(tag).plugin_data.plugin_name == "histograms"}
    return set(acc.Tags()["histograms"]) | tensors


def histogram_buckets(acc, tag: str) -> list[tuple[int, list[tuple[float, float, float]]]]:
    """(step, [(left, right, count), ...]) of every capture of a histogram tag, as TensorBoard draws it, from an
    EventAccumulator: HistogramProto records (min and max are the outer edges) or tensor histograms."""
    from tensorboard.util.tensor_util import make_ndarray

    if tag in acc.Tags()["histograms"]:
        found = []
        for event in acc.Histograms(tag):
            h = event.histogram_value
            edges = [h.min, *h.bucket_limit[:-1], h.max]
            found.append((event.step, list(zip(edges[:-1], edges[1:], h.bucket))))
        return found
    return [(event.step, [tuple(row) for row in make_ndarray(event.tensor_proto).tolist()])
            for event in acc.Tensors(tag)]


def compose_cfg(*overrides: str):
    cfg = composer.load(list(overrides))
    return composer.without_hydra(cfg), composer.choices(cfg)


def train_inprocess(tmp_path: Path, *overrides: str, name: str = "run"):
    """Compose, validate and train through the real recipe; returns (status, metrics, run_dir, console text)."""
    cfg, choices = compose_cfg(*overrides, *QUIET)
    problems = validate(cfg, choices)
    assert not problems, problems
    out = io.StringIO()
    run_dir = tmp_path / name
    status, metrics = train.run(cfg, train.Job(run_dir=run_dir, overrides=list(overrides), choices=choices),
                                Console(file=out, width=200))
    return status, metrics, run_dir, out.getvalue()
