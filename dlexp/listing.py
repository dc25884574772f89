"""`dlexp list [GROUP]`: the options of every config group, straight from the YAML headers (no typer, no torch)."""

from __future__ import annotations

import textwrap

from dlexp.config import catalog


def print_options(group: str | None, console, err_console) -> int:
    """One line per option (its description wrapped to the terminal under itself, no trailing spaces)."""
    from rich.markup import escape

    groups = catalog.GROUPS
    if group is not None:
        if group not in groups:
            err_console.print(f"[bold red]error:[/] Unknown group '{group}'.{catalog.suggest(group, groups)} "
                              f"Groups: {', '.join(groups)}.", soft_wrap=True)
            return 2
        groups = (group,)
    chosen = catalog.defaults()
    rows = []  # (group, mark, option, description)
    for name in groups:
        for i, option in enumerate(catalog.options(name).values()):
            mark = "*" if chosen.get(name) == option.name else " "
            rows.append((name if i == 0 else "", mark, option.name, option.description))
    group_width = max(len("group"), *(len(g) for g, *_ in rows))
    option_width = max(len("option") - 2, *(len(o) for _, _, o, _ in rows))
    indent = group_width + option_width + 4
    wrap = max(console.width - indent, 20)

    def line(text: str) -> None:
        console.print(text.rstrip(), highlight=False, soft_wrap=True)

    line(f"[bold]{'group':<{group_width}} {'option':<{option_width + 2}} description[/]")
    for name, mark, option, description in rows:
        first, *more = textwrap.wrap(description, wrap, break_on_hyphens=False) or [""]
        line(f"[cyan]{name:<{group_width}}[/] {mark} {option:<{option_width}} {escape(first)}")
        for rest in more:
            line(" " * indent + escape(rest))
    line("* default.  Choose with group=option, e.g. [bold]dlexp train optimizer=sgd batch=full[/]")
    return 0
