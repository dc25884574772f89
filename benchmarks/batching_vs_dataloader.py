"""One digits epoch fed by dlexp's in-memory batches against the same loop fed by torch.utils.data.DataLoader.

    python benchmarks/batching_vs_dataloader.py [--repeats 7] [--device auto] [OVERRIDE ...]

Both sides run dlexp's own training loop (`dlexp.run.loop.fit`, no observers) on the same model, loss and
optimizer (the default digits MLP and Adam); only the batches differ:

    dlexp       dlexp.parts.batching.Batches: one seeded gather per epoch, then each batch is a slice (a view)
    DataLoader  DataLoader(TensorDataset(x, y), batch_size, shuffle): per-sample indexing + collate per batch,
                host tensors moved to the device per batch (pinned memory on a GPU), as usually written

Targets (the issue): dlexp / DataLoader <= 0.65 at batch 32, <= 0.30 at full batch, <= 1.0 at batch 1.
The training step is the same on both sides, so the ratio also depends on how fast this machine runs it; the
batching alone (the same epochs without the step) is timed and printed too.
On a GPU it also checks that no step of an epoch forces a host sync (torch.cuda.set_sync_debug_mode).
"""

from __future__ import annotations

import argparse
import warnings

import torch
from _timing import check, interleaved, machine, median, ratios, show, timed
from torch.utils.data import DataLoader, TensorDataset

from dlexp.config import compose as composer
from dlexp.run import build, loop

CASES = {  # label: (batch overrides, target ratio)
    "batch 32": (["batch=mini", "batch.size=32"], 0.65),
    "full batch": (["batch=full"], 0.30),
    "batch 1": (["batch=stochastic"], 1.0),
}


class LoaderBatches:
    """A DataLoader behind the interface the loop expects from dlexp.parts.batching.Batches."""

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, start: int = 0):
        for xb, yb in self.loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)


def experiment(batch: list[str], device: str, overrides: list[str]):
    cfg = composer.without_hydra(composer.load(["data=digits", f"device={device}", *batch, *overrides]))
    return build.assemble(cfg)


def one_epoch(exp, batches) -> None:
    loop.fit(
        exp.model,
        exp.loss,
        exp.optimizer,
        batches,
        loop.Schedule(1, len(batches)),
        evaluate=lambda state: {},
        observers=(),
        state=loop.TrainState(),
    )  # ends with one .item(): the epoch's work is done when it returns


def feed_only(batches) -> None:
    """The batches of one epoch and nothing else: the part of an epoch that batching itself costs."""
    for _ in batches.epoch(0):
        pass


def dataloader_for(exp) -> LoaderBatches:
    size, shuffle = exp.batches.size, exp.batches.shuffle
    pin = exp.device.type == "cuda"
    dataset = TensorDataset(exp.data.x_train.cpu(), exp.y_train.cpu())
    return LoaderBatches(DataLoader(dataset, batch_size=size, shuffle=shuffle, pin_memory=pin), exp.device)


class SyncChecked:
    """Batches whose epoch runs under set_sync_debug_mode('warn'): every host sync inside it is a warning."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield from self.batches.epoch(epoch, start)
        finally:  # before the loop's epoch-end read-back, which is meant to sync
            torch.cuda.set_sync_debug_mode(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="epochs per side and batch size (median taken)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    parser.add_argument("overrides", nargs="*", help="more dlexp overrides for both sides, e.g. optimizer=sgd")
    args = parser.parse_args()
    results, rows, exps, feeding = {}, {}, {}, {}
    for label, (batch, target) in CASES.items():
        exp = exps[label] = experiment(batch, args.device, args.overrides)
        sides = {"dlexp": exp.batches, "DataLoader": dataloader_for(exp)}
        for batches in sides.values():
            one_epoch(exp, batches)  # warm-up: allocator, autograd graph caches, lazy imports
        times = interleaved(
            {name: (lambda b=b: timed(lambda: one_epoch(exp, b))) for name, b in sides.items()}, args.repeats
        )
        rows.update({f"{label}, {name}": t for name, t in times.items()})
        results[label] = (times["dlexp"], times["DataLoader"], target)
        feeding[label] = interleaved(
            {name: (lambda b=b: timed(lambda: feed_only(b))) for name, b in sides.items()}, args.repeats
        )
    print(
        f"one digits epoch ({exp.data.n_train:,} samples, the default MLP and Adam"
        f"{', ' + ' '.join(args.overrides) if args.overrides else ''}) on {exp.device}, {args.repeats} interleaved "
        f"repeats, torch threads {torch.get_num_threads()}; {machine()}"
    )
    show(rows)
    for label, (dlexp, loader, target) in results.items():
        ratios(f"{label}: dlexp / DataLoader", dlexp, loader, target)
    print("      the same epochs without the training step (batching alone), median wall time per epoch:")
    for label, times in feeding.items():
        ours, theirs = median(times["dlexp"]), median(times["DataLoader"])
        print(f"        {label}: dlexp {ours * 1e3:.2f} ms, DataLoader {theirs * 1e3:.2f} ms ({ours / theirs:.3f}x)")
    if exp.device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            one_epoch(exps["batch 32"], SyncChecked(exps["batch 32"].batches))
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        check(f"GPU: no host sync inside a batch-32 epoch ({len(syncs)} found)", not syncs)
    else:
        print("      GPU: none here; the host-sync check runs when --device resolves to cuda")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
