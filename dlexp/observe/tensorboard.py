"""The only module that knows TensorBoard: an event writer, the observer that logs scalars, and reading events
back from a run's event files (scalars, histograms) and writing derived runs, such as the mean of a group of seeds."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reading runs back (`dlexp compare`) never needs torch
    from torch import Tensor

Curve = list[tuple[int, float]]  # (step, value) of one scalar tag

# The page `dlexp board` opens on (TensorBoard's Custom Scalars): the curves to read first, then the per-layer
# numbers. (category, ((chart title, tag regex), ...)); each run lists the charts whose tags it has logged, and
# TensorBoard merges the runs' layouts (every run writes both categories, in this order, so the merge keeps it).
LAYOUT = (
    (
        "Loss, accuracy, learning rate",
        (
            ("loss: train (each epoch's mean) and val", r"^(train|val)/loss$"),
            ("accuracy: train and val", r"^(train|val)/acc$"),
            ("learning rate", r"^optim/lr"),
            ("loss at every logged step", r"^train/step_loss$"),
        ),
    ),
    (
        "Per layer",
        (
            ("activations: spread (std over the probe batch)", r"^act_std/[^/]+$"),
            ("saturated sigmoid / tanh outputs (share)", r"^saturation/[^/]+$"),
            ("dead ReLUs (share of units that never fire)", r"^dead/[^/]+$"),
            ("gradient norm", r"^grad_norm/[^/]+$"),
            ("update / weight ratio of a step", r"^update_ratio/[^/]+$"),
            ("activations: mean", r"^act_mean/[^/]+$"),
            ("a layer's single weight or bias", r"^(weight|bias)/[^/]+$"),
        ),
    ),
)
# A diverged run's step losses until it stopped, in a chart of their own: as log10 (an explosion of x100 a step is a
# straight line), or as they were when some are not positive (gaussian_nll can be negative).
DIVERGED_TAGS = {"log10": "diverged/log10_loss", "plain": "diverged/loss"}
COLUMNS_SUFFIX = ".hparams-columns"  # the event file holding a sweep's HParams columns (write_columns)
DISCRETE_MAX = 10  # up to this many distinct numbers, a column's filter lists them (else: min..max)


def after_earlier_files(log_dir: Path) -> None:
    """Wait, if need be, until a new event file in `log_dir` sorts after those already there.

    TensorBoard (and `read_scalars`) read a run's event files in name order, and a name starts with the second it
    was created in, then the host and the process id: a run resumed within the second it was stopped in, by a
    process with a lower id, would have its continuation read first and its beginning taken for a restart.
    """
    import time

    stamps = [
        int(p.name.split(".")[3]) for p in log_dir.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()
    ]
    if stamps and time.time() < max(stamps) + 1:
        time.sleep(max(stamps) + 1 - time.time())


class Board:
    """A thin wrapper around TensorBoard's SummaryWriter, writing straight into the run directory."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        fast_checksums()
        quiet_writer_threads()
        if purge_step is not None:
            after_earlier_files(self.log_dir)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        Records.replace(self.writer._get_file_writer().event_writer)
        self.name = Path(log_dir).name
        self.tags: set[str] = set()  # scalar tags written: the layout lists their charts
        self.charts: dict[str, tuple] = {}  # the layout last written: category -> charts
        self.laid_out: tuple[int, int | None] | None = None  # (tags, diverged_at) the layout was last made for
        self.pending: list[Future] = []  # pictures on the painting thread, in the order given

    @contextlib.contextmanager
    def writing(self):
        """A write that fails (a full disk) names the event file: TensorBoard's own error names no file."""
        try:
            yield
        except OSError as err:
            if err.filename is None:
                found = sorted(self.log_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
                err.filename = str(found[-1] if found else self.log_dir)
            raise

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.tags.add(tag)
        with self.writing():
            self.writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Several scalars at one step as ONE event (each event is framed, check-summed and read back on its own)."""
        self.summary({}, values, step)

    def summary(self, histograms: dict[str, dict], scalars: dict[str, float], step: int) -> None:
        """Many histograms and scalars as ONE event. A histogram is either HistogramProto's fields (min, max, num,
        sum, sum_squares, bucket_limits, bucket_counts: TensorBoard drops empty buckets at both ends and fits its
        axis to the rest) or {"buckets": [(left, right, count)]}, written as TensorBoard's tensor histogram, every
        bucket kept: the axis spans them all.

        One event instead of one per value halves the writing cost of a histogram capture: each event
        is framed and check-summed (in pure Python) on its own.
        """
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
        from tensorboard.util.tensor_util import make_tensor_proto

        values = []
        for tag, h in histograms.items():
            if "buckets" in h:
                plugin = SummaryMetadata.PluginData(plugin_name="histograms")
                values.append(
                    Summary.Value(
                        tag=tag,
                        metadata=SummaryMetadata(plugin_data=plugin),
                        tensor=make_tensor_proto([list(b) for b in h["buckets"]], dtype="float64"),
                    )
                )
            else:
                values.append(
                    Summary.Value(
                        tag=tag,
                        histo=HistogramProto(
                            min=h["min"],
                            max=h["max"],
                            num=h["num"],
                            sum=h["sum"],
                            sum_squares=h["sum_squares"],
                            bucket_limit=h["bucket_limits"],
                            bucket=h["bucket_counts"],
                        ),
                    )
                )
        values += [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
        self.tags.update(scalars)
        if values:
            with self.writing():
                self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def images(self, images: dict | Callable[[], dict], step: int) -> None:
        """RGB images ((H, W, 3) uint8 arrays), or a function that makes them, as ONE event, PNG-encoded (`png`) on
        the painting thread while the training thread goes on; the events are written in the order given. What
        failed there is raised by the next call; `close` (or `settle`) waits for every picture."""
        with self.writing():  # the painting thread's write failed (a full disk): said as the training thread's
            self.settle(wait=False)
        self.pending.append(painting().submit(self._write_images, images, step))

    def _write_images(self, images: dict | Callable[[], dict], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        try:  # a picture is never worth the run: one that cannot be made is said in the log and left out
            made = images() if callable(images) else images
            values = [
                Summary.Value(
                    tag=tag,
                    image=Summary.Image(
                        height=pixels.shape[0], width=pixels.shape[1], colorspace=3, encoded_image_string=png(pixels)
                    ),
                )
                for tag, pixels in made.items()
            ]
        except Exception:
            logging.getLogger("dlexp").exception("pictures: the pictures of step %d could not be drawn", step)
            return
        if values:
            self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def settle(self, wait: bool = True) -> None:
        """The pictures handed to the painting thread: wait for them (wait=False: only forget those done); the
        first that failed raises here."""
        done = [f for f in self.pending if wait or f.done()]
        self.pending = [f for f in self.pending if f not in done]
        for future in done:
            future.result()

    def hparams(
        self,
        hparams: dict,
        metrics: dict[str, float],
        *,
        step: int | None = None,
        written: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        """HParams in the run's own directory (SummaryWriter.add_hparams would create a timestamped sub-run).

        Only the session records are written, not an "experiment" record (the table's columns): TensorBoard
        uses the first experiment record it finds for ALL runs, and one run alone cannot know what the other
        jobs of its sweep vary (model=perceptron,mlp). The sweep writes that record when it ends, knowing all
        its jobs (write_columns); until then, and for runs outside a sweep, TensorBoard builds the columns from
        all the runs' sessions. The table reads each metric from the scalar curve of the same tag; metrics in
        `written` already have a curve (a second point would distort it), the others are written once at `step`.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        _, start, end = hparams_summary(hparams, metrics)
        with self.writing():
            file_writer = self.writer._get_file_writer()
            for summary in (start, end):
                file_writer.add_summary(summary)
            for tag, value in metrics.items():
                if tag not in written:
                    self.writer.add_scalar(tag, value, step)

    def layout(self, step: int, diverged_at: int | None = None) -> None:
        """The Custom Scalars layout of this run (written again only when it changes: TensorBoard reads the
        latest). A run that diverged adds a chart of its own losses, titled with its name and step."""
        from torch.utils.tensorboard.summary import custom_scalars

        laid_out = (len(self.tags), diverged_at)  # tags are only ever added: the same count, the same tags
        if laid_out == self.laid_out:
            return
        self.laid_out = laid_out
        charts = {}
        for category, entries in LAYOUT:
            charts[category] = tuple(
                (title, regex) for title, regex in entries if any(re.match(regex, tag) for tag in self.tags)
            )
        logged = [tag for tag in DIVERGED_TAGS.values() if tag in self.tags]
        if diverged_at is not None and logged:
            what = "log10 of its loss" if logged[0] == DIVERGED_TAGS["log10"] else "its loss"
            charts[LAYOUT[0][0]] += (
                (f"{self.name} diverged at step {diverged_at}: {what} until then", f"^{re.escape(logged[0])}$"),
            )
        if charts != self.charts:
            self.charts = charts
            layout = {
                category: {title: ["Multiline", [regex]] for title, regex in entries}
                for category, entries in charts.items()
            }
            self.writer._get_file_writer().add_summary(custom_scalars(layout), step)

    def close(self) -> None:
        with self.writing():
            try:
                self.settle()
            finally:
                self.writer.close()


class Records:
    """A run's event records written by the thread that makes them, each one on disk (flushed) when the call
    returns, in place of TensorBoard's writer thread per event file.

    A stack of 64 runs had 64 writer threads: each batch of events (every run's step loss at one step) woke all 64,
    and each took the interpreter lock in turn while the training thread waited for it. Measured here
    (64 seeds of xor_mlp, vectorized): 16.1-16.5 s with TensorBoard's threads, 14.0-14.2 s with the records
    written in place, the training thread's CPU time about the same. The painting thread writes a run's pictures
    into the same file: one lock per file keeps records whole.
    """

    def __init__(self, path: str):
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.file = open(path, "ab")  # open for the run's life, closed by close()
        self.records = RecordWriter(self.file)  # framing and checksums: TensorBoard's own (fast_checksums)
        self.lock = threading.Lock()
        self.closed = False

    @classmethod
    def replace(cls, event_writer) -> None:
        """TensorBoard's EventFileWriter writes through a Records from now on: what its thread holds (the file's
        first records) written first, its thread stopped, its file closed. A TensorBoard whose writer is built
        otherwise keeps its own."""
        theirs, path = getattr(event_writer, "_async_writer", None), getattr(event_writer, "_file_name", None)
        if theirs is None or not isinstance(path, str) or not hasattr(theirs, "_worker"):
            return
        theirs.close()
        if theirs._worker.exception is not None:  # those first records could not be written (a full disk)
            raise theirs._worker.exception
        event_writer._async_writer = cls(path)

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                raise OSError("the event file is closed")
            self.records.write(data)
            self.file.flush()

    def flush(self) -> None:
        with self.lock:
            if not self.closed:
                self.file.flush()

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.file.close()


_painting: tuple[int, ThreadPoolExecutor] | None = None  # (the process it belongs to, the painting thread)


def painting() -> ThreadPoolExecutor:
    """The thread that encodes and writes pictures beside training, one per process (zlib and Pillow release the
    GIL while they work). A process forked from this one (a joblib worker) gets its own: the parent's thread is
    not in it."""
    global _painting
    if _painting is None or _painting[0] != os.getpid():
        _painting = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlexp-pictures"))
    return _painting[1]


def quiet_writer_threads() -> None:
    """TensorBoard writes events from a thread of its own (a run's first records, until `Records` takes over; a
    sweep's derived runs). When a write fails there (a full disk), the thread keeps the exception and it is raised
    again in the training thread, where the run reports it in one sentence; Python would also print the thread's
    traceback (~100 lines). Not that one."""
    if getattr(threading.excepthook, "dlexp", False):
        return
    default = threading.excepthook

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__module__.startswith("tensorboard."):
            return
        default(args)

    hook.dlexp = True  # type: ignore[attr-defined]  # marks the hook as installed (read back above)
    threading.excepthook = hook


def png(pixels) -> bytes:
    """An (H, W, 3) uint8 array as a PNG file: every row unfiltered, deflated at level 1.

    Pillow tries every PNG row filter on every row, which costs 5-7x the compression itself; these pictures are
    mostly flat colour, which deflate packs well unfiltered (files within 1.5x of Pillow's).
    """
    import struct
    import zlib

    import numpy as np

    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # each row: filter type 0 (none), then RGB
    rows[:, 1:] = pixels.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no filter, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


class ScalarLogger:
    """train/step_loss every `every` steps; epoch metrics and the learning rate at each evaluated epoch; the
    layout of the page TensorBoard opens on.

    A run that diverges is invisible in the loss charts of a sweep: it stops after a few steps, and TensorBoard's
    y axis leaves out values as far from the others as its exploding loss. At its end it logs its step losses
    once more (DIVERGED_TAGS), with the last finite one, and adds a chart of them, titled with its name and the
    step it stopped at, right after the loss charts: on their own scale, beside the others, unflattened.
    """

    def __init__(self, board: Board, optimizer, every: int, steps_per_epoch: int):
        self.board, self.optimizer, self.every = board, optimizer, every
        self.steps_per_epoch = steps_per_epoch
        self.step_losses: Curve = []  # what train/step_loss logged
        # the latest step's loss, read only if the run diverges: (step, a 0-d loss) alone, (step, a stack's (N,)
        # losses, its row) in a stack
        self.last: tuple | None = None

    def on_start(self, state) -> None:
        self.board.scalar("data/steps_per_epoch", self.steps_per_epoch, state.step)

    def on_step(self, state, loss: Tensor) -> None:
        self.last = (state.step, loss, None)
        if state.step % self.every == 0:
            self.step_loss(state.step, loss.item())  # the one host read per interval

    @staticmethod
    def stack_step(members: list, stack) -> dict:
        """on_step for many networks trained as one stack ((row, state, logger) each): every logger due at this
        step logs its network's loss, read from the device once for all."""
        losses = stack.losses_tensor()
        for row, state, logger in members:
            logger.last = (state.step, losses, row)
            if state.step % logger.every == 0:
                logger.step_loss(state.step, stack.losses()[row])
        return {}

    def step_loss(self, step: int, value: float) -> None:
        """train/step_loss at `step` (a stack of jobs reads every job's loss at once and calls this for each)."""
        self.board.scalar("train/step_loss", value, step)
        self.step_losses.append((step, value))

    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        values = {k: v for k, v in metrics.items() if math.isfinite(v)}
        values["epoch"] = state.epoch
        for i, group in enumerate(self.optimizer.param_groups):
            values["optim/lr" if i == 0 else f"optim/lr_group{i}"] = group["lr"]
        phase = getattr(self.optimizer, "phase", None)
        if phase is not None:
            values["optim/phase"] = float(phase)
        self.board.scalars(values, state.step)
        self.board.layout(state.step)

    def on_end(self, state, status: str) -> None:
        diverged_at = None
        if status == "diverged":
            points = list(self.step_losses)
            if self.last is not None and self.last[0] not in dict(points):
                step, loss, row = self.last
                points.append((step, (loss if row is None else loss[row]).item()))
            points = [(step, value) for step, value in points if math.isfinite(value)]
            positive = all(value > 0 for _, value in points)
            for step, value in points:
                if positive:
                    self.board.scalar(DIVERGED_TAGS["log10"], math.log10(value), step)
                else:
                    self.board.scalar(DIVERGED_TAGS["plain"], value, step)
            diverged_at = state.step
        self.board.layout(state.step, diverged_at)


def read_scalars(run_dir: Path) -> dict[str, Curve]:
    """Every scalar tag of the event files directly in `run_dir` -> its (step, value) points, in the order logged.

    As TensorBoard reads them: the files in name order, and a resumed run's later file, which opens with the
    restart its writer's purge_step marks, replaces what earlier files logged from that step on. A file is read up
    to a record that is cut short or does not check (a run killed while writing). Each record's length is checked
    and the contents of each record a scalar is read from; pictures and histograms, most of the bytes, are only
    skipped (TensorBoard's own reader checks them too, at 10x the time: `read_scalars` reads every run of a sweep).
    """
    import struct

    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub

    fast_checksums()
    checksum = stub.masked_crc32c  # installed just above, where it can be
    curves: dict[str, Curve] = {}
    for path in sorted(Path(run_dir).glob("*tfevents*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        at = 0
        while at + 12 <= len(data):
            header = data[at : at + 8]
            (length,) = struct.unpack("<Q", header)
            end = at + 12 + length + 4
            if end > len(data) or struct.unpack("<I", data[at + 8 : at + 12])[0] != checksum(header):
                break
            record = data[at + 12 : end - 4]
            at = end
            try:
                event = Event.FromString(record)
            except DecodeError:
                break
            if event.session_log.status == SessionLog.START:  # a restart: what was logged from here on is gone
                for tag, points in curves.items():
                    curves[tag] = [(step, value) for step, value in points if step < event.step]
                continue
            found = [(v.tag, v.simple_value) for v in event.summary.value if v.WhichOneof("value") == "simple_value"]
            if not found:
                continue
            if struct.unpack("<I", data[end - 4 : end])[0] != checksum(record):
                break
            for tag, value in found:
                curves.setdefault(tag, []).append((event.step, value))
    return curves


def write_columns(run_dirs: list[Path], hparams: dict[str, list], metrics: list[str]) -> Path | None:
    """The columns of a sweep's HParams table (an "experiment" record): the hyper-parameters named in `hparams`
    (name -> the values its runs had), marked as differing, so TensorBoard shows them first; then `metrics`, in
    that order. Written in a file of its own beside the events of the first of `run_dirs` that has some,
    replacing an earlier one there; returns that directory (None when no run has events)."""
    import time

    from google.protobuf import struct_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for run_dir in map(Path, run_dirs):
        for old in run_dir.glob(f"events.out.tfevents.*{COLUMNS_SUFFIX}"):
            old.unlink()
    holder = next((Path(d) for d in run_dirs if any(Path(d).glob("events.out.tfevents.*"))), None)
    if holder is None:
        return None

    def info(name: str, values: list) -> api_pb2.HParamInfo:
        distinct = list(dict.fromkeys(values))
        if all(isinstance(v, bool) for v in distinct):
            return api_pb2.HParamInfo(
                name=name,
                type=api_pb2.DATA_TYPE_BOOL,
                differs=True,
                domain_discrete=struct_pb2.ListValue(values=[struct_pb2.Value(bool_value=v) for v in distinct]),
            )
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct):
            found = api_pb2.HParamInfo(name=name, type=api_pb2.DATA_TYPE_FLOAT64, differs=True)
            if len(distinct) <= DISCRETE_MAX:
                found.domain_discrete.values.extend(struct_pb2.Value(number_value=v) for v in sorted(distinct))
            else:
                found.domain_interval.min_value, found.domain_interval.max_value = min(distinct), max(distinct)
            return found
        return api_pb2.HParamInfo(
            name=name,
            type=api_pb2.DATA_TYPE_STRING,
            differs=True,
            domain_discrete=struct_pb2.ListValue(values=[struct_pb2.Value(string_value=str(v)) for v in distinct]),
        )

    experiment = api_pb2.Experiment(
        hparam_infos=[info(name, values) for name, values in hparams.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
        time_created_secs=time.time(),
    )
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(experiment=experiment))
    summary = Summary(value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=content, tensor=metadata.NULL_TENSOR)])
    writer = EventFileWriter(str(holder), filename_suffix=COLUMNS_SUFFIX)
    writer.add_event(Event(wall_time=time.time(), step=0, summary=summary))
    writer.close()
    return holder


