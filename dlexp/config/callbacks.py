"""Hydra callbacks (registered under `hydra.callbacks` in conf/config.yaml): dlexp's part of Hydra's run.

`Preflight` checks every job before any starts. `SweepStops` makes Ctrl-C / SIGTERM stop the whole sweep and keeps
one launching process per sweep. `Summary` runs in the process that launched the command, once all jobs are done
(or the sweep was stopped), whichever launcher ran them (basic: in this process; joblib, submitit, Ray:
elsewhere). So it learns what happened from the run directories on disk, never from memory, and ends the command
with the exit code of its most serious outcome. `ForkedWorkers` makes joblib's workers start with torch loaded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

OPTUNA_RESULTS = "optimization_results.yaml"  # written into the sweep directory by hydra-optuna-sweeper


class Preflight(Callback):
    """Every job checked before any starts: one sentence per problem of every job, exit code 2, nothing written.

    Hydra turns an exception raised by a callback into a warning and goes on, so a refusal ends the command
    itself: it reports the problems and exits. A launcher that checks its jobs itself (hydra/launcher=vectorized)
    does so after Hydra's sweeper has created the sweep directory: `sweep_dir` says which, so that a sweep refused
    then leaves nothing behind.

    `sweep` is what the jobs share and vary (dlexp/config/resolvers.py `sweep`), resolved from the sweep's command
    line when Hydra builds the callbacks, before any job is composed: each job names its directory by it.
    """

    # the single run's directory, to name it when Hydra cannot write its own record there (its OSError names no file)
    run_dir: Path | None = None
    sweep_dir: Path | None = None

    def __init__(self, sweep: dict | None = None):
        self.sweep = sweep or {}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlexp.config.preflight import check_run

        _refuse_on_problems(check_run, config)
        Preflight.run_dir = Path(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        from dlexp.config.preflight import check_sweep

        Preflight.sweep_dir = Path(str(config.hydra.sweep.dir))
        _refuse_on_problems(check_sweep, config, config_name)


def _refuse_on_problems(check, *args) -> None:
    from dlexp.config.app import _console, report
    from dlexp import ConfigError

    try:
        check(*args)
    except ConfigError as err:
        report(_console(stderr=True), err)
        raise SystemExit(err.exit_code) from None


class SweepStops(Callback):
    """From the moment the jobs have been checked to the summary, the launching process holds the sweep's lock
    (one launching process per sweep: `dlexp resume` of a sweep still running is refused) and Ctrl-C / SIGTERM
    stop the sweep instead of the process: running jobs checkpoint, no new job starts, the summary is written
    (dlexp.run.signals). Registered after Preflight: a sweep refused there writes nothing."""

    def __init__(self) -> None:
        self.lock = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlexp.read import runs
        from dlexp.run import record, signals
        from dlexp.config.app import _console

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            self.lock = record.hold(sweep_dir)
        except record.Busy:
            _console(stderr=True).print(f"[bold red]error:[/] the sweep {sweep_dir} is being run by "
                                        f"{runs.holder(sweep_dir)}; wait for it to end, or stop it first.")
            raise SystemExit(2) from None
        signals.watch_sweep(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from dlexp.run import record, signals

        signals.unwatch_sweep()  # notified before the Summary: a Ctrl-C while it writes ends the command
        record.release(self.lock)
        self.lock = None


class ForkedWorkers(Callback):
    """Joblib's workers start as forks of the launching process instead of fresh interpreters.

    A fresh worker spends 3-4 s importing torch (and torch._dynamo, which the first optimizer step loads)
    before its first job; the launching process has already loaded both to check every job, so a fork starts
    ready. Forking is safe here because that process has only ever computed with one thread (build.assemble's
    dry build): a child of a process whose OpenMP thread pool is running can hang in its first parallel op.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import sys

        target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if not target.endswith("JoblibLauncher") or sys.platform == "win32":
            return
        import warnings

        from joblib.externals.loky.backend.context import set_start_method

        set_start_method("fork", force=True)
        # loky warns because forking a process that runs threads is unsafe; its workers are forked when the
        # executor starts, before its own threads, from a process that has none of its own
        warnings.filterwarnings("ignore", message="`fork` start method should not be used", category=UserWarning)


