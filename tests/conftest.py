"""Shared fixtures: the real CLI in a subprocess, and the real recipe in-process on tiny configs."""

from __future__ import annotations

import io
import json
import os
import re
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


# ---------------------------------------------------------------------------------------------
# The README's numbers, read from the README itself so that README and behaviour cannot drift apart

README = Path(__file__).resolve().parents[1] / "README.md"
_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)"


class Stated(float):
    """A number as the README writes it ("0.080", "1,000", "3.5e+35"); `tolerance` is half a unit of its last
    written digit: the precision the README claims."""

    def __new__(cls, text: str) -> "Stated":
        number = super().__new__(cls, float(text.replace(",", "")))
        number.text = text
        mantissa, _, exponent = text.replace(",", "").lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        number.tolerance = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
        return number


def readme(fragment: str) -> list[Stated]:
    """The numbers the README states in `fragment`, a piece of its text (whitespace as in one line) with each
    number written as {}: readme("`act_std/3_sigmoid` {} → {} between") -> [0.080, 0.26]."""
    text = " ".join(README.read_text().split())
    pattern = re.escape(fragment).replace(re.escape("{}"), _NUMBER)
    found = re.search(pattern, text)
    assert found, f"the README no longer says: {fragment}"
    return [Stated(group) for group in found.groups()]


def as_stated(measured: float, stated: Stated, tolerance: float | None = None) -> bool:
    """Does a run's number read as the README's, within the precision it is written with (or `tolerance`)?"""
    allowed = stated.tolerance if tolerance is None else tolerance
    return abs(measured - stated) <= allowed * (1 + 1e-9) + 1e-12
