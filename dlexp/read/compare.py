"""`dlexp compare`: the runs under a sweep (or any folder) as one table, a CSV / Markdown file and a plot.

Runs that differ only in `seed` are read as groups: one row per group, mean ± std over its completed runs, and
a verdict on whether the best group's lead is larger than seed noise (dlexp/read/evidence.py).

Everything comes from the run directories on disk (status.json, metrics.csv, config.yaml), so a sweep that is
still running, or one copied from a cluster, compares the same way; the event files are read only for a column
asked for with --columns that those files alone hold.
"""

from __future__ import annotations

import csv
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlexp.read import evidence, runs
from dlexp import UsageError
from dlexp.read.evidence import Group, Stat
from dlexp.observe import hparams
from dlexp.observe.hparams import flatten
from dlexp.read.runs import best_of, ranked

SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
# Metric columns in reading order; "best/x" is the lowest loss / highest accuracy over the evaluated epochs.
METRICS = ["train/loss", "best/train/loss", "val/loss", "best/val/loss",
           "train/acc", "best/train/acc", "val/acc", "best/val/acc", "hist/saturated", "hist/dead"]
TAIL = ["epochs", "wall_time", "status"]
GROUP_TAIL = ["wall_time"]
VERDICT_METRICS = ["val/loss", "train/loss"]  # the verdict's metric when --sort names none
BANDS = ("std", "minmax")
RUNS_CAPTION = ("Metrics: the value at the last evaluated epoch; dimmed below it, the best epoch's "
                "(lowest loss, highest accuracy).")
# {groups}: "runs that differ only in seed" or "runs that share optimizer" (--by)
GROUPS_CAPTION = ("One row per group of {groups}. Metrics: mean±std over the group's completed runs, at the last "
                  "evaluated epoch; dimmed below, the same for the best epoch. completed: completed runs / all runs "
                  "(the others are counted, never averaged).")
MARKDOWN_CAPTION = ("One row per group of {groups}: mean ± std over the group's completed runs, at the last evaluated "
                    "epoch (best/: at the best epoch). completed: completed runs / all runs (the others are counted, "
                    "never averaged).")


@dataclass
class RunRow:
    path: Path
    name: str
    status: str
    overrides: dict[str, str]
    metrics: dict[str, float]                       # final values, and best/<metric>
    epochs: int | None
    wall_time: float | None
    curve: list[tuple[float, float]] = field(default_factory=list)  # (epoch, val/loss)
    choices: dict[str, str] = field(default_factory=dict)          # config group -> option
    config: dict[str, Any] = field(default_factory=dict)           # the composed config, dotted keys
    stopped_at_step: int | None = None              # where a diverged run stopped
    job: int | None = None                          # its number in its sweep
    no_final: set[str] = field(default_factory=set)  # epoch metrics it logged but has no final value of (it
                                                     # ended, diverged say, before its next evaluated epoch)

    def logged(self, tag: str) -> bool:
        """Did this run log `tag` (it has a final value, or has none because it ended first)?"""
        return tag in self.metrics or tag in self.no_final


@dataclass
class Table:
    columns: list[str]
    records: list[dict[str, Any]]                   # raw values: str, float, Stat or None; "_row"/"_group" kept
    labels: list[str]                               # the columns that name a row: the overrides that set it apart
    groups: list[Group] | None = None               # set when the rows are groups of seeds
    by: list[str] | None = None                     # the keys that formed the groups (--by), if any
    left_out: list[str] = field(default_factory=list)  # --columns that no run logged

    def caption(self, markdown: bool = False) -> str | None:
        if self.groups is not None:
            kind = f"runs that share {', '.join(self.by)}" if self.by else "runs that differ only in seed"
            return (MARKDOWN_CAPTION if markdown else GROUPS_CAPTION).format(groups=kind)
        return RUNS_CAPTION if any(c.startswith("best/") for c in self.columns) and not markdown else None


