"""Checking jobs before any of them starts: nothing is written for a run that cannot start, every problem is said
at once. The one entry for every check, in two forms: a composed configuration (`check`, `check_job`), and the
override lists of a command's jobs, composed here (`check_jobs`).

Who checks: the Preflight callback inside `dlexp train` (a single run's composed config, or every job of a sweep
composed with `hydra.compose`), `dlexp validate`, `dlexp show` and the diagnosis of a command Hydra could not
compose; the vectorized launcher (each job checked and built once); a job a sampling sweeper drew; `dlexp resume`.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlexp import ConfigError, DlexpError
from dlexp.config import compose
from dlexp.config.validate import built, validate

MAX_JOBS_CHECKED = 256
# dlexp's launchers that need an optional extra: launcher class -> the extra (and hydra/launcher preset, and
# package) of the same name
OPTIONAL_LAUNCHERS = {"hydra_plugins.dlexp_launchers.ray_launcher.RayLauncher": "ray"}
# Launchers that compose, check and build every job themselves before any starts (each job composed and built once,
# in this process): the pre-flight leaves the jobs to them.
SELF_CHECKING_LAUNCHERS = ("hydra_plugins.dlexp_launchers.vectorized_launcher.VectorizedLauncher",)


class Refused(BaseException):
    """A command refused by a Hydra callback: Hydra turns an Exception raised by a callback into a warning and goes
    on, so a refusal travels as a BaseException, as SystemExit does, carrying its error to the front door."""

    def __init__(self, error: DlexpError):
        super().__init__(str(error))
        self.error = error


def check(cfg: DictConfig, choices: dict[str, str] | None = None) -> None:
    """One composed configuration (without its hydra node): every problem at once, as one ConfigError."""
    problems = validate(cfg, choices)
    if problems:
        raise ConfigError(problems)


def check_job(config: DictConfig):
    """A sweep job's composed config (with its hydra node) checked and built once, before anything of it is
    written: (its Experiment, []) or (None, its problems)."""
    task_cfg = compose.without_hydra(config)
    problems = validate(task_cfg, compose.choices(config))
    return (None, problems) if problems else built(task_cfg)


_checked_run_dir: Path | None = None  # the single run's directory check_run last checked (see checked_run_dir)


def checked_run_dir() -> Path | None:
    """The directory of the single run this process checked last: where Hydra then writes its own record (.hydra/),
    whose OSError names no file."""
    return _checked_run_dir


def check_run(cfg: DictConfig) -> None:
    """A single run's composed config (with its hydra node). Its own build is the last check (recipe.run)."""
    global _checked_run_dir
    _checked_run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    problems = output_problems(_checked_run_dir, single=True)
    problems += validate(compose.without_hydra(cfg), compose.choices(cfg))
    if problems:
        raise ConfigError(problems)


def check_sweep(cfg: DictConfig, config_name: str | None = None) -> None:
    """Every job of a sweep, composed inside the running application, before the launcher starts any."""
    problems = output_problems(Path(str(cfg.hydra.sweep.dir)), single=False) + _missing_extra(cfg)
    if problems:
        raise ConfigError(problems)
    if str(OmegaConf.select(cfg, "hydra.launcher._target_", default="")) in SELF_CHECKING_LAUNCHERS:
        return
    overrides = list(cfg.hydra.overrides.task)
    params = compose.sweeper_params(cfg.hydra.sweeper)
    if compose.targets(cfg.hydra.sweeper, "BasicSweeper"):
        jobs = compose.sweep_jobs(overrides, params)
    elif compose.targets(cfg.hydra.sweeper, "ResumeSweeper"):  # `dlexp resume SWEEP_DIR`: the jobs it launches
        everything = compose.sweep_jobs(overrides, params)
        jobs = [everything[i] for i in cfg.hydra.sweeper.jobs]
    else:  # another sweeper (Optuna) samples values itself: check the fixed part; its jobs check the rest
        jobs = [compose.fixed_part(overrides)]
    check_jobs(jobs, compose.running(config_name or compose.CONFIG_NAME))


def _missing_extra(cfg) -> list[str]:
    """A launcher whose optional package is not installed: how to add it, not an import traceback later."""
    import importlib

    extra = OPTIONAL_LAUNCHERS.get(str(OmegaConf.select(cfg, "hydra.launcher._target_", default="")))
    if extra is None:
        return []
    try:
        importlib.import_module(extra)
    except ImportError:
        return [
            f"hydra/launcher={extra} needs the optional package {extra}: pip install -e '.[{extra}]' "
            "in the dlexp folder."
        ]
    return []


def check_jobs(jobs: list[list[str]], session: compose.Session, dry_build: bool = True) -> list[DictConfig]:
    """Compose and check every job; raise ConfigError with all problems, each prefixed by its job in a sweep.

    Where jobs share overrides, a job is named by what sets it apart (not by the overrides they all share).
    With `dry_build`, each valid job is also built once on the CPU: its run happens later, elsewhere.
    Returns the jobs' composed configs (with their hydra node), checked.
    """
    jobs = jobs[:MAX_JOBS_CHECKED]
    each: list[list[str]] = []
    composed: list[DictConfig] = []
    for overrides in jobs:
        cfg, found = compose.compose(overrides, session)
        if cfg is not None:  # with composition problems only the structure is checked: a build would trip on them
            found += validate(compose.without_hydra(cfg), compose.choices(cfg), dry_build=dry_build and not found)
            composed.append(cfg)
        each.append(found)
    problems = named(jobs, each) + (_missing_extra(cfg) if cfg is not None else [])
    if problems:
        raise ConfigError(problems)
    return composed


def named(jobs: list[list[str]], problems: list[list[str]]) -> list[str]:
    """Each job's problems as one list: in a sweep, each prefixed by what sets its job apart (not by the overrides
    every job shares); a sentence that several jobs share is said once."""
    shared = set.intersection(*map(set, jobs)) if len(jobs) > 1 else set()
    found: list[str] = []
    for overrides, own in zip(jobs, problems):
        prefix = f"[{' '.join(o for o in overrides if o not in shared)}] " if len(jobs) > 1 else ""
        found += [prefix + p for p in own if prefix + p not in found]
    return found


def output_problems(path: Path, single: bool) -> list[str]:
    """The run (or sweep) directory can be created, and a single run's explicit directory is not taken."""
    from dlexp.read.runs import STATUS

    if single and (path / STATUS).exists():
        return [f"{path} already holds a run and is never overwritten; choose another hydra.run.dir."]
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        why = "it is under a file" if not existing.is_dir() else f"{existing} is not writable"
        return [f"Cannot create the run directory {path} ({why}); choose another log.dir."]
    return []
