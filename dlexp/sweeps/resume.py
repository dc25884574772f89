"""`dlexp resume SWEEP_DIR`: finish a sweep stopped by Ctrl-C, SIGTERM or a crash.

The sweep's own record says how it was launched: multirun.yaml (written by Hydra when the sweep started) holds the
command line's overrides, the Hydra overrides (the launcher and its settings: hydra/launcher=joblib,
hydra.launcher.n_jobs=2), the --config-dir folders and the working directory. Each job's status.json says how the
job ended and its job number. The sweep then runs again as `dlexp train -m` with the same overrides, in the same
directory, through the same launcher, with one difference: the `resume` sweeper (hydra_plugins/dlexp_sweepers)
launches only the unfinished jobs, under their own numbers. In each of them the task continues a job that had
started from its checkpoint, and runs one that had not. Finished jobs (completed, diverged, failed, refused) are
never touched: no process opens their files.

What a launcher does to take part in stopping and resuming sweeps (Hydra's basic and joblib launchers do it
through `app.task`; a launcher that trains jobs its own way, many at once in one process say, does the same):
  * numbering: job k of `launch(overrides, initial_job_idx)` is job number initial_job_idx + k (hydra.job.num),
    the way Hydra's launchers number them: a resumed sweep calls `launch` once per run of consecutive numbers;
  * stopping: before starting a job, `signals.stop_requested()` (after `signals.join_sweep(sweep_dir)`): a
    stopped sweep starts no job, and a job not started leaves no status.json (`app.discard` its directory);
    while training, a job stops when `stop_on_signals` sets its state's `stop` or when `stop_requested()` says
    so (`signals.SweepStop` reads it once a second), and ends as recipe.run ends it (a checkpoint, the status);
  * records: each job is a run directory like any other: `record.Run.create(..., sweep_job=number)` (its lock,
    its number), the observers of `build.observers(..., record=...)` (checkpoints by time, the heartbeat, the
    guard), `train.end`;
  * resuming: a job whose directory holds a status.json is continued (`resume.started`, `resume.continue_job`:
    the checkpoint, `check_same_run`, `recipe.run(resume=...)`), one without starts afresh.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlexp import UsageError
from dlexp.config import compose
from dlexp.read import runs


def is_sweep(path: Path) -> bool:
    return (Path(path) / runs.MULTIRUN).is_file()


def search_sweeper(path: Path) -> DictConfig | None:
    """The sweeper of a search (Optuna) whose jobs are in `path`, read from a job's Hydra record: such a sweep
    writes no multirun.yaml. None when `path` is not one."""
    if (Path(path) / runs.STATUS).is_file():  # a run
        return None
    for hydra_yaml in sorted(Path(path).glob("*/.hydra/hydra.yaml"))[:1]:
        sweeper = OmegaConf.load(hydra_yaml).hydra.get("sweeper")
        if isinstance(sweeper, DictConfig) and compose.targets(sweeper, "OptunaSweeper"):
            return sweeper
    return None


def not_resumable(sweep_dir: Path, sweeper: DictConfig) -> UsageError:
    """Why a search cannot be resumed, and what to do instead."""
    kept = "kept them in memory only" if sweeper.get("storage") is None else f"keeps them in {sweeper.storage}"
    return UsageError(
        f"{sweep_dir} is an Optuna search, which cannot be resumed: Optuna picks each trial from the results "
        f"of those before and {kept}, not in the sweep; run the search again (its sampler seed proposes the "
        "same trials), or continue one stopped trial with dlexp resume RUN_DIR."
    )


def plan(sweep_dir: Path, count: int) -> dict[int, tuple[str, Path | None]]:
    """Job number -> (how it stands: a run status, or "not started"; its directory)."""
    found: dict[int, tuple[str, Path | None]] = dict.fromkeys(range(count), ("not started", None))
    for path in runs.find_runs(sweep_dir):
        status = runs.read_status(path)
        number = runs.job_number(path, status)
        if number is not None and number in found:
            found[number] = (status.get("status", "failed"), path)
    return found


def recorded(sweep_dir: Path) -> DictConfig:
    record = OmegaConf.load(Path(sweep_dir) / runs.MULTIRUN)
    if not isinstance(record, DictConfig):
        raise UsageError(f"{Path(sweep_dir) / runs.MULTIRUN} is not a sweep's record: it holds a list.")
    sweeper = record.hydra.sweeper
    if compose.targets(sweeper, "OptunaSweeper"):
        raise not_resumable(sweep_dir, sweeper)
    if not compose.targets(sweeper, "BasicSweeper"):
        raise UsageError(
            f"{sweep_dir} was made by {sweeper.get('_target_')}; dlexp resume finishes sweeps that list "
            "their values (dlexp train -m a=1,2,3), whose jobs are known in advance."
        )
    return record


def command_line(sweep_dir: Path, record: DictConfig, jobs: list[int]) -> list[str]:
    """The sweep's own `dlexp train -m` arguments, in its directory, with the resume sweeper over `jobs`."""
    hydra = record.hydra
    own = ("hydra.mode=", "hydra.sweep.dir=", "hydra/sweeper=", "hydra.sweeper.")
    kept = [o for o in hydra.overrides.hydra if not str(o).startswith(own)]
    dirs = [
        s.path[len("file://") :]
        for s in hydra.runtime.config_sources
        if s.provider == "command-line" and str(s.path).startswith("file://")
    ]
    quoted = "'" + str(Path(sweep_dir).resolve()).replace("'", "\\'") + "'"
    return [
        "-m",
        *(f for d in dirs for f in ("--config-dir", d)),
        *hydra.overrides.task,
        *kept,
        f"hydra.sweep.dir={quoted}",
        "hydra/sweeper=resume",
        f"hydra.sweeper.jobs=[{','.join(map(str, jobs))}]",
    ]