def column_records(folder: Path) -> list[Path]:
    """The run directories under `folder` holding a sweep's HParams columns (TensorBoard uses the first)."""
    return sorted({path.parent for path in Path(folder).rglob(f"events.out.tfevents.*{COLUMNS_SUFFIX}")})


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


# The charts `dlexp board` opens with when a sweep varies the seed: for each tag, every group's mean (<tag>/mean of its
# aggregate run, dlexp/read/evidence.py) as a line in a band from its lowest to its highest seed (<tag>/min, /max).
# Only tags no single run has: TensorBoard lists a run holding some but not all of a margin chart's tags as an error.
BANDS = ("val/loss", "train/loss")
BAND = ("mean", "min", "max")  # <tag>/mean, the line, between <tag>/min and <tag>/max
BANDS_CATEGORY = "Groups of seeds: each group's mean, in a band from its lowest to its highest seed"
BOARD_RECORD = "events.out.tfevents.0000000000.dlexp-board"  # sorts before every event file a writer names


def write_board_record(log_dir: Path, wall_time: float, text: dict[str, str], bands: list[str]) -> Path:
    """The event file `dlexp board` adds to its folder of a run (dlexp/read/view.py): `text` (tag -> Markdown, on
    TensorBoard's Text page) and, when `bands` names tags, their margin charts (BANDS_CATEGORY) as the run's Custom
    Scalars layout. Its name sorts before the run's own event files: TensorBoard reads a run's files in name order and
    never goes back to an earlier one. `wall_time`: when the run started (TensorBoard lists runs in that order)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.types_pb2 import DT_STRING
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.custom_scalar import metadata as layout_metadata
    from tensorboard.plugins.text import metadata as text_metadata
    from tensorboard.summary.writer.record_writer import RecordWriter

    def string(data: bytes) -> TensorProto:
        return TensorProto(dtype=DT_STRING, string_val=[data])  # a 0-d tensor

    values = [
        Summary.Value(
            tag=tag, metadata=text_metadata.create_summary_metadata(tag, ""), tensor=string(markdown.encode())
        )
        for tag, markdown in text.items()
    ]
    if bands:

        def series(tag: str) -> layout_pb2.MarginChartContent.Series:
            value, lower, upper = (f"{tag}/{part}" for part in BAND)
            return layout_pb2.MarginChartContent.Series(value=value, lower=lower, upper=upper)

        layout = layout_pb2.Layout(
            category=[
                layout_pb2.Category(
                    title=BANDS_CATEGORY,
                    chart=[
                        layout_pb2.Chart(
                            title=f"{tag}: each group's mean and the range of its seeds",
                            margin=layout_pb2.MarginChartContent(series=[series(tag)]),
                        )
                        for tag in bands
                    ],
                )
            ]
        )
        values.append(
            Summary.Value(
                tag=layout_metadata.CONFIG_SUMMARY_TAG,
                metadata=layout_metadata.create_summary_metadata(),
                tensor=string(layout.SerializeToString()),
            )
        )
    path = Path(log_dir) / BOARD_RECORD
    partial = path.with_name(".partial")  # renamed once whole: TensorBoard never reads it half written
    with partial.open("wb") as f:
        records = RecordWriter(f)
        records.write(Event(wall_time=wall_time, file_version="brain.Event:2").SerializeToString())
        records.write(Event(wall_time=wall_time, step=0, summary=Summary(value=values)).SerializeToString())
    partial.replace(path)
    return path


# --- reading event files back (dlexp compare) ----------------------------------------------------------------


def histogram_buckets(accumulator, tag: str) -> list[tuple[int, list[tuple[float, float, float]]]]:
    """(step, [(left, right, count), ...]) of every capture of a histogram tag, as TensorBoard draws it, from an
    EventAccumulator: HistogramProto records (min and max are the outer edges) or tensor histograms (buckets over a
    fixed span: sigmoid and tanh activations)."""
    from tensorboard.util.tensor_util import make_ndarray

    if tag in accumulator.Tags()["histograms"]:
        found = []
        for event in accumulator.Histograms(tag):
            h = event.histogram_value
            edges = [h.min, *h.bucket_limit[:-1], h.max]
            found.append((event.step, list(zip(edges[:-1], edges[1:], h.bucket))))
        return found
    return [
        (event.step, [tuple(row) for row in make_ndarray(event.tensor_proto).tolist()])
        for event in accumulator.Tensors(tag)
    ]


def read_histograms(run_dir, prefix: str, step: int) -> tuple[int | None, dict[str, dict], dict[str, float]]:
    """The histograms whose tag starts with `prefix` at the captured step nearest to `step`, and every scalar
    logged at that step: (that step or None if there is none, {tag: {"buckets": [(left, right, count)], "min",
    "max": the filled extent, "num": the count}}, {tag: value})."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    fast_checksums()
    accumulator = ea.EventAccumulator(
        str(run_dir),
        size_guidance={
            ea.HISTOGRAMS: 0,
            ea.SCALARS: 0,
            ea.TENSORS: 0,
            ea.IMAGES: 1,
            ea.AUDIO: 1,
            ea.COMPRESSED_HISTOGRAMS: 1,
        },
    )
    accumulator.Reload()
    tensors = [
        t
        for t in accumulator.Tags()["tensors"]
        if accumulator.SummaryMetadata(t).plugin_data.plugin_name == "histograms"
    ]
    tags = [t for t in [*accumulator.Tags()["histograms"], *tensors] if t.startswith(prefix)]
    captures = {tag: dict(histogram_buckets(accumulator, tag)) for tag in tags}
    steps = sorted({s for found in captures.values() for s in found})
    if not steps:
        return None, {}, {}
    nearest = min(steps, key=lambda s: (abs(s - step), s))
    histograms = {}
    for tag, found in captures.items():
        buckets = found.get(nearest)
        filled = [(left, right) for left, right, count in buckets or () if count]
        if buckets and filled:
            histograms[tag] = {
                "buckets": buckets,
                "min": filled[0][0],
                "max": filled[-1][1],
                "num": sum(count for _, _, count in buckets),
            }
    scalars = {
        tag: e.value for tag in accumulator.Tags()["scalars"] for e in accumulator.Scalars(tag) if e.step == nearest
    }
    return nearest, histograms, scalars


