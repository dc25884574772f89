"""Everything that can be checked before a run starts, reported all at once (torchtune `_validate.py` style).

One pass over a composed (hydra-free) config, each problem naming its key:
  1. the plain groups (trainer, guard, log, batch, device) and top-level keys against their declared knobs (`PLAIN`);
  2. each component group (`_target_` nodes) against its target's signature: unknown or missing keys, types,
     and the ranges and choices declared with the parameters (dlexp/parts/params.py);
  3. what needs the data: the dataset loads, the loss pairs with it (bce on 10 classes), the device exists.
Where no run follows (`dlexp validate`, a sweep's pre-flight), a dry build on the CPU then catches what only a
component's constructor knows; a single run's own build is that last check (dlexp/run/recipe.py).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlexp import ConfigError, DlexpError
from dlexp.config import catalog, objects


@dataclass(frozen=True)
class Knob:
    kind: type | tuple  # int, float, bool, str, list; a tuple of str = one of these choices
    minimum: float | None = None
    nullable: bool = False


PLAIN = {
    "trainer": {"epochs": Knob(int, 0), "checkpoint_secs": Knob(float, 0), "checkpoint_every": Knob(int, 0)},
    "guard": {
        "explode_factor": Knob(float, 1, nullable=True),
        "explode_window": Knob(int, 1),
        "stall_steps": Knob(int, 1, nullable=True),
        "stuck_factor": Knob(float, 1, nullable=True),
    },
    "log": {
        "dir": Knob(str),
        "every": Knob(int, 1),
        "epoch_every": Knob(int, 1),
        "hist_every": Knob(int, 0),
        "histograms": Knob(bool),
        "extra_histograms": Knob(bool),
        "progress": Knob(("auto", "bar", "lines", "none")),
        "boundaries": Knob(("auto", True, False)),
    },
    "batch": {"size": Knob(int, 1, nullable=True), "shuffle": Knob(bool)},
    "device": {"type": Knob(("auto", "cpu", "cuda", "mps")), "threads": Knob(int, 1, nullable=True)},
}
TOP = {"seed": Knob(int, 0), "allow_targets": Knob(list)}


def validate(cfg: DictConfig, choices: dict[str, str] | None = None, dry_build: bool = False) -> list[str]:
    """Every problem with this (hydra-free) config, as sentences. Empty when the run can start."""
    from dlexp.run.build import INJECTED

    choices = choices or {}
    problems = _unknown_top_keys(cfg)
    for key, knob in TOP.items():
        problems += _check_value(key, OmegaConf.select(cfg, key, throw_on_missing=False), knob)
    for group, schema in PLAIN.items():
        problems += _plain_group(cfg, group, schema, choices)
    allow = tuple(cfg.get("allow_targets") or ())
    broken = set()
    for group in INJECTED:
        found = _component(cfg, group, allow, choices)
        if found:
            broken.add(group)
        problems += found
    if not broken & {"data", "loss"} and not problems_with(problems, "seed", "allow_targets"):
        problems += _with_data(cfg)
    if not problems_with(problems, "device."):
        problems += _device(cfg)
    if not problems and dry_build:
        problems = _dry_build(cfg)
    return problems


def problems_with(problems: list[str], *keys: str) -> bool:
    return any(p.startswith(keys) for p in problems)


def _named(group: str, choices: dict[str, str]) -> str:
    return f"{group}={choices[group]}" if group in choices else group


def _unknown_top_keys(cfg: DictConfig) -> list[str]:
    from dlexp.run.build import INJECTED

    known = set(TOP) | set(PLAIN) | set(INJECTED)
    return [
        f"Unknown key '{key!s}'.{catalog.suggest(str(key), known)} Top-level keys: {', '.join(sorted(known))}."
        for key in cfg.keys()
        if key not in known
    ]


def _plain_group(cfg: DictConfig, group: str, schema: dict[str, Knob], choices) -> list[str]:
    node = cfg.get(group)
    if not isinstance(node, DictConfig):
        return [f"'{group}' must be a mapping with keys {', '.join(schema)}."]
    problems = [
        f"Unknown key '{group}.{key!s}' for {_named(group, choices)}.{catalog.suggest(str(key), schema)} "
        f"Valid keys: {', '.join(schema)}."
        for key in node.keys()
        if key not in schema
    ]
    for key, knob in schema.items():
        problems += _check_value(f"{group}.{key}", node.get(key), knob)
    return problems


def _check_value(path: str, value: Any, knob: Knob) -> list[str]:
    if value is None:
        return [] if knob.nullable else [f"{path} must be set."]
    if isinstance(knob.kind, tuple):
        if value not in knob.kind:
            choices = [str(c).lower() if isinstance(c, bool) else c for c in knob.kind]  # as YAML spells them
            return [
                f"{path}={value} is not valid.{catalog.suggest(str(value), choices)} "
                f"Valid choices: {', '.join(choices)}."
            ]
        return []
    if knob.kind is list:
        return [] if isinstance(value, (list, ListConfig)) else [f"{path} must be a list, not {value!r}."]
    if knob.kind is bool:
        return [] if isinstance(value, bool) else [f"{path}={value} must be true or false."]
    if knob.kind is str:
        return [] if isinstance(value, str) else [f"{path}={value} must be a string."]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (knob.kind is int and isinstance(value, float))
    ):
        kind = "a whole number" if knob.kind is int else "a number"
        extra = " or null" if knob.nullable else ""
        return [f"{path}={value} must be {kind}{extra}."]
    if knob.minimum is not None and value < knob.minimum:
        return [f"{path}={value} is out of range: it must be at least {knob.minimum:g}."]
    return []


def _component(cfg: DictConfig, group: str, allow: tuple[str, ...], choices) -> list[str]:
    """A `_target_` node's keys against its target's signature and the constraints declared with it."""
    from dlexp.parts import params
    from dlexp.run.build import INJECTED

    node = cfg.get(group)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return [f"'{group}' needs a _target_; choose one of: {', '.join(catalog.options(group))}."]
    target = objects.as_dict(node, resolve=False)["_target_"]
    problem = objects.check_target(target, group, allow)
    if problem:
        return [problem]
    try:
        obj = objects.locate(target)
    except Exception as err:  # ImportError, AttributeError from a user's own target
        return [f"{group}._target_={target} cannot be imported: {err}."]
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    injected = INJECTED[group]
    parameters = {name: p for name, p in signature.parameters.items() if name not in ("self", "args")}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    valid = [n for n, p in parameters.items() if n not in injected and p.kind is not p.VAR_KEYWORD]
    rules = params.constraints(target, obj)
    problems = []
    keys = [str(k) for k in node.keys() if not str(k).startswith("_")]
    for key in keys:
        path = f"{group}.{key}"
        if key in injected:
            problems.append(f"{path} is filled in by dlexp (from the data and the model); remove it.")
        elif key not in parameters and not takes_any:
            problems.append(
                f"Unknown key '{path}' for {_named(group, choices)} ({target})."
                f"{catalog.suggest(key, valid)} Valid keys: {', '.join(valid) or 'none'}."
            )
        elif key in parameters:
            value_node = node._get_node(key)
            found = _check_against_default(path, value_node, parameters[key].default)
            if not found and not OmegaConf.is_interpolation(value_node):
                value = objects.as_dict(node)[key]
                found = [p for p in (rule.problem(path, value) for rule in rules.get(key, ())) if p]
            problems += found
    for name, p in parameters.items():
        if (
            p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in injected
            and name not in keys
        ):
            problems.append(f"{group}.{name} must be set: {target} has no default for it.")
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


def _with_data(cfg: DictConfig) -> list[str]:
    """The dataset loads, the loss can be trained on it and its pictures can be drawn (the data is cached: the run
    reuses it)."""
    from dlexp.observe import pictures
    from dlexp.run import build

    try:
        data = build.load_data(cfg)
        loss = objects.instantiate(cfg.loss, "loss", tuple(cfg.allow_targets)).resolve(data)
    except DlexpError as err:  # a dataset's own checks, missing MNIST files: one sentence each
        return err.problems if isinstance(err, ConfigError) else [str(err)]
    except (ValueError, TypeError) as err:
        return [_first_line(err)]
    found = [pictures.problem(cfg.log.get("boundaries"), data, loss)]
    if data.task != "unlabelled":  # nothing is trained on unlabelled data, whatever the loss
        found.append(loss.check(data))
    return [problem for problem in found if problem]


def _device(cfg: DictConfig) -> list[str]:
    from dlexp.run import build

    kind = cfg.device.type
    if kind == "auto" or build.available_devices().get(kind):
        return []
    return [
        f"device={kind} was asked for, but this machine has no {kind.upper()} device; use device=cpu or device=auto."
    ]


def _dry_build(cfg: DictConfig) -> list[str]:
    """Build every component once on the CPU; whatever a constructor refuses is a config problem."""
    return built(cfg, dry=True)[1]


def built(cfg: DictConfig, dry: bool = False) -> tuple[Any, list[str]]:
    """(the Experiment, []) or (None, the problems): whatever a constructor refuses is a config problem.
    `dry`: on the CPU with one thread, for a check whose run happens later, elsewhere (build.assemble)."""
    from dlexp.run import build

    try:
        return build.assemble(cfg, dry=dry), []
    except ConfigError as err:
        return None, err.problems
    except DlexpError as err:
        return None, [str(err)]
    except (ValueError, TypeError) as err:
        return None, [_first_line(err)]


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)
