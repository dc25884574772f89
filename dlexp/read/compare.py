"""`dlexp compare`: the runs under a sweep (or any folder) as one table, a CSV / Markdown file and a plot.

Runs that differ only in `seed` are read as groups: one row per group, mean ± std over its completed runs, and
a verdict on whether the best group's lead is larger than seed noise (dlexp/read/evidence.py).

Everything comes from the run directories on disk (status.json, metrics.csv, config.yaml), so a sweep that is
still running, or one copied from a cluster, compares the same way; the event files are read only for a column
asked for with --columns that those files alone hold.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from dlexp import UsageError
from dlexp.read import evidence
from dlexp.read.evidence import Group
from dlexp.read.rows import RunRow, collect
from dlexp.read.table import (
    Table,
    build_table,
    panel_title,
    render,
    run_label,
    sort_records,
    to_csv,
    to_markdown,
    verdict_for,
)

BANDS = ("std", "minmax")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def main(
    paths: list[Path],
    sort: str | None = None,
    csv_path: Path | None = None,
    markdown_path: Path | None = None,
    plot_path: Path | None = None,
    log_scale: bool = False,
    console=None,
    by: str | None = None,
    group: bool = True,
    band: str = "std",
    columns: str | None = None,
    boundaries_path: Path | None = None,
    histograms_path: Path | None = None,
    step: int | None = None,
) -> int:
    """Print the table (and the verdict); write the requested files. Exit code 0 (a diverged run is a result)."""
    from rich.console import Console

    if by and not group:
        raise UsageError("--by and --no-group exclude each other: --by groups the runs by the keys it names.")
    if band not in BANDS:
        raise UsageError(f"--band {band}: choose one of {', '.join(BANDS)}.")
    if step is not None and histograms_path is None:
        raise UsageError(f"--step {step} chooses the step of the --histograms figure; add --histograms FILE.png.")
    console = console or Console(highlight=False)
    rows = collect(list(paths))
    t = sort_records(build_table(rows, _split(by), group, _split(columns)), sort)
    title = f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    if t.groups is not None:
        title += f" in {len(t.groups)} group{'s' if len(t.groups) != 1 else ''}"
    title += f", sorted by {sort}" if sort else ""
    render(console, t, title)
    if t.left_out:
        console.print(f"[dim]--columns: no run logged {', '.join(t.left_out)}; left out.[/]", highlight=False)
    found = verdict_for(t, rows, sort)
    notes = found.lines if found else []
    for line in notes:  # wrapped at the terminal's width, under its own indentation
        indent = " " * (len(line) - len(line.lstrip()))
        console.print(
            textwrap.fill(
                line,
                max(console.width, 40),
                subsequent_indent=indent + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            ),
            highlight=False,
            soft_wrap=True,
        )
    written = []
    if csv_path is not None:
        written.append(to_csv(Path(csv_path), t))
    if markdown_path is not None:
        written.append(to_markdown(Path(markdown_path), t, notes))
    if plot_path is not None:
        from dlexp.read import curves

        if t.groups is not None:
            written.append(curves.plot_groups(Path(plot_path), [r["_group"] for r in t.records], band, log_scale))
        else:
            written.append(curves.plot_runs(Path(plot_path), [r["_row"] for r in t.records], t.labels, log_scale))
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if boundaries_path is not None or histograms_path is not None:
        figures(t, rows, boundaries_path, histograms_path, step, console)
    return 0


def figures(
    t: Table, rows: list[RunRow], boundaries_path: Path | None, histograms_path: Path | None, step: int | None, console
) -> None:
    """compare --boundaries (one panel per run, or per group of seeds: their probabilities averaged) and
    --histograms (one row per run)."""
    keys = evidence.differing_overrides(rows)
    if t.groups is not None:
        ordered = [run for record in t.records for run in record["_group"].runs]
        panels = [(group_title(record["_group"]), [run.path for run in record["_group"].runs]) for record in t.records]
    else:
        ordered = [record["_row"] for record in t.records]
        panels = [(panel_title(row, keys), [row.path]) for row in ordered]
    if boundaries_path is not None:
        from dlexp.read.figures import boundaries_figure

        titles = boundaries_figure(Path(boundaries_path), panels)
        console.print(f"wrote {boundaries_path} ({_panels(len(titles), len(panels))})", highlight=False, soft_wrap=True)
    if histograms_path is not None:
        from dlexp.read.figures import histograms_figure

        titles = histograms_figure(
            Path(histograms_path), [(run_label(row, keys), row.path) for row in ordered], step or 0
        )
        console.print(f"wrote {histograms_path} ({len(titles)} panels)", highlight=False, soft_wrap=True)


def group_title(group: Group) -> str:
    """A group's panel title: what sets it apart, then its runs' mean final accuracy (or loss) over n runs."""
    metric = "val/acc" if group.stat("val/acc") is not None else "val/loss"
    found = group.stat(metric)
    result = f"{metric} {found.mean:.3g} (mean of {found.n})" if found is not None else "no result"
    return f"{textwrap.fill(group.label, 44)}\n{result}"


def _panels(drawn: int, panels: int) -> str:
    missing = f"; {panels - drawn} without boundary.npz" if drawn < panels else ""
    return f"{drawn} panel{'s' if drawn != 1 else ''}{missing}"
