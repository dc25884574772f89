"""The `dlexp` console script. `dlexp --version`, `dlexp list` and `dlexp train` are answered here, without
building typer's command tree: `--version` and `list` must be instant, and `train` hands its arguments to Hydra
untouched anyway."""

from __future__ import annotations

import sys


def main() -> None:
    """Run one command, then end the process (see `_end`): the exit code is the command's."""
    try:
        _dispatch(sys.argv[1:])
        code: str | int | None = 0
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:
        code = 130
    _end(code)


def _dispatch(argv: list[str]) -> None:
    from dlexp.cli.commands import print_version, train_command

    if argv in (["--version"], ["-V"]):
        raise SystemExit(print_version())
    if argv[:1] == ["list"]:
        from dlexp.cli.listing import fast_arguments, print_options

        found = fast_arguments(argv[1:])
        if found is not None:
            from rich.console import Console

            raise SystemExit(
                print_options(found[0], Console(highlight=False), Console(stderr=True, highlight=False), found[1])
            )
    if argv[:1] == ["train"] and "--help" not in argv[1:]:  # everything after `train` goes to Hydra
        raise SystemExit(train_command(argv[1:]))
    from dlexp.cli.app import app

    app(prog_name="dlexp")  # also under `python -m dlexp`: the usage lines name the command a user types


def _end(code) -> None:
    """Exit with `code`, skipping Python's interpreter teardown once torch is loaded.

    After torch and torch._dynamo (which the first optimizer step imports) are loaded, the teardown, which
    unloads thousands of modules and frees their objects one by one, is longer than dlexp's own start-up. Measured
    from here to the process gone (benchmarks/exit_teardown.py, `dlexp train experiment=xor_mlp`, a loaded 2-core
    machine): an ordinary exit 2.8 s, an ordinary exit after `gc.freeze()` (public: the teardown's collections skip
    every object) 0.56 s, this 0.13 s. The public way's 0.43 s more would put `dlexp train experiment=xor_mlp`, at
    0.99x the hand-written script it replaces (target <= 1.0, benchmarks/xor_vs_handwritten.py), behind it: so the
    exit handlers are run with CPython's private `atexit._run_exitfuncs` (a test in tests/test_cli.py fails if it
    changes underneath).
    Nothing dlexp writes depends on the teardown: every file is closed when a command returns, and the exit
    handlers (logging's flush, joblib's worker shutdown) still run here, as at a normal exit.
    A process that still runs other threads, or never loaded torch, exits the ordinary way.
    """
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "torch" not in sys.modules or others:
        raise SystemExit(code)
    import atexit
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):  # SystemExit("message"): printed, exit status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # private, see above: the handlers, last registered first, as at an ordinary exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`dlexp ... | head`) or stream: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
