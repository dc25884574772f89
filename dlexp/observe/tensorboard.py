"""The only module that knows TensorBoard: an event writer, and the observer that logs scalars."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor


class Board:
    """A thin wrapper around TensorBoard's SummaryWriter, writing straight into the run directory."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        # flush_secs: curves appear in a running TensorBoard within seconds; the writer thread does the I/O.
        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=10, purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def histogram_raw(self, tag: str, *, min: float, max: float, num: int, sum: float, sum_squares: float,
                      bucket_limits: list[float], bucket_counts: list[float], step: int) -> None:
        self.writer.add_histogram_raw(tag, min=min, max=max, num=num, sum=sum, sum_squares=sum_squares,
                                      bucket_limits=bucket_limits, bucket_counts=bucket_counts, global_step=step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        """HParams in the run's own directory (SummaryWriter.add_hparams would create a timestamped sub-run)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        exp, start, end = hparams_summary(hparams, metrics)
        file_writer = self.writer._get_file_writer()
        for summary in (exp, start, end):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ScalarLogger:
    """train/step_loss every `every` steps; epoch metrics and the learning rate at each evaluated epoch."""

    def __init__(self, board: Board, optimizer, every: int, steps_per_epoch: int):
        self.board, self.optimizer, self.every = board, optimizer, every
        self.steps_per_epoch = steps_per_epoch

    def on_start(self, state) -> None:
        self.board.scalar("data/steps_per_epoch", self.steps_per_epoch, state.step)

    def on_step(self, state, loss: Tensor) -> None:
        if state.step % self.every == 0:
            self.board.scalar("train/step_loss", loss.item(), state.step)  # the one host read per interval

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        step = state.step
        self.board.scalars({k: v for k, v in metrics.items() if math.isfinite(v)}, step)
        self.board.scalar("epoch", state.epoch, step)
        for i, group in enumerate(self.optimizer.param_groups):
            self.board.scalar("optim/lr" if i == 0 else f"optim/lr_group{i}", group["lr"], step)
        phase = getattr(self.optimizer, "phase", None)
        if phase is not None:
            self.board.scalar("optim/phase", float(phase), step)
