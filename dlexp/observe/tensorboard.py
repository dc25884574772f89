"""The only module that knows TensorBoard: an event writer, the observer that logs scalars, and reading events
back from a run's event files (scalars, histograms) and writing derived runs, such as the mean of a group of seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reading runs back (`dlexp compare`) never needs torch
    from torch import Tensor

Curve = list[tuple[int, float]]  # (step, value) of one scalar tag


class Board:
    """A thin wrapper around TensorBoard's SummaryWriter, writing straight into the run directory."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        fast_checksums()
        # flush_secs: curves appear in a running TensorBoard within seconds; the writer thread does the I/O.
        # max_queue: with the default of 10 pending events, the training thread would wait at every epoch end
        # (a histogram capture plus the epoch's scalars) for the writer thread to catch up.
        self.writer = SummaryWriter(log_dir=str(log_dir), max_queue=1000, flush_secs=10, purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Several scalars at one step as ONE event (each event is framed, check-summed and read back on its own)."""
        self.summary({}, values, step)

    def summary(self, histograms: dict[str, dict], scalars: dict[str, float], step: int) -> None:
        """Many histograms (HistogramProto fields: min, max, num, sum, sum_squares, bucket_limits, bucket_counts)
        and scalars as ONE event.

        One event instead of one per value halves the writing cost of a histogram capture: each event
        is framed and check-summed (in pure Python) on its own.
        """
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

        values = [Summary.Value(tag=tag, histo=HistogramProto(
                      min=h["min"], max=h["max"], num=h["num"], sum=h["sum"], sum_squares=h["sum_squares"],
                      bucket_limit=h["bucket_limits"], bucket=h["bucket_counts"]))
                  for tag, h in histograms.items()]
        values += [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
        if values:
            self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def images(self, images: dict, step: int) -> None:
        """RGB images ((H, W, 3) uint8 arrays) as ONE event, PNG-encoded (`png`: these are written while training
        runs)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, image=Summary.Image(height=pixels.shape[0], width=pixels.shape[1],
                                                             colorspace=3, encoded_image_string=png(pixels)))
                  for tag, pixels in images.items()]
        if values:
            self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def hparams(self, hparams: dict, metrics: dict[str, float], *, step: int | None = None,
                written: frozenset[str] | set[str] = frozenset()) -> None:
        """HParams in the run's own directory (SummaryWriter.add_hparams would create a timestamped sub-run).

        Only the session records are written, not an "experiment" record: TensorBoard uses the first
        experiment record it finds for ALL runs, which would hide the hyper-parameters other jobs of a sweep
        have (model=perceptron,mlp) and mark every value as not differing. Without one, it builds the
        experiment from all the runs' sessions. The table reads each metric from the scalar curve of the same
        tag; metrics in `written` already have a curve (a second point would distort it), the others are
        written once at `step`.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        _, start, end = hparams_summary(hparams, metrics)
        file_writer = self.writer._get_file_writer()
        for summary in (start, end):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            if tag not in written:
                self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


def png(pixels) -> bytes:
    """An (H, W, 3) uint8 array as a PNG file: every row unfiltered, deflated at level 1.

    Pillow tries every PNG row filter on every row, which costs 5-7x the compression itself; these pictures are
    mostly flat colour, which deflate packs well unfiltered (files within 1.5x of Pillow's).
    """
    import struct
    import zlib

    import numpy as np

    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)            # each row: filter type 0 (none), then RGB
    rows[:, 1:] = pixels.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no filter, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


class ScalarLogger:
    """train/step_loss every `every` steps; epoch metrics and the learning rate at each evaluated epoch."""

    def __init__(self, board: Board, optimizer, every: int, steps_per_epoch: int):
        self.board, self.optimizer, self.every = board, optimizer, every
        self.steps_per_epoch = steps_per_epoch

    def on_start(self, state) -> None:
        self.board.scalar("data/steps_per_epoch", self.steps_per_epoch, state.step)

    def on_step(self, state, loss: Tensor) -> None:
        if state.step % self.every == 0:
            self.step_loss(state.step, loss.item())  # the one host read per interval

    def step_loss(self, step: int, value: float) -> None:
        """train/step_loss at `step` (a stack of jobs reads every job's loss at once and calls this for each)."""
        self.board.scalar("train/step_loss", value, step)

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        values = {k: v for k, v in metrics.items() if math.isfinite(v)}
        values["epoch"] = state.epoch
        for i, group in enumerate(self.optimizer.param_groups):
            values["optim/lr" if i == 0 else f"optim/lr_group{i}"] = group["lr"]
        phase = getattr(self.optimizer, "phase", None)
        if phase is not None:
            values["optim/phase"] = float(phase)
        self.board.scalars(values, state.step)


def read_scalars(run_dir: Path) -> dict[str, Curve]:
    """Every scalar tag of the event files directly in `run_dir` -> its (step, value) points, in step order.

    A resumed run's later event file replaces what an earlier one logged after the checkpoint (the writer's
    purge_step), as in TensorBoard itself.
    """
    import logging

    from tensorboard.backend.event_processing import event_accumulator as ea

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # not "No path found after ..." for every file
    fast_checksums()  # reading checks every record's checksum: pictures are large records
    # keep every scalar; histograms and images are parsed but only one of each is kept
    accumulator = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 1, ea.IMAGES: 1,
                                                                   ea.TENSORS: 1, ea.AUDIO: 1, ea.COMPRESSED_HISTOGRAMS: 1})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()[ea.SCALARS]}


