"""`dlexp resume SWEEP_DIR`: launch only the jobs of a stopped sweep that have not finished, under their own job
numbers (so into their own directories), through the launcher the sweep was started with.

Hydra's BasicSweeper would launch every job again. This sweeper makes the same list of jobs (`sweep_jobs`, the
BasicSweeper's order) and hands the launcher the unfinished ones, one `launch` call per run of consecutive job
numbers: `launch(overrides, initial_job_idx=first number)` is the one thing every launcher does the same way.
It leaves multirun.yaml, the sweep's record, as the sweep's first launch wrote it.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from dlexp.config.compose import sweep_jobs


def runs_of(numbers: list[int]) -> list[list[int]]:
    """[0, 2, 3, 7] -> [[0], [2, 3], [7]]."""
    found: list[list[int]] = []
    for n in sorted(set(numbers)):
        if found and n == found[-1][-1] + 1:
            found[-1].append(n)
        else:
            found.append([n])
    return found


class ResumeSweeper(Sweeper):
    launcher: Launcher  # given by setup(), which Hydra calls before the sweep

    def __init__(self, jobs: list[int], max_batch_size: int | None = None, params: dict | None = None):
        super().__init__()
        self.jobs = [int(j) for j in jobs]
        self.params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        jobs = sweep_jobs(arguments, self.params)
        returns = []
        for numbers in runs_of([n for n in self.jobs if n < len(jobs)]):
            batch = [jobs[n] for n in numbers]
            self.validate_batch_is_legal(batch)
            returns.append(self.launcher.launch(batch, initial_job_idx=numbers[0]))
        return returns
