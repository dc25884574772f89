"""The Hydra application: `dlexp train ...` hands its command line to Hydra, which calls `task` once per job."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from dlexp.config import catalog, resolvers
from dlexp.errors import ConfigError, DlexpError, UsageError

# (run directory, status) of the jobs that ran in this process, for the exit code.
OUTCOMES: list[tuple[str, str]] = []


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)  # a pipe or a log file gets whole lines


def task(cfg: DictConfig) -> float:
    """One Hydra job. Returns the final validation loss: the objective a sweeper such as Optuna minimises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dlexp import train
    from dlexp.config.validate import validate

    hc = HydraConfig.get()
    choices = {k: str(v) for k, v in hc.runtime.choices.items() if k in catalog.GROUPS}
    # jobs of a parallel launcher (joblib, submitit) share a terminal: no bars or epoch lines, one line each
    parallel = hc.mode == RunMode.MULTIRUN and "BasicLauncher" not in str(hc.launcher.get("_target_", ""))
    job = train.Job(run_dir=Path(hc.runtime.output_dir), overrides=list(hc.overrides.task), choices=choices,
                    multirun=hc.mode == RunMode.MULTIRUN, compact=parallel)
    if parallel:
        with open_dict(cfg):
            cfg.log.progress = "none"
    console = _console()
    problems = validate(cfg, choices)
    if problems:  # only reachable when a sweeper sampled the values; nothing of this job is kept
        _discard(job.run_dir)
        report(console, ConfigError(problems), prefix=" ".join(job.overrides))
        OUTCOMES.append((str(job.run_dir), "config-error"))
        return float("inf")
    status, metrics = train.run(cfg, job, console)
    OUTCOMES.append((str(job.run_dir), status))
    loss = metrics.get("val/loss", float("inf"))
    return loss if status == "completed" else float("inf")


def _discard(run_dir: Path) -> None:
    """Remove a job directory Hydra just made, if it holds nothing but Hydra's own .hydra folder."""
    if run_dir.is_dir() and all(p.name == ".hydra" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


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
    """`dlexp train ARGS`: check every job before anything is written, then run them; returns the exit code.

    The console script calls this without building typer's command tree (0.2 s of pydantic for one argument
    list that goes to Hydra untouched anyway); `dlexp train --help` still goes through typer.
    """
    from dlexp.config import compose as composer
    from dlexp.config import preflight

    try:
        inv = composer.parse_argv(list(argv))
        single = None if inv.inspect_only else preflight.check(inv)
        OUTCOMES.clear()
        if single is not None:
            run_single(single, inv.config_name, inv.config_dirs)
        else:
            run_hydra(inv.argv)
    except DlexpError as err:
        return report_error(_console(stderr=True), err)
    return worst_exit_code([status for _, status in OUTCOMES])


def worst_exit_code(statuses: list[str]) -> int:
    """A sweep exits with its most serious outcome: interrupted > failed > config error > diverged > completed."""
    from dlexp.runs import EXIT_CODES

    codes = [EXIT_CODES.get(s, 2 if s == "config-error" else 1) for s in statuses]
    for code in (143, 130, 1, 2, 3):
        if code in codes:
            return code
    return 0


def run_single(cfg: DictConfig, config_name: str = "config", config_dirs=()) -> None:
    """One run of a config the pre-flight composed and checked: what Hydra's `run` does after composing."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import run_job
    from hydra.types import HydraContext, RunMode

    from dlexp.config.compose import create_hydra

    with open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
    run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    try:  # Hydra would make it too, with a traceback when it cannot
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"Cannot create the run directory {run_dir} ({err.strerror}); choose another log.dir.")
    hydra = create_hydra(config_dirs)  # its config loader is part of the job's context (a launcher would use it)
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=config_name)
    ret = run_job(hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
                  task_function=task, config=cfg, job_dir_key="hydra.run.dir", job_subdir_key=None)
    callbacks.on_run_end(config=cfg, config_name=config_name, job_return=ret)
    _ = ret.return_value  # re-raises what the task raised


def run_hydra(argv: list[str]) -> None:
    """Hydra's own command line processing (multirun, --cfg, --config-dir, launchers, sweepers)."""
    import hydra

    resolvers.register()
    saved = sys.argv
    sys.argv = ["dlexp", *argv]
    try:
        hydra.main(config_path=str(catalog.conf_dir()), config_name="config", version_base="1.3")(task)()
    finally:
        sys.argv = saved
