"""The config groups and their options, read straight from the YAML files.

Used by `dlexp list` and by validation's "unknown option" messages. It must stay cheap: no Hydra, no torch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

GROUPS = ("data", "model", "loss", "optimizer", "initializer", "batch", "device", "scheduler", "experiment")


def conf_dir() -> Path:
    """The packaged configs: dlexp/conf inside an installed wheel, the repository's conf/ in an editable install."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parent / "conf"


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    description: str
    command: str
    path: Path


def _describe(path: Path) -> tuple[str, str]:
    """(command, description) from an option file's header: `# dlexp train ...` then `# One line.`"""
    command, lines = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or text.startswith("@package"):
            continue
        if text.startswith("dlexp ") and not command:
            command = text
        else:
            lines.append(text)
    return command, (lines[0] if lines else "")


def config_dirs(dirs) -> tuple[Path, ...]:
    """`--config-dir` folders as absolute paths; one that does not exist is a ConfigError sentence."""
    from dlexp import ConfigError

    found = tuple(Path(d).expanduser().resolve() for d in dirs)
    missing = [str(d) for d in found if not d.is_dir()]
    if missing:
        raise ConfigError(f"The config directory {missing[0]} does not exist.")
    return found


def options(group: str, extra_dirs: tuple[Path, ...] = ()) -> dict[str, Option]:
    """Every option of a group, from the packaged configs and any `--config-dir` folders (later ones win)."""
    found: dict[str, Option] = {}
    for root in (conf_dir(), *extra_dirs):
        folder = Path(root) / group
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                command, description = _describe(path)
                found[path.stem] = Option(group, path.stem, description, command, path)
    return dict(sorted(found.items()))


def defaults() -> dict[str, str | None]:
    """The default option of each group, read from config.yaml's defaults list."""
    import yaml  # small and fast, unlike Hydra

    data = yaml.safe_load((conf_dir() / "config.yaml").read_text())
    chosen: dict[str, str | None] = {}
    for item in data.get("defaults", []):
        if isinstance(item, dict):
            for key, value in item.items():
                if key in GROUPS:
                    chosen[key] = value
    return chosen


def suggest(word: str, choices) -> str:
    """' Did you mean 'x'?' for a near miss, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
