"""The end of a sweep: what happened to each job, read from disk, its table (summary.csv, summary.md), the groups of
seeds as TensorBoard runs, the columns of its HParams table, and the sweep's exit code.

It runs in the process that launched the sweep, once all jobs are done (or the sweep was stopped), whichever
launcher ran them (basic: in this process; joblib, submitit, Ray: elsewhere). So it learns what happened from the
run directories on disk, never from memory, and returns the exit code of its most serious outcome.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlexp import DlexpError
from dlexp.observe import hparams
from dlexp.read import evidence, runs
from dlexp.read.rows import load_run, run_order
from dlexp.read.table import Table, build_table, render, to_csv, to_markdown, verdict_for
from dlexp.run import faults, signals
from dlexp.run.console import console as make_console


def report(sweep_dir: Path, config: DictConfig | None) -> int:
    """What happened to each job, read from disk; returns the sweep's exit code. `config` (the sweep's, with
    its hydra node) tells how many jobs were planned; None when that is not known."""
    console = make_console()
    jobs = sorted(((path, runs.read_status(path)) for path in runs.find_runs(sweep_dir)), key=_job_order)
    statuses = [status.get("status", "failed") for _, status in jobs]
    stopped = signals.stop_requested(sweep_dir)
    planned = planned_jobs(config) if config is not None else 0
    missing = planned - len(jobs) if planned else 0
    if stopped:
        console.print(
            f"[bold]sweep stopped ({stopped}):[/] {_counts(jobs)}"
            f"{f', {missing} not started' if missing > 0 else ''} in {sweep_dir}"
        )
    else:
        console.print(
            f"[bold]sweep {'ended' if missing > 0 else 'finished'}:[/] {_counts(jobs)}"
            f"{f', {missing} not started' if missing > 0 else ''} in {sweep_dir}"
        )
    compact = len(jobs) > COMPACT_JOBS
    for path, status in jobs:  # a big sweep: only the jobs that did not complete, its table follows
        if not compact or status.get("status", "failed") != "completed":
            console.print(f"  {_status_text(status)}  {path.name}")
    faults.point("summary")
    if jobs:
        _summary(sweep_dir, console, table=compact)
    best = best_trial(sweep_dir)
    if best:
        console.print(f"[bold]best trial:[/] {best}")
    if planned and (stopped or missing > 0 or any(s in runs.CONTINUABLE for s in statuses)):
        console.print(f"continue it: dlexp resume {sweep_dir}")  # (a sampling sweeper's cannot be resumed)
    return exit_code(sweep_dir, config)


def exit_code(sweep_dir: Path, config: DictConfig | None) -> int:
    """The sweep's exit code, from disk: its most serious outcome among its jobs' statuses, its stop (130 / 143)
    and the jobs planned that never started (as crashed)."""
    statuses = [runs.read_status(path).get("status", "failed") for path in runs.find_runs(sweep_dir)]
    stopped = signals.stop_requested(sweep_dir)
    missing = (planned_jobs(config) - len(statuses)) if config is not None else 0
    return runs.worst_exit_code(statuses + ([stopped] if stopped else []) + (["crashed"] if missing > 0 else []))


def _summary(sweep_dir: Path, console, table: bool = False) -> None:
    """The sweep's summary written, and where it is; with `table`, its table printed first (as `dlexp compare`)."""
    try:
        written, t, notes = summarize(sweep_dir)
    except DlexpError as err:  # a summary that cannot be written must not hide the sweep's results
        console.print(f"[yellow]no sweep summary:[/] {err}")
        return
    if table and t is not None:
        if t.groups is None:
            title = f"{len(t.records)} runs"
        else:
            title = (
                f"{sum(len(g.runs) for g in t.groups)} runs in {len(t.groups)} group{'s' if len(t.groups) != 1 else ''}"
            )
        render(console, t, title)
        for line in notes:
            console.print(line, highlight=False, soft_wrap=True)
    if written:
        console.print(f"[bold]summary:[/]  {', '.join(str(p) for p in written)}")
    console.print(f"compare:  dlexp compare {sweep_dir}")
    console.print(f"view it:  dlexp board {sweep_dir}")


OPTUNA_RESULTS = "optimization_results.yaml"  # written into the sweep directory by hydra-optuna-sweeper


SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
COMPACT_JOBS = 20  # past this many jobs, the end of a sweep prints its table (as dlexp compare), not a line a job


