"""Time per training step of N XOR nets: a loop over N single models against one stacked model.

    python benchmarks/stacked_steps.py [--steps 300] [--repeats 5] [--sizes 1 8 32 128]

The jobs are `experiment=xor_mlp` with seeds 0..N-1 (2-10-10-10-1 sigmoid MLP, BCE, SGD lr=1, full batch),
each built by `dlexp.run.build.assemble` exactly as a single run. "loop" steps each job's own model and torch
optimizer as `dlexp.run.loop.fit` does (closure, clear gradients, backward, optimizer.step); "stacked" is one
`StackedGroup.train_step` for all N. Both sides run one thread and alternate round by round; the ratio is
the median over rounds of stacked / loop, both measured in the same round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _timing import machine, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def jobs(n: int):
    from dlexp.config import compose as composer
    from dlexp.run import build

    out = []
    for seed in range(n):
        cfg = composer.without_hydra(composer.load(["experiment=xor_mlp", f"seed={seed}", "device=cpu"]))
        out.append(build.assemble(cfg))
    return out


def loop_steps(exps, steps: int) -> None:
    from dlexp.run.loop import clear_grads

    for _ in range(steps):
        for exp in exps:
            for xb, yb in exp.batches.epoch(0):

                def closure():
                    loss = exp.loss(exp.model(xb), yb)
                    clear_grads(exp.optimizer)
                    loss.backward()
                    return loss

                exp.optimizer.step(closure)


def stacked_steps(group, steps: int) -> None:
    for _ in range(steps):
        group.batches.begin([0] * group.size)
        for k in range(len(group.batches)):
            group.train_step(*group.batches.batch(k))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (median taken)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 128], help="group sizes N")
    args = parser.parse_args()

    import torch

    from dlexp.stacked import StackedGroup

    torch.set_num_threads(1)
    print(f"XOR 2-10-10-10-1, full batch, SGD; time per step for all N models together; {machine()}")
    print("wall time (CPU time of this process in brackets: less disturbed by other processes)")
    print(f"{'N':>5}  {'loop over N':>22}  {'stacked':>20}  {'stacked / loop':>22}")
    for n in args.sizes:
        loop_jobs = jobs(n)
        group = StackedGroup(jobs(n))
        loop_steps(loop_jobs, 5)  # warm up both (first optimizer step imports torch._dynamo)
        stacked_steps(group, 5)
        samples: dict[str, list] = {"loop": [], "stacked": []}
        for r in range(args.repeats):
            order = [
                ("loop", lambda: loop_steps(loop_jobs, args.steps)),
                ("stacked", lambda: stacked_steps(group, args.steps)),
            ]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                samples[name].append(timed(fn))

        def us(name: str, field: str) -> float:
            return statistics.median(getattr(s, field) for s in samples[name]) / args.steps * 1e6

        def ratio(field: str) -> float:  # per round: both sides ran back to back
            return statistics.median(
                getattr(a, field) / getattr(b, field) for a, b in zip(samples["stacked"], samples["loop"])
            )

        print(
            f"{n:>5}  {us('loop', 'wall'):>9,.0f} us ({us('loop', 'cpu'):>7,.0f})"
            f"  {us('stacked', 'wall'):>7,.0f} us ({us('stacked', 'cpu'):>7,.0f})"
            f"  {ratio('wall'):>9.3f}x ({ratio('cpu'):.3f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
