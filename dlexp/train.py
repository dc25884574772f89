"""The recipe: validated config -> run dir -> build -> train -> close. One call and one log line each."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from dlexp import runs

log = logging.getLogger("dlexp")


@dataclass
class Job:
    """What Hydra decided for this job: where it writes and which overrides made it."""

    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    multirun: bool = False


def run(cfg: DictConfig, job: Job, console: Console) -> tuple[str, dict[str, float]]:
    """Train one configuration; return its final status (completed / diverged / failed / interrupted) and metrics."""
    from dlexp import build, loop
    from dlexp.observe.guard import Diverged
    from dlexp.observe.tensorboard import Board
    from dlexp.signals import stop_on_signals

    record = runs.Run.create(job.run_dir, OmegaConf.to_yaml(cfg, resolve=True), job.overrides, job.choices)
    log.info("run %s: %s", record.path, " ".join(job.overrides) or "(defaults)")
    state, observers, board, status = loop.TrainState(), [], None, "failed"
    try:
        exp = build.assemble(cfg)
        log.info("built %s on %s: %d parameters, %d steps per epoch", type(exp.model).__name__, exp.device,
                 sum(p.numel() for p in exp.model.parameters()), len(exp.batches))
        board = Board(record.path)
        observers = build.observers(cfg, exp, record.path, console, board)
        evaluate = build.evaluator(exp)
        with stop_on_signals(state):
            if exp.trainable:  # the starting point of every curve: metrics of the fresh network at step 0
                loop.notify(observers, "on_epoch", state, evaluate(state))
            state = loop.fit(exp.model, exp.loss, exp.optimizer, exp.batches, exp.epochs, evaluate, observers,
                             exp.scheduler, state, eval_every=int(cfg.log.epoch_every))
        status = state.stop or "completed"
    except Diverged as err:
        status = "diverged"
        record.status["diverged_at_step"] = err.step
        console.print(f"[bold red]{err}[/]")
    except Exception as err:  # the traceback goes to the run's log; the user gets one line
        log.exception("run failed")
        record.status["error"] = f"{type(err).__name__}: {err}"
        console.print(f"[bold red]run failed:[/] {type(err).__name__}: {err} (traceback in {record.path / runs.LOG})")
    finally:
        loop.notify(observers, "on_end", state, status)
        if board is not None:
            board.close()
        record.finish(status, epoch=state.epoch, step=state.step, metrics=state.metrics)
    summarize(console, record, status)
    return status, state.metrics


def summarize(console: Console, record: runs.Run, status: str) -> None:
    s = record.status
    colour = {"completed": "green", "diverged": "red", "failed": "red"}.get(status, "yellow")
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in (s.get("metrics") or {}).items()
                        if k in ("train/loss", "val/loss", "train/acc", "val/acc"))
    console.print(f"[bold {colour}]{status}[/] after {s.get('epoch', 0)} epochs / {s.get('step', 0)} steps "
                  f"in {s.get('wall_time', 0):.1f}s  {metrics}", highlight=False)
    console.print(f"run directory: {record.path}", highlight=False, soft_wrap=True)
    console.print(f"view it:       dlexp board {record.path}", highlight=False, soft_wrap=True)
