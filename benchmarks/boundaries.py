"""What the pictures cost: `dlexp train experiment=xor_mlp` with and without them, as whole processes.

    python benchmarks/boundaries.py [--repeats 7]

Both sides are the same command a user types, with its default logging (scalars, histograms on the
log.hist_every schedule); one adds the decision-boundary and per-unit images (log.boundaries=auto, which is on
for XOR: 12 captures), the other turns them off (log.boundaries=false). Start-up is included on both sides. The
runs alternate, the order rotating each round; printed: the median of the per-round ratios (wall and CPU time)
and, from each run's train.log, the time spent inside the pictures observer. Target: <= 1.05 (5 %).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from pathlib import Path

from _timing import dlexp_exe, interleaved, machine, ratios, run, show

TARGET = 1.05
CASES = {
    "pictures (log.boundaries=auto)": "log.boundaries=auto",
    "no pictures (log.boundaries=false)": "log.boundaries=false",
}


def observer_times(root: Path) -> list[tuple[int, float]]:
    """(captures, milliseconds) the pictures observer logged in each run's train.log."""
    found = []
    for log in sorted(root.rglob("train.log")):
        match = re.search(r"pictures: (\d+) captures drawn in (\d+) ms", log.read_text())
        if match:
            found.append((int(match.group(1)), float(match.group(2))))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per side (medians taken)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def case(setting: str):
            return lambda: run(
                [*dlexp_exe(), "train", "experiment=xor_mlp", setting, "log.progress=none", f"log.dir={root / 'runs'}"],
                cwd=root,
            )

        run(
            [*dlexp_exe(), "train", "experiment=xor_mlp", "trainer.epochs=10", f"log.dir={root / 'warm'}"], cwd=root
        )  # warm the file cache so the first timed process is not penalised
        times = interleaved({name: case(setting) for name, setting in CASES.items()}, args.repeats)
        inside = observer_times(root / "runs")
    print(
        f"XOR 2-10-10-10-1 sigmoid MLP, 10,001 full-batch steps, whole processes, {args.repeats} interleaved "
        f"repeats; {machine()}"
    )
    show(times)
    with_pictures, without = times.values()
    ok = ratios("with pictures / without", with_pictures, without, TARGET)
    if inside:
        captures = statistics.median(c for c, _ in inside)
        ms = statistics.median(t for _, t in inside)
        share = ms / 1000 / statistics.median(s.wall for s in without)
        print(
            f"      inside the pictures observer: {ms:.0f} ms per run ({captures:.0f} captures, "
            f"{ms / captures:.1f} ms each), {share:.1%} of a run without pictures"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
