"""Reading a command line and composing the configuration of each job, with Hydra's public compose API.

`dlexp train` runs as a Hydra application (`hydra.main`, see app.py); its pre-flight composes every job of a
sweep with `hydra.compose` inside that application. `dlexp show` / `validate` compose the same way from a
standalone context (`initialize_config_dir`). When a configuration cannot be composed, `compose` keeps going
without the culprit so that every problem is reported at once.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from dlexp import ConfigError
from dlexp.config import catalog, resolvers
from dlexp.config.objects import as_dict

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

CONFIG_NAME = "config"
KEY_VALUE_HINT = "write each override as key=value, e.g. optimizer=adam or model.hidden=[32,32]"


@dataclass
class Invocation:
    """What a `dlexp train|show|validate ...` command line asks for."""

    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    config_dirs: list[Path] = field(default_factory=list)
    config_name: str = CONFIG_NAME


def _arguments() -> argparse.ArgumentParser:
    """The flags `hydra.main` accepts (`dlexp train --help` lists them), declared once for show and validate.

    A copy of hydra.main's parser (`get_args_parser`), which Hydra keeps private (in hydra/_internal/); it differs
    in collecting every --config-dir given (show and validate read them all), and in leaving --info's value to
    Hydra (`--cfg job --info` is refused as two actions, not as an unknown value). tests/test_hydra_copies.py
    compares the two, so a flag Hydra adds or changes fails a test rather than a user's command."""
    parser = argparse.ArgumentParser(prog="dlexp", add_help=False, allow_abbrev=False)
    parser.add_argument("--help", "-h", action="store_true")  # Hydra's help of the application
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--config-dir", "-cd", action="append", default=[])
    parser.add_argument("--config-name", "-cn", default=CONFIG_NAME)
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    parser.add_argument("--package", "-p")
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--run", "-r", action="store_true")
    parser.add_argument("--info", "-i", nargs="?", const="all")  # the value: checked by Hydra
    parser.add_argument("--hydra-help", action="store_true")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    parser.add_argument("--experimental-rerun")
    parser.add_argument("overrides", nargs="*")
    return parser


def parse_command_line(argv: list[str]) -> Invocation:
    """Hydra's flags and the overrides; an unknown flag or a malformed override is a ConfigError sentence."""
    args, unknown = _arguments().parse_known_args(list(argv))
    if unknown:
        raise ConfigError(
            f"Unknown flag '{unknown[0]}'. Flags: -m/--multirun, --config-dir DIR, --config-name NAME, "
            "--cfg job; everything else is an override such as key=value."
        )
    exclusive = [
        flag
        for flag, given in (
            ("--run", args.run),
            ("-m/--multirun", args.multirun),
            ("--cfg", args.cfg is not None),
            ("--info", args.info is not None),
            ("--shell-completion", args.shell_completion),
        )
        if given
    ]
    if len(exclusive) > 1:  # Hydra would stop at a ValueError
        raise ConfigError(
            f"{', '.join(exclusive[:-1])} and {exclusive[-1]} cannot be given together: a command does "
            "one of --run, -m/--multirun, --cfg, --info and --shell-completion."
        )
    if args.resolve and args.cfg is None:
        raise ConfigError(
            "--resolve goes with --cfg (dlexp train --cfg job --resolve): it resolves the "
            "interpolations of the config --cfg prints."
        )
    problems = malformed(args.overrides)
    if problems:
        raise ConfigError(problems)
    return Invocation(
        overrides=list(args.overrides),
        multirun=args.multirun,
        config_dirs=[Path(d).expanduser().resolve() for d in args.config_dir],
        config_name=args.config_name,
    )


def malformed(overrides: list[str]) -> list[str]:
    """One sentence per override Hydra's grammar cannot read, naming the token and showing the key=value form."""
    return [problem for _, problem in parse(overrides) if problem]


