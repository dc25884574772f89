"""OmegaConf resolvers that name run directories (conf/config.yaml: hydra.run.dir, hydra.sweep.dir and .subdir).

A single run:  <day>/<time>_<id>_<its overrides>           2026-12-01/16-54-43_9c8c9b_exp=xor_mlp
A sweep:       multirun/<time>_<id>_<experiment>/          multirun/2026-12-01_16-54-43_9c8c9b_learning_rate/
  its jobs:    <what sets the job apart>_<job number>      lr=0.001_1   init=xavier_normal,act=relu_5

Names are for reading (TensorBoard shows them as run names, and cuts long ones): keys are shortened
(optimizer.lr -> lr) and a job's name leaves out what every job of its sweep shares. The full overrides stay in the
run's config.yaml, .hydra/ and status.json. The id (and a job's number) keep every name unique.

What sets a job apart is known only to the sweep: `dlexp.sweep` reads the sweep's own command line (with its a,b,c
lists) in the launching process. It is cached, and Hydra copies the resolver cache of the sweep's config into every
job's config (as it does for ${now:} and ${dlexp.uid:}), so each job reads the sweep's answer, not one computed from
its own single values. The Preflight callback asks for it (hydra.callbacks.preflight.sweep), which computes it in
the launching process before any job is composed, even when hydra.sweep.dir is given on the command line.
"""

from __future__ import annotations

import re
import secrets

from omegaconf import OmegaConf

MAX_LABEL = 80
# Whole words shortened in names; any dotted key is named by its last part (optimizer.lr -> lr).
SHORT_WORDS = {"initializer": "init", "activation": "act", "experiment": "exp"}


def _uid() -> str:
    # Cached per config (use_cache): one id for the run dir, one per sweep, shared by all its jobs.
    return secrets.token_hex(3)


def short_key(key: str) -> str:
    """optimizer.lr -> lr, model.activation -> act, initializer -> init, +extra.depth -> depth."""
    last = key.lstrip("+~").rsplit(".", 1)[-1]
    return SHORT_WORDS.get(last, last)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=+\-\[\]]", "_", text)


def label(overrides, exclude=()) -> str:
    """'lr=0.1,init=he_normal' from key=value overrides, short keys (the whole key where two would read the same),
    safe in a path, at most MAX_LABEL characters; keys in `exclude` are left out."""
    items = []
    for override in overrides or ():
        key, sep, value = str(override).partition("=")
        if key.lstrip("+~") not in set(exclude or ()):
            items.append((key, sep, value))
    shorts = [short_key(key) for key, _, _ in items]
    text = _safe(
        ",".join(
            f"{short if shorts.count(short) == 1 else key.lstrip('+')}{sep}{value}"
            for (key, sep, value), short in zip(items, shorts)
        )
    )
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "~"


def sweep(overrides) -> dict:
    """{"shared": ["experiment=learning_rate", ...], "varied": ["optimizer.lr", ...]} from a sweep's overrides:
    what every job gets (as Hydra's basic sweeper writes it into each job's overrides) and the keys that take
    several values. A sampling sweeper (Optuna) adds its own keys to each job: they are not shared either."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides or ()])
    return {
        "shared": [
            f"{o.get_key_element()}={o.get_value_element_as_str()}" for o in parsed if not o.is_sweep_override()
        ],
        "varied": [o.get_key_element() for o in parsed if o.is_sweep_override()],
    }


def sweep_name(info) -> str:
    """'_learning_rate' (the experiment every job shares), else '_lr' (the keys the sweep varies), else ''."""
    shared = dict(str(item).partition("=")[::2] for item in info["shared"])
    name = shared.get("experiment") or ",".join(short_key(str(k)) for k in info["varied"])
    return "_" + _safe(name) if name else ""


def job_name(num, overrides, exclude, info) -> str:
    """'lr=0.001_3': the job's overrides that other jobs of its sweep do not share, then the job's number."""
    shared = {str(item).partition("=")[0] for item in info["shared"]}
    text = label([o for o in overrides if str(o).partition("=")[0] not in shared], exclude)
    return f"{text}_{num}" if text else str(num)


def run_label(overrides, exclude) -> str:
    """'_lr=0.1,epochs=5' for a single run's directory ('' without overrides)."""
    text = label(overrides, exclude)
    return "_" + text if text else ""


def register() -> None:
    for name, function, cached in (
        ("dlexp.uid", _uid, True),
        ("dlexp.sweep", sweep, True),
        ("dlexp.sweep_name", sweep_name, False),
        ("dlexp.job", job_name, False),
        ("dlexp.run", run_label, False),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=cached)
