"""Sweeps with `hydra/launcher=vectorized` (one stacked model) against Hydra's basic launcher (one job after another).

    python benchmarks/vectorized_sweep.py [--repeats 3] [--only seeds digits scale histograms]

Every side is a whole `dlexp train -m ...` process, start-up, checks, writing and the sweep summary included, timed
alternately with the other side; the ratio is the median of the per-round ratios (wall time decides; CPU time,
which other people's processes disturb less, is printed beside it).

    seeds       16 seeds of experiment=xor_mlp (10,001 full-batch steps each), vectorized / basic: target <= 0.15
    digits      8 Adam learning rates on digits (batch 32, 20 epochs): 1e-4 ... 1e-1 and 1e20, which diverges at
                step 2 and leaves the stack at once; vectorized / basic: target <= 0.40
    scale       64 seeds of xor_mlp with the vectorized launcher / one xor_mlp run: target <= 2.5
    histograms  16 seeds of xor_mlp, vectorized, with histograms / without: target <= 1.10
    pictures    16 seeds of xor_mlp, vectorized, with histograms and pictures / with neither: reported
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _timing import dlexp_exe, interleaved, machine, ratios, run, show

SEEDS = ["experiment=xor_mlp", "seed=range(16)"]
DIGITS = [
    "optimizer=adam",
    "batch.size=32",
    "trainer.epochs=20",
    "optimizer.lr=0.0001,0.0003,0.001,0.003,0.01,0.03,0.1,1e20",
]
VECTORIZED = ["hydra/launcher=vectorized"]
# name: (what it measures, {side: dlexp train arguments}, target or None, the exit code the command ends with)
CASES = {
    "seeds": (
        "16-seed xor_mlp sweep, vectorized / basic launcher",
        {"vectorized": ["-m", *VECTORIZED, *SEEDS], "basic": ["-m", *SEEDS]},
        0.15,
        0,
    ),
    "digits": (
        "8-lr Adam sweep on digits (one diverges), vectorized / basic launcher",
        {"vectorized": ["-m", *VECTORIZED, *DIGITS], "basic": ["-m", *DIGITS]},
        0.40,
        3,
    ),
    "scale": (
        "64 seeds of xor_mlp, vectorized / one xor_mlp run",
        {"64 seeds": ["-m", *VECTORIZED, "experiment=xor_mlp", "seed=range(64)"], "1 run": ["experiment=xor_mlp"]},
        2.5,
        0,
    ),
    "histograms": (
        "16-seed xor_mlp sweep, vectorized, histograms on / off",
        {
            "on": ["-m", *VECTORIZED, *SEEDS, "log.histograms=true"],
            "off": ["-m", *VECTORIZED, *SEEDS, "log.histograms=false"],
        },
        1.10,
        0,
    ),
    "pictures": (
        "16-seed xor_mlp sweep, vectorized, histograms and pictures on / off",
        {
            "on": ["-m", *VECTORIZED, *SEEDS, "log.histograms=true", "log.boundaries=true"],
            "off": ["-m", *VECTORIZED, *SEEDS, "log.histograms=false", "log.boundaries=false"],
        },
        None,
        0,
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds per case (median of per-round ratios)")
    parser.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES), help="the cases to time")
    args = parser.parse_args()
    print(f"whole processes, {args.repeats} interleaved rounds; {machine()}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.only:
            label, sides, target, code = CASES[name]
            cases = {
                side: (
                    lambda a=arguments: run(
                        [*dlexp_exe(), "train", *a, f"log.dir={root / 'runs'}"], cwd=root, expect=(code,)
                    )
                )
                for side, arguments in sides.items()
            }
            samples = interleaved(cases, args.repeats)
            print(f"{label}:")
            show(samples)
            numerator, denominator = samples.values()
            if target is None:
                ratios(label, numerator, denominator, float("inf"))
            else:
                ok &= ratios(label, numerator, denominator, target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
