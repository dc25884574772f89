"""What ending `dlexp train` without Python's interpreter teardown saves (dlexp/cli/entry.py, `_end`).

    python benchmarks/exit_teardown.py [--repeats 5] [--xor]

A small `dlexp train` run (`--xor`: experiment=xor_mlp, the run benchmarks/xor_vs_handwritten.py times against the
hand-written script) as a whole process, ended three ways, in alternating order:

    dlexp     `_end` as it is: the exit handlers (`atexit`), the streams flushed, then `os._exit`
    freeze    a normal exit after `gc.freeze()` (public: the teardown's garbage collections skip every object)
    normal    a normal exit (`raise SystemExit`): the whole teardown

The child writes the time `_end` is called; the parent notes when the process has gone. Printed: that teardown
time and the whole command's time, each as the median of the per-round ratios to `dlexp`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import machine

SMALL = ["train", "data=xor", "trainer.epochs=20", "log.progress=none"]
XOR = ["train", "experiment=xor_mlp"]
# Runs `dlexp ARGS` in-process with `_end` replaced as argv[1] says; writes the time `_end` is called to argv[2].
PROBE = """
import sys, time
variant, stamp = sys.argv[1], sys.argv[2]
sys.argv = ["dlexp", *sys.argv[3:]]
from dlexp.cli import entry
fast_end = entry._end

def end(code):
    open(stamp, "w").write(repr(time.time()))
    if variant == "dlexp":
        fast_end(code)
    if variant == "freeze":
        import gc
        gc.freeze()
    raise SystemExit(code)

entry._end = end
entry.main()
"""


def once(variant: str, folder: Path, train: list[str]) -> tuple[float, float]:
    """(seconds from `_end` to the process gone, seconds of the whole process)."""
    stamp = folder / f"{variant}.stamp"
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, variant, str(stamp), *train], cwd=folder, capture_output=True, text=True
    )
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{variant} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return ended - float(stamp.read_text()), ended - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds (medians of per-round ratios)")
    parser.add_argument("--xor", action="store_true", help="time experiment=xor_mlp instead of a 20-epoch XOR run")
    args = parser.parse_args()
    train = XOR if args.xor else SMALL
    variants = ["dlexp", "freeze", "normal"]
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            k = r % len(variants)
            for variant in variants[k:] + variants[:k]:
                times[variant].append(once(variant, Path(tmp), train))
    print(f"dlexp {' '.join(train)}, whole processes, {args.repeats} rounds; {machine()}")
    for variant, samples in times.items():
        end = statistics.median(e for e, _ in samples)
        whole = statistics.median(w for _, w in samples)
        print(f"  {variant:<7} from _end to exit {end:6.3f}s   whole command {whole:6.3f}s")
    for variant in variants[1:]:
        end = statistics.median(t[0] / d[0] for t, d in zip(times[variant], times["dlexp"]))
        whole = statistics.median(t[1] / d[1] for t, d in zip(times[variant], times["dlexp"]))
        print(f"{variant} / dlexp: from _end to exit {end:.2f}x, whole command {whole:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
