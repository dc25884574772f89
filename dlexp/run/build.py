"""Config becomes objects here, and only here."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from dlexp import ConfigError
from dlexp.config.objects import as_dict, instantiate
from dlexp.parts.batching import Batches
from dlexp.parts.optim import build_optimizer

# What the builder passes to each group's target; never set by a user (validation refuses these keys).
# The optimizer gets `params` always, and `model`, `init`, `steps_per_epoch` only if its __init__ names them.
INJECTED = {
    "data": ("seed",),
    "model": ("in_shape", "out_features"),
    "loss": (),
    "optimizer": ("params", "model", "init", "steps_per_epoch"),
    "initializer": ("model",),
    "scheduler": ("optimizer",),
}


@dataclass
class Experiment:
    data: Any  # dlexp.parts.data.Dataset, on the device
    loss: Any  # a loss adapter (dlexp.parts.losses), resolved for this data
    model: nn.Module
    init: Callable  # re-draws a module's parameters (random search uses it)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batches: Batches
    device: torch.device
    epochs: int
    y_train: Tensor | None  # encoded targets (one-hot, float column, ...) for the loss
    y_val: Tensor | None

    @property
    def trainable(self) -> bool:
        return self.data.task != "unlabelled"


def available_devices() -> dict[str, bool]:
    """Which device kinds this machine has, in device=auto's order of preference."""
    mps = getattr(torch.backends, "mps", None)
    return {"cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available(), "cpu": True}


def resolve_device(kind: str) -> torch.device:
    """The device for device.type (validation has checked that it exists)."""
    if kind == "auto":
        kind = next(k for k, present in available_devices().items() if present)
    return torch.device(kind)


@functools.lru_cache(maxsize=2)
def _load_data(data_yaml: str, seed: int, allow: tuple[str, ...]):
    # Validation and the run itself load the same data in one process: load it once.
    return instantiate(OmegaConf.create(data_yaml), "data", allow, seed=seed)


def load_data(cfg: DictConfig):
    return _load_data(OmegaConf.to_yaml(cfg.data, resolve=True), int(cfg.seed), tuple(cfg.allow_targets))


def assemble(cfg: DictConfig, dry: bool = False) -> Experiment:
    """data -> loss -> (seed) model -> init -> batches -> optimizer -> scheduler.

    `dry=True` builds everything on the CPU to find configuration problems before a run directory exists,
    with one thread: the process that launches a sweep then never starts OpenMP's thread pool, which a worker
    forked from it could not use (see config/callbacks.py, ForkedWorkers).
    """
    if not dry:
        return _assemble(cfg, dry)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _assemble(cfg, dry)
    finally:
        torch.set_num_threads(threads)


def _assemble(cfg: DictConfig, dry: bool) -> Experiment:
    allow = tuple(cfg.allow_targets)
    device = torch.device("cpu") if dry else resolve_device(cfg.device.type)
    if not dry and cfg.device.threads:
        # Tiny matrices gain nothing from intra-op threads, and idle threads spinning on a busy machine cost 10-40x.
        torch.set_num_threads(int(cfg.device.threads))
    data = load_data(cfg)
    loss = instantiate(cfg.loss, "loss", allow).resolve(data)
    labelled = data.task != "unlabelled"  # validation has checked that the loss can train on it
    torch.manual_seed(int(cfg.seed))  # right before the model: same parameters as nn.Sequential after manual_seed
    model = instantiate(
        cfg.model,
        "model",
        allow,
        in_shape=tuple(data.feature_shape),
        out_features=loss.out_features(data) if labelled else 1,
    )
    check_model = getattr(loss, "check_model", None) if labelled else None  # a user's own adapter may lack it
    problem = check_model(model) if check_model else None  # raw scores or probabilities, as the loss takes
    if problem:
        raise ConfigError(problem)
    init = instantiate(cfg.initializer, "initializer", allow)
    init(model)
    model.to(device)
    data = data if dry else data.to(device)  # train and validation splits; a test split stays where it is
    y_train = loss.encode(data.y_train, data) if labelled else None
    y_val = loss.encode(data.y_val, data) if labelled else None
    x_train = data.x_train
    batches = Batches(
        x_train, x_train if y_train is None else y_train, cfg.batch.size, cfg.batch.shuffle, int(cfg.seed)
    )
    optimizer = build_optimizer(instantiate(cfg.optimizer, "optimizer", allow), model, init, len(batches))
    scheduler = instantiate(cfg.scheduler, "scheduler", allow)(optimizer)
    epochs = int(cfg.trainer.epochs) if labelled else 0  # unlabelled data: look at the fresh network only
    return Experiment(data, loss, model, init, optimizer, scheduler, batches, device, epochs, y_train, y_val)


@torch.no_grad()
def evaluate(
    outputs: Callable[[Any], Tensor],
    loss: Any,
    x_val: Any,
    y_val: Tensor | None,
    labels_val: Tensor,
    x_train: Any,
    labels_train: Tensor,
) -> dict[str, Tensor]:
    """Validation loss and accuracy and training accuracy, of one network or of N stacked ones at once.

    `outputs(x)` is the network's outputs on a split, (B, K), or a stack's, (N, B, K); `loss` scores them and
    predicts classes from them as they come (a loss adapter: one network's mean loss; a stack's loss: (N,) each
    job's). Returns device tensors, () each or (N,) for a stack, read back by the caller; no accuracy for a loss that
    predicts no class (regression).
    """
    out = outputs(x_val)
    result = {"val/loss": loss(out, y_val)}
    predicted = loss.predict(out)  # (B,) or (N, B)
    if predicted is not None:
        result["val/acc"] = accuracy(predicted, labels_val)
        result["train/acc"] = accuracy(loss.predict(outputs(x_train)), labels_train)
    return result


def accuracy(predicted: Tensor, labels: Tensor) -> Tensor:
    """The share of right predictions: (B,) -> (), (N, B) -> (N,)."""
    return (predicted == labels).float().mean(-1)


def evaluator(exp: Experiment, chunk: int = 8192) -> Callable[[Any], dict[str, float]]:
    """The epoch-end evaluation the loop calls (`evaluate` on the model in eval mode), read back at once."""
    data, model = exp.data, exp.model

    def outputs(x: Tensor) -> Tensor:
        was_training = model.training
        model.eval()
        out = torch.cat([model(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])  # (B, out)
        model.train(was_training)
        return out

    def run(state) -> dict[str, float]:
        values = evaluate(outputs, exp.loss, data.x_val, exp.y_val, data.y_val, data.x_train, data.y_train)
        read = torch.stack([v.float() for v in values.values()]).tolist()  # one host read for all metrics
        return dict(zip(values, read))

    return run


def schedule(cfg: DictConfig, exp: Experiment):
    """How long the loop runs, when it evaluates and which steps it captures (histograms)."""
    from dlexp.run.loop import Schedule

    return Schedule(
        epochs=exp.epochs,
        steps_per_epoch=len(exp.batches),
        eval_every=int(cfg.log.epoch_every),
        capture_every=int(cfg.log.hist_every),
    )


def progress_kind(setting: str, console) -> str:
    """log.progress as this console shows it: "bar", "lines" or "none" (auto: a bar on a terminal, else lines)."""
    if setting == "auto":
        return "bar" if console.is_terminal and sys.stdout.isatty() else "lines"
    return str(setting)


def stack_observers(runs: Sequence) -> list:
    """The observers the started runs of one stack share (the vectorized launcher's), after each run's own: its
    progress, as the first run's log.progress asks (a sweep's runs share it): a live line on a terminal, plain lines
    otherwise, none for log.progress=none."""
    from dlexp.observe.stack_progress import StackProgress

    first = runs[0]
    kind = progress_kind(first.cfg.log.progress, first.console)
    if kind == "none":
        return []
    return [
        StackProgress(
            first.console,
            [run.record.path.name for run in runs],
            [run.state for run in runs],
            [run.schedule.epochs for run in runs],
            [run.schedule.steps_per_epoch for run in runs],
            live=kind == "bar",
        )
    ]


def observers(cfg: DictConfig, exp: Experiment, job, console, board, config_yaml: str, record=None) -> list[object]:
    """Every observer a run's config asks for, in the order they are notified: the one place they are wired.

    `record` (the run's record.Run) gets the progress each checkpoint keeps; a sweep job also watches for its
    sweep being stopped (dlexp.run.signals).
    """
    from rich.markup import escape

    from dlexp.observe import pictures
    from dlexp.observe.guard import DivergenceGuard
    from dlexp.observe.histograms import Histograms, probe_batch
    from dlexp.observe.hparams import HParams, hyperparameters
    from dlexp.observe.metrics import MetricsCSV
    from dlexp.observe.progress import ProgressBar, ProgressLines
    from dlexp.observe.tensorboard import ScalarLogger
    from dlexp.read import runs
    from dlexp.run import checkpoint, faults
    from dlexp.run.signals import SweepStop

    log, guard = cfg.log, cfg.guard
    sweep_job = getattr(job, "sweep_dir", None) is not None
    who = escape(f"{job.run_dir.name}: ") if sweep_job else ""  # a sweep's jobs can share one terminal
    chosen: list[object] = [  # each offers some of loop.Observer's methods
        DivergenceGuard(
            exp.model,
            exp.device,
            int(log.every),
            explode_factor=guard.explode_factor,
            explode_window=int(guard.explode_window),
            stall_steps=guard.stall_steps,
            stuck_factor=guard.stuck_factor,
            notice=lambda text: console.print(f"[yellow]{who}{text}[/]", soft_wrap=True),
        )
    ]
    if log.histograms:  # right after the guard: a step it stops (non-finite loss) is never captured
        chosen.append(Histograms(board, exp.model, probe_batch(exp.data), extra=bool(log.extra_histograms)))
    if pictures.wanted(log.boundaries, exp.data, exp.loss):
        chosen.append(pictures.Pictures(board, exp.model, exp.loss, exp.data, job.run_dir))
    chosen += [
        ScalarLogger(board, exp.optimizer, int(log.every), len(exp.batches)),
        MetricsCSV(job.run_dir / runs.METRICS),
    ]
    progress = "none" if job.compact else progress_kind(log.progress, console)
    if progress == "bar":
        chosen.append(ProgressBar(console, exp.epochs, len(exp.batches), int(log.every)))
    elif progress == "lines":
        chosen.append(ProgressLines(console, exp.epochs))
    hparams = hyperparameters(as_dict(cfg), job.choices)
    chosen.append(
        HParams(
            board, hparams, sources=[o for o in chosen if isinstance(o, Histograms)], history=job.run_dir / runs.METRICS
        )
    )
    if sweep_job:
        chosen.append(SweepStop(job.sweep_dir))
    chosen.append(
        checkpoint.Checkpointer(
            job.run_dir / checkpoint.FILE,
            exp,
            config_yaml,
            int(cfg.trainer.checkpoint_every),
            float(cfg.trainer.checkpoint_secs),
            schedule(cfg, exp),
            record,
            observers=chosen,
        )
    )
    if faults.wanted():  # a test's fault at a point of the loop (dlexp/run/faults.py)
        chosen.append(faults.FaultPoints(len(exp.batches)))
    return chosen
