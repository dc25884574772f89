"""What histogram logging costs: the digits MLP (batch 32) with and without it, measured in one process.

    python benchmarks/histograms.py [--repeats 7] [--epochs 20] [--threads 1]

Four variants of the same run (`recipe.run`, the recipe `dlexp train` uses), each `--repeats` times, in a
rotating order so that a machine getting busier part-way hurts them alike:

    none          log.histograms=false
    dlexp         the default: histograms every log.hist_every steps and at every evaluated epoch
    dlexp-stock   the same with TensorBoard's own pure-Python event checksum (what Board replaces)
    reference     log.histograms=false plus plain SummaryWriter.add_histogram on every layer's activations,
                  weights and gradients every 50 steps (the naive way), with TensorBoard's own checksum

Printed: the median of the per-repeat ratios to `none` (wall time and CPU time of this process), and the
time spent inside the histogram observer itself. Exits 1 when the default histogram logging costs more
than 10 % of a run's wall time (the budget in the issue).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _timing import recipe
from event_checksums import stock_checksums

from dlexp.config import compose as composer
from dlexp.observe import histograms
from dlexp.observe.histograms import find_layers, probe_batch

BUDGET = 1.10  # at most 10 % slower than no histograms
VARIANTS = {
    "none": "log.histograms=false",
    "dlexp": "log.histograms=true",
    "dlexp-stock": "log.histograms=true",
    "reference": "log.histograms=false",
}


class AddHistogramEvery:
    """The naive way, for reference: SummaryWriter.add_histogram (numpy on the host) on everything."""

    def __init__(self, board, model, probe, every: int = 50):
        self.writer, self.model, self.probe, self.every = board.writer, model, probe, every
        self.layers = find_layers(model)

    def on_step(self, state, loss) -> None:
        if state.step % self.every:
            return
        outputs, handles = {}, []
        for layer in self.layers:
            target = layer.activation or layer.module
            handles.append(
                target.register_forward_hook(lambda m, i, o, name=layer.name: outputs.__setitem__(name, (i[0], o)))
            )
        self.model.eval()
        with torch.no_grad():
            self.model(self.probe)
        self.model.train()
        for handle in handles:
            handle.remove()
        for name, (pre, act) in outputs.items():
            self.writer.add_histogram(f"preactivations/{name}", pre, state.step)
            self.writer.add_histogram(f"activations/{name}", act, state.step)
        for layer in self.layers:
            for kind, name, p in layer.parameters():
                self.writer.add_histogram(f"{kind}/{name}", p, state.step)
                if p.grad is not None:
                    self.writer.add_histogram(f"grads/{name}/{kind}", p.grad, state.step)


class ObserverClock:
    """Wall time spent inside the histogram observer's methods (its event writing runs in the writer's thread)."""

    def __init__(self):
        self.seconds, self.captures, self.active = 0.0, 0, False
        for name in ("on_capture_next", "on_capture"):
            setattr(histograms.Histograms, name, self._timed(getattr(histograms.Histograms, name)))

    def _timed(self, method):
        def timed(observer, *args):
            started, before = time.perf_counter(), observer.captures
            try:
                return method(observer, *args)
            finally:
                if self.active:  # only the "dlexp" variant is counted
                    self.seconds += time.perf_counter() - started
                    self.captures += observer.captures - before

        return timed


def timed_run(overrides: list[str], run_dir: Path, reference: bool, stock: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: all its threads, blind to other processes on the machine)."""

    def with_reference(chosen, cfg, exp, job, console, board, *rest):
        return [*chosen, AddHistogramEvery(board, exp.model, probe_batch(exp.data))]

    with stock_checksums() if stock else contextlib.nullcontext():
        return recipe(["log.progress=none", *overrides], run_dir, with_reference if reference else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per variant (medians taken)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (default: the config's 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 keeps a tiny MLP fast and the timing steady on a shared machine",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ["data=digits", "model=mlp", "batch=mini", "batch.size=32", f"trainer.epochs={args.epochs}", "device=cpu"]
    names = list(VARIANTS)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        timed_run([*base, "trainer.epochs=1"], Path(tmp) / "warmup", False, False)  # imports, data cache
        clock = ObserverClock()
        for i in range(args.repeats):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:  # rotate the order: no variant always first
                if name == "dlexp":
                    clock.active = True
                times[name].append(
                    timed_run(
                        [*base, VARIANTS[name]],
                        Path(tmp) / f"{name}{i}",
                        reference=name == "reference",
                        stock=name != "dlexp",
                    )
                )
                clock.active = False

    def ratio(name: str, which: int) -> float:  # median of the paired, per-repeat ratios
        return statistics.median(t[which] / n[which] for t, n in zip(times[name], times["none"]))

    cfg = composer.without_hydra(composer.load(base))
    print(
        f"digits MLP, batch 32, {args.epochs} epochs, {args.repeats} repeats, torch threads {args.threads}, "
        f"log.hist_every={cfg.log.hist_every} (+ every evaluated epoch)"
    )
    for name, t in times.items():
        print(
            f"  {name:<10} median wall {statistics.median(w for w, _ in t):.3f}s  "
            f"cpu {statistics.median(c for _, c in t):.3f}s   (wall {', '.join(f'{w:.2f}' for w, _ in t)})"
        )
    print(
        f"histograms (dlexp default) / none:                  wall {ratio('dlexp', 0):.3f}x  "
        f"cpu {ratio('dlexp', 1):.3f}x   (budget {BUDGET:.2f}x)"
    )
    print(
        f"  the same with TensorBoard's own checksum / none:  wall {ratio('dlexp-stock', 0):.3f}x  "
        f"cpu {ratio('dlexp-stock', 1):.3f}x"
    )
    print(
        f"SummaryWriter.add_histogram every 50 steps / none:  wall {ratio('reference', 0):.3f}x  "
        f"cpu {ratio('reference', 1):.3f}x"
    )
    per_run = clock.seconds / args.repeats
    none_wall = statistics.median(w for w, _ in times["none"])
    print(
        f"inside the histogram observer: {per_run * 1000:.0f} ms per run ({per_run / none_wall:.1%} of a run), "
        f"{clock.captures // args.repeats} captures of {clock.seconds / max(clock.captures, 1) * 1000:.2f} ms"
    )
    return 0 if ratio("dlexp", 0) <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
