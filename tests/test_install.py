"""Installed as a wheel (not editable), dlexp still finds its configs, from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_finds_its_configs_from_anywhere(tmp_path):
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("dlexp-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}  # the wheel's copy comes before the checkout

    where = subprocess.run([sys.executable, "-c", "from dlexp.config.catalog import conf_dir; print(conf_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    assert (Path(where.stdout.strip()) / "optimizer" / "adam.yaml").is_file()

    listed = subprocess.run([sys.executable, "-m", "dlexp", "list", "optimizer"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "random_search" in listed.stdout
    shown = subprocess.run([sys.executable, "-m", "dlexp", "show", "experiment=xor_mlp"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "dlexp.data.logic_gate" in shown.stdout, shown.stderr