def finished(sweep_dir: Path, console: Any) -> None:
    """A sweep whose jobs have all finished but which was stopped after the last of them, before or while it wrote
    its summary: its stop is forgotten and its summary written, as at the end of a sweep never stopped. A sweep
    whose summary was written whole is left as it is."""
    from dlexp import DlexpError
    from dlexp.run import signals
    from dlexp.sweeps import summary

    if not signals.stop_requested(sweep_dir) and (sweep_dir / summary.SUMMARY_MD).is_file():
        return
    signals.clear(sweep_dir)
    try:
        written = summary.write_summary(sweep_dir)
    except DlexpError as err:
        console.print(f"no sweep summary: {err}", highlight=False, soft_wrap=True)
        return
    if written:
        console.print(f"summary:  {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)


def register_sweeper() -> None:
    """Hydra finds plugins by listing the hydra_plugins package, which an editable install (pip install -e)
    hides behind an import hook; registering the class itself works in every install."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.dlexp_sweepers.resume_sweeper import ResumeSweeper

    Plugins.instance().register(ResumeSweeper)


def command(sweep_dir: Path, overrides: list[str], console) -> tuple[list[str], Path] | None:
    """The `dlexp train` command line that finishes a stopped sweep, and the folder to run it from (the sweep's
    own working directory: relative paths in its overrides, data.root=..., mean what they meant); None when every
    job has finished (said on `console`). The sweep's STOP file goes; the resume sweeper is made known to Hydra."""
    from dlexp.run import signals

    sweep_dir = Path(sweep_dir)
    if overrides:
        raise UsageError(
            f"dlexp resume of a sweep takes no overrides ({' '.join(overrides)}); to extend one of its "
            "runs: dlexp resume RUN_DIR trainer.epochs=N."
        )
    if runs.locked(sweep_dir):
        raise UsageError(
            f"the sweep {sweep_dir} is being run by {runs.holder(sweep_dir)}; wait for it to end, or "
            "stop it (Ctrl-C) and resume it then."
        )
    record = recorded(sweep_dir)
    jobs = compose.sweep_jobs(list(record.hydra.overrides.task), compose.sweeper_params(record.hydra.sweeper))
    standing = plan(sweep_dir, len(jobs))
    alive = [path for status, path in standing.values() if status == "running"]
    if alive:
        raise UsageError(
            f"{alive[0]} is being written by a live process; a run has one writer at a time: wait for "
            "it to end, or stop it and resume the sweep then."
        )
    todo = [n for n, (status, _) in standing.items() if status not in runs.FINISHED]
    counts = ", ".join(f"{n} {s}" for s, n in Counter(s for s, _ in standing.values()).items())
    if not todo:
        console.print(
            f"{sweep_dir}: every one of its {len(jobs)} jobs has finished ({counts}): nothing to do.",
            highlight=False,
            soft_wrap=True,
        )
        finished(sweep_dir, console)
        return None
    console.print(
        f"resuming the sweep {sweep_dir}: {counts}; running {len(todo)} of {len(jobs)} jobs "
        f"({', '.join(map(str, todo))})",
        highlight=False,
        soft_wrap=True,
    )
    signals.clear(sweep_dir)
    register_sweeper()
    cwd = Path(str(record.hydra.runtime.cwd))
    return command_line(sweep_dir, record, todo), cwd if cwd.is_dir() else Path.cwd()