def parse(overrides: list[str]) -> list[tuple[Override | None, str | None]]:
    """(Hydra's parsed Override, None) for each readable override, (None, the sentence why not) for the others."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    found: list[tuple[Override | None, str | None]] = []
    for override in overrides:
        try:
            (parsed,) = parser.parse_overrides([override])
        except OverrideParseException:
            parsed = None
        ok = parsed is not None and parsed.key_or_group  # `=adam`: the grammar reads an empty key
        found.append((parsed, None) if ok else (None, unreadable(override)))
    return found


def unreadable(override: str) -> str:
    if "=" not in override:
        why = "it has no '='"
    elif override.startswith(("=", "+=", "~=")):
        why = "it has no key before '='"
    else:
        why = "its value is not complete (an unclosed bracket or quote?)"
    return f"Cannot read the override '{override}': {why}; {KEY_VALUE_HINT}."


@dataclass(frozen=True)
class Session:
    """Where `compose` finds configs: dlexp's own folder, then these `--config-dir` folders."""

    config_dirs: tuple[Path, ...] = ()
    config_name: str = CONFIG_NAME
    extra: tuple[str, ...] = ()  # overrides every composition needs (the search path, outside hydra.main)


@contextlib.contextmanager
def standalone(config_dirs=(), config_name: str = CONFIG_NAME):
    """Hydra's compose API outside an application (`dlexp show`, `validate`): yields the Session to compose in."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    dirs = catalog.config_dirs(config_dirs)
    resolvers.register()
    GlobalHydra.instance().clear()
    extra = (f"hydra.searchpath=[{','.join(f'file://{d}' for d in dirs)}]",) if dirs else ()
    with initialize_config_dir(config_dir=str(catalog.conf_dir()), version_base="1.3", job_name="dlexp"):
        yield Session(dirs, config_name, extra)


def running(config_name: str = CONFIG_NAME) -> Session:
    """The Session of the running `hydra.main` application: its `--config-dir` folders are on its search path."""
    from hydra.core.global_hydra import GlobalHydra

    dirs = tuple(
        Path(e.path[len("file://") :])
        for e in GlobalHydra.instance().config_loader().get_search_path().get_path()
        if e.provider == "command-line" and e.path.startswith("file://")
    )
    return Session(dirs, config_name)


def compose(overrides: list[str], session: Session) -> tuple[DictConfig | None, list[str]]:
    """(config with its `hydra` node, problems), in a `standalone` or `running` session.

    Unknown options, unknown keys and unreadable overrides are reported, and left out so the rest can still be
    checked: a command with three mistakes hears about all three.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    problems, picked, keys = [], [], []
    for override, problem in parse(overrides):
        if override is not None and override.is_sweep_override():  # a job's overrides are single values
            problem = (
                f"'{override.input_line}' sweeps over several values: add -m to run one job per value "
                f"(dlexp train -m {override.input_line}), or write a list as [a,b]."
            )
        elif override is not None and _is_choice(override):
            problem = unknown_option(override, session.config_dirs)
            picked += [] if problem else [override]
        elif override is not None:
            keys.append(override)
        problems += [problem] if problem else []

    def attempt(chosen) -> DictConfig | str:
        """The config, or the sentence why it does not compose."""
        try:
            return hydra_compose(
                session.config_name,
                overrides=[*session.extra, *(o.input_line for o in chosen)],
                return_hydra_config=True,
            )
        except (HydraException, OmegaConfBaseException, ValueError) as err:
            return first_sentence(err)

    base = attempt(picked)
    if isinstance(base, str):
        return None, problems + [base]
    usable = []
    for override in keys:  # what Hydra would stop at, checked against the composed structure instead
        problem = key_problem(base, override)
        if problem:
            problems.append(problem)
        else:
            usable.append(override)
    cfg = attempt(picked + usable)
    if isinstance(cfg, str):
        return base, problems + [cfg]
    return cfg, problems


def load(overrides: list[str], config_dirs=(), config_name: str = CONFIG_NAME) -> DictConfig:
    """The composed config (with its hydra node) outside an application; a ConfigError lists every problem."""
    with standalone(config_dirs, config_name) as session:
        cfg, problems = compose(list(overrides), session)
    if problems or cfg is None:  # no config comes with a problem
        raise ConfigError(problems)
    return cfg


