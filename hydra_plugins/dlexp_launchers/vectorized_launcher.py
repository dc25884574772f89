"""`hydra/launcher=vectorized`: the jobs of a sweep that share architecture, data and batching train as ONE stacked
model in this process (dlexp/stacked), each job writing exactly what it writes alone.

For dlexp's own task, `launch`:
  1. composes every job as Hydra's basic launcher does (`load_sweep_config`, job id and number; `Siblings` below
     shares the composition of jobs that differ only in plain values), then checks and builds each one
     (`preflight.check_job`: validation and the job's one build) before anything of any job is written: under the basic
     sweeper, problems refuse the sweep at once (every one of them, exit code 2), as dlexp's pre-flight does for
     other launchers; jobs a sampling sweeper (Optuna) drew are refused one by one;
  2. groups the built jobs (`stacked.plan_groups`, at most `max_group` a stack), one log line per stack and one
     per job that runs alone, saying why ("batch.size differs");
  3. per stack (or lone job), in job order: Hydra's own `run_job` for each job, with a task that starts the job
     (`app.start_job`: run directory, .hydra/, status.json, observers, as for a job alone) and hands it back;
     then trains the stack (`stacked.jobs.fit_together`) or the lone job (the single-run loop), and ends each job
     as a single run ends; its JobReturn carries its Outcome (the val/loss an Optuna sweeper minimises).
Ctrl-C / SIGTERM stops the stack being trained (each job checkpointed, interrupted / terminated) and the jobs not
started yet never start. Hydra's per-job callbacks (on_job_start, on_job_end) run when a job is started, before it
trains.

For any other task function, the jobs run one after another as under Hydra's basic launcher.

This module is imported by Hydra's plugin scan at every start: it imports only Hydra; dlexp comes with `setup`.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class VectorizedLauncher(Launcher):
    # Given by setup(), which Hydra calls before any launch.
    config: DictConfig
    hydra_context: HydraContext
    task_function: TaskFunction

    def __init__(self, max_group: int = 64) -> None:
        self.max_group = int(max_group)  # jobs per stack: its memory grows with this x the parameters

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from dlexp.config import app

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.composer: Siblings | None = None
        if task_function is app.task:
            # The sweeper checks that every job of a batch composes (`validate_batch_is_legal`) just before it hands
            # the batch to this launcher, which composes the same jobs in the same process: both go through one
            # Siblings, so each job is composed once (the sweeper's check is the composition the launcher uses).
            self.composer = Siblings(hydra_context.config_loader, config)
            hydra_context.config_loader = self.composer

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Vectorized launcher: {len(job_overrides)} jobs, sweep output dir: {sweep_dir}")
        jobs = [(idx, list(overrides)) for idx, overrides in enumerate(job_overrides, start=initial_job_idx)]
        if self.composer is None:  # not dlexp's task (setup): one job after another, as the basic launcher
            returns = []
            for idx, overrides in jobs:
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
                returns.append(self._run(numbered(config, idx), self.task_function))
            return returns
        composer = self.composer
        return self._stacked(jobs, [composer.config(idx, overrides) for idx, overrides in jobs], sweep_dir)

    def _run(self, config: DictConfig, task_function: TaskFunction) -> JobReturn:
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # run_job set the job's up
        return ret

    def _stacked(
        self, jobs: list[tuple[int, list[str]]], configs: list[DictConfig], sweep_dir: Path
    ) -> list[JobReturn]:
        from dlexp.config import app
        from dlexp.run.signals import stop_on_signals
        from dlexp.stacked import jobs as stacked_jobs
        from dlexp.stacked import plan_groups

        built, rng = self._build(jobs, configs, sweep_dir)
        units = self._units(jobs, built)
        returns: dict[int, JobReturn] = {}
        stop = stacked_jobs.StopFlag()
        with stop_on_signals(stop):
            for unit in units:
                if stop.stop:  # the sweep was stopped: the jobs not started yet never start
                    break
                for k in unit:  # each job started as it starts alone: run directory, .hydra/, observers
                    task = (
                        functools.partial(app.start_job, exp=built[k][0]) if built[k][0] is not None else app.start_job
                    )
                    returns[k] = self._run(configs[k], task)
                started = {k: returns[k].return_value for k in unit if _started(returns[k])}
                ready = [k for k in started if started[k].ready]
                # jobs continued from checkpoints (dlexp resume SWEEP_DIR) stack only with jobs at the same batch
                together = (
                    plan_groups(
                        [started[k].exp for k in ready],
                        max_group=self.max_group,
                        states=[started[k].state for k in ready],
                    ).groups
                    if len(unit) > 1
                    else []
                )
                stacked = set()
                for group in (g for g in together if len(g) > 1):
                    members = [ready[i] for i in group]
                    stacked_jobs.fit_together([started[k] for k in members], stop, [rng[k] for k in members])
                    stacked.update(members)
                for k, run in started.items():
                    if k not in stacked:
                        stacked_jobs.fit_alone(run, stop, rng[k])
                    returns[k].return_value = app.Outcome.of(run.status, run.state.metrics)
        if len(returns) < len(jobs):
            log.warning(f"{len(jobs) - len(returns)} of {len(jobs)} jobs were stopped before they started")
        return [returns[k] for k in sorted(returns)]

    def _build(
        self, jobs: list[tuple[int, list[str]]], configs: list[DictConfig], sweep_dir: Path
    ) -> tuple[list, list]:
        """Every job checked and built before any is written: (Experiment or None, problems) per job, and the random
        state each build left (its single run's, restored before its checkpoints are saved)."""
        from dlexp import ConfigError
        from dlexp.config import app, compose, preflight
        from dlexp.read.runs import SWEEP_RECORDS
        from dlexp.stacked import jobs as stacked_jobs

        built, rng = [], []
        for config in configs:
            built.append(preflight.check_job(config))
            rng.append(stacked_jobs.rng_state())
        if any(problems for _, problems in built) and compose.targets(self.config.hydra.sweeper, "BasicSweeper"):
            app.discard(sweep_dir, records=SWEEP_RECORDS)  # the record of a sweep that never started
            raise ConfigError(preflight.named([overrides for _, overrides in jobs], [p for _, p in built]))
        return built, rng

    def _units(self, jobs: list[tuple[int, list[str]]], built: list) -> list[list[int]]:
        """The stacks and the lone jobs, in job order, one log line each (a lone job's says why)."""
        from dlexp.stacked import plan_groups

        ok = [k for k, (exp, _) in enumerate(built) if exp is not None]
        plan = plan_groups([built[k][0] for k in ok], max_group=self.max_group)
        units = [[ok[i] for i in group] for group in plan.groups] + [[ok[i]] for i in plan.alone]
        units += [[k] for k, (exp, _) in enumerate(built) if exp is None]  # refused when started (app.start_job)
        units.sort(key=lambda unit: unit[0])
        for unit in units:
            if len(unit) > 1:
                log.info(f"\tone stacked model of {len(unit)} jobs: {' '.join(f'#{jobs[k][0]}' for k in unit)}")
            elif built[unit[0]][0] is not None:
                idx, overrides = jobs[unit[0]]
                why = plan.alone.get(ok.index(unit[0]), f"max_group={self.max_group} split its stack")
                log.info(f"\t#{idx} runs alone ({why}): {' '.join(filter_overrides(overrides))}")
        return units


def _started(ret: JobReturn) -> bool:
    """Did `app.start_job` start the job (rather than refuse it, or fail)?"""
    from dlexp.config import app

    return ret.status == JobStatus.COMPLETED and not isinstance(ret.return_value, app.Outcome)


class Family:
    """Sibling jobs: their first job's overrides and configuration, from which the others are derived.

    (Not a dataclass: Hydra's plugin scan runs this module outside sys.modules, where @dataclass fails.)"""

    def __init__(self, overrides: list[Override], config: DictConfig) -> None:
        self.overrides = overrides  # the first job's, parsed
        self.config = config  # the first job's, composed by Hydra (before its job id and number)
        self.verified: bool | None = None  # does derivation give Hydra's composition of the second job? None: not yet


class Siblings(ConfigLoader):
    """Each job's config as `load_sweep_config` composes it, composing once per family of sibling jobs.

    Composing a job costs ~80 ms of CPU (every YAML file read again, the defaults tree built again), and Hydra
    composes each job twice (the sweeper's check, then the launch); a sweep of seeds is 16 jobs that differ in one
    number. Measured (benchmarks/hydra_copies.py): an 8-seed vectorized sweep of xor_mlp takes 0.71x the wall time
    (0.77x the CPU time) it takes with every job composed by Hydra's own loader. Jobs whose overrides differ only in
    plain values (`key=value` on a key that is neither a config group nor Hydra's, a value that is not a mapping)
    are siblings: a sibling's config is its family's first config with those values applied as Hydra applies a value
    override (`OmegaConf.update`, merge), its own overrides recorded (hydra.overrides.task,
    hydra.job.override_dirname). The second job of each family is composed in full as well and compared with what
    derivation gives; a family derives only when they agree.

    It is also the sweep's config loader (Hydra's ConfigLoader, every other call handed to Hydra's own): the
    sweeper's check of a batch composes each job here, and `config` then takes that composition instead of
    composing the job again.
    """

    def __init__(self, loader: ConfigLoader, master: DictConfig):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader, self.master = loader, master
        self.parser = OverridesParser.create()
        self.families: list[Family] = []
        self.checked: dict[tuple[str, ...], DictConfig] = {}  # composed by the sweeper's check, not yet launched

    def config(self, idx: int, overrides: list[str]) -> DictConfig:
        """Job number idx's config: the one the sweeper's check composed, or composed now."""
        config = self.checked.pop(tuple(overrides), None)
        return numbered(config if config is not None else self._compose(overrides), idx)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config is not self.master:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        config = self._compose(list(sweep_overrides))
        self.checked[tuple(sweep_overrides)] = config
        return config

    def load_configuration(self, *args, **kwargs) -> DictConfig:
        return self.loader.load_configuration(*args, **kwargs)

    def get_search_path(self):
        return self.loader.get_search_path()

    def get_sources(self):
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, *args, **kwargs) -> list[str]:
        return self.loader.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args, **kwargs):
        return self.loader.compute_defaults_list(*args, **kwargs)

    def _compose(self, overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(overrides)
        family = next((f for f in self.families if self._siblings(f, parsed)), None)
        if family is not None and family.verified:
            config = self._derive(family, parsed)
        else:
            config = self.loader.load_sweep_config(self.master, list(overrides))
            if family is None:
                self.families.append(Family(parsed, copy.deepcopy(config)))  # before its job id and number
            elif family.verified is None:  # the family's second job: derivation checked against Hydra's own
                family.verified = OmegaConf.to_yaml(self._derive(family, parsed)) == OmegaConf.to_yaml(config)
        return config

    def _siblings(self, family: Family, parsed: list[Override]) -> bool:
        base = family.overrides
        if family.verified is False or len(base) != len(parsed):
            return False
        groups = set(family.config.hydra.runtime.choices)
        for a, b in zip(base, parsed):
            if (a.key_or_group, a.type, a.package) != (b.key_or_group, b.type, b.package):
                return False
            if a.input_line != b.input_line and not (_plain(a, groups) and _plain(b, groups)):
                return False
        return True

    def _derive(self, family: Family, parsed: list[Override]) -> DictConfig:
        base, config = family.overrides, copy.deepcopy(family.config)
        for a, b in zip(base, parsed):
            if a.input_line != b.input_line:
                OmegaConf.update(config, b.key_or_group, b.value(), merge=True)
        task = [o for o in parsed if not o.is_hydra_override()]
        dirname = config.hydra.job.config.override_dirname
        lines = sorted(str(o.input_line) for o in task if o.key_or_group not in dirname.exclude_keys)
        with open_dict(config.hydra):
            config.hydra.overrides.task = [o.input_line for o in task]
            config.hydra.job.override_dirname = re.sub("[=]", dirname.kv_sep, dirname.item_sep.join(lines))
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config


def numbered(config: DictConfig, idx: int) -> DictConfig:
    """Job number idx of the sweep, as Hydra's basic launcher numbers its jobs (a scheduler's job id where there
    is one; here the same number)."""
    with open_dict(config):
        config.hydra.job.id = idx
        config.hydra.job.num = idx
    return config


def _plain(override, groups) -> bool:
    """A value override that derivation can apply: `key=value` on an existing key that is not a config group nor
    Hydra's own, with a value that replaces what is there (not a mapping merged into it)."""
    from hydra.core.override_parser.types import OverrideType

    return (
        override.type == OverrideType.CHANGE
        and override.package is None
        and not override.is_hydra_override()
        and not override.is_sweep_override()
        and override.key_or_group not in groups
        and "/" not in override.key_or_group
        and not isinstance(override.value(), dict)
    )
