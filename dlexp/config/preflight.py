"""Check a `dlexp train` command line before Hydra runs anything: nothing is written for a run that cannot start."""

from __future__ import annotations

from dlexp.config import compose as composer
from dlexp.config.validate import validate
from dlexp.errors import ConfigError

MAX_JOBS_CHECKED = 256
# dlexp's launchers that need an optional extra: launcher class -> the extra (and hydra/launcher preset, and
# package) of the same name
OPTIONAL_LAUNCHERS = {"hydra_plugins.dlexp_launchers.ray_launcher.RayLauncher": "ray"}


def jobs(inv: composer.Invocation) -> list[list[str]]:
    """The override lists of the jobs this command will run (one for a single run, one per sweep point)."""
    if not inv.multirun:
        return [inv.overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(inv.overrides)
    if any(o.key_or_group == "hydra/sweeper" for o in parsed):
        # another sweeper samples the values itself; check the fixed part, the jobs re-check the rest
        return [[o.input_line for o in parsed if not o.is_sweep_override() and o.input_line]]
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch][:MAX_JOBS_CHECKED]


def _existing_run_dir(overrides: list[str]) -> list[str]:
    """An explicit hydra.run.dir that already holds a run: Hydra would write into it, so refuse first."""
    from pathlib import Path

    from dlexp.runs import STATUS

    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "hydra.run.dir" and (Path(value) / STATUS).exists():
            return [f"{value} already holds a run and is never overwritten; choose another hydra.run.dir."]
    return []


def _missing_extra(cfg) -> list[str]:
    """A launcher whose optional package is not installed: how to add it, not an import traceback later."""
    import importlib

    from omegaconf import OmegaConf

    extra = OPTIONAL_LAUNCHERS.get(str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))) if cfg else None
    if extra is None:
        return []
    try:
        importlib.import_module(extra)
    except ImportError:
        return [f"hydra/launcher={extra} needs the optional package {extra}: pip install -e '.[{extra}]' "
                "in the dlexp folder."]
    return []


def check(inv: composer.Invocation):
    """Raise ConfigError with every problem of every job, each prefixed by its overrides in a sweep.

    Returns the composed config (with its `hydra` node) of a single run, which then runs as it is: composing
    it again would cost as much as the checks. A sweep returns None; its launcher composes each job.
    """
    problems: list[str] = [] if inv.multirun else _existing_run_dir(inv.overrides)
    all_jobs = jobs(inv)
    shared = set.intersection(*map(set, all_jobs)) if len(all_jobs) > 1 else set()
    for overrides in all_jobs:
        # a job is named by what makes it differ from the others (not by the overrides they all share)
        prefix = f"[{' '.join(o for o in overrides if o not in shared)}] " if len(all_jobs) > 1 else ""
        cfg, found = composer.compose_leniently(overrides, inv.config_dirs, inv.config_name)
        if cfg is not None:
            # with composition problems, only the structure is checked: a dry build would trip over them
            found += validate(composer.without_hydra(cfg), composer.choices(cfg), dry_build=not found)
        problems += [prefix + p for p in found if prefix + p not in problems]
    problems += _missing_extra(cfg)
    if problems:
        raise ConfigError(problems)
    from hydra.types import RunMode

    # a preset may ask for a multirun itself (`hydra.mode: MULTIRUN`, as experiment=search does)
    return None if inv.multirun or cfg.hydra.mode == RunMode.MULTIRUN else cfg
