"""Peak memory of a stacked sweep (`hydra/launcher=vectorized`), whole processes: what `max_group` is chosen from.

    python benchmarks/stack_memory.py [--epochs 1001] [--only xor digits]

Each case is one `dlexp train -m ...` process run by a small parent that reports the child's peak resident set
(getrusage's ru_maxrss: the largest the process ever was, torch and every stack included). Printed beside it: the
growth over one run alone, per job of the stack.

    xor     one experiment=xor_mlp run, then 16, 64 and 256 seeds in one stack (max_group=256)
    digits  one digits run (batch 32), then 64 seeds in one stack: digits is split by seed, so each job holds its
            own data split
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import dlexp_exe, machine

VECTORIZED = ["hydra/launcher=vectorized", "hydra.launcher.max_group=256"]
CASES = {
    "xor": [
        ("1 run", ["experiment=xor_mlp"], 1),
        ("16 seeds", ["-m", *VECTORIZED, "experiment=xor_mlp", "seed=range(16)"], 16),
        ("64 seeds", ["-m", *VECTORIZED, "experiment=xor_mlp", "seed=range(64)"], 64),
        ("256 seeds", ["-m", *VECTORIZED, "experiment=xor_mlp", "seed=range(256)"], 256),
    ],
    "digits": [
        ("1 run", ["data=digits", "batch=mini"], 1),
        ("64 seeds", ["-m", *VECTORIZED, "data=digits", "batch=mini", "seed=range(64)"], 64),
    ],
}
# The child's peak resident set in kB (Linux), measured by a parent that runs nothing else.
PEAK = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); " + (
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_mb(args: list[str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *dlexp_exe(), "train", *args], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"failed: dlexp train {' '.join(args)}\n{done.stderr[-3000:]}")
    return int(done.stdout.split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=1001, help="epochs of each xor job (memory does not grow with them)"
    )
    parser.add_argument("--digits-epochs", type=int, default=2, help="epochs of each digits job")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    print(f"peak resident set of whole processes; {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.only:
            epochs = args.epochs if name == "xor" else args.digits_epochs
            alone = None
            for label, overrides, jobs in CASES[name]:
                mb = peak_mb([*overrides, f"trainer.epochs={epochs}", "log.progress=none", f"log.dir={root}"], root)
                if alone is None:
                    alone = mb
                    print(f"  {name} {label:<12} {mb:8.0f} MB")
                else:
                    print(f"  {name} {label:<12} {mb:8.0f} MB  (+{(mb - alone) / jobs:.2f} MB a job over one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
