"""The `dlexp` console script. `dlexp list` is answered here, before typer is even imported: it must be instant."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["list"] and len(argv) <= 2 and not any(a.startswith("-") for a in argv[1:]):
        from rich.console import Console

        from dlexp.listing import print_options

        raise SystemExit(print_options(argv[1] if len(argv) == 2 else None, Console(highlight=False),
                                       Console(stderr=True, highlight=False)))
    from dlexp.cli import app

    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