def _float(text: Any) -> float | None:
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
    return flatten(loaded, skip_keys=(), skip_top=()) if isinstance(loaded, dict) else {}


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
    final = status.get("metrics")                   # written when the run ended, however it ended
    metrics = {k: v for k, v in ((k, _float(v)) for k, v in (final or {}).items()) if v is not None}
    if rows and (final is None or status.get("status") == "completed"):
        # a run still going, or killed: its last logged epoch; a completed one ended on its last row (an untrained
        # run on epoch 0, which status.json leaves out)
        metrics = {**{k: v for k, v in ((k, _float(v)) for k, v in rows[-1].items()) if v is not None and "/" in k},
                   **metrics}
    logged = set()
    for column in rows[0].keys() if rows else []:  # metrics.csv holds every evaluated epoch (a resumed run appends)
        values = [v for v in (_float(r.get(column)) for r in rows) if v is not None]
        if values and "/" in column:
            logged.add(column)
        if values and ranked(column):
            metrics[f"best/{column}"] = best_of(column, values)
    curve = [(e, v) for e, v in ((_float(r.get("epoch")), _float(r.get("val/loss"))) for r in rows)
             if e is not None and v is not None]
    name = path.name  # made unique by collect() when two sweeps hold the same job name
    epochs = status.get("epoch")
    if epochs is None and rows:
        epochs = int(_float(rows[-1].get("epoch")) or 0)
    return RunRow(path=path, name=name, status=str(status.get("status", "unknown")),
                  overrides=parse_overrides(status.get("overrides") or []), metrics=metrics,
                  epochs=epochs, wall_time=_float(status.get("wall_time")), curve=curve,
                  choices={str(k): str(v) for k, v in (status.get("choices") or {}).items()},
                  config=read_config(path), stopped_at_step=status.get("diverged_at_step"),
                  job=runs.job_number(path, status), no_final=logged - metrics.keys())


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
        if names.count(row.name) > 1:               # the same job name under two sweeps: show where it is
            row.name = str(row.path)
    return found


def run_order(row: RunRow) -> tuple:
    """Sweep by sweep, jobs in their order (job 10 after job 9), other runs by name."""
    return (_natural(str(row.path.parent)), row.job if row.job is not None else 1 << 30, _natural(row.name))


def _natural(text: str) -> list:
    """'10_x' after '2_x': numbers in names compare as numbers (sweep jobs are numbered)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def differing_overrides(rows: list[RunRow]) -> list[str]:
    """Override keys whose value is not the same in every run (for one run, all but the logging knobs)."""
    if len(rows) == 1:
        return [k for k in rows[0].overrides if not evidence.logging_knob(k)]
    return evidence.differing_overrides(rows)


# --- columns ------------------------------------------------------------------------------------------------

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
        raise UsageError(f"--columns: no run logged {', '.join(unknown)}; these runs have: {', '.join(known)} "
                         f"(and {', '.join(TAIL)}).")
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
    overrides = differing_overrides(rows)
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
        record: dict[str, Any] = {**group.key, "_group": group,
                                  "completed": f"{len(group.completed)}/{len(group.runs)}", "n": len(group.completed)}
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
        raise UsageError(f"--sort {key}: '{name}' is not a column of this table; choose one of "
                         f"{', '.join(t.columns)} (prefix '-' for descending).")

    def value(record):
        v = record.get(name)
        v = v.mean if isinstance(v, Stat) else v
        number = v if isinstance(v, (int, float)) else _float(v)
        return (1, 0.0, "") if v in (None, "") else (0, number, "") if number is not None else (0, 0.0, str(v))

    present = [r for r in t.records if r.get(name) not in (None, "")]
    missing = [r for r in t.records if r.get(name) in (None, "")]
    t.records = sorted(present, key=value, reverse=descending) + missing
    return t


# --- formatting ---------------------------------------------------------------------------------------------

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


def to_csv(path: Path, t: Table) -> Path:
    """Single runs: the table's columns and the run's path. Groups: `<metric>_mean`, `<metric>_std`, n (the
    completed runs averaged), runs (all runs of the group) and their statuses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_csv_header(t))
        writer.writerows(_csv_row(t, record) for record in t.records)
    return path


