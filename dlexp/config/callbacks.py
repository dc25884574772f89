"""Hydra callbacks (registered under `hydra.callbacks` in conf/config.yaml): dlexp's part of Hydra's run, each a
thin hook into the module that owns its concept.

`Preflight` checks every job before any starts (config/preflight.py). `SweepStops` makes Ctrl-C / SIGTERM stop the
whole sweep and keeps one launching process per sweep (run/signals.py). `Summary` ends the command with its exit code
and a sweep with its summary (sweeps/summary.py). `ForkedWorkers` makes joblib's workers start with torch loaded.
`OwnLaunchers` makes dlexp's own launchers known to Hydra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class Preflight(Callback):
    """Every job checked before any starts: one sentence per problem of every job, exit code 2, nothing written
    (dlexp/config/preflight.py). A refusal travels to the front door as `Refused`.

    `sweep` is what the jobs share and vary (dlexp/config/resolvers.py `sweep`), resolved from the sweep's command
    line when Hydra builds the callbacks, before any job is composed: each job names its directory by it.
    """

    def __init__(self, sweep: dict | None = None):
        self.sweep = sweep or {}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlexp.config.preflight import check_run

        _refused_on(check_run, config)

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        from dlexp.config.preflight import check_sweep

        _refused_on(check_sweep, config, config_name)


def _refused_on(check, *args) -> None:
    from dlexp import ConfigError
    from dlexp.config.preflight import Refused

    try:
        check(*args)
    except ConfigError as err:
        raise Refused(err) from None


class SweepStops(Callback):
    """From the moment the jobs have been checked to the summary, the launching process holds the sweep's lock
    (one launching process per sweep: `dlexp resume` of a sweep still running is refused) and Ctrl-C / SIGTERM
    stop the sweep instead of the process: running jobs checkpoint, no new job starts, the summary is written
    (dlexp.run.signals). Registered after Preflight: a sweep refused there writes nothing."""

    def __init__(self) -> None:
        self.lock: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlexp import UsageError
        from dlexp.config.preflight import Refused
        from dlexp.read import runs
        from dlexp.run import faults, record, signals

        faults.point("sweep_start")
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            self.lock = record.hold(sweep_dir)
        except record.Busy:
            raise Refused(
                UsageError(
                    f"the sweep {sweep_dir} is being run by {runs.holder(sweep_dir)}; wait for it "
                    "to end, or stop it first."
                )
            ) from None
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

    def __init__(self) -> None:
        self.forked = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import sys

        target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if not target.endswith("JoblibLauncher") or sys.platform == "win32":
            return
        import warnings

        from joblib.externals.loky.backend.context import set_start_method

        set_start_method("fork", force=True)
        self.forked = True
        # loky warns because forking a process that runs threads is unsafe; its workers are forked when the
        # executor starts, before its own threads, from a process that has none of its own
        warnings.filterwarnings("ignore", message="`fork` start method should not be used", category=UserWarning)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The jobs are done: the workers end now, while a signal still stops the sweep rather than the process
        (notified before SweepStops). Left idle (joblib keeps them 300 s for another batch), they would outlive a
        launching process that a Ctrl-C or SIGTERM ends during its summary: forks with the sweep's handlers, they
        take the signal as a stop and stay, holding the terminal's output open for those minutes."""
        if not self.forked:
            return
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)  # joblib's one executor, None when none runs
        if executor is not None:
            executor.shutdown(wait=True)


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


class Finished(BaseException):
    """The end of a command that ran (a single run or a sweep), carried to the front door by the Summary callback:
    its exit code and the directory it wrote (the run's, or the sweep's). A BaseException, as SystemExit, so that
    Hydra passes it on untouched."""

    def __init__(self, code: int, path: Path):
        super().__init__(code)
        self.code, self.path = code, path


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
            hc = job_return.hydra_cfg.hydra  # the job's own record of where it ran
            raise Finished(code, Path(str(hc.runtime.output_dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rich.markup import escape

        from dlexp.config.compose import first_sentence
        from dlexp.run.console import console
        from dlexp.sweeps import summary

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            code = summary.report(sweep_dir, config)
        except Exception as err:  # Hydra would only warn, and a stopped sweep would exit 0: say it, keep the code
            console(stderr=True).print(
                f"[bold red]error:[/] the sweep's summary could not be written: {type(err).__name__}: "
                f"{escape(first_sentence(err))}",
                soft_wrap=True,
            )
            code = summary.exit_code(sweep_dir, config) or 1
        raise Finished(code or 0, sweep_dir)
