"""`dlexp train` is a Hydra application: its command line goes to `hydra.main`, which calls `task` once per job.

Every run takes the same path, a single run as much as each job of a sweep under any launcher:

    hydra.main -> compose -> Preflight callback (every job checked before any starts)
               -> launcher -> task(cfg) -> train.run (build once, train, status.json) -> Outcome
               -> Summary callback (a sweep's table; the command's exit code)

Hydra re-raises what goes wrong (HYDRA_FULL_ERROR) and dlexp reports it in its own words: one sentence per
problem, exit code 2, nothing written.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from dlexp.read import runs
from dlexp.config import catalog, resolvers
from dlexp.config import compose as composer
from dlexp import ConfigError, DlexpError



MULTIRUN = "multirun.yaml"   # Hydra's record of a sweep, in its directory
SWEEP_RECORDS = (MULTIRUN, runs.LOCK)  # what a sweep directory holds before its first job: its record, its lock


class Outcome(float):
    """What a job returns: the objective a sweeper minimises (the final val/loss; inf unless the run completed),
    carrying the job's status, from which the command's exit code is decided."""

    def __new__(cls, value: float, status: str) -> "Outcome":
        outcome = super().__new__(cls, value)
        outcome.status = status
        return outcome

    def __getnewargs__(self):  # launchers that run jobs elsewhere pickle it back
        return float(self), self.status

    @classmethod
    def of(cls, status: str, metrics: dict[str, float]) -> "Outcome":
        return cls(metrics.get("val/loss", math.inf) if status == "completed" else math.inf, status)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)  # a pipe or a log file gets whole lines


def task(cfg: DictConfig) -> Outcome:
    """One Hydra job, whichever launcher runs it."""
    from dlexp.run import recipe as train

    started = prepare(cfg)
    if isinstance(started, Outcome):  # refused, or not started (its sweep was stopped)
        return started
    return Outcome.of(*train.complete(started))


def prepare(cfg: DictConfig, exp=None):
    """The job Hydra set up, started but not trained (`train.start`: its run directory, its build, its observers),
    or the Outcome of its refusal. `task` trains it at once; the vectorized launcher trains many started jobs
    together. `exp`: the job's experiment, already checked and built from this config by the launcher."""
    from hydra.core.hydra_config import HydraConfig

    from dlexp.run import resume, signals, recipe as train
    from dlexp.config.validate import check

    hc = HydraConfig.get()
    job = job_of(hc)
    console = _console()
    if job.sweep_dir is not None:
        signals.join_sweep(job.sweep_dir)
        if signals.stop_requested():  # the sweep was stopped: no new job starts (dlexp resume runs it later)
            discard(job.run_dir)
            return Outcome(math.inf, "not started")
    try:
        if exp is None and not prechecked(hc):  # a sweeper (Optuna) sampled values the pre-flight never saw
            check(cfg, job.choices)
        if composer.targets(hc.sweeper, "ResumeSweeper") and resume.started(job.run_dir):
            return resume.continue_job(cfg, job, console, exp=exp)
        return train.start(cfg, job, console, exp=exp)
    except ConfigError as err:
        return refuse(job, err, keep_record=hc.mode.name == "MULTIRUN")
    except DlexpError as err:  # a disk that takes nothing, a checkpoint that cannot be used: one sentence
        report_error(_console(stderr=True), err)
        return Outcome(math.inf, "failed")


def check_job(config: DictConfig):
    """A sweep job's composed config (with its hydra node) checked and built once, before anything of it is
    written: (its Experiment, []) or (None, its problems)."""
    from dlexp.config.validate import built, validate

    task_cfg = composer.without_hydra(config)
    problems = validate(task_cfg, composer.choices(config))
    return (None, problems) if problems else built(task_cfg)


def job_of(hc):
    """The job Hydra set up: where it writes, which overrides made it, the option chosen in each group."""
    from dlexp.run import recipe as train

    choices = {k: str(v) for k, v in hc.runtime.choices.items() if k in catalog.GROUPS}
    sweep = hc.mode.name == "MULTIRUN"
    # jobs of a parallel launcher (joblib, submitit, Ray) share a terminal: no bars or epoch lines, one line each
    parallel = sweep and not composer.targets(hc.launcher, "BasicLauncher")
    return train.Job(run_dir=Path(hc.runtime.output_dir), overrides=list(hc.overrides.task), choices=choices,
                     compact=parallel, sweep_dir=Path(hc.sweep.dir) if sweep else None,
                     num=int(hc.job.num) if sweep else None)


