"""What dlexp's own copies of Hydra logic cost or save a sweep: whole `dlexp train -m` processes, timed alternately.

    python benchmarks/hydra_copies.py [--repeats 3]

1. flags and job order (dlexp/config/compose.py: `_arguments`, hydra.main's flags; `sweep_jobs`, BasicSweeper's job
   order): a 6-job basic sweep as it is, and with both replaced by the Hydra functions they copy (hydra.main's
   `get_args_parser`, `BasicSweeper.split_arguments`; both in `hydra._internal`, no public API). The copies run a
   few times a command: their cost is also clocked in-process against the sweep's time.
2. the vectorized launcher's `Siblings` (one composition per family of jobs differing only in plain values, the
   sweeper's check of a batch reused by the launch): an 8-seed vectorized sweep with it, and with every job composed
   by Hydra's own config loader (twice: the sweeper's check, then the launch), as without it.

Printed: the median of the per-round ratios (wall time decides, CPU time beside it), and each copy's time a call
against Hydra's. Exits 1 when `Siblings` saves less than 5 % of the vectorized sweep (then it is not worth its code).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _timing import interleaved, machine, ratios, run, show

BASIC = ["-m", "data=xor", "trainer.epochs=20", "log.histograms=false", "optimizer=sgd,adam", "seed=0,1,2"]
VECTORIZED = ["-m", "hydra/launcher=vectorized", "experiment=xor_mlp", "trainer.epochs=200", "seed=range(8)"]
# Runs `dlexp ARGS` in-process after replacing a copy by what it copies (argv[1]: the variant).
PROBE = """
import sys
variant = sys.argv[1]
if variant == "hydra-own":
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from dlexp.config import compose

    def sweep_jobs(overrides, params=None):
        lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(overrides)
        (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
        return jobs

    def arguments():
        parser = get_args_parser()
        parser.set_defaults(config_dir=[], config_name="config")
        return parser

    compose.sweep_jobs, compose._arguments = sweep_jobs, arguments
elif variant == "no-siblings":
    from hydra_plugins.dlexp_launchers import vectorized_launcher as launcher

    siblings = launcher.Siblings
    siblings.config = lambda self, idx, o: launcher.numbered(self.loader.load_sweep_config(self.master, list(o)), idx)
    siblings.load_sweep_config = lambda self, master_config, sweep_overrides: self.loader.load_sweep_config(
        master_config, sweep_overrides
    )
sys.argv = ["dlexp", *sys.argv[2:]]
from dlexp.cli.entry import main
main()
"""


def clocked(fn, n: int = 200) -> float:
    """Seconds per call, the best of 3 batches of n calls."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best


def in_process(argv: list[str]) -> dict[str, float]:
    """Seconds per call of each copy and of the Hydra function it copies, on this sweep's command line."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dlexp.config import compose

    overrides = argv[1:]
    return {
        "flags, dlexp's copy": clocked(lambda: compose._arguments().parse_known_args(argv)),
        "flags, hydra.main's": clocked(lambda: get_args_parser().parse_known_args(argv)),
        "job order, dlexp's copy": clocked(lambda: compose.sweep_jobs(overrides)),
        "job order, BasicSweeper's": clocked(
            lambda: BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (median of per-round ratios)")
    args = parser.parse_args()
    print(f"whole processes, {args.repeats} interleaved rounds; {machine()}")
    with tempfile.TemporaryDirectory() as tmp:

        def sweep(variant: str, argv: list[str]):
            return lambda: run([sys.executable, "-c", PROBE, variant, "train", *argv], cwd=Path(tmp))

        times = interleaved(
            {
                "basic 6 jobs, copies": sweep("as-is", BASIC),
                "basic 6 jobs, hydra's own": sweep("hydra-own", BASIC),
                "vectorized 8 jobs, Siblings": sweep("as-is", VECTORIZED),
                "vectorized 8 jobs, without": sweep("no-siblings", VECTORIZED),
            },
            args.repeats,
        )
    show(times)
    print("1. flags and job order")
    ratios(
        "6-job basic sweep, Hydra's functions / the copies",
        times["basic 6 jobs, hydra's own"],
        times["basic 6 jobs, copies"],
        1.05,
    )
    sweep_s = min(s.wall for s in times["basic 6 jobs, copies"])
    for name, seconds in in_process(BASIC).items():
        print(f"      {name:<28} {seconds * 1e3:7.3f} ms a call ({seconds / sweep_s:.4%} of the sweep)")
    print("2. Siblings")
    ok = ratios(
        "8-job vectorized sweep, with Siblings / without",
        times["vectorized 8 jobs, Siblings"],
        times["vectorized 8 jobs, without"],
        0.95,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
