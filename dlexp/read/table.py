"""The table `dlexp compare` prints and writes: one record per run, or per group of runs that differ only in seed
(mean ± std, a verdict below it); its columns, order, formatting, CSV and Markdown.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlexp import UsageError
from dlexp.read import evidence, runs
from dlexp.read.evidence import Group, Stat
from dlexp.read.rows import RunRow, number

# Metric columns in reading order; "best/x" is the lowest loss / highest accuracy over the evaluated epochs.
METRICS = [
    "train/loss",
    "best/train/loss",
    "val/loss",
    "best/val/loss",
    "train/acc",
    "best/train/acc",
    "val/acc",
    "best/val/acc",
    "hist/saturated",
    "hist/dead",
]


TAIL = ["epochs", "wall_time", "status"]


GROUP_TAIL = ["wall_time"]


VERDICT_METRICS = ["val/loss", "train/loss"]  # the verdict's metric when --sort names none


RUNS_CAPTION = (
    "Metrics: the value at the last evaluated epoch; dimmed below it, the best epoch's (lowest loss, highest accuracy)."
)


# {groups}: "runs that differ only in seed" or "runs that share optimizer" (--by)
GROUPS_CAPTION = (
    "One row per group of {groups}. Metrics: mean±std over the group's completed runs, at the last "
    "evaluated epoch; dimmed below, the same for the best epoch. completed: completed runs / all runs "
    "(the others are counted, never averaged)."
)


MARKDOWN_CAPTION = (
    "One row per group of {groups}: mean ± std over the group's completed runs, at the last evaluated "
    "epoch (best/: at the best epoch). completed: completed runs / all runs (the others are counted, "
    "never averaged)."
)


@dataclass
class Table:
    columns: list[str]
    records: list[dict[str, Any]]  # raw values: str, float, Stat or None; "_row"/"_group" kept
    labels: list[str]  # the columns that name a row: the overrides that set it apart
    groups: list[Group] | None = None  # set when the rows are groups of seeds
    by: list[str] | None = None  # the keys that formed the groups (--by), if any
    left_out: list[str] = field(default_factory=list)  # --columns that no run logged

    def caption(self, markdown: bool = False) -> str | None:
        if self.groups is not None:
            kind = f"runs that share {', '.join(self.by)}" if self.by else "runs that differ only in seed"
            return (MARKDOWN_CAPTION if markdown else GROUPS_CAPTION).format(groups=kind)
        return RUNS_CAPTION if any(c.startswith("best/") for c in self.columns) and not markdown else None


def add_columns(rows: list[RunRow], requested: list[str]) -> list[str]:
    """Make each requested tag a metric of every run that logged it: from status.json / metrics.csv when they
    hold it, otherwise the last value of that TensorBoard scalar in the run's event files (epochs, wall_time
    and status are the table's own columns). Returns the tags no run logged (left out of the table); when no
    requested column was logged at all, that is the user's error."""
    tags = [t for t in requested if t not in TAIL]
    missing = [t for t in tags if not all(row.logged(t) for row in rows)]
    logged: set[str] = set()
    if missing:
        from dlexp.observe.tensorboard import read_scalars

        for row in rows:
            if all(row.logged(t) for t in missing):
                continue
            scalars = read_scalars(row.path)
            logged.update(scalars)
            for tag in missing:
                points = [v for _, v in scalars.get(tag, []) if math.isfinite(v)]
                if not row.logged(tag) and points:
                    row.metrics[tag] = points[-1]
    unknown = [t for t in tags if not any(row.logged(t) for row in rows)]
    if unknown and len(unknown) == len(requested):
        known = sorted(logged | {k for row in rows for k in row.metrics})
        raise UsageError(
            f"--columns: no run logged {', '.join(unknown)}; these runs have: {', '.join(known)} "
            f"(and {', '.join(TAIL)})."
        )
    return unknown