def prechecked(hc) -> bool:
    """Did the Preflight callback check this job? A single run and every job of the basic sweeper (or of a
    resumed sweep): yes."""
    return hc.mode.name == "RUN" or composer.targets(hc.sweeper, "BasicSweeper") \
        or composer.targets(hc.sweeper, "ResumeSweeper")


def refuse(job, err: ConfigError, keep_record: bool) -> Outcome:
    """A job whose configuration cannot run. A single run leaves nothing behind; a sweep job keeps a
    status.json saying why, so the sweep's table and exit code account for it."""
    from dlexp.run import record

    report(_console(stderr=True), err, prefix=" ".join(job.overrides) if keep_record else "")
    if keep_record:
        record.Run.refused(job.run_dir, job.overrides, job.choices, err.problems, sweep_job=job.num)
    else:
        discard(job.run_dir)
    return Outcome(math.inf, "refused")


def discard(run_dir: Path, records: tuple[str, ...] = (".hydra",)) -> None:
    """Remove a directory Hydra made and nothing else wrote to (a job's holding only its .hydra folder, a sweep's
    only multirun.yaml) and the empty folders above it, up to the working directory: that one and the folders
    above it stay, empty or not."""
    run_dir = Path(run_dir).absolute()
    cwd = Path.cwd()
    if run_dir.is_dir() and all(p.name in records for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in run_dir.parents:
            if parent == cwd or parent in cwd.parents:
                break
            try:
                parent.rmdir()  # only succeeds while empty
            except OSError:
                break


def report(console, err: ConfigError, prefix: str = "") -> None:
    from rich.markup import escape  # a problem names a sweep job as [key=value]: text, not a style

    head = f"[bold red]configuration error{' in ' + escape(prefix) if prefix else ''}:[/]"
    if len(err.problems) == 1:
        console.print(f"{head} {escape(err.problems[0])}", soft_wrap=True)
    else:
        console.print(head)
        for problem in err.problems:
            console.print(f"  - {escape(problem)}", soft_wrap=True)


def report_error(console, err: DlexpError) -> int:
    """A DlexpError for the user: its sentence(s), no traceback; returns its exit code."""
    if isinstance(err, ConfigError):
        report(console, err)
    else:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
    return err.exit_code


def train_command(argv: list[str]) -> int:
    """`dlexp train ARGS`: run the Hydra application; returns the exit code.

    The console script calls this without building typer's command tree (0.2 s of pydantic for one argument
    list that goes to Hydra untouched anyway); `dlexp train --help` still goes through typer.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        composer.parse_command_line(argv)  # an unknown flag or an unreadable override: one sentence, before Hydra
        run_hydra(argv)
    except SystemExit as done:  # the Summary callback ends the command with its exit code; Hydra's --help too
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except DlexpError as err:
        return report_error(_console(stderr=True), err)
    except (HydraException, OmegaConfBaseException) as err:  # Hydra could not compose: say what, all of it
        from dlexp.config.callbacks import Preflight

        if Preflight.sweep_dir is not None:  # a sweeper that composes its jobs after writing its record
            discard(Preflight.sweep_dir, records=SWEEP_RECORDS)
        return report_error(_console(stderr=True), diagnose(argv, err))
    except OSError as err:  # Hydra writing its own record (.hydra/) on a full disk (after: a missing config is one)
        from dlexp.config.callbacks import Preflight
        from dlexp import StorageError, cannot_write

        where = Preflight.run_dir or "the run directory"
        return report_error(_console(stderr=True), StorageError(cannot_write(err, where) + "."))
    except Exception as err:  # a sweep's launcher failing (a worker the system killed): a sentence and the summary
        from dlexp.config.callbacks import launcher_failed

        code = launcher_failed(err)
        if code is None:
            raise
        return code
    return 0


def run_hydra(argv: list[str]) -> None:
    """The Hydra application on this command line (multirun, --cfg, --config-dir, launchers, sweepers)."""
    import hydra

    resolvers.register()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing a stack: dlexp reports it
    saved = sys.argv
    sys.argv = ["dlexp", *argv]
    try:
        hydra.main(config_path=str(catalog.conf_dir()), config_name="config", version_base="1.3")(task)()
    finally:
        sys.argv = saved


def diagnose(argv: list[str], err: Exception) -> ConfigError:
    """Every problem of a command line Hydra could not compose (Hydra stops at the first one)."""
    from dlexp.config.preflight import check_jobs

    inv = composer.parse_command_line(argv)
    jobs = composer.sweep_jobs(inv.overrides) if inv.multirun else [inv.overrides]
    try:
        with composer.standalone(inv.config_dirs, inv.config_name) as session:
            check_jobs(jobs, session, dry_build=False)
    except ConfigError as found:
        return found
    return ConfigError(composer.first_sentence(err))
