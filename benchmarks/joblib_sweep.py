"""A 4-job sweep with Hydra's joblib launcher (2 workers) against the basic launcher (one job after another).

    python benchmarks/joblib_sweep.py [--repeats 3] [--epochs 20] [--n-jobs 2]

Both are whole `dlexp train -m optimizer=sgd,momentum,adam,rmsprop` processes on the default experiment
(digits MLP, batch 32), start-up, the workers' own start-up and the sweep summary included. Each run uses
one CPU thread (device.threads=1, dlexp's default), so two workers can use two cores.
Target (the issue): joblib / basic <= 0.62 on 2 cores (0.5 would be perfect; worker start-up costs the rest).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _timing import dlexp_exe, interleaved, machine, run, show, verdict

TARGET = 0.62
SWEEP = ["optimizer=sgd,momentum,adam,rmsprop"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per launcher (median taken)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per job (the default config's 20)")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers (hydra.launcher.n_jobs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        common = ["train", "-m", *SWEEP, f"trainer.epochs={args.epochs}", "log.progress=none",
                  f"log.dir={root / 'runs'}"]
        launchers = {"basic launcher": [],
                     f"joblib launcher, n_jobs={args.n_jobs}": ["hydra/launcher=joblib",
                                                                f"hydra.launcher.n_jobs={args.n_jobs}"]}
        times = interleaved({name: (lambda extra=extra: run([*dlexp_exe(), *common, *extra], cwd=root))
                             for name, extra in launchers.items()}, args.repeats)
    print(f"4-job sweep ({SWEEP[0]}), {args.epochs} epochs each, whole processes, {args.repeats} interleaved "
          f"repeats; {machine()}")
    show(times)
    basic, joblib = times.values()
    paired = statistics.median(j.wall / b.wall for j, b in zip(joblib, basic))  # rounds ran back to back
    verdict("joblib / basic launcher, wall time", paired, TARGET)
    cpu = statistics.median(j.cpu / b.cpu for j, b in zip(joblib, basic))  # workers' start-up shows up here
    print(f"      joblib / basic launcher, CPU time of the whole sweep (workers included): {cpu:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
