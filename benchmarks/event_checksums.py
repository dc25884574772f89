"""What the event checksum in C (dlexp/observe/tensorboard.py, `fast_checksums`) saves, measured in one process.

    python benchmarks/event_checksums.py [--repeats 7] [--epochs 5] [--data digits] [--runs]

TensorBoard frames every event record with a CRC-32C it computes in pure Python, a byte per loop turn; dlexp
installs an equal one from Google's C library (google-crc32c). A default digits run (histograms on) is trained once; then,
with TensorBoard's own checksum and with dlexp's, in alternating order:

1. writing: every event of that run written again through TensorBoard's own EventFileWriter (its queue, its
   thread, its record framing), to the closed file;
2. reading: the run read back as `dlexp compare` and `dlexp curves` read it (`read_scalars`, `read_histograms`);
3. whole runs (`--runs`, off by default: on a shared machine they move by more than the saving): the same
   training run, end to end.

Printed: the median of the per-round ratios stock / dlexp (wall time decides, CPU time beside it), and the share of
a whole run that the checksum's saving is. Exits 1 when writing with dlexp's checksum is not at least 1.5x faster.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from _timing import Sample, interleaved, machine, median, ratios, recipe, show, timed

from dlexp.observe import tensorboard

TARGET = 1 / 1.5  # dlexp's writing time over TensorBoard's own: at most this
# name: the run whose events are written and read (--case)
CASES = {
    "digits": ["data=digits", "model=mlp", "batch=mini", "log.progress=none", "device=cpu"],  # the default run
    "moons": ["data=moons", "model=mlp", "batch=mini", "log.progress=none", "device=cpu"],  # + boundary pictures
}


@contextlib.contextmanager
def stock_checksums() -> Iterator[None]:
    """TensorBoard's own checksum, for writing and reading, for the duration."""
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
    from tensorboard.summary.writer import record_writer

    tensorboard.fast_checksums()
    fast = record_writer.masked_crc32c
    saved = tensorboard.fast_checksums
    record_writer.masked_crc32c = stub.masked_crc32c = fast.reference
    tensorboard.fast_checksums = lambda: False  # read_* would install it again
    try:
        yield
    finally:
        record_writer.masked_crc32c = stub.masked_crc32c = fast
        tensorboard.fast_checksums = saved


def events(run_dir: Path) -> list:
    """Every event of the run's event files, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    found = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        found += list(EventFileLoader(str(path)).Load())
    return found


def write(found: list, out: Path) -> None:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(out), max_queue_size=1000)
    for event in found:
        writer.add_event(event)
    writer.close()  # waits for the writer thread: every record framed and on disk


def read(run_dir: Path) -> None:
    tensorboard.read_scalars(run_dir)
    tensorboard.read_histograms(run_dir, "activations/", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds (medians taken)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the run (the config's default: 20)")
    parser.add_argument("--case", choices=list(CASES), default="digits", help="the run: digits (default) or moons")
    parser.add_argument("--data", default="digits", help="the run's data (moons: 2-D, decision-boundary pictures)")
    parser.add_argument("--runs", action="store_true", help="also time whole training runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = [*CASES[args.case], f"trainer.epochs={args.epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        trained = recipe(run, base / "run")
        found = events(base / "run")
        size = sum(len(e.SerializeToString()) for e in found)
        print(
            f"{args.case} MLP, batch 32, {args.epochs} epochs (histograms on): {len(found)} events, {size / 1e3:.0f} KB, "
            f"trained in {trained.wall:.2f}s; {args.repeats} rounds; {machine()}"
        )
        counter = iter(range(10**6))

        def writing(stock: bool) -> Sample:
            with stock_checksums() if stock else contextlib.nullcontext():
                return timed(lambda: write(found, base / f"w{next(counter)}"))

        def reading(stock: bool) -> Sample:
            with stock_checksums() if stock else contextlib.nullcontext():
                return timed(lambda: read(base / "run"))

        def training(stock: bool) -> Sample:
            with stock_checksums() if stock else contextlib.nullcontext():
                return recipe(run, base / f"r{next(counter)}")

        writing(True), writing(False), reading(True), reading(False)  # warm up: imports, tables
        cases = {"write, dlexp": lambda: writing(False), "write, stock": lambda: writing(True)}
        cases |= {"read, dlexp": lambda: reading(False), "read, stock": lambda: reading(True)}
        if args.runs:
            cases |= {"run, dlexp": lambda: training(False), "run, stock": lambda: training(True)}
        times = interleaved(cases, args.repeats)
    show(times)
    saved = median(times["write, stock"]) - median(times["write, dlexp"])
    print(f"      saved writing: {saved * 1e3:.1f} ms, {saved / trained.wall:.2%} of the run that wrote them")
    ok = ratios("writing the events: dlexp / stock checksum", times["write, dlexp"], times["write, stock"], TARGET)
    ratios("reading the run back: dlexp / stock checksum", times["read, dlexp"], times["read, stock"], 1.0)
    if args.runs:
        ratios("a whole run: dlexp / stock checksum", times["run, dlexp"], times["run, stock"], 1.0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
