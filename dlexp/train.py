"""The recipe: validated config -> run dir -> build -> train -> close. One call and one log line each."""

from __future__ import annotations

import logging
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
    compact: bool = False  # one summary line, no progress (jobs of a parallel launcher share one terminal)
    num: int | None = None  # the job's number in its sweep (None for a single run)


def run(cfg: DictConfig, job: Job, console: Console, resume: dict | None = None) -> tuple[str, dict[str, float]]:
    """Train one configuration; return its final status (completed / diverged / failed / interrupted) and metrics.

    With `resume` (a loaded checkpoint) the run continues in its own directory from where the checkpoint left it.
    """
    from dlexp import build, checkpoint, loop
    from dlexp.observe.guard import Diverged
    from dlexp.observe.tensorboard import Board
    from dlexp.signals import stop_on_signals

    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    exp = build.assemble(cfg)  # the run's one build; what it refuses (ConfigError) leaves nothing behind
    if resume is None:
        record = runs.Run.create(job.run_dir, config_yaml, job.overrides, job.choices, num=job.num)
    else:
        record = runs.Run.open(job.run_dir)
        record.update(status="running", wall_time_before=record.status.get("wall_time", 0.0), resumed=True)
    log.info("%s %s: %s", "resume" if resume else "run", record.path, " ".join(job.overrides) or "(defaults)")
    log.info("built %s on %s: %d parameters, %d steps per epoch", type(exp.model).__name__, exp.device,
             sum(p.numel() for p in exp.model.parameters()), len(exp.batches))
    state, observers, board, status = loop.TrainState(), [], None, "failed"
    try:
        if resume is not None:
            checkpoint.restore(resume, model=exp.model, optimizer=exp.optimizer, scheduler=exp.scheduler,
                               state=state)
            log.info("resumed at epoch %d, step %d", state.epoch, state.step)
        # purge_step: TensorBoard drops events a previous attempt logged after the checkpoint
        board = Board(record.path, purge_step=state.step if resume is not None else None)
        observers = build.observers(cfg, exp, job, console, board, config_yaml)
        evaluate = build.evaluator(exp)
        with stop_on_signals(state):
            if exp.trainable and resume is None:  # the start of every curve: the fresh network at step 0
                loop.notify(observers, "on_epoch", state, evaluate(state))
            state = loop.fit(exp.model, exp.loss, exp.optimizer, exp.batches, build.schedule(cfg, exp), evaluate,
                             observers, exp.scheduler, state)
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
        for observer in observers:  # numbers observers summarise (saturation, dead units) join the metrics
            state.metrics.update(getattr(observer, "final", None) or {})
        if board is not None:
            board.close()
        record.finish(status, epoch=state.epoch, step=state.step, metrics=state.metrics)
    summarize(console, record, status, compact=job.compact)
    return status, state.metrics


def summarize(console: Console, record: runs.Run, status: str, compact: bool = False) -> None:
    s = record.status
    colour = runs.status_style(status)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in (s.get("metrics") or {}).items()
                        if k in ("train/loss", "val/loss", "train/acc", "val/acc"))
    if compact:
        console.print(f"[{colour}]{status}[/] {record.path.name}  {metrics}  ({s.get('wall_time', 0):.1f}s)",
                      highlight=False, soft_wrap=True)
        return
    console.print(f"[{colour}]{status}[/] after {s.get('epoch', 0)} epochs / {s.get('step', 0)} steps "
                  f"in {s.get('wall_time', 0):.1f}s  {metrics}", highlight=False)
    console.print(f"run directory: {record.path}", highlight=False, soft_wrap=True)
    console.print(f"view it:       dlexp board {record.path}", highlight=False, soft_wrap=True)
    if status in ("interrupted", "terminated"):
        console.print(f"continue it:   dlexp resume {record.path}", highlight=False, soft_wrap=True)
