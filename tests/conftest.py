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

from dlexp.config import compose as composer
from dlexp.config.validate import validate
from dlexp.read import runs
from dlexp.run import recipe

QUIET = ["log.progress=none"]


def dlexp_cmd() -> list[str]:
    return [sys.executable, "-m", "dlexp"]


# --- another CPU's rounding (tests/rounding/sitecustomize.py) ---------------------------------------------------
# DLEXP_TEST_ROUNDING=ulp: every batched product rounds one unit in the last place off, in this process and in every
# Python process the tests start (the folder is put on their PYTHONPATH). `make test` runs the tests that compare a
# stack with runs alone (marked `kernels`) once more this way.
ROUNDING = os.environ.get("DLEXP_TEST_ROUNDING", "")
if ROUNDING:
    import importlib.util

    _here = Path(__file__).parent / "rounding"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_here), os.environ.get("PYTHONPATH")) if p)
    _spec = importlib.util.spec_from_file_location("dlexp_test_rounding", _here / "sitecustomize.py")
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # this process too


# Launchers whose jobs run in other processes (forks of this one, Ray's workers, submitit's): a real `dlexp` process.
OTHER_PROCESSES = ("hydra/launcher=joblib", "hydra/launcher=ray", "hydra/launcher=submitit")


@pytest.fixture
def cli(tmp_path):
    """Run `dlexp ARGS` with cwd=tmp_path; returns a CompletedProcess (stdout, stderr, returncode).

    In this process, through the console script's own dispatch (what `python -m dlexp` calls, but its final
    os._exit), with its output captured: a subprocess would add 3-4 s of imports to every call and test nothing
    more. A real `python -m dlexp` process where one matters: `process=True`, an environment a process reads when
    it starts (PYTHONPATH), and sweeps whose launcher runs jobs in other processes (`OTHER_PROCESSES`). Signals
    and kills are sent to real processes by the tests that need them (tests/test_trust.py).
    """

    def run(
        *args: str,
        timeout: float = 600,
        cwd: Path | None = None,
        env: dict | None = None,
        process: bool = False,
        **kwargs,
    ) -> subprocess.CompletedProcess:
        starting = set(env or {}) - {"COLUMNS"}  # PYTHONPATH and the like are read when a process starts
        env = {"COLUMNS": "200", **(env or {})}
        if process or kwargs or starting or any(a.startswith(OTHER_PROCESSES) for a in args):
            return subprocess.run(
                [*dlexp_cmd(), *args],
                cwd=cwd or tmp_path,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
                **kwargs,
            )
        return in_process(list(args), cwd or tmp_path, env)

    return run


def in_process(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`dlexp ARGS` in this process, as the console script runs it; everything it changes in the process is put
    back afterwards (`app.contained`, as the Python API does), and the typer app's consoles."""
    import contextlib
    import traceback
    import warnings

    from dlexp.cli import app as typer_cli
    from dlexp.cli import entry
    from dlexp.config import app

    out, err = io.StringIO(), io.StringIO()
    saved_consoles = typer_cli.console, typer_cli.err_console
    try:
        with (
            app.contained(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(),
        ):
            os.environ.update(env)
            os.chdir(cwd)
            sys.argv = ["dlexp", *args]
            # the typer app's consoles, made as at the start of a process (they read COLUMNS when made)
            typer_cli.console = Console(highlight=False, soft_wrap=True)
            typer_cli.err_console = Console(stderr=True, highlight=False, soft_wrap=True)
            try:
                entry._dispatch(args)
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
                if done.code is not None and not isinstance(done.code, int):
                    print(done.code, file=sys.stderr)
            except KeyboardInterrupt:
                code = 130
            except Exception:  # what the interpreter would print on its way out
                traceback.print_exc()
                code = 1
    finally:
        typer_cli.console, typer_cli.err_console = saved_consoles
    return subprocess.CompletedProcess(["dlexp", *args], code, out.getvalue(), err.getvalue())


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
    status, metrics = recipe.run(
        cfg, recipe.Job(run_dir=run_dir, overrides=list(overrides), choices=choices), Console(file=out, width=200)
    )
    return status, metrics, run_dir, out.getvalue()


# ---------------------------------------------------------------------------------------------
# The README's numbers, read from the README itself so that README and behaviour cannot drift apart

README = Path(__file__).resolve().parents[1] / "README.md"
_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)"


class Stated(float):
    """A number as the README writes it ("0.080", "1,000", "3.5e+35"); `tolerance` is half a unit of its last
    written digit: the precision the README claims."""

    def __new__(cls, text: str) -> Stated:
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