def to_markdown(path: Path, t: Table, notes: list[str] = ()) -> Path:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    right = numeric(t.columns, t.records)
    lines = ["| " + " | ".join(cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in t.columns) + "|"]
    for record in t.records:
        lines.append("| " + " | ".join(cell(fmt(c, record.get(c), " ± ")) for c in t.columns) + " |")
    if t.groups is not None:
        lines += ["", t.caption(markdown=True)]
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
        view = RichTable(title=title, header_style="bold",
                         box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, collapse_padding=True, show_edge=False)
        for column in shown:
            view.add_column(headers[column], justify="right" if column in right else "left", no_wrap=True,
                            overflow="ellipsis", width=widths[column], style="cyan" if column == "run" else None)
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


# --- the command --------------------------------------------------------------------------------------------

def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def build_table(rows: list[RunRow], by: list[str] | None = None, group: bool = True,
                requested: list[str] | None = None) -> Table:
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


def main(paths: list[Path], sort: str | None = None, csv_path: Path | None = None,
         markdown_path: Path | None = None, plot_path: Path | None = None, log_scale: bool = False,
         console=None, by: str | None = None, group: bool = True, band: str = "std",
         columns: str | None = None, boundaries_path: Path | None = None, histograms_path: Path | None = None,
         step: int | None = None) -> int:
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
        console.print(textwrap.fill(line, max(console.width, 40), subsequent_indent=indent + "  ",
                                    break_long_words=False, break_on_hyphens=False), highlight=False, soft_wrap=True)
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


def figures(t: Table, rows: list[RunRow], boundaries_path: Path | None, histograms_path: Path | None,
            step: int | None, console) -> None:
    """compare --boundaries (one panel per run, or per group of seeds: their probabilities averaged) and
    --histograms (one row per run)."""
    keys = differing_overrides(rows)
    if t.groups is not None:
        ordered = [run for record in t.records for run in record["_group"].runs]
        panels = [(group_title(record["_group"]), [run.path for run in record["_group"].runs]) for record in t.records]
    else:
        ordered = [record["_row"] for record in t.records]
        panels = [(panel_title(row, keys), [row.path]) for row in ordered]
    if boundaries_path is not None:
        from dlexp.read.figures import boundaries_figure

        titles = boundaries_figure(Path(boundaries_path), panels)
        console.print(f"wrote {boundaries_path} ({_panels(len(titles), len(panels))})", highlight=False,
                      soft_wrap=True)
    if histograms_path is not None:
        from dlexp.read.figures import histograms_figure

        titles = histograms_figure(Path(histograms_path), [(run_label(row, keys), row.path) for row in ordered],
                                   step or 0)
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


def write_summary(sweep_dir: Path) -> list[Path]:
    """summary.csv and summary.md of the compare table in the sweep directory (for the end of a multirun); when
    the sweep varies the seed, the grouped table with its verdict, and one TensorBoard run per group under
    <sweep>/aggregate/; and the columns of the sweep's TensorBoard HParams table (what it varies, status, the key
    metrics)."""
    sweep_dir = Path(sweep_dir)
    run_dirs = runs.find_runs(sweep_dir) if sweep_dir.exists() else []
    if not run_dirs:
        return []
    rows = sorted((load_run(p) for p in run_dirs), key=run_order)
    t = build_table(rows)
    found = verdict_for(t, rows, None)
    written = [to_csv(sweep_dir / SUMMARY_CSV, t), to_markdown(sweep_dir / SUMMARY_MD, t, found.lines if found else [])]
    if t.groups is not None:
        aggregates = evidence.write_aggregates(sweep_dir, t.groups)
        if aggregates:
            written.append(sweep_dir / evidence.AGGREGATE_DIR)
    from dlexp.run import signals

    if not signals.stop_requested(sweep_dir):  # a stopped sweep gets its columns when `dlexp resume` finishes it
        hparams.write_sweep_columns(rows, evidence.differing_overrides(rows))
    return written
