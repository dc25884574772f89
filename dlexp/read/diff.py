"""`dlexp diff RUN_A RUN_B`: what differs between two runs, read from their directories.

The composed config keys whose values differ (dotted keys, from config.yaml), the config group options that
differ (status.json's choices), and the final metrics side by side. Equal keys are not shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlexp import UsageError
from dlexp.read import runs
from dlexp.read.rows import differences, load_run
from dlexp.read.table import METRICS, fmt


def _run_dir(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; give two run directories (each holds a status.json).")
    if not (path / runs.STATUS).is_file():
        raise UsageError(f"{path} is not a run directory: it holds no {runs.STATUS} written by dlexp train.")
    return path


def main(run_a: Path, run_b: Path, console) -> int:
    from rich import box
    from rich.table import Table

    a, b = (load_run(_run_dir(p)) for p in (run_a, run_b))
    console.print(f"[bold]A[/] {a.path}", highlight=False, soft_wrap=True)
    console.print(f"[bold]B[/] {b.path}", highlight=False, soft_wrap=True)

    def section(title: str, rows: list[tuple[str, Any, Any]], delta: bool = False) -> None:
        view = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
        view.add_column("key" if not delta else "metric", style="cyan", overflow="fold")
        for name in ("A", "B") + (("B - A",) if delta else ()):
            view.add_column(name, justify="right" if delta else "left", overflow="fold")
        for key, x, y in rows:
            cells = [fmt(key, x), fmt(key, y)]
            if delta:
                numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
                cells.append(f"{y - x:+.4g}" if numbers else "")
            view.add_row(key, *cells)
        console.print(view)

    choices = differences(a.choices, b.choices)
    config = differences(a.config, b.config)
    if choices:
        section("config groups that differ", choices)
    if config:
        section("config keys that differ", config)
    if not choices and not config:
        console.print("The two runs have the same configuration.")
    order = [m for m in METRICS if m in a.metrics or m in b.metrics]
    order += sorted(k for k in {**a.metrics, **b.metrics} if k not in order)
    outcome = [("status", a.status, b.status), ("epochs", a.epochs, b.epochs), ("wall_time", a.wall_time, b.wall_time)]
    section("final metrics", outcome + [(m, a.metrics.get(m), b.metrics.get(m)) for m in order], delta=True)
    return 0
