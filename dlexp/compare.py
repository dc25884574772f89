"""`dlexp compare`: the runs under a sweep (or any folder) as one table, a CSV / Markdown file and a plot.

Everything comes from the run directories on disk (status.json and metrics.csv), never from TensorBoard,
so a sweep that is still running, or one copied from a cluster, compares the same way.
"""

from __future__ import annotations

import csv
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlexp import runs
from dlexp.errors import UsageError

SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
# Metric columns in reading order; "best/x" is the lowest loss / highest accuracy over the evaluated epochs.
METRICS = ["train/loss", "best/train/loss", "val/loss", "best/val/loss",
           "train/acc", "best/train/acc", "val/acc", "best/val/acc", "hist/saturated", "hist/dead"]
TAIL = ["epochs", "wall_time", "status"]
STATUS_STYLE = {"completed": "green", "diverged": "bold red", "failed": "red", "running": "yellow"}


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


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """["optimizer=adam", "+x=1", "~y"] -> {"optimizer": "adam", "+x": "1", "~y": ""}."""
    found = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        found[key] = value
    return found


def load_run(path: Path) -> RunRow:
    status = runs.read_status(path)
    rows = read_metrics_csv(path / "metrics.csv")
    metrics = {k: v for k, v in ((k, _float(v)) for k, v in (status.get("metrics") or {}).items()) if v is not None}
    if not metrics and rows:                        # a run still going, or killed: its last logged epoch
        metrics = {k: v for k, v in ((k, _float(v)) for k, v in rows[-1].items())
                   if v is not None and "/" in k}
    columns = rows[0].keys() if rows else []
    for column in columns:  # metrics.csv holds every evaluated epoch (a resumed run appends to it)
        if column.split("/")[-1] in ("loss", "acc"):
            values = [v for v in (_float(r.get(column)) for r in rows) if v is not None]
            if values:
                metrics[f"best/{column}"] = min(values) if column.endswith("loss") else max(values)
    curve = [(e, v) for e, v in ((_float(r.get("epoch")), _float(r.get("val/loss"))) for r in rows)
             if e is not None and v is not None]
    name = path.name  # made unique by collect() when two sweeps hold the same job name
    epochs = status.get("epoch")
    if epochs is None and rows:
        epochs = int(_float(rows[-1].get("epoch")) or 0)
    return RunRow(path=path, name=name, status=str(status.get("status", "unknown")),
                  overrides=parse_overrides(status.get("overrides") or []), metrics=metrics,
                  epochs=epochs, wall_time=_float(status.get("wall_time")), curve=curve)


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
    found.sort(key=lambda row: _natural(row.name))
    names = [row.name for row in found]
    for row in found:
        if names.count(row.name) > 1:               # the same job name under two sweeps: show where it is
            row.name = str(row.path)
    return found


def _natural(text: str) -> list:
    """'10_x' after '2_x': numbers in names compare as numbers (sweep jobs are numbered)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def differing_overrides(rows: list[RunRow]) -> list[str]:
    """Override keys whose value is not the same in every run (all of them when there is one run)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.overrides if k not in keys]
    if len(rows) == 1:
        return keys
    return [k for k in keys if len({row.overrides.get(k) for row in rows}) > 1]


