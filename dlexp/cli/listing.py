"""`dlexp list [GROUP] [--config-dir DIR]`: the options of every config group, straight from the YAML headers (no
typer, no torch), your own `--config-dir` options among them."""

from __future__ import annotations

import textwrap

from dlexp.config import catalog

DEFAULT, YOURS = "*", "+"  # the marks before an option's name


def fast_arguments(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """The console script's own reading of `list [GROUP] [--config-dir DIR]...` (the typer command's arguments):
    (group, config dirs); None for anything else (--help, an unknown flag), which typer answers."""
    group, dirs, rest = None, [], list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("--config-dir", "-cd") and rest:
            dirs.append(rest.pop(0))
        elif arg.startswith("--config-dir="):
            dirs.append(arg.partition("=")[2])
        elif not arg.startswith("-") and group is None:
            group = arg
        else:
            return None
    return group, dirs


def print_options(group: str | None, console, err_console, config_dirs=()) -> int:
    """One line per option (its description wrapped to the terminal under itself, no trailing spaces)."""
    from rich.markup import escape

    from dlexp import ConfigError

    groups: tuple[str, ...] = catalog.GROUPS
    if group is not None:
        if group not in groups:
            err_console.print(
                f"[bold red]error:[/] Unknown group '{group}'.{catalog.suggest(group, groups)} "
                f"Groups: {', '.join(groups)}.",
                soft_wrap=True,
            )
            return 2
        groups = (group,)
    try:
        dirs = catalog.config_dirs(config_dirs)
    except ConfigError as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    chosen = catalog.defaults()
    rows = []  # (group, mark, option, description)
    for name in groups:
        for i, option in enumerate(catalog.options(name, dirs).values()):
            mine = not option.path.is_relative_to(catalog.conf_dir())
            mark = YOURS if mine else DEFAULT if chosen.get(name) == option.name else " "
            rows.append((name if i == 0 else "", mark, option.name, option.description))
    group_width = max(len("group"), *(len(g) for g, *_ in rows))
    option_width = max(len("option") - 2, *(len(o) for _, _, o, _ in rows))
    indent = group_width + option_width + 4
    wrap = max(console.width - indent, 20)

    def line(text: str) -> None:
        console.print(text.rstrip(), highlight=False, soft_wrap=True)

    line(f"[bold]{'group':<{group_width}} {'option':<{option_width + 2}} description[/]")
    for name, mark, option_name, description in rows:
        first, *more = textwrap.wrap(description, wrap, break_on_hyphens=False) or [""]
        line(f"[cyan]{name:<{group_width}}[/] {mark} {option_name:<{option_width}} {escape(first)}")
        for rest in more:
            line(" " * indent + escape(rest))
    line(f"{DEFAULT} default.  Choose with group=option, e.g. [bold]dlexp train optimizer=sgd batch=full[/]")
    if dirs:
        line(f"{YOURS} yours (from {', '.join(str(d) for d in dirs)})")
    return 0
