"""`dlexp resume RUN_DIR`: continue a run from its checkpoint, in its own directory, bit-for-bit on the CPU."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from dlexp import checkpoint, runs
from dlexp.errors import CheckpointError, ConfigError

# What may change between the interrupted run and its continuation: how long, and how it is watched.
MAY_CHANGE = ("trainer.epochs", "trainer.checkpoint_every", "log.", "device.threads")


def _flat(node, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def differing_keys(a, b) -> list[str]:
    fa = _flat(OmegaConf.to_container(a, resolve=True))
    fb = _flat(OmegaConf.to_container(b, resolve=True))
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<unset>") != fb.get(k, "<unset>"))


def prepare(run_dir: Path, overrides: list[str]):
    """(effective config, loaded checkpoint) for a resume, or a CheckpointError / ConfigError sentence."""
    run_dir = Path(run_dir)
    from dlexp.config.compose import malformed

    problems = malformed(overrides)
    problems += [f"resume takes key=value overrides only (such as trainer.epochs=40), not {o}."
                 for o in overrides if o.startswith(("+", "~")) and not malformed([o])]
    if problems:
        raise ConfigError(problems)
    if not (run_dir / runs.STATUS).is_file():
        raise CheckpointError(f"{run_dir} is not a dlexp run directory (it has no {runs.STATUS}).")
    payload = checkpoint.load(run_dir / checkpoint.FILE)
    wanted = OmegaConf.merge(OmegaConf.create((run_dir / runs.CONFIG).read_text()),
                             OmegaConf.from_dotlist(overrides))
    saved = OmegaConf.create(payload["config"])
    changed = [k for k in differing_keys(saved, wanted) if not k.startswith(MAY_CHANGE)]
    if changed:
        raise CheckpointError(f"Cannot resume {run_dir}: the checkpoint was made with a different configuration "
                              f"({', '.join(changed)}); only trainer.epochs and logging may change.")
    return wanted, payload


def main(run_dir: Path, overrides: list[str], console) -> int:
    from dlexp import train
    from dlexp.config.validate import check

    cfg, payload = prepare(run_dir, overrides)
    status = runs.read_status(run_dir)
    check(cfg, status.get("choices"))  # the run's own build (train.run) is the last check
    job = train.Job(run_dir=Path(run_dir), overrides=list(status.get("overrides", [])) + list(overrides),
                    choices=status.get("choices", {}))
    console.print(f"resuming {run_dir} at epoch {payload['state']['epoch']}, step {payload['state']['step']}",
                  highlight=False, soft_wrap=True)
    result, _ = train.run(cfg, job, console, resume=payload)
    return runs.EXIT_CODES.get(result, 1)