class OwnLaunchers(Callback):
    """dlexp's own launchers (hydra_plugins/dlexp_launchers: hydra/launcher=ray) registered with Hydra by name.

    Hydra finds launchers by listing the `hydra_plugins` namespace package. An installed wheel can be listed; an
    editable install (`pip install -e`, setuptools >= 64) cannot: its modules import, but are not listed.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if target.startswith("hydra_plugins.dlexp_launchers."):
            from hydra.core.plugins import Plugins
            from hydra.utils import get_class

            Plugins.instance().register(get_class(target))


class Summary(Callback):
    """The end of a command: a sweep's one line per job, its table (CSV and Markdown) and best Optuna trial; and
    the exit code, from the single run's outcome or the most serious status among the sweep's jobs.

    Registered first in config.yaml, so that Hydra, which notifies end events in reverse order, calls it last.
    """

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        from dlexp.read.runs import EXIT_CODES

        if job_return is not None and job_return.status == JobStatus.COMPLETED:  # else Hydra re-raises the error
            code = EXIT_CODES.get(getattr(job_return.return_value, "status", "failed"), 1)
            if code:
                raise SystemExit(code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        code = self.report(Path(str(config.hydra.sweep.dir)), config)
        if code:
            raise SystemExit(code)

    def report(self, sweep_dir: Path, config: DictConfig | None) -> int:
        """What happened to each job, read from disk; returns the sweep's exit code. `config` (the sweep's, with
        its hydra node) tells how many jobs were planned; None when that is not known."""
        from rich.console import Console

        from dlexp.read import runs
        from dlexp.run import signals

        console = Console(highlight=False, soft_wrap=True)
        jobs = sorted(((path, runs.read_status(path)) for path in runs.find_runs(sweep_dir)), key=_job_order)
        statuses = [status.get("status", "failed") for _, status in jobs]
        stopped = signals.stop_requested(sweep_dir)
        planned = planned_jobs(config) if config is not None else 0
        missing = planned - len(jobs) if planned else 0
        if stopped:
            console.print(f"[bold]sweep stopped ({stopped}):[/] {_counts(jobs)}"
                          f"{f', {missing} not started' if missing > 0 else ''} in {sweep_dir}")
        else:
            console.print(f"[bold]sweep {'ended' if missing > 0 else 'finished'}:[/] {_counts(jobs)}"
                          f"{f', {missing} not started' if missing > 0 else ''} in {sweep_dir}")
        for path, status in jobs:
            console.print(f"  {_status_text(status)}  {path.name}")
        if jobs:
            self._summary(sweep_dir, console)
        best = best_trial(sweep_dir)
        if best:
            console.print(f"[bold]best trial:[/] {best}")
        if planned and (stopped or missing > 0 or any(s in runs.CONTINUABLE for s in statuses)):
            console.print(f"continue it: dlexp resume {sweep_dir}")  # (a sampling sweeper's cannot be resumed)
        return runs.worst_exit_code(statuses + ([stopped] if stopped else []) + (["crashed"] if missing > 0 else []))

    @staticmethod
    def _summary(sweep_dir: Path, console) -> None:
        from dlexp.read import compare
        from dlexp import DlexpError

        try:
            written = compare.write_summary(sweep_dir)
        except DlexpError as err:  # a summary that cannot be written must not hide the sweep's results
            console.print(f"[yellow]no sweep summary:[/] {err}")
            return
        if written:
            console.print(f"[bold]summary:[/]  {', '.join(str(p) for p in written)}")
        console.print(f"compare:  dlexp compare {sweep_dir}")
        console.print(f"view it:  dlexp board {sweep_dir}")


def launcher_failed(err: Exception) -> int | None:
    """The launcher of the sweep this process launches failed (a worker killed by the system: joblib's
    TerminatedWorkerError): one sentence, then the sweep's summary from disk. None if no sweep is launched here."""
    from dlexp.run import signals
    from dlexp.config.app import _console
    from dlexp.config.compose import first_sentence

    sweep_dir = signals.watched_sweep()
    if sweep_dir is None:
        return None
    signals.unwatch_sweep()
    _console(stderr=True).print(f"[bold red]error:[/] the sweep's launcher stopped: {type(err).__name__}: "
                                f"{first_sentence(err)}", soft_wrap=True)
    record = sweep_dir / "multirun.yaml"  # Hydra's record of the sweep: how many jobs it has
    config = OmegaConf.load(record) if record.is_file() else None
    if config is not None:
        config.hydra.sweep.dir = str(sweep_dir)
    return Summary().report(sweep_dir, config) or 1


def planned_jobs(config: DictConfig) -> int:
    """How many jobs the sweep has (0 when a sampling sweeper such as Optuna decides as it goes)."""
    from dlexp.config import compose as composer

    sweeper = OmegaConf.select(config, "hydra.sweeper")
    if sweeper is None or not (composer.targets(sweeper, "BasicSweeper") or composer.targets(sweeper, "ResumeSweeper")):
        return 0
    return len(composer.sweep_jobs(list(config.hydra.overrides.task), composer.sweeper_params(sweeper)))


def _job_order(job: tuple[Path, dict]) -> tuple[int, str]:
    """Job number first (status.json keeps it), so job 10 comes after job 9."""
    from dlexp.read.runs import job_number

    path, status = job
    num = job_number(path, status)
    return (num if num is not None else 1 << 30, path.name)


def _counts(jobs: list[tuple[Path, dict]]) -> str:
    """'3 runs (2 completed, 1 diverged)'."""
    counts = Counter(status.get("status", "failed") for _, status in jobs)
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    return f"{len(jobs)} run{'s' if len(jobs) != 1 else ''}" + (f" ({parts})" if parts else "")


def _status_text(status: dict) -> str:
    from dlexp.read.runs import status_style

    name = status.get("status", "failed")
    colour = status_style(name)
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
