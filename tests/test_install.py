"""Installed as a wheel (not editable), dlexp still finds its configs, from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_finds_its_configs_from_anywhere(tmp_path):
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("dlexp-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}  # the wheel's copy comes before the checkout

    where = subprocess.run(
        [sys.executable, "-c", "from dlexp.config.catalog import conf_dir; print(conf_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    assert (Path(where.stdout.strip()) / "optimizer" / "adam.yaml").is_file()
    assert (site / "dlexp" / "py.typed").is_file()  # the marker that tells editors and mypy the package is typed

    listed = subprocess.run(
        [sys.executable, "-m", "dlexp", "list", "optimizer"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "random_search" in listed.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "dlexp", "show", "experiment=xor_mlp"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and "dlexp.parts.data.logic_gate" in shown.stdout, shown.stderr


def wheel_build(project: Path, dist: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_building_dlexp_prints_no_packaging_warning_and_ships_every_config(tmp_path):
    """An install prints nothing of the project's own but errors: its packaging configuration draws no warning."""
    # The control: a project with a deprecated setting (the license as a table) does draw one, so this pip shows them.
    control = tmp_path / "control"
    (control / "control").mkdir(parents=True)
    (control / "control" / "__init__.py").write_text("")
    (control / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "control"\nversion = "0"\nlicense = { text = "MIT" }\n'
    )
    shown = wheel_build(control, tmp_path / "control-dist")
    assert shown.returncode == 0, shown.stderr
    if "Warning" not in shown.stdout + shown.stderr:
        pytest.skip("this pip does not show a build backend's warnings")
    built = wheel_build(ROOT, tmp_path / "dist")
    assert built.returncode == 0, built.stderr
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("dlexp-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".yaml")}
    conf = ROOT / "conf"
    assert shipped == {f"dlexp/conf/{path.relative_to(conf).as_posix()}" for path in conf.rglob("*.yaml")}
