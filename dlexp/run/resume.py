"""`dlexp resume RUN_DIR`: continue a run from its checkpoint, in its own directory, bit-for-bit on the CPU.

What each status gets:
  interrupted, terminated, crashed (killed without warning), failed (a full disk, say) -> continued from the
      last checkpoint, exactly as if it had never stopped;
  completed -> nothing to do, nothing written; `trainer.epochs=N` larger than its epochs extends it;
  diverged -> refused (its checkpoint would diverge again); running (a live process writes it) -> refused.
Every continuation is recorded in status.json's `resumes` list. A sweep directory is finished as a whole
(dlexp/sweeps/resume.py). Importing this module is light (torch and omegaconf come with a resume): the
CLI's help of `resume` says what MAY_CHANGE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlexp import CheckpointError, ConfigError, UsageError
from dlexp.read import runs

# What may change between the interrupted run and its continuation: how long, and how it is watched (a key, or
# a prefix ending in "." or "_": every key under it).
MAY_CHANGE = ("trainer.epochs", "trainer.checkpoint_", "guard.", "log.", "device.threads")


def may_change() -> str:
    """MAY_CHANGE as the help, the refusal and the README say it: "trainer.epochs, trainer.checkpoint_*, guard.*,
    log.* and device.threads may change"."""
    names = [f"{key}*" if key.endswith((".", "_")) else key for key in MAY_CHANGE]
    return f"{', '.join(names[:-1])} and {names[-1]} may change"


def changed_keys(a, b) -> list[str]:
    """The dotted keys whose values differ between two configs (a key only one has included)."""
    from dlexp.config.objects import as_dict
    from dlexp.read.rows import differences, flatten

    found = differences(*(flatten(as_dict(c)) for c in (a, b)))
    return sorted(key for key, _, _ in found)


def check_same_run(run_dir: Path, payload: dict, wanted) -> None:
    """The checkpoint was made by this configuration, up to what MAY_CHANGE."""
    from omegaconf import OmegaConf

    saved = OmegaConf.create(payload["config"])
    changed = [k for k in changed_keys(saved, wanted) if not k.startswith(MAY_CHANGE)]
    if changed:
        raise CheckpointError(
            f"Cannot resume {run_dir}: the checkpoint was made with a different configuration "
            f"({', '.join(changed)}); only {may_change()}."
        )


def resume_point(run_dir: Path, overrides: list[str]):
    """(effective config, loaded checkpoint) for a resume, or a CheckpointError / ConfigError sentence."""
    from omegaconf import OmegaConf

    from dlexp.config.compose import malformed
    from dlexp.run import checkpoint

    run_dir = Path(run_dir)

    problems = malformed(overrides)
    problems += [
        f"resume takes key=value overrides only (such as trainer.epochs=40), not {o}."
        for o in overrides
        if o.startswith(("+", "~")) and not malformed([o])
    ]
    if problems:
        raise ConfigError(problems)
    if not (run_dir / runs.STATUS).is_file():
        raise CheckpointError(f"{run_dir} is not a dlexp run directory (it has no {runs.STATUS}).")
    payload = checkpoint.load(run_dir / checkpoint.FILE)
    wanted = OmegaConf.merge(OmegaConf.create((run_dir / runs.CONFIG).read_text()), OmegaConf.from_dotlist(overrides))
    check_same_run(run_dir, payload, wanted)
    return wanted, payload


def refusal(run_dir: Path, status: dict) -> str | None:
    """Why this run cannot be continued now, or None."""
    name = status.get("status")
    if name == "running":
        return (
            f"{run_dir} is being written by process {status.get('pid')} on {status.get('host', 'this host')}; "
            "a run has one writer at a time: wait for it to end, or stop it (Ctrl-C) and resume it then."
        )
    if name == "diverged":
        return (
            f"{run_dir} diverged at step {status.get('diverged_at_step')}: continuing it would diverge again; "
            "change what made it diverge (optimizer.lr, the initializer) in a new run."
        )
    if name == "refused":
        return f"{run_dir} never trained: its configuration was refused ({'; '.join(status.get('problems', []))})."
    return None


