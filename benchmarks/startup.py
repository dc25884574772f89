"""How long `dlexp --help`, `dlexp list` and `dlexp --version` take as whole processes, and whether they import torch.

    python benchmarks/startup.py [--repeats 9]

Target (the issue): each finishes in <= 0.35 s wall and never imports torch. `python -c pass` is timed in the
same rounds as the floor no command can beat. Prints the modules that cost most (python -X importtime).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from _timing import check, dlexp_exe, interleaved, machine, median, run, show, verdict

TARGET_S = 0.35
# Runs the CLI in-process and reports, at exit, whether torch (or other heavy modules) got imported.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'hydra', 'sklearn', "
    "'tensorboard', 'matplotlib') if m in sys.modules) + '\\n'))\n"
    "sys.argv = ['dlexp', *sys.argv[1:]]\n"
    "from dlexp.cli.entry import main\n"
    "main()\n"
)


def heavy_imports(args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    found = re.search(r"HEAVY=(.*)", done.stderr)
    return found.group(1) if found else "?"


def top_imports(args: list[str], n: int = 6) -> list[tuple[int, str]]:
    """The top-level imports with the largest cumulative time (microseconds) for this command."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, *args], capture_output=True, text=True)
    costs = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)  # no indent: imported from the top
        if m:
            costs.append((int(m.group(1)), m.group(2)))
    return sorted(costs, reverse=True)[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="runs per command (median taken)")
    args = parser.parse_args()
    exe = dlexp_exe()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "dlexp --help": [*exe, "--help"],
        "dlexp list": [*exe, "list"],
        "dlexp --version": [*exe, "--version"],
    }
    run(commands["dlexp list"])  # warm the file cache once
    times = interleaved({name: (lambda cmd=cmd: run(cmd)) for name, cmd in commands.items()}, args.repeats)
    print(f"startup, {args.repeats} interleaved repeats; {machine()}")
    show(times)
    for name, argv in (("dlexp --help", ["--help"]), ("dlexp list", ["list"]), ("dlexp --version", ["--version"])):
        verdict(f"{name} wall time", median(times[name]), TARGET_S, "s")
        heavy = heavy_imports(argv)
        check(f"{name} imports no torch (heavy modules imported: {heavy or 'none'})", "torch" not in heavy.split(","))
        costs = ", ".join(f"{module} {us / 1000:.0f} ms" for us, module in top_imports(argv))
        print(f"      largest imports: {costs}")
    print(f"      interpreter floor (python -c pass): {median(times['python -c pass']):.3f}s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