def write_scalars(log_dir: Path, curves: dict[str, Curve]) -> Path:
    """A run of scalars only (no torch needed): each tag's (step, value) points in one new event file."""
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(log_dir), max_queue_size=1000)
    now = time.time()
    by_step: dict[int, list] = {}
    for tag, points in curves.items():
        for step, value in points:
            by_step.setdefault(step, []).append(Summary.Value(tag=tag, simple_value=value))
    for step in sorted(by_step):  # one event per step, all tags in it
        writer.add_event(Event(wall_time=now, step=step, summary=Summary(value=by_step[step])))
    writer.close()
    return log_dir


# --- reading event files back (dlexp compare) ----------------------------------------------------------------

def read_histograms(run_dir, prefix: str, step: int) -> tuple[int | None, dict[str, dict], dict[str, float]]:
    """The histograms whose tag starts with `prefix` at the captured step nearest to `step`, and every scalar
    logged at that step: (that step or None if there is none, {tag: HistogramProto fields}, {tag: value})."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    fast_checksums()
    accumulator = ea.EventAccumulator(str(run_dir), size_guidance={
        ea.HISTOGRAMS: 0, ea.SCALARS: 0, ea.IMAGES: 1, ea.TENSORS: 1, ea.AUDIO: 1, ea.COMPRESSED_HISTOGRAMS: 1})
    accumulator.Reload()
    tags = [t for t in accumulator.Tags()["histograms"] if t.startswith(prefix)]
    steps = sorted({e.step for t in tags for e in accumulator.Histograms(t)})
    if not steps:
        return None, {}, {}
    nearest = min(steps, key=lambda s: (abs(s - step), s))
    histograms = {}
    for tag in tags:
        for event in accumulator.Histograms(tag):
            if event.step == nearest:
                h = event.histogram_value
                histograms[tag] = dict(min=h.min, max=h.max, num=h.num, bucket_limits=list(h.bucket_limit),
                                       bucket_counts=list(h.bucket))
    scalars = {tag: e.value for tag in accumulator.Tags()["scalars"] for e in accumulator.Scalars(tag)
               if e.step == nearest}
    return nearest, histograms, scalars


# --- event-file checksums --------------------------------------------------------------------------------------
# TensorBoard frames every event record with a CRC-32C it computes in pure Python, one byte per loop turn
# (~0.3 µs a byte): the ~5 KB event of a histogram capture cost ~1.5 ms, more than computing the histograms.
# The same checksum 64 bytes at a time: CRC-32C is linear, so a block's contribution is the XOR of one table
# entry per byte position (gathered by numpy for all blocks at once), and carrying the running state across
# a block is 4 table lookups. Installed only after it agrees with TensorBoard's own on a sample.

_BLOCK = 64
_SMALL = 256                                  # shorter records (scalars): TensorBoard's loop is as fast


class _BlockCrc32c:
    def __init__(self, table: list[int], reference):
        import numpy as np

        t = np.array(table, dtype=np.uint64)

        def zero_byte(state):                 # the state after one 0x00 byte
            return t[state & 0xFF] ^ (state >> 8)

        # position[k, b]: the state left by byte b at offset k of a block processed from state 0
        position = np.empty((_BLOCK, 256), dtype=np.uint64)
        state = t.copy()
        for k in range(_BLOCK - 1, -1, -1):
            position[k] = state
            state = zero_byte(state)
        # carry[j][v]: state byte j holding v, pushed through a whole block of zero bytes
        carry = []
        for j in range(4):
            state = np.arange(256, dtype=np.uint64) << np.uint64(8 * j)
            for _ in range(_BLOCK):
                state = zero_byte(state)
            carry.append(state.tolist())
        self.np, self.table, self.position, self.carry = np, table, position, carry
        self.offsets = np.arange(_BLOCK)[None, :]
        self.reference = reference

    def __call__(self, data: bytes) -> int:
        if len(data) < _SMALL:
            return self.reference(data)
        np, table = self.np, self.table
        whole = len(data) // _BLOCK * _BLOCK
        blocks = np.frombuffer(data, dtype=np.uint8, count=whole).reshape(-1, _BLOCK)  # (n, 64)
        contributions = np.bitwise_xor.reduce(self.position[self.offsets, blocks], axis=1).tolist()  # (n,)
        c0, c1, c2, c3 = self.carry
        crc = 0xFFFFFFFF
        for contribution in contributions:
            crc = c0[crc & 0xFF] ^ c1[(crc >> 8) & 0xFF] ^ c2[(crc >> 16) & 0xFF] ^ c3[crc >> 24] ^ contribution
        for byte in data[whole:]:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        crc ^= 0xFFFFFFFF
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF   # TensorBoard's "masked" CRC


def fast_checksums() -> bool:
    """Give TensorBoard's record writer and its record reader (the one `dlexp compare` reads event files with, when
    TensorFlow is not installed) the block-wise checksum (once); False if it could not be verified."""
    try:
        from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
        from tensorboard.summary.writer import record_writer
    except ImportError:
        return False
    if isinstance(record_writer.masked_crc32c, _BlockCrc32c):
        return True
    fast = _BlockCrc32c(list(stub.CRC_TABLE), stub.masked_crc32c)
    sample = bytes((i * 131 + 7) % 256 for i in range(3 * _BLOCK + 37))
    if fast(sample) != stub.masked_crc32c(sample):
        return False                          # a TensorBoard we do not know: keep its own
    record_writer.masked_crc32c = fast
    stub.masked_crc32c = fast                 # the reader checks every record it reads with it
    return True

