"""Where a command and its runs talk: one way to make a console, one way to say an error.

A console writes whole lines (soft wrap: a pipe or a log file gets them unbroken) and highlights nothing on its own.
An error is said as its sentence(s), never a traceback: a configuration's problems one per line, under a head that
names the sweep job they belong to.
"""

from __future__ import annotations

from dlexp import ConfigError, DlexpError


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def report(out, err: DlexpError, prefix: str = "") -> int:
    """Say `err` on the console `out` (`prefix`: the sweep job it belongs to); returns its exit code."""
    from rich.markup import escape  # a problem names a sweep job as [key=value]: text, not a style

    if not isinstance(err, ConfigError):
        out.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return err.exit_code
    head = f"[bold red]configuration error{' in ' + escape(prefix) if prefix else ''}:[/]"
    if len(err.problems) == 1:
        out.print(f"{head} {escape(err.problems[0])}", soft_wrap=True)
    else:
        out.print(head)
        for problem in err.problems:
            out.print(f"  - {escape(problem)}", soft_wrap=True)
    return err.exit_code