def table(rows: list[RunRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and one dict per run (raw values: str for overrides/status, float or None for numbers).

    Each record also keeps its RunRow under "_row" (not a column) for the plot and the CSV's path column.
    """
    overrides = differing_overrides(rows)
    present = {k for row in rows for k in row.metrics}
    metrics = [m for m in METRICS if m in present]
    metrics += sorted(k for k in present if k not in metrics and not k.startswith("best/"))
    columns = ["run", *overrides, *metrics, *TAIL]
    records = []
    for row in rows:
        record: dict[str, Any] = {"run": row.name, "_row": row}
        record.update({k: row.overrides.get(k, "") for k in overrides})
        record.update({k: row.metrics.get(k) for k in metrics})
        record.update(epochs=row.epochs, wall_time=row.wall_time, status=row.status)
        records.append(record)
    return columns, records


def sort_records(columns: list[str], records: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """`val/loss` ascending, `-val/acc` descending; runs without a value go last either way."""
    if not key:
        return records
    descending = key.startswith("-")
    name = key[1:] if descending else key
    if name not in columns:
        raise UsageError(f"--sort {key}: '{name}' is not a column of this table; choose one of "
                         f"{', '.join(columns)} (prefix '-' for descending).")

    def value(record):
        v = record.get(name)
        number = v if isinstance(v, (int, float)) else _float(v)
        return (1, 0.0, "") if v in (None, "") else (0, number, "") if number is not None else (0, 0.0, str(v))

    present = [r for r in records if r.get(name) not in (None, "")]
    missing = [r for r in records if r.get(name) in (None, "")]
    return sorted(present, key=value, reverse=descending) + missing


def fmt(column: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if column == "wall_time":
        return f"{value:.1f}s"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def numeric(columns: list[str], records: list[dict[str, Any]]) -> set[str]:
    """Columns whose values are all numbers: right-aligned."""
    return {c for c in columns
            if any(isinstance(r.get(c), (int, float)) for r in records)
            and all(r.get(c) is None or isinstance(r.get(c), (int, float)) for r in records)}


def to_csv(path: Path, columns: list[str], records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "path"])
        for record in records:
            writer.writerow([("" if record.get(c) is None else record.get(c)) for c in columns]
                            + [str(record["_row"].path)])
    return path


def to_markdown(path: Path, columns: list[str], records: list[dict[str, Any]]) -> Path:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    right = numeric(columns, records)
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in columns) + "|"]
    for record in records:
        lines.append("| " + " | ".join(cell(fmt(c, record.get(c))) for c in columns) + " |")
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


def plot(path: Path, rows: list[RunRow], overrides: list[str], log_scale: bool = False) -> Path:
    """Validation loss per epoch, one line per run, labelled by its differing overrides."""
    drawn = [row for row in rows if row.curve]
    if not drawn:
        raise UsageError("none of these runs has validation-loss values in its metrics.csv, so there is nothing "
                         "to plot; regression and classification runs log val/loss, gaussian (unlabelled) runs do not.")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in drawn:
        label = run_label(row, overrides)
        epochs, values = zip(*row.curve)
        ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, markersize=3,
                linestyle="--" if row.status == "diverged" else "-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    if log_scale:
        ax.set_yscale("log")
    # a diverged run (1e23) would flatten every other curve: keep the axis on the runs that stayed finite
    steady = [v for row in drawn if row.status != "diverged" for _, v in row.curve if math.isfinite(v)]
    if steady and len(steady) < sum(len(row.curve) for row in drawn):
        low, high = min(steady), max(steady)
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
        ax.set_ylim(low / 1.2 if log_scale and low > 0 else low - pad, high * 1.2 if log_scale else high + pad)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render(console, columns: list[str], records: list[dict[str, Any]], title: str | None = None) -> None:
    """The table on the terminal: best/<metric> goes under its final value, in the same (dimmed) cell.

    Numbers and statuses never wrap; the run name (whole in the CSV) gives up its width first, so a sweep
    reads on an 80-column terminal. A table that cannot fit even then is printed at its natural width.
    """
    from rich import box
    from rich.markup import render as markup
    from rich.table import Table

    right = numeric(columns, records)
    shown = [c for c in columns if not (c.startswith("best/") and c[5:] in columns)]
    headers, cells = {}, []
    for column in shown:
        header = column.replace("/", "/\n").replace("_", "_\n") if column in right else column
        headers[column] = header + ("\n[dim](best)[/]" if f"best/{column}" in columns else "")
    for record in records:
        row = {}
        for column in shown:
            text = fmt(column, record.get(column))
            if f"best/{column}" in columns:
                text += f"\n[dim]{fmt(column, record.get(f'best/{column}'))}[/]"
            if column == "status":
                text = f"[{STATUS_STYLE.get(text, 'yellow')}]{text}[/]"
            row[column] = text
        cells.append(row)

    def natural(column: str) -> int:
        texts = [headers[column]] + [row[column] for row in cells]
        return max(len(line) for text in texts for line in markup(text).plain.split("\n"))

    widths = {c: natural(c) for c in shown}

    def build(run_width: int) -> Table:
        view = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False,
                     collapse_padding=True, show_edge=False)
        for column in shown:
            view.add_column(headers[column], justify="right" if column in right else "left", no_wrap=True,
                            overflow="ellipsis", width=run_width if column == "run" else widths[column],
                            style="cyan" if column == "run" else None)
        for row in cells:
            view.add_row(*(row[c] for c in shown))
        return view

    view = build(widths["run"])
    excess = console.measure(view, options=console.options.update(width=10_000)).maximum - console.width
    if excess > 0:
        view = build(max(6, widths["run"] - excess))
    width = console.width
    try:  # what still does not fit is printed whole: the terminal wraps it, nothing is cut
        console.width = max(width, console.measure(view, options=console.options.update(width=10_000)).maximum)
        console.print(view, crop=False)
    finally:
        console.width = width


def main(paths: list[Path], sort: str | None = None, csv_path: Path | None = None,
         markdown_path: Path | None = None, plot_path: Path | None = None, log_scale: bool = False,
         console=None, boundaries_path: Path | None = None, histograms_path: Path | None = None,
         step: int | None = None) -> int:
    """Print the table; write the requested files. Exit code 0 (a diverged run is a result, not an error)."""
    from rich.console import Console

    if step is not None and histograms_path is None:
        raise UsageError(f"--step {step} chooses the step of the --histograms figure; add --histograms FILE.png.")
    console = console or Console(highlight=False)
    rows = collect(list(paths))
    columns, records = table(rows)
    records = sort_records(columns, records, sort)
    title = f"{len(rows)} run{'s' if len(rows) != 1 else ''}" + (f", sorted by {sort}" if sort else "")
    render(console, columns, records, title)
    written = []
    if csv_path is not None:
        written.append(to_csv(Path(csv_path), columns, records))
    if markdown_path is not None:
        written.append(to_markdown(Path(markdown_path), columns, records))
    if plot_path is not None:
        written.append(plot(Path(plot_path), [r["_row"] for r in records], differing_overrides(rows), log_scale))
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    ordered, keys = [r["_row"] for r in records], differing_overrides(rows)
    if boundaries_path is not None:
        from dlexp.figures import boundaries_figure

        titles = boundaries_figure(Path(boundaries_path), [(panel_title(row, keys), [row.path]) for row in ordered])
        console.print(f"wrote {boundaries_path} ({_panels(len(titles), len(ordered))})", highlight=False,
                      soft_wrap=True)
    if histograms_path is not None:
        from dlexp.figures import histograms_figure

        titles = histograms_figure(Path(histograms_path), [(run_label(row, keys), row.path) for row in ordered],
                                   step or 0)
        console.print(f"wrote {histograms_path} ({len(titles)} panels)", highlight=False, soft_wrap=True)
    return 0


def _panels(drawn: int, runs: int) -> str:
    missing = f"; {runs - drawn} run{'s' if runs - drawn > 1 else ''} without boundary.npz" if drawn < runs else ""
    return f"{drawn} panel{'s' if drawn != 1 else ''}{missing}"


def write_summary(sweep_dir: Path) -> list[Path]:
    """summary.csv and summary.md of the compare table in the sweep directory (for the end of a multirun)."""
    sweep_dir = Path(sweep_dir)
    run_dirs = runs.find_runs(sweep_dir) if sweep_dir.exists() else []
    if not run_dirs:
        return []
    rows = sorted((load_run(p) for p in run_dirs), key=lambda row: _natural(row.name))
    columns, records = table(rows)
    return [to_csv(sweep_dir / SUMMARY_CSV, columns, records),
            to_markdown(sweep_dir / SUMMARY_MD, columns, records)]
