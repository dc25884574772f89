"""The commands the console script answers without building typer's command tree (0.2 s of pydantic): `dlexp
--version`, and `dlexp train ARGS`, whose arguments go to Hydra untouched anyway. The typer app (cli/app.py) calls
the same functions for its help's sake."""

from __future__ import annotations


def print_version() -> int:
    """`dlexp --version`: dlexp's version, then Python's and the libraries' (from their metadata, no import)."""
    from dlexp.run.record import installed_versions

    found = installed_versions()
    print(f"dlexp {found.pop('dlexp')}")
    print(", ".join(f"{name} {version}" for name, version in found.items()))
    return 0


def train_command(argv: list[str]) -> int:
    """`dlexp train ARGS`: the Hydra application; returns the exit code. What keeps it from running is said in
    one sentence per problem, no traceback."""
    from dlexp import DlexpError
    from dlexp.config import app
    from dlexp.run.console import console, report

    try:
        return app.train(argv)
    except DlexpError as err:
        return report(console(stderr=True), err)
