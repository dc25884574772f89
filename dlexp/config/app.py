"""`dlexp train` is a Hydra application: its command line goes to `hydra.main`, which calls `task` once per job.

Every run takes the same path, a single run as much as each job of a sweep under any launcher:

    hydra.main -> compose -> Preflight callback (every job checked before any starts)
               -> launcher -> task(cfg) -> train.run (build once, train, status.json) -> Outcome
               -> Summary callback (a sweep's table; the command's exit code)

Hydra re-raises what goes wrong (HYDRA_FULL_ERROR) and dlexp reports it in its own words: one sentence per
problem, exit code 2, nothing written.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig

from dlexp import ConfigError, DlexpError
from dlexp.config import catalog, compose, resolvers
from dlexp.read.runs import SWEEP_RECORDS
from dlexp.run.console import console, report


class Outcome(float):
    """What a job returns: the objective a sweeper minimises (the final val/loss; inf unless the run completed),
    carrying the job's status, from which the command's exit code is decided."""

    status: str

    def __new__(cls, value: float, status: str) -> Outcome:
        outcome = super().__new__(cls, value)
        outcome.status = status
        return outcome

    def __getnewargs__(self):  # launchers that run jobs elsewhere pickle it back
        return float(self), self.status

    @classmethod
    def of(cls, status: str, metrics: dict[str, float]) -> Outcome:
        return cls(metrics.get("val/loss", math.inf) if status == "completed" else math.inf, status)


def task(cfg: DictConfig) -> Outcome:
    """One Hydra job, whichever launcher runs it."""
    from dlexp.run import recipe

    started = start_job(cfg)
    if isinstance(started, Outcome):  # refused, or not started (its sweep was stopped)
        return started
    return Outcome.of(*recipe.complete(started))


def start_job(cfg: DictConfig, exp=None):
    """The job Hydra set up, started but not trained (`recipe.start`: its run directory, its build, its
    observers), or the Outcome of its refusal. `task` trains it at once; the vectorized launcher trains many started
    jobs together. `exp`: the job's experiment, already checked and built from this config by the launcher."""
    from hydra.core.hydra_config import HydraConfig

    from dlexp.config import preflight
    from dlexp.run import recipe, resume, signals

    hc = HydraConfig.get()
    job = job_of(hc)
    if job.sweep_dir is not None:
        signals.join_sweep(job.sweep_dir)
        if signals.stop_requested():  # the sweep was stopped: no new job starts (dlexp resume runs it later)
            discard(job.run_dir)
            return Outcome(math.inf, "not started")
    try:
        if exp is None and not prechecked(hc):  # a sweeper (Optuna) sampled values the pre-flight never saw
            preflight.check(cfg, job.choices)
        if compose.targets(hc.sweeper, "ResumeSweeper") and resume.started(job.run_dir):
            return resume.continue_job(cfg, job, console(), exp=exp)
        return recipe.start(cfg, job, console(), exp=exp)
    except ConfigError as err:
        return refuse(job, err, keep_record=hc.mode == RunMode.MULTIRUN)
    except DlexpError as err:  # a disk that takes nothing, a checkpoint that cannot be used: one sentence
        report(console(stderr=True), err)
        return Outcome(math.inf, "failed")


def job_of(hc):
    """The job Hydra set up: where it writes, which overrides made it, the option chosen in each group."""
    from dlexp.run import recipe

    choices = {k: str(v) for k, v in hc.runtime.choices.items() if k in catalog.GROUPS}
    sweep = hc.mode.name == "MULTIRUN"
    # jobs of a parallel launcher (joblib, submitit, Ray) share a terminal: no bars or epoch lines, one line each
    parallel = sweep and not compose.targets(hc.launcher, "BasicLauncher")
    return recipe.Job(
        run_dir=Path(hc.runtime.output_dir),
        overrides=list(hc.overrides.task),
        choices=choices,
        compact=parallel,
        sweep_dir=Path(hc.sweep.dir) if sweep else None,
        num=int(hc.job.num) if sweep else None,
    )


def prechecked(hc) -> bool:
    """Did the Preflight callback check this job? A single run and every job of the basic sweeper (or of a
    resumed sweep): yes."""
    return (
        hc.mode.name == "RUN"
        or compose.targets(hc.sweeper, "BasicSweeper")
        or compose.targets(hc.sweeper, "ResumeSweeper")
    )


def refuse(job, err: ConfigError, keep_record: bool) -> Outcome:
    """A job whose configuration cannot run. A single run leaves nothing behind; a sweep job keeps a
    status.json saying why, so the sweep's table and exit code account for it."""
    from dlexp.run import record

    report(console(stderr=True), err, prefix=" ".join(job.overrides) if keep_record else "")
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