def metric_columns(rows: list[RunRow], requested: list[str] | None = None) -> list[str]:
    """The metric columns: the requested tags (each with its best/ partner when runs have one), or every metric
    the runs have, in reading order."""
    present = {k for row in rows for k in (*row.metrics, *row.no_final)}
    if requested:
        return [m for tag in requested if tag not in TAIL for m in (tag, f"best/{tag}") if m == tag or m in present]
    metrics = [m for m in METRICS if m in present]
    return metrics + sorted(k for k in present if k not in metrics and not k.startswith("best/"))


def tail_columns(tail: list[str], requested: list[str] | None) -> list[str]:
    """After the metrics: all of `tail` by default; with --columns, those it names, and always the status."""
    return [c for c in tail if not requested or c in requested or c == "status"]


def table(rows: list[RunRow], requested: list[str] | None = None) -> Table:
    """One record per run (raw values: str for overrides/status, float or None for numbers)."""
    overrides = evidence.differing_overrides(rows)
    metrics = metric_columns(rows, requested)
    records = []
    for row in rows:
        record: dict[str, Any] = {"run": row.name, "_row": row}
        record.update({k: row.overrides.get(k, "") for k in overrides})
        record.update({k: row.metrics.get(k) for k in metrics})
        record.update(epochs=row.epochs, wall_time=row.wall_time, status=row.status)
        records.append(record)
    return Table(["run", *overrides, *metrics, *tail_columns(TAIL, requested)], records, overrides)


def group_table(groups: list[Group], requested: list[str] | None = None, by: list[str] | None = None) -> Table:
    """One record per group: its key values, completed/all, and a Stat per metric over its completed runs."""
    labels = list(groups[0].key) if groups else []
    metrics = metric_columns([run for g in groups for run in g.runs], requested)
    records = []
    for group in groups:
        record: dict[str, Any] = {
            **group.key,
            "_group": group,
            "completed": f"{len(group.completed)}/{len(group.runs)}",
            "n": len(group.completed),
        }
        record.update({m: group.stat(m) for m in metrics})
        record["wall_time"] = evidence.describe([r.wall_time for r in group.completed if r.wall_time is not None])
        records.append(record)
    return Table([*labels, "completed", *metrics, *tail_columns(GROUP_TAIL, requested)], records, labels, groups, by)


def sort_records(t: Table, key: str | None) -> Table:
    """`val/loss` ascending, `-val/acc` descending; rows without a value go last either way."""
    if not key:
        return t
    descending = key.startswith("-")
    name = key[1:] if descending else key
    if name not in t.columns:
        raise UsageError(
            f"--sort {key}: '{name}' is not a column of this table; choose one of "
            f"{', '.join(t.columns)} (prefix '-' for descending)."
        )

    def value(record):
        v = record.get(name)
        v = v.mean if isinstance(v, Stat) else v
        found = v if isinstance(v, (int, float)) else number(v)
        return (1, 0.0, "") if v in (None, "") else (0, found, "") if found is not None else (0, 0.0, str(v))

    present = [r for r in t.records if r.get(name) not in (None, "")]
    missing = [r for r in t.records if r.get(name) in (None, "")]
    t.records = sorted(present, key=value, reverse=descending) + missing
    return t


def fmt(column: str, value: Any, pm: str = "±") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, Stat):
        if column == "wall_time":
            return f"{value.mean:.1f}s"
        return f"{value.mean:.4g}" + (f"{pm}{value.std:.2g}" if value.std is not None else "")
    if column == "wall_time":
        return f"{value:.1f}s"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def numeric(columns: list[str], records: list[dict[str, Any]]) -> set[str]:
    """Columns whose values are all numbers, or none (a metric only runs that diverged early logged): right-aligned.
    The columns that name rows hold strings."""

    def number(v):
        return isinstance(v, (int, float, Stat))

    return {c for c in columns if records and all(r.get(c) is None or number(r.get(c)) for r in records)}


