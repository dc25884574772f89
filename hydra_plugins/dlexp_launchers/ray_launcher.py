"""`hydra/launcher=ray`: every job of a sweep is a Ray task, on a local Ray instance or on a Ray cluster.

The configuration and the steps are those of Hydra's Ray launcher plugin (hydra-ray-launcher): `ray.init` and
`ray.remote` arguments; each job runs Hydra's own `run_job` in a Ray worker process. What differs is Ctrl-C.
The plugin waits in `ray.get`, where a Ctrl-C raises; the process exits and Ray's shutdown kills the jobs
mid-step, leaving their runs marked `running` with no checkpoint (measured: Ray starts its workers in process
groups of their own with SIGINT blocked, so a terminal's Ctrl-C never reaches them). Here the first Ctrl-C
cancels the jobs instead: `ray.cancel` runs a job's SIGINT handler in the job's main thread, which dlexp's
training turns into a clean stop (status `interrupted`, a checkpoint), and jobs not yet started never start.
The launcher waits for the running ones to write their results, and the sweep ends as usual (one line per job,
the summary, exit code 130). A second Ctrl-C stops waiting at once.

This module is imported by Hydra's plugin scan at every start: it imports only Hydra; Ray comes with `launch`.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from dlexp.config.objects import as_dict

log = logging.getLogger(__name__)


class RayLauncher(Launcher):
    # Given by setup(), which Hydra calls before any launch.
    config: DictConfig
    hydra_context: HydraContext
    task_function: TaskFunction

    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray  # init: arguments of ray.init(); remote: arguments of ray.remote() for every job
        self.stopped = False  # after a Ctrl-C, later batches (a sweeper may ask for more) launch nothing

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        if self.stopped:
            return []
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Ray Launcher is launching {len(job_overrides)} jobs, sweep output dir: {sweep_dir}")
        if not ray.is_initialized():
            _start(as_dict(self.ray_cfg.init))
        # ray.init's own SIGTERM handler exits at once, and the jobs die with Ray: SIGTERM stops them as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            refs = self._run(job_overrides, initial_job_idx)
        finally:
            signal.signal(signal.SIGTERM, previous)
        returns = [_result(ref) for ref in refs]
        if None in returns:
            log.warning(f"{returns.count(None)} of {len(refs)} jobs were stopped before they started")
        return [ret for ret in returns if ret is not None]

    def _run(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """Submit the jobs and wait for them all. The first Ctrl-C cancels them and waits for them to stop."""
        import ray

        remote = ray.remote(**as_dict(self.ray_cfg.remote))(job)
        refs = []
        try:  # a Ctrl-C while jobs are still being submitted stops the submitted ones too
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                refs.append(
                    remote.remote(
                        self.hydra_context,
                        self._job_config(idx, overrides),
                        self.task_function,
                        Singleton.get_state(),
                        os.getcwd(),
                    )
                )
            ray.wait(refs, num_returns=len(refs))
        except KeyboardInterrupt:
            self.stopped = True
            log.warning(
                "Stopping the sweep: running jobs stop with a checkpoint, the others do not start "
                "(Ctrl-C again to abort at once)"
            )
            for ref in refs:
                ray.cancel(ref)
            ray.wait(refs, num_returns=len(refs))  # a second Ctrl-C raises from here
        return refs

    def _job_config(self, idx: int, overrides: Sequence[str]) -> DictConfig:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = f"job_id_for_{idx}"  # a scheduler's job id where there is one; Ray has none
            config.hydra.job.num = idx
        return config


def _start(init: dict[str, Any]) -> None:
    """ray.init: a local instance, or a connection to a cluster (one sentence, not a traceback, if that fails)."""
    import ray

    address = str(init.get("address") or "")
    if address and address not in ("local", "auto") and "://" not in address:
        # Ray itself retries an address where nothing answers for minutes, deaf to Ctrl-C
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except (OSError, ValueError) as err:
            raise CompactHydraException(
                f"No Ray cluster answers at {address} ({err}). Check "
                "hydra.launcher.ray.init.address: HOST:PORT as `ray start --head` "
                "printed it on the cluster's head node."
            ) from None
    try:
        ray.init(**init)
    except Exception as err:  # a cluster that refuses this machine (its token), arguments ray.init rejects
        # Ray's reason is the last line of the error or of its cause (which holds a traceback as text)
        lines = str(err.__cause__ or err).strip().splitlines() or [type(err).__name__]
        given = ", ".join(f"{key}={value}" for key, value in init.items())
        raise CompactHydraException(
            f"Ray could not start or connect: {lines[-1]}\nCheck hydra.launcher.ray.init ({given})."
        ) from err
    atexit.register(_shutdown)  # runs before Ray's own exit handler (last registered, first run)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _shutdown() -> None:
    """Ray's shutdown, deaf to Ctrl-C: interrupted, it leaves Ray's processes running after the sweep's end."""
    import ray

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ray.shutdown()


def _result(ref) -> JobReturn | None:
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:  # cancelled before it started: it has nothing to report
        return None


def job(
    hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction, state: dict[Any, Any], cwd: str
) -> JobReturn:
    """One job, in a Ray worker: Hydra's state as in the launching process, then Hydra's own `run_job`."""
    # the launching process's working directory, as under every other launcher: relative paths (log.dir=runs)
    # name the same folder on every node of a cluster whose filesystem is shared
    os.chdir(cwd)
    setup_globals()
    Singleton.set_state(state)
    HydraConfig.instance().set_config(config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