# --- event-file checksums --------------------------------------------------------------------------------------
# TensorBoard frames every event record with a CRC-32C it computes in pure Python, one byte per loop turn, when
# writing and again when reading: 25 us for a 200-byte record of scalars, ~120 ms for a megabyte of pictures, and
# every event writer of a stack (a thread each) holds the GIL while it checks, which the training thread waits for.
# The same checksum from Google's C library (google-crc32c, 0.3 us a record), installed only where it is compiled and
# after it agrees with TensorBoard's own on a sample. Measured by benchmarks/event_checksums.py and, for a stack, by
# benchmarks/vectorized_sweep.py (README, Performance). It replaces two module globals of TensorBoard's
# (record_writer.masked_crc32c, pywrap_tensorflow.masked_crc32c); tests/test_histograms.py fails if the writer or
# the reader stops looking them up, or stops accepting the result.


class _Crc32c:
    """TensorBoard's masked CRC-32C of a record, by google-crc32c; `reference` is TensorBoard's own."""

    def __init__(self, value, reference):
        self.value, self.reference = value, reference

    def __call__(self, data: bytes) -> int:
        crc = self.value(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF  # TensorBoard's "masked" CRC


def fast_checksums() -> bool:
    """Give TensorBoard's record writer and its record reader (the one `dlexp compare` reads event files with, when
    TensorFlow is not installed) the C checksum (once); False where it is not compiled or could not be verified."""
    try:
        import google_crc32c
        from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
        from tensorboard.summary.writer import record_writer
    except ImportError:
        return False
    if isinstance(record_writer.masked_crc32c, _Crc32c):
        return True
    if google_crc32c.implementation != "c":  # its pure-Python fallback is no faster than TensorBoard's
        return False
    fast = _Crc32c(google_crc32c.value, stub.masked_crc32c)
    sample = bytes((i * 131 + 7) % 256 for i in range(229))
    if fast(sample) != stub.masked_crc32c(sample) or fast(b"") != stub.masked_crc32c(b""):
        return False  # a TensorBoard we do not know: keep its own
    record_writer.masked_crc32c = fast
    stub.masked_crc32c = fast  # the reader checks every record it reads with it
    return True
