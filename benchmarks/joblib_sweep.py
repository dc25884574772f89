"""A 4-job sweep with Hydra's joblib launcher (2 workers) against the basic launcher (one job after another).

    python benchmarks/joblib_sweep.py [--repeats 3] [--epochs 20 100] [--n-jobs 2]

Both are whole `dlexp train -m optimizer=sgd,momentum,adam,rmsprop` processes on the default experiment
(digits MLP, batch 32), start-up, the workers' own start-up and the sweep summary included. Each run uses
one CPU thread (device.threads=1, dlexp's default), so two workers can use two cores.
Target (the issue): joblib / basic <= 0.62 on 2 cores (0.5 would be perfect; worker start-up costs the rest).

The sweep is timed at each job length given (--epochs): the launching process's own start-up (imports, checking
every job) is the same on both sides and does not shrink with more workers, so short jobs cannot reach 0.5.
Beside it, the machine's own ceiling: two CPU-bound processes at once against one after the other. On a shared
virtual machine the second core is not always a whole core, and no launcher can beat that ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import Sample, dlexp_exe, interleaved, machine, median, run, show, verdict

TARGET = 0.62
SWEEP = ["optimizer=sgd,momentum,adam,rmsprop"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per launcher (median taken)")
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[20, 100],
        help="epochs per job, one sweep length each (20: the default config's, ~1 s a job here)",
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers (hydra.launcher.n_jobs)")
    args = parser.parse_args()
    py = sys.executable
    spin = [py, "-c", "x = 0\nfor i in range(20_000_000): x += i"]  # about 1-2 s of one core, no I/O

    def one_after_the_other() -> Sample:
        each = [run(spin) for _ in range(args.n_jobs)]
        return Sample(sum(e.wall for e in each), sum(e.cpu for e in each))

    def at_once() -> Sample:
        started = time.perf_counter()
        procs = [subprocess.Popen(spin) for _ in range(args.n_jobs)]
        if any(p.wait() for p in procs):
            sys.exit("the CPU-bound probe failed")
        return Sample(time.perf_counter() - started, float("nan"))

    ceiling = interleaved({"one after the other": one_after_the_other, "at once": at_once}, args.repeats)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for epochs in args.epochs:
            common = [
                "train",
                "-m",
                *SWEEP,
                f"trainer.epochs={epochs}",
                "log.progress=none",
                f"log.dir={root / 'runs'}",
            ]
            launchers = {
                f"basic launcher, {epochs} epochs": [],
                f"joblib launcher, n_jobs={args.n_jobs}, {epochs} epochs": [
                    "hydra/launcher=joblib",
                    f"hydra.launcher.n_jobs={args.n_jobs}",
                ],
            }
            results[epochs] = interleaved(
                {
                    name: (lambda extra=extra: run([*dlexp_exe(), *common, *extra], cwd=root))
                    for name, extra in launchers.items()
                },
                args.repeats,
            )
    print(f"4-job sweep ({SWEEP[0]}), whole processes, {args.repeats} interleaved repeats; {machine()}")
    show({f"CPU-bound probe x{args.n_jobs}, {k}": v for k, v in ceiling.items()})
    for times in results.values():
        show(times)
    machine_best = statistics.median(
        a.wall / s.wall for a, s in zip(ceiling["at once"], ceiling["one after the other"])
    )
    print(
        f"      this machine's ceiling: {args.n_jobs} CPU-bound processes at once / one after the other: "
        f"{machine_best:.3f}x (no launcher can do better)"
    )
    for epochs, times in results.items():
        basic, joblib = times.values()
        paired = statistics.median(j.wall / b.wall for j, b in zip(joblib, basic))  # rounds ran back to back
        verdict(
            f"joblib / basic launcher, {epochs}-epoch jobs (basic sweep {median(basic):.0f} s), wall time",
            paired,
            TARGET,
        )
        cpu = statistics.median(j.cpu / b.cpu for j, b in zip(joblib, basic))  # workers' start-up shows up here
        print(
            f"      joblib / basic launcher, {epochs}-epoch jobs, CPU time of the whole sweep (workers included): "
            f"{cpu:.3f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
