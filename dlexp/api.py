"""dlexp from Python and notebooks: the same runs as the command line, read back as DataFrames.

    import dlexp
    run = dlexp.train("model=mlp", "optimizer=adam")         # as `dlexp train model=mlp optimizer=adam`
    sweep = dlexp.sweep("optimizer=sgd,adam", "seed=0,1,2")   # as `dlexp train -m ...`
    sweep.table(); sweep.verdict.sentence; sweep.plot()
    dlexp.load("runs/multirun/...")                           # any run or sweep, written by either

A thin shell over the command line's own functions (dlexp/config/app.py): the same composition, checks, run
directories and outputs. What keeps a command from running raises the DlexpError whose sentence the command line
prints; a run that diverges is a result, returned with its status. Each call leaves the process as it found it
(`app.contained`), so a notebook's cell can run again. Ctrl-C, or the notebook's interrupt, stops a run or sweep
as in a terminal (checkpointed, resumable) and raises `Interrupted`, which holds it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlexp import UsageError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from omegaconf import DictConfig

    from dlexp.read.evidence import Verdict as Evidence
    from dlexp.read.rows import RunRow
    from dlexp.read.table import Table

STOPPED = ("interrupted", "terminated")  # statuses of a run or sweep a signal stopped


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (a notebook's interrupt) stopped a run or sweep: it was checkpointed; `result` holds it, and
    `result.resume()` continues it. A KeyboardInterrupt, so the cell stops as for any interrupt."""

    def __init__(self, result: Run | Sweep):
        super().__init__(
            f"{result.dir} stopped ({result.status}); continue it with dlexp.load({str(result.dir)!r}).resume()"
        )
        self.result = result


def train(*overrides: str, config_dir: str | Path | None = None) -> Run:
    """One run, as `dlexp train OVERRIDES` (`config_dir`: your own config folder, as --config-dir)."""
    _refuse_flags(overrides, "train")
    return _ended(Run, _launch(list(overrides), config_dir))


def sweep(*overrides: str, config_dir: str | Path | None = None) -> Sweep:
    """A sweep, as `dlexp train -m OVERRIDES`: the launcher (`hydra/launcher=vectorized`, ...) and sweeper are
    overrides too."""
    _refuse_flags(overrides, "sweep")
    return _ended(Sweep, _launch(["-m", *overrides], config_dir))


def load(path: str | Path) -> Run | Sweep:
    """A run directory or a sweep directory, written by `dlexp train` or by this API."""
    from dlexp.read import runs
    from dlexp.sweeps import resume as sweep_resume

    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory; give a run directory or a sweep directory.")
    if (path / runs.STATUS).is_file():
        return Run(path)
    if sweep_resume.is_sweep(path):
        return Sweep(path)
    raise UsageError(f"{path} holds no run (status.json) and no sweep (multirun.yaml).")


def board(path: str | Path = "runs", height: int = 800) -> str:
    """TensorBoard on the runs under `path`, as `dlexp board` serves it, on a fresh port each call; in a notebook,
    shown inline on the page to look at first. Returns that page's address. The server lives as long as the
    process (the notebook's kernel)."""
    import sys

    from dlexp.read import board as boards

    path = Path(path)
    if "google.colab" in sys.modules:  # Colab reaches a kernel's ports only through its own proxy
        from tensorboard import notebook

        notebook.start(f"--logdir {path} --port {_free_port()} --load_fast false")
        return str(path)
    url = boards.start(path, port=0) + boards.first_page(path)
    if "IPython" in sys.modules:
        from IPython import get_ipython
        from IPython.display import IFrame, display

        if get_ipython() is not None:
            display(IFrame(url, width="100%", height=height))
    return url


@dataclass(frozen=True)
class Verdict:
    """Is the best group's lead larger than seed noise? (dlexp compare's verdict)"""

    metric: str
    best: str | None  # the best group and the runner-up, by their labels
    runner_up: str | None
    difference: float | None  # best's mean minus runner-up's
    standard_error: float | None
    p_value: float | None  # Welch's two-sided t-test
    clear: bool | None  # None: no verdict possible
    sentence: str  # the verdict's first line, as dlexp compare prints it
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