def _csv_header(t: Table) -> list[str]:
    if t.groups is None:
        return [*t.columns, "path"]
    stats = [c for c in t.columns if c not in t.labels and c != "completed"]
    return [*t.labels, "n", "runs", "statuses", *(f"{c}_{part}" for c in stats for part in ("mean", "std"))]


def _csv_row(t: Table, record: dict[str, Any]) -> list[Any]:
    def plain(v):
        return "" if v is None else v

    if t.groups is None:
        return [plain(record.get(c)) for c in t.columns] + [str(record["_row"].path)]
    group: Group = record["_group"]
    statuses = ", ".join(f"{n} {s}" for s, n in [("completed", len(group.completed)), *group.others.items()] if n)
    stats = [c for c in t.columns if c not in t.labels and c != "completed"]
    cells = []
    for c in stats:
        s = record.get(c)
        cells += [plain(s.mean if s else None), plain(s.std if s else None)]
    return [*(record.get(k) for k in t.labels), len(group.completed), len(group.runs), statuses, *cells]


def plain_records(t: Table) -> tuple[list[str], list[list[Any]]]:
    """The table as plain values, a header and a row per record (what the CSV holds). Single runs: the table's
    columns and the run's path. Groups: `<metric>_mean`, `<metric>_std`, n (the completed runs averaged), runs (all
    runs of the group) and their statuses."""
    return _csv_header(t), [_csv_row(t, record) for record in t.records]


