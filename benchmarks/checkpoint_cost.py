"""What checkpointing costs a run at the default cadence (trainer.checkpoint_secs: 30), measured in one process.

    python benchmarks/checkpoint_cost.py [--repeats 7] [--epochs 3]

The default cadence saves at the start, every 30 seconds of training and at the end, and reads the clock once a
step in between. Measured:

1. one save of the largest models the lessons train (the MNIST MLP 784-256-10 and the CNN, with Adam's state)
   and of the digits MLP: median of 20 saves, and its share of the 30 s between two saves;
2. the clock read a step: the checkpointer's on_step called 200,000 times between saves, against the time of
   the cheapest step the lessons take (digits, batch size 1);
3. whole runs of digits with batch size 1 (1,438 tiny steps per epoch), interleaved: the default cadence, no
   checkpointer at all, and a stress (a save every 0.05 s: 600 x the default); the time spent inside the
   checkpointer (start and end saves included) is clocked as a share of each run, and the ratio of whole runs
   is shown (on a shared machine it moves by more than the cost being measured).

Exits 1 when the default cadence costs more than 2 % of a run: on a long run, (2) plus the largest share of (1);
on the short runs of (3), the clocked share.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _timing import machine, recipe

from dlexp.config import compose as composer
from dlexp.run import build, checkpoint, loop

BUDGET = 0.02
RUN = [
    "data=digits",
    "batch=stochastic",
    "model.hidden=[64]",
    "optimizer=adam",
    "log.progress=none",
    "log.histograms=false",
    "device=cpu",
]
MODELS = {
    "mnist MLP 784-256-10": ["data=mnist_5k", "model.hidden=[256]"],
    "cnn on mnist": ["data=mnist_5k", "model=cnn"],
    "digits MLP": ["data=digits"],
}


class Clocked:
    """Seconds spent inside the Checkpointer's methods while `active`."""

    def __init__(self):
        self.seconds, self.active = 0.0, False
        for name in ("on_start", "on_step", "on_epoch", "on_end"):
            setattr(checkpoint.Checkpointer, name, self._timed(getattr(checkpoint.Checkpointer, name)))

    def _timed(self, method):
        def timed(observer, *args):
            if not self.active:
                return method(observer, *args)
            started = time.perf_counter()
            try:
                return method(observer, *args)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def saver(overrides: list[str], folder: Path) -> checkpoint.Checkpointer:
    """A checkpointer of a model after one training step (Adam's state filled), as a run has it."""
    cfg = composer.without_hydra(composer.load([*overrides, "optimizer=adam", "device=cpu"]))
    exp = build.assemble(cfg)
    xb, yb = next(iter(exp.batches.epoch(0)))
    exp.loss(exp.model(xb), yb).backward()
    exp.optimizer.step()
    return checkpoint.Checkpointer(
        folder / checkpoint.FILE, exp, "config", every=0, secs=30, schedule=build.schedule(cfg, exp)
    )


def save_seconds(overrides: list[str], folder: Path, saves: int = 20) -> tuple[float, int]:
    """(median seconds of one save, checkpoint bytes)."""
    cp, state, times = saver(overrides, folder), loop.TrainState(epoch=1, step=1), []
    for _ in range(saves):
        started = time.perf_counter()
        cp.save(state)
        times.append(time.perf_counter() - started)
    return statistics.median(times), (folder / checkpoint.FILE).stat().st_size


def step_check_seconds(folder: Path, calls: int = 200_000) -> float:
    """Seconds of one on_step call between saves (what every step pays)."""
    cp, state = saver(MODELS["digits MLP"], folder), loop.TrainState(epoch=1, step=1, batch=1)
    cp.on_start(state)  # the next save is 30 s away
    on_step, started = cp.on_step, time.perf_counter()
    for _ in range(calls):
        on_step(state, None)
    return (time.perf_counter() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per variant (medians taken)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of 1,438 steps per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.epochs * 1438
    base = [*RUN, f"trainer.epochs={args.epochs}"]
    variants = {"default": [*base], "none": [*base], "every 0.05 s": [*base, "trainer.checkpoint_secs=0.05"]}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    inside: dict[str, list[float]] = {name: [] for name in variants}
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        shares = {}
        for label, overrides in MODELS.items():
            folder = Path(tmp) / label.replace(" ", "_")
            folder.mkdir()
            seconds, size = save_seconds(overrides, folder)
            shares[label] = seconds / 30.0
            print(
                f"one save, {label:<22} {seconds * 1000:7.2f} ms ({size / 1e6:.2f} MB): "
                f"{shares[label]:.4%} of the 30 s between two saves"
            )
        check = step_check_seconds(Path(tmp) / "digits_MLP")
        recipe([*RUN, "trainer.epochs=1"], Path(tmp) / "warmup")  # imports, data cache
        clock = Clocked()
        names = list(variants)
        for i in range(args.repeats):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:  # rotate the order: no variant always first

                def without(chosen, *rest):
                    return [o for o in chosen if not isinstance(o, checkpoint.Checkpointer)]

                clock.seconds, clock.active = 0.0, True
                sample = recipe(
                    variants[name], Path(tmp) / f"{name.replace(' ', '_')}{i}", without if name == "none" else None
                )
                clock.active = False
                walls[name].append(sample.wall)
                inside[name].append(clock.seconds / sample.wall)

    step = statistics.median(walls["none"]) / steps
    per_step = check / step
    print(f"the clock read a step: {check * 1e9:.0f} ns, {per_step:.3%} of a batch-1 digits step ({step * 1e6:.0f} us)")
    print(f"digits, batch size 1, {args.epochs} epochs ({steps} steps), {args.repeats} repeats:")
    for name in names:
        print(
            f"  {name:<13} median wall {statistics.median(walls[name]):.3f}s  inside the checkpointer "
            f"{statistics.median(inside[name]):.2%}   (wall {', '.join(f'{w:.2f}' for w in walls[name])})"
        )
    ratio = statistics.median(d / n for d, n in zip(walls["default"], walls["none"]))
    print(f"whole runs, default cadence / none: {ratio:.3f}x (median of paired ratios; shared-machine noise)")
    long_run = per_step + max(shares.values())
    short_run = statistics.median(inside["default"])
    ok = long_run <= BUDGET and short_run <= BUDGET
    print(
        f"{'PASS' if ok else 'MISS'}  the default cadence: {long_run:.2%} of a long run (the clock read a step + "
        f"the largest save every 30 s), {short_run:.2%} of these short runs (start and end saves included) "
        f"(target <= {BUDGET:.0%})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
