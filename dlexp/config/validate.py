"""Everything that can be checked before a run starts, reported all at once (torchtune `_validate.py` style).

Structure first (closed keys, types, ranges, allowed targets), then a dry build on the CPU that catches what
only the components know: an impossible loss/data pairing, a negative learning rate, an unknown activation.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlexp.config import catalog, objects
from dlexp.errors import ConfigError, DlexpError

# Component groups are `_target_` nodes; their keys are the target's parameters, minus what the builder injects.
INJECTED = {
    "data": {"seed"},
    "model": {"in_shape", "out_features"},
    "loss": set(),
    "optimizer": {"params", "model", "init", "steps_per_epoch"},
    "initializer": {"model", "module"},
    "scheduler": {"optimizer"},
}


@dataclass(frozen=True)
class Knob:
    kind: type | tuple            # int, float, bool, str, list; a tuple of str = one of these choices
    minimum: float | None = None
    nullable: bool = False


PLAIN = {
    "trainer": {"epochs": Knob(int, 0), "checkpoint_every": Knob(int, 0)},
    "log": {"dir": Knob(str), "every": Knob(int, 1), "epoch_every": Knob(int, 1), "hist_every": Knob(int, 0),
            "histograms": Knob(bool), "progress": Knob(("auto", "bar", "lines", "none")),
            "boundaries": Knob(("auto", True, False))},
    "batch": {"size": Knob(int, 1, nullable=True), "shuffle": Knob(bool)},
    "device": {"type": Knob(("auto", "cpu", "cuda", "mps")), "threads": Knob(int, 1, nullable=True)},
}
TOP = {"seed": Knob(int, 0), "allow_targets": Knob(list)}


def validate(cfg: DictConfig, choices: dict[str, str] | None = None, dry_build: bool = True) -> list[str]:
    """Every problem with this (hydra-free) config, as sentences. Empty when the run can start."""
    choices = choices or {}
    problems = _structure(cfg, choices)
    if not problems and dry_build:
        problems = _dry_build(cfg)
    return problems


def check(cfg: DictConfig, choices: dict[str, str] | None = None) -> None:
    problems = validate(cfg, choices)
    if problems:
        raise ConfigError(problems)


def _named(group: str, choices: dict[str, str]) -> str:
    return f"{group}={choices[group]}" if group in choices else group


def _structure(cfg: DictConfig, choices: dict[str, str]) -> list[str]:
    problems: list[str] = []
    known = set(TOP) | set(PLAIN) | set(INJECTED)
    for key in cfg.keys():
        if key not in known:
            problems.append(f"Unknown key '{key}'.{catalog.suggest(str(key), known)} "
                            f"Top-level keys: {', '.join(sorted(known))}.")
    for key, knob in TOP.items():
        problems += _check_value(key, OmegaConf.select(cfg, key, throw_on_missing=False), knob)
    for group, schema in PLAIN.items():
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            problems.append(f"'{group}' must be a mapping with keys {', '.join(schema)}.")
            continue
        for key in node.keys():
            if key not in schema:
                problems.append(f"Unknown key '{group}.{key}' for {_named(group, choices)}."
                                f"{catalog.suggest(str(key), schema)} Valid keys: {', '.join(schema)}.")
        for key, knob in schema.items():
            problems += _check_value(f"{group}.{key}", node.get(key), knob)
    allow = tuple(cfg.get("allow_targets") or ())
    for group, injected in INJECTED.items():
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            problems.append(f"'{group}' needs a _target_; choose one of: "
                            f"{', '.join(catalog.options(group))}.")
            continue
        problems += _check_component(group, node, injected, allow, choices)
    return problems


def _check_value(path: str, value: Any, knob: Knob) -> list[str]:
    if value is None:
        return [] if knob.nullable else [f"{path} must be set."]
    if isinstance(knob.kind, tuple):
        if value not in knob.kind:
            choices = [str(c).lower() if isinstance(c, bool) else c for c in knob.kind]  # as YAML spells them
            return [f"{path}={value} is not valid.{catalog.suggest(str(value), choices)} "
                    f"Valid choices: {', '.join(choices)}."]
        return []
    if knob.kind is list:
        return [] if isinstance(value, (list, ListConfig)) else [f"{path} must be a list, not {value!r}."]
    if knob.kind is bool:
        return [] if isinstance(value, bool) else [f"{path}={value} must be true or false."]
    if knob.kind is str:
        return [] if isinstance(value, str) else [f"{path}={value} must be a string."]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (knob.kind is int and isinstance(value, float)):
        kind = "a whole number" if knob.kind is int else "a number"
        extra = " or null" if knob.nullable else ""
        return [f"{path}={value} must be {kind}{extra}."]
    if knob.minimum is not None and value < knob.minimum:
        return [f"{path}={value} is out of range: it must be at least {knob.minimum:g}."]
    return []


def _check_component(group, node, injected, allow, choices) -> list[str]:
    target = OmegaConf.to_container(node, resolve=False).get("_target_")
    problem = objects.check_target(target, group, allow)
    if problem:
        return [problem]
    try:
        sig = objects.signature(target)
    except Exception as err:  # ImportError, AttributeError from a user's own target
        return [f"{group}._target_={target} cannot be imported: {err}."]
    if sig is None:
        return []
    params = {name: p for name, p in sig.parameters.items() if name not in ("self", "args")}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items() if n not in injected and p.kind is not p.VAR_KEYWORD]
    problems = []
    for key in node.keys():
        key = str(key)
        if key.startswith("_"):
            continue
        if key in injected:
            problems.append(f"{group}.{key} is filled in by dlexp (from the data and the model); remove it.")
        elif key not in params and not takes_any:
            problems.append(f"Unknown key '{group}.{key}' for {_named(group, choices)} ({target})."
                            f"{catalog.suggest(key, valid)} Valid keys: {', '.join(valid) or 'none'}.")
        elif key in params:
            problems += _check_against_default(f"{group}.{key}", node._get_node(key), params[key].default)
    return problems


def _check_against_default(path: str, value_node, default) -> list[str]:
    """A value whose type contradicts the parameter's default (a string where a number goes, ...)."""
    if OmegaConf.is_interpolation(value_node) or default is None or default is inspect.Parameter.empty:
        return []
    value = value_node._value()
    if value is None:
        return []
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif isinstance(default, (list, tuple)):
        ok, want = isinstance(value, (list, tuple, ListConfig)), "a list such as [1, 2]"
    else:
        return []
    return [] if ok else [f"{path}={value} must be {want}."]


def _dry_build(cfg: DictConfig) -> list[str]:
    """Build every component once on the CPU; whatever they refuse is a config problem."""
    from dlexp import build

    try:
        build.assemble(cfg, dry=True)
    except ConfigError as err:
        return err.problems
    except DlexpError as err:  # e.g. missing MNIST files: a problem to fix before the run, as one sentence
        return [str(err)]
    except (ValueError, TypeError) as err:
        return [f"{err}".strip().splitlines()[0] if str(err).strip() else repr(err)]
    return []