def train(argv: list[str]) -> int:
    """`dlexp train ARGS` (and a sweep's resume): the Hydra application on this command line; returns the command's
    exit code, from its runs' statuses. What keeps it from running at all is raised as a DlexpError, every
    problem in it (ConfigError: exit code 2, nothing written)."""
    return launch(argv).code


@dataclass
class Ended:
    """What a command that ran left: its exit code, and the directory it wrote (the single run's or the sweep's;
    None for what writes nothing: --cfg, --help)."""

    code: int
    path: Path | None = None


def launch(argv: list[str]) -> Ended:
    """`train`, also saying where the command wrote (the Python API reads the run or sweep back from there)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlexp import StorageError, cannot_write
    from dlexp.config import preflight
    from dlexp.config.callbacks import Finished
    from dlexp.config.preflight import Refused
    from dlexp.run import signals
    from dlexp.sweeps import summary

    compose.parse_command_line(argv)  # an unknown flag or an unreadable override: one sentence, before Hydra
    try:
        run_hydra(argv)
    except Finished as end:  # the Summary callback ends the command with its exit code
        return Ended(end.code, end.path)
    except SystemExit as done:  # Hydra's --help, --info
        return Ended(done.code if isinstance(done.code, int) else (0 if done.code is None else 1))
    except Refused as refusal:  # a callback refused the command before anything was written
        raise refusal.error from None
    except (HydraException, OmegaConfBaseException) as err:  # Hydra could not compose: say what, all of it
        sweep_dir = signals.watched_sweep()  # a sweeper that composes its jobs after writing its record
        if sweep_dir is not None:
            signals.unwatch_sweep()
            discard(sweep_dir, records=SWEEP_RECORDS)
        raise diagnose(argv, err) from None
    except OSError as err:  # Hydra writing its own record (.hydra/) on a full disk (after: a missing config is one)
        raise StorageError(cannot_write(err, preflight.checked_run_dir() or "the run directory") + ".") from None
    except DlexpError:
        raise
    except Exception as err:  # a sweep's launcher failing (a worker the system killed): a sentence and the summary
        sweep_dir = signals.watched_sweep()
        code = summary.launcher_failed(err, console(stderr=True))
        if code is None:
            raise
        return Ended(code, sweep_dir)
    return Ended(0)


def resume(path: Path, overrides: list[str], out) -> int:
    """`dlexp resume PATH`: a run directory continues from its checkpoint (run/resume.py); a sweep directory is
    finished: its unfinished jobs run through `train`, with the launcher and settings it was started with
    (sweeps/resume.py). Returns the exit code; what cannot be resumed is raised as a DlexpError."""
    from dlexp.run import resume as run_resume
    from dlexp.sweeps import resume as sweep_resume

    path = Path(path)
    if not sweep_resume.is_sweep(path):
        search = sweep_resume.search_sweeper(path)
        if search is not None:
            raise sweep_resume.not_resumable(path, search)
        return run_resume.main(path, overrides, out)
    found = sweep_resume.command(path, overrides, out)
    if found is None:
        return 0
    argv, where = found
    here = os.getcwd()
    os.chdir(where)
    try:
        return train(argv)
    finally:
        os.chdir(here)


@contextlib.contextmanager
def contained() -> Iterator[None]:
    """What a command changes in its process, put back at its end, however it ends, as a process's exit would: the
    working directory, environment and argv, the Ctrl-C / SIGTERM handlers, the sweep it worked for and any stop it
    was asked for, the sweep lock it held, the root logger's handlers, torch's threads, Hydra's global state. So the
    Python API can run command after command in one process (a notebook's kernel) as the shell runs them in many."""
    import logging
    import signal

    saved_env, saved_argv, saved_cwd = dict(os.environ), list(sys.argv), os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        yield
    finally:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        from dlexp.run import record, signals

        signals.forget()
        record.release_all()
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for added in [h for h in root.handlers if h not in root_handlers]:
            root.removeHandler(added)
            added.close()
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # Hydra's own reset: no public clear


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

    inv = compose.parse_command_line(argv)
    jobs = compose.sweep_jobs(inv.overrides) if inv.multirun else [inv.overrides]
    try:
        with compose.standalone(inv.config_dirs, inv.config_name) as session:
            check_jobs(jobs, session, dry_build=False)
    except ConfigError as found:
        return found
    return ConfigError(compose.first_sentence(err))