def _is_choice(override) -> bool:
    """A config-group choice (optimizer=adam, hydra/launcher=joblib) rather than a value (optimizer.lr=0.1)."""
    group = override.key_or_group.split("@")[0]
    return "/" in group or group in catalog.GROUPS


def unknown_option(override, config_dirs=()) -> str | None:
    """`optimizer=adamm`: an unknown option of one of dlexp's groups, with the valid choices."""
    group = override.key_or_group.split("@")[0]
    value = override.value()
    if group not in catalog.GROUPS or override.is_delete() or value is None or isinstance(value, (dict, list)):
        return None
    valid = catalog.options(group, tuple(config_dirs))
    if str(value) in valid:
        return None
    return f"Unknown {group} '{value}'.{catalog.suggest(str(value), valid)} Valid choices: {', '.join(valid)}."


def key_problem(cfg: DictConfig, override) -> str | None:
    """One sentence if Hydra could not apply this value override to the composed config, else None."""
    key = override.key_or_group
    if key.startswith("hydra.") or key == "hydra":
        return None
    exists = OmegaConf.select(cfg, key, default="<missing>", throw_on_missing=False) != "<missing>"
    if override.is_add() and exists:
        return (
            f"'{key}' is already set; drop the '+' to change it ({override.input_line[1:]}) "
            f"or write ++{override.input_line[1:]}."
        )
    if override.is_delete() and not exists:
        return f"Cannot delete '{key}': it is not in the configuration."
    if exists or override.is_add() or override.is_force_add() or override.is_delete():
        return None
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    names = (
        [str(k) for k in node.keys() if not str(k).startswith("_") and k != "hydra"]
        if isinstance(node, DictConfig)
        else []
    )
    where = f" in {parent}" if parent else ""
    valid = f" Valid keys{where}: {', '.join(names)}." if names else ""
    return f"Unknown key '{key}'.{catalog.suggest(leaf, names)}{valid}"


def first_sentence(err: BaseException) -> str:
    """Hydra's messages are long; keep the informative first line (of the cause, when Hydra wraps one)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if err.__cause__ is not None and (not lines or lines[0].startswith("Error merging override")):
        return first_sentence(err.__cause__)
    return lines[0] if lines else type(err).__name__


def sweep_jobs(overrides: list[str], params: dict | None = None) -> list[list[str]]:
    """The override list of every job of a basic sweep, exactly as Hydra's BasicSweeper makes them: its `params`
    (hydra.sweeper.params) first, then the command line's overrides, one axis per key (a later value of a key
    replaces an earlier one in its place), jobs numbered in the order of their cartesian product.

    A copy of `BasicSweeper.split_arguments`, which lives in Hydra's private modules (hydra/_internal/): calling
    it instead would cost nothing measurable (benchmarks/hydra_copies.py: 0.96x on a 6-job sweep, ~3 ms a call),
    but break on the release that moves it. tests/test_hydra_copies.py compares the two on sample sweeps."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes: dict[str, list[str]] = {}
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(overrides)
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        if override.is_sweep_override():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*axes.values())]


def sweeper_params(sweeper: DictConfig) -> dict:
    """hydra.sweeper.params (sweep axes a preset can declare) as plain {key: "a,b"}; {} when there are none."""
    params = sweeper.get("params") if sweeper is not None else None
    return as_dict(params, resolve=False) if isinstance(params, DictConfig) else {}


def fixed_part(overrides: list[str]) -> list[str]:
    """The overrides that are not sweeps (what every job of a sampling sweeper shares)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line is not None]


def targets(node: DictConfig, class_name: str) -> bool:
    """Does a plugin's config (hydra.launcher, hydra.sweeper) name a class of that name (Hydra's own, say)?"""
    return str(node.get("_target_", "")).rsplit(".", 1)[-1] == class_name


def choices(cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each group (from the hydra node of a composed config)."""
    picked = OmegaConf.select(cfg, "hydra.runtime.choices") or {}
    return {k: str(v) for k, v in picked.items() if k in catalog.GROUPS}


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The task's config: everything but Hydra's own node."""
    return OmegaConf.masked_copy(cfg, [str(k) for k in cfg.keys() if k != "hydra"])