class Run:
    """One run directory: its status, config, final metrics and history."""

    def __init__(self, path: str | Path):
        self.dir = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, status={self.status!r})"

    @property
    def record(self) -> dict[str, Any]:
        """status.json, as written now (a run still going rewrites it)."""
        from dlexp.read import runs

        return runs.read_status(self.dir)

    @property
    def status(self) -> str:
        return str(self.record.get("status", "unknown"))

    @property
    def metrics(self) -> dict[str, float]:
        """The final metrics, as status.json holds them."""
        return {str(k): float(v) for k, v in (self.record.get("metrics") or {}).items() if v is not None}

    @cached_property
    def config(self) -> DictConfig:
        """The composed config the run was made from."""
        from omegaconf import DictConfig, OmegaConf

        found = OmegaConf.load(self.dir / "config.yaml")
        assert isinstance(found, DictConfig)  # config.yaml is a mapping, written by the run
        return found

    @property
    def history(self) -> pd.DataFrame:
        """One row per evaluated epoch: epoch, step and every logged metric (metrics.csv)."""
        import pandas as pd

        from dlexp.read import runs

        path = self.dir / runs.METRICS
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    def resume(self, *overrides: str) -> Run:
        """Continue the run from its checkpoint, as `dlexp resume RUN_DIR OVERRIDES`."""
        _refuse_flags(overrides, "resume")
        return _ended(Run, _resumed(self.dir, overrides))

    def _repr_html_(self) -> str:
        metrics = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in self.metrics.items() if "/" in k
        )
        return (
            f"<div><b>{html.escape(self.dir.name)}</b>: {_status_html(self.status)}"
            f"<br><small>{html.escape(str(self.dir))}</small>"
            f"<table>{metrics}</table></div>"
        )


class Sweep:
    """One sweep directory: its runs, the grouped table (as `dlexp compare`), the verdict and the plot."""

    def __init__(self, path: str | Path):
        self.dir = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({str(self.dir)!r}, {len(self.runs)} runs)"

    @property
    def runs(self) -> list[Run]:
        return [Run(row.path) for row in self._read()[0]]

    @property
    def status(self) -> str:
        """The most serious status among the runs (the one `dlexp train -m`'s exit code says)."""
        from dlexp.read.runs import EXIT_CODES, worst_exit_code

        statuses = [row.status for row in self._read()[0]]
        worst = worst_exit_code(statuses)
        return next((s for s in statuses if EXIT_CODES.get(s, 1) == worst), "unknown")

    def table(self) -> pd.DataFrame:
        """One row per group of runs that differ only in seed (per run, when none do): the group's keys, `n` (its
        completed runs), `completed` (completed / all), `runs`, `statuses`, and `<metric>_mean` / `<metric>_std`:
        the numbers `dlexp compare --csv` writes."""
        return _frame(self._read()[1])

    @property
    def verdict(self) -> Verdict | None:
        """The compare verdict on val/loss (train/loss when no run has val/loss); None for runs that are not
        groups of seeds."""
        return _verdict(*self._read())

    def plot(self, band: str = "std", log_scale: bool = False) -> Figure:
        """The compare figure (val/loss per epoch: a mean curve and band per group of seeds, else a curve per run)."""
        return _figure(self._read()[1], band, log_scale)

    def resume(self, *overrides: str) -> Sweep:
        """Finish the sweep's unfinished jobs, as `dlexp resume SWEEP_DIR`."""
        _refuse_flags(overrides, "resume")
        return _ended(Sweep, _resumed(self.dir, overrides))

    def _read(self) -> tuple[list[RunRow], Table]:
        """The sweep's runs as they are on disk now, and their compare table: read once per question asked."""
        from dlexp.read.rows import collect
        from dlexp.read.table import build_table

        rows = collect([self.dir])
        return rows, build_table(rows)

    def _repr_html_(self) -> str:
        rows, t = self._read()  # the table, verdict, counts and figure of one reading
        table = (
            _frame(t)
            .drop(columns=["path"], errors="ignore")
            .to_html(index=False, na_rep="—", float_format="{:.4g}".format)
        )
        verdict = _verdict(rows, t)
        said = f"<pre>{html.escape(str(verdict))}</pre>" if verdict else ""
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        statuses = ", ".join(f"{n} {_status_html(s)}" for s, n in counts.items())
        return (
            f"<div><b>{html.escape(self.dir.name)}</b>: {len(rows)} runs ({statuses})"
            f"<br><small>{html.escape(str(self.dir))}</small>{table}{said}{_figure_html(t)}</div>"
        )


