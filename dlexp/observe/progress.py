"""What a person watching the terminal sees: a rich bar on a TTY, one plain line per epoch otherwise."""

from __future__ import annotations

import time

from rich.console import Console


def _fmt(metrics: dict[str, float]) -> str:
    keys = [k for k in ("train/loss", "val/loss", "train/acc", "val/acc") if k in metrics]
    return "  ".join(f"{k} {metrics[k]:.4g}" for k in keys)


class ProgressLines:
    """One line per evaluated epoch: for logs, CI and pipes."""

    def __init__(self, console: Console, epochs: int):
        self.console, self.epochs = console, epochs
        self.started = time.perf_counter()

    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        self.console.print(
            f"epoch {state.epoch}/{self.epochs}  step {state.step}  {_fmt(metrics)}  "
            f"({time.perf_counter() - self.started:.1f}s)",
            highlight=False,
        )


class ProgressBar:
    """A rich progress bar over steps, with the live loss; refreshed at log intervals, not every step."""

    def __init__(self, console: Console, epochs: int, steps_per_epoch: int, every: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.epochs, self.every = epochs, max(1, min(every, steps_per_epoch))
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[loss]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs * steps_per_epoch, epoch=0, epochs=epochs, loss="")

    def on_start(self, state) -> None:
        self.progress.start()
        self.progress.update(self.task, completed=state.step, epoch=state.epoch)

    def on_step(self, state, loss) -> None:
        if state.step % self.every == 0:
            self.progress.update(self.task, completed=state.step, loss=f"step loss {loss.item():.4g}")

    def epoch_reads_model(self, state) -> bool:  # on_epoch reads the metrics only
        return False

    def on_epoch(self, state, metrics: dict[str, float]) -> None:
        self.progress.update(self.task, completed=state.step, epoch=state.epoch, loss=_fmt(metrics))

    def on_end(self, state, status: str) -> None:
        self.progress.update(self.task, completed=state.step)
        self.progress.stop()
