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
    sweep_dir: Path | None = None  # a sweep job: it stops when its sweep is asked to (dlexp.signals)
    num: int | None = None         # its job number in the sweep (status.json's sweep_job)


def run(cfg: DictConfig, job: Job, console: Console, resume: dict | None = None,
        resumed_from: dict | None = None) -> tuple[str, dict[str, float]]:
    """Train one configuration; return its final status (completed / diverged / failed / interrupted) and metrics.

    With `resume` (a loaded checkpoint) the run continues in its own directory from where the checkpoint left it;
    `resumed_from` (what it was, which overrides changed it) joins the `resumes` list of its status.json.
    """
    from rich.markup import escape

    from dlexp import build, checkpoint, loop
    from dlexp.errors import StorageError, cannot_write
    from dlexp.observe.guard import Diverged
    from dlexp.observe.tensorboard import Board
    from dlexp.signals import stop_on_signals

    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    exp = build.assemble(cfg)  # the run's one build; what it refuses (ConfigError) leaves nothing behind
    try:
        if resume is None:
            record = runs.Run.create(job.run_dir, config_yaml, job.overrides, job.choices, sweep_job=job.num)
        else:
            record = runs.Run.open(job.run_dir)
            entry = {"at": runs.now(), "epoch": resume["state"]["epoch"], "step": resume["state"]["step"],
                     **(resumed_from or {})}
            record.update(status="running", wall_time_before=record.status.get("wall_time", 0.0),
                          resumes=[*record.status.get("resumes", []), entry])
    except OSError as err:
        raise StorageError(cannot_write(err, job.run_dir) + ".") from None
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
        board = Board(record.path, purge_step=checkpoint.purge_step(state.step) if resume is not None else None)
        observers = build.observers(cfg, exp, job, console, board, config_yaml, record)
        if resume is not None:
            checkpoint.restore_observers(resume, observers)
        evaluate = build.evaluator(exp)
        with stop_on_signals(state):
            if exp.trainable and state.step == 0:  # the start of every curve: the fresh network at step 0
                loop.notify(observers, "on_epoch", state, evaluate(state))
            state = loop.fit(exp.model, exp.loss, exp.optimizer, exp.batches, build.schedule(cfg, exp), evaluate,
                             observers, exp.scheduler, state)
        status = state.stop or "completed"
    except Diverged as err:
        status = "diverged"
        record.status["diverged_at_step"] = err.step
        console.print(f"[bold red]{escape(str(err))}[/]")
    except OSError as err:  # a full disk, a folder gone read-only: one sentence, the last checkpoint stays intact
        record.status["error"] = cannot_write(err, record.path)
        console.print(f"[bold red]run failed:[/] {escape(record.status['error'])}. The last checkpoint is intact: "
                      f"make room, then dlexp resume {record.path}", soft_wrap=True)
    except Exception as err:  # the traceback goes to the run's log; the user gets one line
        log.exception("run failed")
        record.status["error"] = f"{type(err).__name__}: {err}"
        console.print(f"[bold red]run failed:[/] {type(err).__name__}: {err} (traceback in {record.path / runs.LOG})")
    finally:
        status = finish(record, observers, board, state, status, console)
    summarize(console, record, status, compact=job.compact)
    return status, state.metrics


def finish(record: runs.Run, observers, board, state, status: str, console: Console) -> str:
    """The end of every run: observers' on_end (the last checkpoint, hparams), the event file closed, status.json.

    A file that cannot be written now (a full disk) makes the run `failed`, said once; status.json is written if
    the disk still takes it (if not, it keeps `running`, which readers call `crashed` once this process is gone).
    """
    from rich.markup import escape

    from dlexp.errors import cannot_write

    problem = None
    for observer in observers:
        if hasattr(observer, "on_end"):
            try:
                observer.on_end(state, status)
            except OSError as err:
                problem = problem or err
    for observer in observers:  # numbers observers summarise (saturation, dead units) join the metrics
        state.metrics.update(getattr(observer, "final", None) or {})
        record.status.update(getattr(observer, "status_fields", None) or {})  # stalled_at_step
    if board is not None:
        try:
            board.close()
        except OSError as err:
            problem = problem or err
    if problem is not None and status != "failed":
        status = "failed"
        record.status["error"] = cannot_write(problem, record.path)
        console.print(f"[bold red]run failed:[/] {escape(record.status['error'])}", soft_wrap=True)
    try:
        record.finish(status, epoch=state.epoch, step=state.step, metrics=state.metrics)
    except OSError:
        pass  # said above, or about to be: the disk takes nothing more
    return status


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