def write_summary(sweep_dir: Path) -> list[Path]:
    """summary.csv and summary.md of the compare table in the sweep directory (for the end of a multirun); when
    the sweep varies the seed, the grouped table with its verdict, and one TensorBoard run per group under
    <sweep>/aggregate/; and the columns of the sweep's TensorBoard HParams table (what it varies, status, the key
    metrics)."""
    return summarize(sweep_dir)[0]


def summarize(sweep_dir: Path) -> tuple[list[Path], Table | None, list[str]]:
    """`write_summary`, and the table it wrote with the lines of its verdict (None, []: no run)."""
    sweep_dir = Path(sweep_dir)
    run_dirs = runs.find_runs(sweep_dir) if sweep_dir.exists() else []
    if not run_dirs:
        return [], None, []
    rows = sorted((load_run(p) for p in run_dirs), key=run_order)
    t = build_table(rows)
    found = verdict_for(t, rows, None)
    notes = found.lines if found else []
    written = [to_csv(sweep_dir / SUMMARY_CSV, t), to_markdown(sweep_dir / SUMMARY_MD, t, notes)]
    if t.groups is not None:
        aggregates = evidence.write_aggregates(sweep_dir, t.groups)
        if aggregates:
            written.append(sweep_dir / evidence.AGGREGATE_DIR)
    if not signals.stop_requested(sweep_dir):  # a stopped sweep gets its columns when `dlexp resume` finishes it
        hparams.write_sweep_columns(rows, evidence.differing_overrides(rows))
    return written, t, notes


def launcher_failed(err: Exception, console) -> int | None:
    """The launcher of the sweep this process launches failed (a worker killed by the system: joblib's
    TerminatedWorkerError): one sentence on `console`, then the sweep's summary from disk. None if no sweep is
    launched here."""
    from dlexp.config.compose import first_sentence

    sweep_dir = signals.watched_sweep()
    if sweep_dir is None:
        return None
    signals.unwatch_sweep()
    console.print(
        f"[bold red]error:[/] the sweep's launcher stopped: {type(err).__name__}: {first_sentence(err)}", soft_wrap=True
    )
    record = sweep_dir / runs.MULTIRUN  # Hydra's record of the sweep: how many jobs it has
    loaded = OmegaConf.load(record) if record.is_file() else None
    config = loaded if isinstance(loaded, DictConfig) else None
    if config is not None:
        config.hydra.sweep.dir = str(sweep_dir)
    return report(sweep_dir, config) or 1


def planned_jobs(config: DictConfig) -> int:
    """How many jobs the sweep has (0 when a sampling sweeper such as Optuna decides as it goes)."""
    from dlexp.config import compose

    sweeper = OmegaConf.select(config, "hydra.sweeper")
    if sweeper is None or not (compose.targets(sweeper, "BasicSweeper") or compose.targets(sweeper, "ResumeSweeper")):
        return 0
    return len(compose.sweep_jobs(list(config.hydra.overrides.task), compose.sweeper_params(sweeper)))


def _job_order(job: tuple[Path, dict]) -> tuple[int, str]:
    """Job number first (status.json keeps it), so job 10 comes after job 9."""
    path, status = job
    num = runs.job_number(path, status)
    return (num if num is not None else 1 << 30, path.name)


def _counts(jobs: list[tuple[Path, dict]]) -> str:
    """'3 runs (2 completed, 1 diverged)'."""
    counts = Counter(status.get("status", "failed") for _, status in jobs)
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    return f"{len(jobs)} run{'s' if len(jobs) != 1 else ''}" + (f" ({parts})" if parts else "")


def _status_text(status: dict) -> str:
    name = status.get("status", "failed")
    colour = runs.status_style(name)
    loss = (status.get("metrics") or {}).get("val/loss")
    shown = f"val/loss {loss:<10.4g}" if isinstance(loss, (int, float)) else f"{'':19}"
    return f"[{colour}]{name:<11}[/] {shown}"


def best_trial(sweep_dir: Path) -> str | None:
    """'val/loss 0.0812 with optimizer=adam optimizer.lr=0.003' from an Optuna sweep's results file, else None."""
    import yaml

    path = Path(sweep_dir) / OPTUNA_RESULTS
    if not path.exists():
        return None
    results = yaml.safe_load(path.read_text()) or {}
    params = " ".join(f"{k}={_fmt(v)}" for k, v in (results.get("best_params") or {}).items())
    if "best_value" in results:
        return f"val/loss {_fmt(results['best_value'])} with {params or '(no parameters)'}  ({path})"
    solutions = results.get("solutions") or []  # several objectives: a Pareto front instead of one best
    return f"{len(solutions)} Pareto-optimal trials in {path}" if solutions else None


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
