"""One run read back from its directory: status.json, metrics.csv and config.yaml as a row of numbers and settings.

Everything comes from the run directory on disk, so a sweep that is still running, or one copied from a cluster,
reads the same way.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlexp import UsageError
from dlexp.read import runs
from dlexp.read.runs import best_of, ranked

Scalar = bool | int | float | str
MISSING = "(absent)"  # a key one side does not have


@dataclass
class RunRow:
    path: Path
    name: str
    status: str
    overrides: dict[str, str]
    metrics: dict[str, float]  # final values, and best/<metric>
    epochs: int | None
    wall_time: float | None
    curve: list[tuple[float, float]] = field(default_factory=list)  # (epoch, val/loss)
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option
    config: dict[str, Any] = field(default_factory=dict)  # the composed config, dotted keys
    stopped_at_step: int | None = None  # where a diverged run stopped
    job: int | None = None  # its number in its sweep
    no_final: set[str] = field(default_factory=set)  # epoch metrics it logged but has no final value of (it
    # ended, diverged say, before its next evaluated epoch)

    def logged(self, tag: str) -> bool:
        """Did this run log `tag` (it has a final value, or has none because it ended first)?"""
        return tag in self.metrics or tag in self.no_final


def number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.yaml as dotted keys ({} without one)."""
    import yaml

    try:
        loaded = yaml.load((path / runs.CONFIG).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return {}
    return flatten(loaded) if isinstance(loaded, dict) else {}


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """["optimizer=adam", "+x=1", "~y"] -> {"optimizer": "adam", "+x": "1", "~y": ""}."""
    found = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        found[key] = value
    return found


def load_run(path: Path) -> RunRow:
    status = runs.read_status(path)
    rows = read_metrics_csv(path / runs.METRICS)
    final = status.get("metrics")  # written when the run ended, however it ended
    metrics = {k: v for k, v in ((k, number(v)) for k, v in (final or {}).items()) if v is not None}
    if rows and (final is None or status.get("status") == "completed"):
        # a run still going, or killed: its last logged epoch; a completed one ended on its last row (an untrained
        # run on epoch 0, which status.json leaves out)
        metrics = {
            **{k: v for k, v in ((k, number(v)) for k, v in rows[-1].items()) if v is not None and "/" in k},
            **metrics,
        }
    logged = set()
    for column in rows[0].keys() if rows else []:  # metrics.csv holds every evaluated epoch (a resumed run appends)
        values = [v for v in (number(r.get(column)) for r in rows) if v is not None]
        if values and "/" in column:
            logged.add(column)
        if values and ranked(column):
            metrics[f"best/{column}"] = best_of(column, values)
    curve = [
        (e, v)
        for e, v in ((number(r.get("epoch")), number(r.get("val/loss"))) for r in rows)
        if e is not None and v is not None
    ]
    name = path.name  # made unique by collect() when two sweeps hold the same job name
    epochs = status.get("epoch")
    if epochs is None and rows:
        epochs = int(number(rows[-1].get("epoch")) or 0)
    return RunRow(
        path=path,
        name=name,
        status=str(status.get("status", "unknown")),
        overrides=parse_overrides(status.get("overrides") or []),
        metrics=metrics,
        epochs=epochs,
        wall_time=number(status.get("wall_time")),
        curve=curve,
        choices={str(k): str(v) for k, v in (status.get("choices") or {}).items()},
        config=read_config(path),
        stopped_at_step=status.get("diverged_at_step"),
        job=runs.job_number(path, status),
        no_final=logged - metrics.keys(),
    )


def collect(paths: list[Path]) -> list[RunRow]:
    """Every run under the given paths; a missing path or a folder without runs is the user's error."""
    if not paths:
        paths = [Path("runs")]
    found: list[RunRow] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path} does not exist; give a sweep directory, a run directory or a folder of runs.")
        run_dirs = runs.find_runs(path)
        found += [load_run(run_dir) for run_dir in run_dirs]
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise UsageError(f"no runs under {where}: a run directory holds a status.json written by dlexp train.")
    found.sort(key=run_order)
    names = [row.name for row in found]
    for row in found:
        if names.count(row.name) > 1:  # the same job name under two sweeps: show where it is
            row.name = str(row.path)
    return found


def run_order(row: RunRow) -> tuple:
    """Sweep by sweep, jobs in their order (job 10 after job 9), other runs by name."""
    return (_natural(str(row.path.parent)), row.job if row.job is not None else 1 << 30, _natural(row.name))


def _natural(text: str) -> list:
    """'10_x' after '2_x': numbers in names compare as numbers (sweep jobs are numbered)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def flatten(
    config: Mapping, prefix: str = "", skip_keys: Collection[str] = (), skip_top: Collection[str] = ()
) -> dict[str, Scalar]:
    """{"model": {"hidden": [64, 64]}} -> {"model.hidden": "[64, 64]"}: scalars stay, the rest becomes text.

    `skip_keys` are left out at any depth, `skip_top` at the top level.
    """
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        key = str(key)
        if key in skip_keys or (not prefix and key in skip_top):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + ".", skip_keys, skip_top))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "null"
        else:  # lists, tuples: one readable string, e.g. "[100, 100]"
            flat[name] = json.dumps(value, default=str)
    return flat


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose values differ, a key missing on one side included."""
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in keys if a.get(k, MISSING) != b.get(k, MISSING)]
