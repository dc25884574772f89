"""Hydra callbacks (registered under `hydra.callbacks` in conf/config.yaml).

`SweepSummary` runs in the process that launched the sweep, once all jobs are done, whichever launcher ran
them (basic: in this process; joblib: worker processes; submitit: SLURM or local subprocesses). So it learns
what happened from the run directories on disk, never from memory.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

OPTUNA_RESULTS = "optimization_results.yaml"  # written into the sweep directory by hydra-optuna-sweeper


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


class SweepSummary(Callback):
    """When a multirun ends: one line per job, the compare table as CSV and Markdown, the best Optuna trial."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rich.console import Console

        from dlexp import runs
        from dlexp.config import app

        sweep_dir = Path(str(config.hydra.sweep.dir))
        console = Console(highlight=False, soft_wrap=True)
        jobs = [(path, runs.read_status(path)) for path in sorted(runs.find_runs(sweep_dir), key=_job_order)]
        if not app.OUTCOMES:  # the jobs ran in other processes: their statuses set the exit code from disk
            app.OUTCOMES.extend((str(path), status.get("status", "failed")) for path, status in jobs)
        console.print(f"[bold]sweep finished:[/] {_counts(jobs)} in {sweep_dir}")
        for path, status in jobs:
            console.print(f"  {_status_text(status)}  {path.name}")
        if jobs:
            self._summary(sweep_dir, console)
        best = best_trial(sweep_dir)
        if best:
            console.print(f"[bold]best trial:[/] {best}")

    @staticmethod
    def _summary(sweep_dir: Path, console) -> None:
        from dlexp import compare
        from dlexp.errors import DlexpError

        try:
            written = compare.write_summary(sweep_dir)
        except DlexpError as err:  # a summary that cannot be written must not hide the sweep's results
            console.print(f"[yellow]no sweep summary:[/] {err}")
            return
        if written:
            console.print(f"[bold]summary:[/]  {', '.join(str(p) for p in written)}")
        console.print(f"compare:  dlexp compare {sweep_dir}")


def _job_order(path: Path) -> tuple[int, str]:
    """Job number first (the sub-directory starts with it), so job 10 comes after job 9."""
    match = re.match(r"(\d+)", path.name)
    return (int(match.group(1)) if match else 1 << 30, path.name)


def _counts(jobs: list[tuple[Path, dict]]) -> str:
    """'3 runs (2 completed, 1 diverged)'."""
    counts = Counter(status.get("status", "failed") for _, status in jobs)
    parts = ", ".join(f"{n} {name}" for name, n in counts.items())
    return f"{len(jobs)} run{'s' if len(jobs) != 1 else ''}" + (f" ({parts})" if parts else "")


def _status_text(status: dict) -> str:
    name = status.get("status", "failed")
    colour = {"completed": "green", "diverged": "red", "failed": "red"}.get(name, "yellow")
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
