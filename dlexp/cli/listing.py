"""`dlexp list [GROUP]`: the options of every config group, straight from the YAML headers (no typer, no torch)."""

from __future__ import annotations

from dlexp.config import catalog


def print_options(group: str | None, console, err_console) -> int:
    groups = catalog.GROUPS
    if group is not None:
        if group not in groups:
            err_console.print(f"[bold red]error:[/] Unknown group '{group}'.{catalog.suggest(group, groups)} "
                              f"Groups: {', '.join(groups)}.")
            return 2
        groups = (group,)
    from rich.table import Table

    chosen = catalog.defaults()
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("group", style="cyan", no_wrap=True)
    table.add_column("option", no_wrap=True)
    table.add_column("description")
    for name in groups:
        for i, option in enumerate(catalog.options(name).values()):
            mark = "*" if chosen.get(name) == option.name else " "
            table.add_row(name if i == 0 else "", f"{mark} {option.name}", option.description)
    console.print(table)
    console.print("* default.  Choose with group=option, e.g. [bold]dlexp train optimizer=sgd batch=full[/]")
    return 0
