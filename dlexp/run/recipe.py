"""The recipe: validated config -> run dir -> build -> train -> close. One call and one log line each.

`run` is `start` (the run directory, the one build, the observers), `fit` (the training loop) and `end` (the
observers' last word, status.json, the summary line). A launcher that trains many jobs at once (the vectorized
launcher) starts each job and ends it with these very functions; only the training in between is its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from dlexp.read import runs
from dlexp.run.record import Run, now

log = logging.getLogger("dlexp")


@dataclass
class Job:
    """What Hydra decided for this job: where it writes and which overrides made it."""

    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    compact: bool = False  # one summary line, no progress (jobs of a parallel launcher share one terminal)
    sweep_dir: Path | None = None  # a sweep job: it stops when its sweep is asked to (dlexp.run.signals)
    num: int | None = None  # its job number in the sweep (status.json's sweep_job)


@dataclass
class Started:
    """A run between `start` and `end`: its record on disk, its experiment, its observers and where it stands."""

    cfg: DictConfig
    job: Job
    console: Console
    exp: Any  # build.Experiment
    record: Run
    resume: dict | None  # the checkpoint it continues from, if any
    state: Any  # loop.TrainState
    board: Any = None  # observe.tensorboard.Board
    observers: list[object] = field(default_factory=list)  # each offers some of loop.Observer's methods
    schedule: Any = None  # loop.Schedule
    evaluate: Callable | None = None
    status: str = "failed"  # until training says how it went
    ready: bool = False  # everything set up: it can train

    def stopped_by(self, err: BaseException) -> None:
        """Training ended with an exception: a divergence (its step), a disk that takes nothing more (one sentence,
        the last checkpoint intact) or a failure (the traceback to the run's log)."""
        from rich.markup import escape

        from dlexp import cannot_write
        from dlexp.observe.guard import Diverged

        if isinstance(err, Diverged):
            self.status = "diverged"
            self.record.status["diverged_at_step"] = err.step
            self.console.print(f"[bold red]{escape(str(err))}[/]")
            return
        self.status = "failed"
        if isinstance(err, OSError):  # a full disk, a folder gone read-only
            self.record.status["error"] = cannot_write(err, self.record.path)
            self.console.print(
                f"[bold red]run failed:[/] {escape(self.record.status['error'])}. The last checkpoint "
                f"is intact: make room, then dlexp resume {self.record.path}",
                soft_wrap=True,
            )
            return
        log.error("run failed", exc_info=(type(err), err, err.__traceback__))
        self.record.status["error"] = f"{type(err).__name__}: {err}"
        self.console.print(
            f"[bold red]run failed:[/] {type(err).__name__}: {err} (traceback in {self.record.path / runs.LOG})"
        )


def run(
    cfg: DictConfig, job: Job, console: Console, resume: dict | None = None, resumed_from: dict | None = None
) -> tuple[str, dict[str, float]]:
    """Train one configuration; return its final status (completed / diverged / failed / interrupted) and metrics.

    With `resume` (a loaded checkpoint) the run continues in its own directory from where the checkpoint left it;
    `resumed_from` (what it was, which overrides changed it) joins the `resumes` list of its status.json.
    """
    return complete(start(cfg, job, console, resume, resumed_from=resumed_from))


def complete(started: Started) -> tuple[str, dict[str, float]]:
    """Train a started run with the single-run loop and end it."""
    try:
        fit(started)
    finally:
        end(started)
    return started.status, started.state.metrics


def start(
    cfg: DictConfig, job: Job, console: Console, resume: dict | None = None, exp=None, resumed_from: dict | None = None
) -> Started:
    """The run directory, the run's one build and its observers. A ConfigError from the build leaves nothing behind;
    what fails after the run directory exists makes the run `failed` (`end` still records it).

    `exp`: the job's experiment when it was already built from this very `cfg` (the vectorized launcher builds
    every job of a sweep before any starts).
    """
    from dlexp import StorageError, cannot_write
    from dlexp.observe.tensorboard import Board
    from dlexp.run import build, checkpoint, faults, loop

    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    exp = exp if exp is not None else build.assemble(cfg)  # the run's one build (a ConfigError: nothing written)
    try:
        if resume is None:
            record = Run.create(job.run_dir, config_yaml, job.overrides, job.choices, sweep_job=job.num)
        else:
            record = Run.open(job.run_dir)
            entry = {
                "at": now(),
                "epoch": resume["state"]["epoch"],
                "step": resume["state"]["step"],
                **(resumed_from or {}),
            }
            record.update(
                status="running",
                wall_time_before=record.status.get("wall_time", 0.0),
                resumes=[*record.status.get("resumes", []), entry],
            )
    except OSError as err:
        raise StorageError(cannot_write(err, job.run_dir) + ".") from None
    faults.point("job_start")
    log.info("%s %s: %s", "resume" if resume else "run", record.path, " ".join(job.overrides) or "(defaults)")
    log.info(
        "built %s on %s: %d parameters, %d steps per epoch",
        type(exp.model).__name__,
        exp.device,
        sum(p.numel() for p in exp.model.parameters()),
        len(exp.batches),
    )
    started = Started(cfg, job, console, exp, record, resume, loop.TrainState())
    try:
        if resume is not None:
            checkpoint.restore(
                resume, model=exp.model, optimizer=exp.optimizer, scheduler=exp.scheduler, state=started.state
            )
            log.info("resumed at epoch %d, step %d", started.state.epoch, started.state.step)
        # purge_step: TensorBoard drops events a previous attempt logged after the checkpoint
        purge = checkpoint.purge_step(started.state.step) if resume is not None else None
        started.board = Board(record.path, purge_step=purge)
        started.observers = build.observers(cfg, exp, job, console, started.board, config_yaml, record)
        if resume is not None:
            checkpoint.restore_observers(resume, started.observers)
        started.evaluate = build.evaluator(exp)
        started.schedule = build.schedule(cfg, exp)
        started.ready = True
    except Exception as err:  # the traceback goes to the run's log; the user gets one line
        started.stopped_by(err)
    return started


def fit(started: Started) -> None:
    """The single-run training loop, from the fresh (or restored) network to the end or a stop."""
    from dlexp.run import loop
    from dlexp.run.signals import stop_on_signals, stop_requested

    if not started.ready:
        return
    exp, state, evaluate = started.exp, started.state, started.evaluate
    if evaluate is None:  # set by start() with ready
        raise RuntimeError("A run marked ready has no evaluation.")
    try:
        with stop_on_signals(state):
            if started.job.sweep_dir is not None:  # stopped while this job was starting: it trains no step
                state.stop = state.stop or stop_requested(started.job.sweep_dir)
            if exp.trainable and state.step == 0:  # the start of every curve: the fresh network at step 0
                loop.notify(started.observers, "on_epoch", state, evaluate(state))
            started.state = loop.fit(
                exp.model,
                exp.loss,
                exp.optimizer,
                exp.batches,
                started.schedule,
                evaluate,
                started.observers,
                exp.scheduler,
                state,
            )
        started.status = started.state.stop or "completed"
    except Exception as err:
        started.stopped_by(err)


def end(started: Started) -> None:
    """The end of every run: the observers' on_end (the last checkpoint, hparams), the event file closed,
    status.json, and the run's summary line.

    A file that cannot be written now (a full disk) makes the run `failed`, said once; status.json is written if
    the disk still takes it (if not, it keeps `running`, which readers call `crashed` once this process is gone).
    """
    from rich.markup import escape

    from dlexp import cannot_write
    from dlexp.run import faults

    state, record, status, console = started.state, started.record, started.status, started.console
    problem = None
    for observer in started.observers:
        if hasattr(observer, "on_end"):
            try:
                observer.on_end(state, status)
            except OSError as err:
                problem = problem or err
    for observer in started.observers:  # numbers observers summarise (saturation, dead units) join the metrics
        state.metrics.update(getattr(observer, "final", None) or {})
        record.status.update(getattr(observer, "status_fields", None) or {})  # stalled_at_step
    if started.board is not None:
        try:
            started.board.close()
        except OSError as err:
            problem = problem or err
    if problem is not None and status != "failed":
        status = started.status = "failed"
        record.status["error"] = cannot_write(problem, record.path)
        console.print(f"[bold red]run failed:[/] {escape(record.status['error'])}", soft_wrap=True)
    try:
        record.finish(status, epoch=state.epoch, step=state.step, metrics=state.metrics)
    except OSError:
        pass  # said above, or about to be: the disk takes nothing more
    summarize(console, record, status, compact=started.job.compact)
    faults.point("job_end")


def summarize(console: Console, record: Run, status: str, compact: bool = False) -> None:
    s = record.status
    colour = runs.status_style(status)
    metrics = "  ".join(
        f"{k} {v:.4g}"
        for k, v in (s.get("metrics") or {}).items()
        if k in ("train/loss", "val/loss", "train/acc", "val/acc")
    )
    if compact:
        console.print(
            f"[{colour}]{status}[/] {record.path.name}  {metrics}  ({s.get('wall_time', 0):.1f}s)",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"[{colour}]{status}[/] after {s.get('epoch', 0)} epochs / {s.get('step', 0)} steps "
        f"in {s.get('wall_time', 0):.1f}s  {metrics}",
        highlight=False,
    )
    console.print(f"run directory: {record.path}", highlight=False, soft_wrap=True)
    console.print(f"view it:       dlexp board {record.path}", highlight=False, soft_wrap=True)
    if status in ("interrupted", "terminated"):
        console.print(f"continue it:   dlexp resume {record.path}", highlight=False, soft_wrap=True)