def to_csv(path: Path, t: Table) -> Path:
    """`plain_records` as a CSV file."""
    header, rows = plain_records(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def to_markdown(path: Path, t: Table, notes: Sequence[str] = ()) -> Path:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    right = numeric(t.columns, t.records)
    lines = [
        "| " + " | ".join(cell(c) for c in t.columns) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in t.columns) + "|",
    ]
    for record in t.records:
        lines.append("| " + " | ".join(cell(fmt(c, record.get(c), " ± ")) for c in t.columns) + " |")
    caption = t.caption(markdown=True)  # groups only: a markdown table of runs has none
    if caption is not None:
        lines += ["", caption]
    if notes:  # the verdict: its first line, then its details as a list
        lines += [""] + [f"- {line.strip()}" if line.startswith(" ") else line for line in notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_label(row: RunRow, overrides: list[str]) -> str:
    """A run as a legend or a panel names it: its differing overrides (its directory name if none differ)."""
    return ", ".join(f"{k}={row.overrides[k]}" for k in overrides if k in row.overrides) or row.name


def panel_title(row: RunRow, overrides: list[str]) -> str:
    """A figure panel's title: the run's label, then its final accuracy (or loss), and its status if not completed."""
    metric = "val/acc" if "val/acc" in row.metrics else "val/loss"
    value = row.metrics.get(metric)
    result = f"{metric} {value:.3g}" if value is not None else "no result"
    if row.status != "completed":
        result += f" ({row.status})"
    return f"{textwrap.fill(run_label(row, overrides), 44)}\n{result}"


def render(console, t: Table, title: str | None = None) -> None:
    """The table on the terminal: best/<metric> goes under its final value, in the same (dimmed) cell.

    The run name is left out when the overrides that set the runs apart name every row. Numbers and statuses
    are never cut. A table wider than the terminal first folds its mean±std cells (each ±std goes under its
    mean), then narrows the run name, and the columns that name the rows (the groups, the overrides) last, widest
    first, down to 6 characters: a sweep reads on an 80-column terminal. A table that cannot fit even then is
    printed at its natural width.
    """
    from rich import box
    from rich.markup import render as markup
    from rich.table import Table as RichTable

    columns, records = t.columns, t.records
    right = numeric(columns, records)
    shown = [c for c in columns if not (c.startswith("best/") and c[5:] in columns)]
    if "run" in shown and t.labels and len({tuple(r.get(k) for k in t.labels) for r in records}) == len(records):
        shown.remove("run")
    headers = {}
    for column in shown:
        headers[column] = column.replace("/", "/\n").replace("_", "_\n") if column in right else column
        values = max((len(fmt(column, r.get(column))) for r in records), default=0)
        if column in t.labels and len(column) > values:  # model.activation over "relu": two header lines
            headers[column] = column.replace(".", ".\n")
    folded: set[str] = set()  # columns whose mean±std cells hold each ±std under its mean

    def cell(record: dict[str, Any], column: str) -> str:
        pm = "\n±" if column in folded else "±"
        text = fmt(column, record.get(column), pm)
        if f"best/{column}" in columns:
            text += f"\n[dim]{fmt(column, record.get(f'best/{column}'), pm)}[/]"
        if column == "status":
            text = f"[{runs.status_style(text)}]{text}[/]"
        if column == "completed":
            group: Group = record["_group"]
            others = ", ".join(f"{n} {s}" for s, n in group.others.items())
            text = f"[green]{text}[/]" if not others else f"[bold red]{text}[/]\n[dim]{others}[/]"
        return text

    def natural(column: str) -> int:
        texts = [headers[column]] + [cell(record, column) for record in records]
        return max(len(line) for text in texts for line in markup(text).plain.split("\n"))

    widths = {c: natural(c) for c in shown}

    def build() -> RichTable:
        view = RichTable(
            title=title,
            header_style="bold",
            box=box.SIMPLE_HEAD,
            padding=(0, 0),
            pad_edge=False,
            collapse_padding=True,
            show_edge=False,
        )
        for column in shown:
            view.add_column(
                headers[column],
                justify="right" if column in right else "left",
                no_wrap=True,
                overflow="ellipsis",
                width=widths[column],
                style="cyan" if column == "run" else None,
            )
        for record in records:
            view.add_row(*(cell(record, c) for c in shown))
        return view

    def measure(view) -> int:
        return console.measure(view, options=console.options.update(width=10_000)).maximum

    excess = measure(build()) - console.width
    if excess > 0:  # every mean±std column at once: the rows keep one shape
        folded.update(c for c in shown if c in right)
        narrower = {c: natural(c) for c in folded}
        excess -= sum(widths[c] - narrower[c] for c in folded)
        widths.update(narrower)
    names = [c for c in shown if c not in right and c not in ("status", "completed")]
    for giving in ([c for c in names if c == "run"], [c for c in names if c != "run"]):
        while excess > 0:  # the widest column gives up one character at a time, down to 6
            widest = max(giving, key=lambda c: widths[c], default=None)
            if widest is None or widths[widest] <= 6:
                break
            widths[widest] -= 1
            excess -= 1
    view = build()
    width = console.width
    try:  # what still does not fit is printed whole: the terminal wraps it, nothing is cut
        console.width = max(width, measure(view))
        console.print(view, crop=False)
    finally:
        console.width = width
    if t.caption():  # wrapped at the terminal's width
        console.print(f"[dim]{t.caption()}[/]", highlight=False, soft_wrap=False)


def build_table(
    rows: list[RunRow], by: list[str] | None = None, group: bool = True, requested: list[str] | None = None
) -> Table:
    """Groups when --by is given, or when some runs differ only in seed (unless --no-group); single runs else."""
    left_out = add_columns(rows, requested) if requested else []
    requested = [c for c in requested or [] if c not in left_out]
    if by or (group and evidence.differs_in_seed_only(rows)):
        found = group_table(evidence.seed_groups(rows, by), requested, by)
    else:
        found = table(rows, requested)
    found.left_out = left_out
    return found


def verdict_for(t: Table, rows: list[RunRow], sort: str | None) -> evidence.Verdict | None:
    """The verdict on the sort metric (val/loss, else train/loss, when the table is sorted by none)."""
    if t.groups is None:
        return None
    name = (sort or "").lstrip("-")
    present = {k for row in rows for k in row.metrics}
    metric = name if name in present else next((m for m in VERDICT_METRICS if m in present), None)
    if metric is None:
        return None
    return evidence.verdict(t.groups, metric, descending=bool(sort and sort.startswith("-")))
