"""Composing the configuration with Hydra, outside a job: for `show`, `validate` and the pre-flight of `train`.

The command line is forwarded to Hydra untouched; this module only reads it to find the overrides and the
flags that change where configs come from (`--config-dir`, `--config-name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlexp.config import catalog, resolvers
from dlexp.errors import ConfigError

# Hydra's own flags: those that take a value, and those that do not.
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c",
                "--package", "-p", "--experimental-rerun"}
_BARE_FLAGS = {"--multirun", "-m", "--resolve", "--run", "-r", "--hydra-help", "--version", "--info", "-i",
               "--shell-completion", "-sc", "--help", "-h"}
# Flags after which Hydra prints something and exits without running the task.
_INSPECT_FLAGS = {"--cfg", "-c", "--info", "-i", "--hydra-help", "--version", "--shell-completion", "-sc",
                  "--help", "-h"}


@dataclass
class Invocation:
    """What a `dlexp train ...` command line asks for."""

    argv: list[str]
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    config_dirs: list[Path] = field(default_factory=list)
    config_name: str = "config"
    inspect_only: bool = False  # --cfg/--info/...: Hydra prints and exits


def parse_argv(argv: list[str]) -> Invocation:
    inv = Invocation(argv=list(argv))
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=") if arg.startswith("-") else (arg, "", "")
        if flag in _VALUE_FLAGS:
            value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 0 if eq else 1
            if flag in ("--config-dir", "-cd"):
                inv.config_dirs.append(Path(value).expanduser().resolve())
            elif flag in ("--config-name", "-cn"):
                inv.config_name = value
            inv.inspect_only |= flag in _INSPECT_FLAGS
        elif flag in _BARE_FLAGS:
            inv.multirun |= flag in ("--multirun", "-m")
            if flag in ("--info", "-i") and i + 1 < len(argv) and not argv[i + 1].startswith("-") \
                    and "=" not in argv[i + 1]:
                i += 1  # --info takes an optional topic
            inv.inspect_only |= flag in _INSPECT_FLAGS
        elif arg.startswith("-"):
            raise ConfigError(f"Unknown flag '{arg}'. Hydra's flags: -m/--multirun, --cfg job, --config-dir DIR, "
                              "--config-name NAME, --info, --resolve; everything else is an override like key=value.")
        else:
            inv.overrides.append(arg)
        i += 1
    return inv


def create_hydra(config_dirs=()):
    """A Hydra instance with the search path `hydra.main` builds for `dlexp train`: dlexp's configs, then each
    `--config-dir` (ahead of the structured configs, as Hydra's own flag puts it), then the plugins' schemas."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    search_path = create_config_search_path(f"file://{catalog.conf_dir()}")
    for config_dir in config_dirs:
        search_path.prepend(provider="command-line", path=f"file://{config_dir}",
                            anchor=SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    return Hydra.create_main_hydra2(task_name="dlexp", config_search_path=search_path)


def check_choices(overrides: list[str], config_dirs: list[Path]) -> list[str]:
    """Unknown options of a group (`optimizer=adamm`), caught before Hydra's longer message."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    problems = []
    for override in OverridesParser.create().parse_overrides(overrides):
        group = override.key_or_group.split("@")[0]
        if group not in catalog.GROUPS or override.is_delete():
            continue
        valid = catalog.options(group, tuple(config_dirs))
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            if value is None or isinstance(value, (dict, list)):
                continue
            if str(value) not in valid:
                problems.append(f"Unknown {group} '{value}'.{catalog.suggest(str(value), valid)} "
                                f"Valid choices: {', '.join(valid)}.")
    return problems


_BAD_KEY = re.compile(r"Could not (?:override|append to config\. An item is already at) '([^']+)'")


def compose(overrides: list[str], config_dirs: list[Path] = (), config_name: str = "config") -> DictConfig:
    """The composed config for these overrides, with the `hydra` node (for its runtime choices).

    Raises ConfigError listing every problem Hydra finds: unknown options, unknown keys, unparsable values.
    """
    cfg, problems = compose_leniently(overrides, config_dirs, config_name)
    if problems or cfg is None:
        raise ConfigError(problems or ["The configuration could not be composed."])
    return cfg


def compose_leniently(overrides: list[str], config_dirs=(), config_name: str = "config"
                      ) -> tuple[DictConfig | None, list[str]]:
    """(config composed from the overrides that work, problems with the others): to report everything at once."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    problems = []
    remaining, bad_keys, cfg = [], [], None
    for override in overrides:  # unknown options are reported, and left out so the rest can still be checked
        found = check_choices([override], list(config_dirs))
        problems += found
        if not found:
            remaining.append(override)
    resolvers.register()
    missing = [str(d) for d in config_dirs if not Path(d).is_dir()]
    if missing:
        return None, problems + [f"The config directory {missing[0]} does not exist."]
    hydra = create_hydra(config_dirs)
    # Hydra stops at the first unknown key; drop it and go on so that every problem is reported at once.
    for _ in range(len(overrides) + 1):
        try:
            cfg = hydra.compose_config(config_name, overrides=remaining, run_mode=RunMode.RUN,
                                       with_log_configuration=False)
            break
        except (HydraException, OmegaConfBaseException, ValueError) as err:
            message = str(err).strip()
            bad = _BAD_KEY.search(message)
            culprit = [o for o in remaining if bad and o.lstrip("+~").split("=")[0] == bad.group(1)]
            if not culprit:
                problems.append(first_sentence(message))
                break
            bad_keys.append(bad.group(1))
            remaining.remove(culprit[0])
    GlobalHydra.instance().clear()
    problems = [unknown_key_message(key, remaining, config_dirs, config_name) for key in bad_keys] + problems
    return cfg, problems


def unknown_key_message(key: str, overrides: list[str], config_dirs, config_name) -> str:
    """'Unknown key optimizer.lrr ... Did you mean lr?' using the keys the parent node does have."""
    parent, _, leaf = key.rpartition(".")
    try:
        base = compose(overrides, config_dirs, config_name)
        node = OmegaConf.select(base, parent) if parent else base
        keys = [k for k in node.keys() if not str(k).startswith("_") and k != "hydra"] if node is not None else []
    except ConfigError:
        keys = []
    where = f" in {parent}" if parent else ""
    hint = catalog.suggest(leaf, keys)
    valid = f" Valid keys{where}: {', '.join(map(str, keys))}." if keys else ""
    return f"Unknown key '{key}'.{hint}{valid}"


def first_sentence(message: str) -> str:
    """Hydra's messages are long; keep the informative first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else message


def choices(cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each group (from the hydra node of a composed config)."""
    picked = OmegaConf.select(cfg, "hydra.runtime.choices") or {}
    return {k: str(v) for k, v in picked.items() if k in catalog.GROUPS}


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The task's config: everything but Hydra's own node."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
