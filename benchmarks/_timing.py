"""Shared by the benchmarks: interleaved repeats, medians, one PASS/MISS line per target.

Not a benchmark itself (running it does nothing). Every benchmark measures both sides of a ratio in the same
run, alternating them, so that a machine that gets busier part-way (other people's tests) hurts both alike.
Each sample keeps the wall time (what the targets are about) and the CPU time (user + system), which other
processes on a shared machine disturb much less: when the two ratios disagree, the machine was busy.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Sample(NamedTuple):
    wall: float  # seconds from start to end
    cpu: float  # seconds of CPU (user + system) used meanwhile, by this process or the child it waited for


def timed(fn: Callable[[], object]) -> Sample:
    """Wall and CPU time of an in-process call (CPU time of every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Sample(time.perf_counter() - wall, time.process_time() - cpu)


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None, expect: tuple[int, ...] = (0,)) -> Sample:
    """Wall and CPU time of a whole process, from fork to exit; fails loudly if the process exits otherwise than
    `expect` says."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in expect:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def recipe(overrides: list[str], run_dir: Path, observers: Callable | None = None) -> Sample:
    """Wall and CPU time of one run through the recipe `dlexp train` uses (`dlexp.run.recipe.run`), in this process.

    `observers(chosen, *args)`, if given, changes the run's observers: it gets the list `build.observers(*args)`
    made and returns the list to use. Fails loudly unless the run completes.
    """
    from rich.console import Console

    import dlexp.run.recipe
    from dlexp.config import compose as composer
    from dlexp.run import build

    cfg = composer.without_hydra(composer.load(overrides))
    original, ended = build.observers, []
    if observers is not None:
        build.observers = lambda *args, **kwargs: observers(original(*args, **kwargs), *args)
    try:
        sample = timed(
            lambda: ended.append(
                dlexp.run.recipe.run(
                    cfg, dlexp.run.recipe.Job(run_dir=run_dir, overrides=overrides), Console(quiet=True)
                )[0]
            )
        )
    finally:
        build.observers = original
    if ended != ["completed"]:
        sys.exit(f"{run_dir.name} ended {ended}")
    return sample


def interleaved(cases: dict[str, Callable[[], Sample]], repeats: int) -> dict[str, list[Sample]]:
    """Call each case once per round, rotating the order each round; returns every case's samples."""
    names = list(cases)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(cases[name]())
    return samples


def median(samples: list[Sample], field: str = "wall") -> float:
    return statistics.median(getattr(s, field) for s in samples)


def dlexp_exe() -> list[str]:
    """The installed `dlexp` console script next to this interpreter (what a user runs), else `python -m dlexp`."""
    script = Path(sys.executable).with_name("dlexp")
    if script.exists():
        return [str(script)]
    found = shutil.which("dlexp")
    return [found] if found else [sys.executable, "-m", "dlexp"]


def verdict(label: str, value: float, target: float, unit: str = "x") -> bool:
    """One line: the measured value against its target (smaller is better), PASS or MISS."""
    ok = value <= target
    print(f"{'PASS' if ok else 'MISS'}  {label}: {value:.3f}{unit}  (target <= {target:g}{unit})")
    return ok


def ratios(label: str, num: list[Sample], den: list[Sample], target: float) -> bool:
    """The ratio of the two sides against its target, as the median of the per-round ratios (the two sides of
    a round ran back to back, so they saw the same machine): wall time decides, CPU time is shown beside it."""

    def paired(field: str) -> float:
        return statistics.median(getattr(n, field) / getattr(d, field) for n, d in zip(num, den))

    ok = verdict(f"{label}, wall time", paired("wall"), target)
    print(f"      {label}, CPU time: {paired('cpu'):.3f}x")
    return ok


def check(label: str, ok: bool) -> bool:
    """One line for a yes/no target."""
    print(f"{'PASS' if ok else 'MISS'}  {label}")
    return ok


def show(samples: dict[str, list[Sample]], unit: str = "s") -> None:
    for name, values in samples.items():
        walls = ", ".join(f"{s.wall:.3f}" for s in values)
        print(f"  {name:<32} wall {median(values):8.3f}{unit}  cpu {median(values, 'cpu'):8.3f}{unit}   ({walls})")


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.2f}, python {sys.version.split()[0]}"