def main(run_dir: Path, overrides: list[str], console) -> int:
    """`dlexp resume RUN_DIR [trainer.epochs=N ...]`: continue one run; returns the exit code of its end."""
    from omegaconf import OmegaConf

    from dlexp.config.preflight import check
    from dlexp.run import checkpoint, recipe

    run_dir = Path(run_dir)
    status = runs.read_status(run_dir)
    reason = refusal(run_dir, status)
    if reason:
        raise UsageError(reason)
    if status.get("status") in runs.CONTINUABLE and not (run_dir / checkpoint.FILE).is_file():
        return start_over(run_dir, status, overrides, console)
    cfg, payload = resume_point(run_dir, overrides)
    done, target = int(payload["state"]["epoch"]), int(cfg.trainer.epochs)
    if target < done:
        raise ConfigError(f"trainer.epochs={target} is fewer than the {done} epochs {run_dir} has already done.")
    if status.get("status") == "completed" and target <= done:
        console.print(
            f"{run_dir} has completed its {done} epochs: nothing to do. To train it longer: "
            f"dlexp resume {run_dir} trainer.epochs={done + max(done // 10, 1)}",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    check(cfg, status.get("choices"))  # the run's own build (recipe.run) is the last check
    job = recipe.Job(
        run_dir=run_dir,
        overrides=list(status.get("overrides", [])) + list(overrides),
        choices=status.get("choices", {}),
    )
    before = int(OmegaConf.create(payload["config"]).trainer.epochs)
    resumed_from = {"from": status.get("status"), "overrides": list(overrides)}
    if target != before:
        resumed_from["trainer.epochs"] = [before, target]
    extending = f" to epoch {target}" if status.get("status") == "completed" else ""
    console.print(
        f"resuming {run_dir} ({status.get('status')}) at epoch {done}, step {payload['state']['step']}{extending}",
        highlight=False,
        soft_wrap=True,
    )
    result, _ = recipe.run(cfg, job, console, resume=payload, resumed_from=resumed_from)
    return runs.EXIT_CODES.get(result, 1)


def start_over(run_dir: Path, status: dict, overrides: list[str], console: Any) -> int:
    """A run stopped while it was starting, before its first checkpoint (taken before its first step): it starts
    over, in its own directory, with its own configuration."""
    from omegaconf import DictConfig, OmegaConf

    from dlexp.config.compose import malformed
    from dlexp.config.preflight import check
    from dlexp.run import recipe

    problems = malformed(overrides)
    if problems:
        raise ConfigError(problems)
    if not (run_dir / runs.CONFIG).is_file():
        raise CheckpointError(f"{run_dir} was stopped before it wrote its {runs.CONFIG}: run its command again.")
    cfg = OmegaConf.merge(OmegaConf.create((run_dir / runs.CONFIG).read_text()), OmegaConf.from_dotlist(overrides))
    assert isinstance(cfg, DictConfig)  # a run's config.yaml is a mapping
    check(cfg, status.get("choices"))
    clear_start(run_dir)
    console.print(
        f"starting {run_dir} over: it was {status.get('status')} before its first checkpoint",
        highlight=False,
        soft_wrap=True,
    )
    job = recipe.Job(
        run_dir=run_dir,
        overrides=list(status.get("overrides", [])) + list(overrides),
        choices=status.get("choices", {}),
    )
    result, _ = recipe.run(cfg, job, console)
    return runs.EXIT_CODES.get(result, 1)


def clear_start(run_dir: Path) -> None:
    """The files a run's start wrote before its first checkpoint; Hydra's .hydra/ folder and the lock stay."""
    for path in Path(run_dir).iterdir():
        if path.is_file() and path.name != runs.LOCK:
            path.unlink()


def started(run_dir: Path) -> bool:
    """Did a job of a sweep being finished start before (it has a status.json)?"""
    return (Path(run_dir) / runs.STATUS).is_file()


def continue_job(cfg, job, console, exp=None):
    """A job of a stopped sweep that had started, started again (`recipe.start`, not yet trained): from its
    checkpoint; one stopped before its first checkpoint (within a second of its start) starts over."""
    from dlexp.run import checkpoint, recipe

    status = runs.read_status(job.run_dir)
    if not (job.run_dir / checkpoint.FILE).is_file():
        clear_start(job.run_dir)
        return recipe.start(cfg, job, console, exp=exp)
    payload = checkpoint.load(job.run_dir / checkpoint.FILE)
    check_same_run(job.run_dir, payload, cfg)
    console.print(
        f"resuming {job.run_dir.name} ({status.get('status')}) at epoch {payload['state']['epoch']}, "
        f"step {payload['state']['step']}",
        highlight=False,
        soft_wrap=True,
    )
    return recipe.start(cfg, job, console, resume=payload, exp=exp, resumed_from={"from": status.get("status")})