def _frame(t: Table) -> pd.DataFrame:
    """The compare table as a DataFrame: the CSV's columns (and `completed` for groups), numbers as numbers."""
    import pandas as pd

    from dlexp.read.table import plain_records

    header, records = plain_records(t)
    frame = pd.DataFrame(records, columns=header)
    if t.groups is not None:
        frame.insert(header.index("n") + 1, "completed", [r["completed"] for r in t.records])
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").where(frame[column].map(_numeric), frame[column])
    return frame


def _verdict(rows: list[RunRow], t: Table) -> Verdict | None:
    from dlexp.read.table import verdict_for

    found: Evidence | None = verdict_for(t, rows, None)
    if found is None:
        return None
    return Verdict(
        metric=found.metric,
        best=found.best.label if found.best else None,
        runner_up=found.runner_up.label if found.runner_up else None,
        difference=found.difference,
        standard_error=found.standard_error,
        p_value=found.p,
        clear=found.clear,
        sentence=found.lines[0],
        lines=tuple(found.lines),
    )


def _figure(t: Table, band: str = "std", log_scale: bool = False) -> Figure:
    from dlexp.read import curves
    from dlexp.read.compare import BANDS

    if band not in BANDS:
        raise UsageError(f"band={band!r}: choose one of {', '.join(BANDS)}.")
    if t.groups is not None:
        return curves.draw_groups([r["_group"] for r in t.records], band, log_scale)
    return curves.draw_runs([r["_row"] for r in t.records], t.labels, log_scale)


def _figure_html(t: Table) -> str:
    try:
        fig = _figure(t)
    except UsageError:  # no run evaluated an epoch yet
        return ""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80, bbox_inches="tight")
    return f'<img src="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}"/>'


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str) or value.strip() != ""


def _status_html(status: str) -> str:
    from dlexp.read.runs import status_style

    colour = status_style(status).split()[-1]  # the colour of rich's style, as the terminal shows it
    return f'<span style="color:{html.escape(colour)}">{html.escape(status)}</span>'


def _refuse_flags(overrides: Sequence[str], what: str) -> None:
    """The API takes overrides; the command line's flags have their own functions."""
    for given in overrides:
        if not isinstance(given, str):
            raise UsageError(f"dlexp.{what} takes overrides as strings (key=value), not {given!r}.")
        if given.startswith("-"):
            instead = "dlexp.sweep(...) for a sweep" if given in ("-m", "--multirun") else "overrides (key=value)"
            raise UsageError(f"dlexp.{what} takes overrides, not the flag {given}: use {instead}.")


def _launch(argv: list[str], config_dir: str | Path | None) -> Any:
    from dlexp.config import app

    if config_dir is not None:
        argv = ["--config-dir", str(config_dir), *argv]
    with app.contained():
        return app.launch(argv)


def _resumed(path: Path, overrides: Sequence[str]) -> Any:
    from dlexp.config import app
    from dlexp.run.console import console

    with app.contained():
        code = app.resume(path, list(overrides), console())
    return app.Ended(code, path)


def _ended(kind: type[Run] | type[Sweep], ended: Any) -> Any:
    """The run or sweep a command wrote; Interrupted when a signal stopped it."""
    if ended.path is None:
        raise UsageError("nothing was run.")
    found = kind(Path(ended.path).absolute())
    if found.status in STOPPED:
        raise Interrupted(found)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
