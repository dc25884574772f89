"""`dlexp board`: TensorBoard on a folder of runs, bound to localhost unless a host is given explicitly.

TensorBoard reads the folder through a view of it (dlexp/read/view.py): each run named by what sets it apart, the
view kept in step with the runs on disk, so runs started after the board show up too. The page to look at first is
TensorBoard's first tab, where its address alone leads: the curated charts (Custom Scalars, laid out by each run:
dlexp/observe/tensorboard.py LAYOUT, opened by the bands of the groups of seeds) or, when no run under the folder
trains (the initialisation study: fresh networks only), the histograms. It prints that address, then HParams's.
"""

from __future__ import annotations

import atexit
import signal
import threading
from pathlib import Path

from dlexp import UsageError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Images TensorBoard keeps (and shows) per tag: it samples 10 by default, so a boundary picture captured every
# log.hist_every steps could not be followed through a run. (0 would mean "keep all" when loading, but the
# Images dashboard then shows none.)
IMAGE_SAMPLES = 100_000

CURVES_PAGE = "#custom_scalars"  # loss train vs val, accuracy, learning rate, then the per-layer numbers
HISTOGRAMS_PAGE = "#histograms"  # what fresh networks have to show
TABLE_PAGE = "#hparams"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def first_page(path: Path) -> str:
    """Where a learner should look first: the histograms when every run under `path` trains nothing, else the curves
    (also of a folder still empty: the runs to come will train)."""
    from dlexp.read import runs

    found = runs.find_runs(path)
    return HISTOGRAMS_PAGE if found and not any((run / runs.METRICS).exists() for run in found) else CURVES_PAGE


def dashboards(first: str) -> list:
    """TensorBoard's plugins with the dashboard of page `first` as its first tab, the one its root address opens."""
    from tensorboard import default
    from tensorboard.plugins.custom_scalar.custom_scalars_plugin import CustomScalarsPlugin
    from tensorboard.plugins.histogram.histograms_plugin import HistogramsPlugin

    chosen = CustomScalarsPlugin if first == CURVES_PAGE else HistogramsPlugin
    core, *others = default.get_plugins()  # the core plugin (runs, environment) first, as TensorBoard has it
    return [core, chosen, *(plugin for plugin in others if plugin is not chosen)]


def start(path: Path, host: str = "127.0.0.1", port: int = 6006, reload_interval: float = 5.0) -> str:
    """Start TensorBoard in a background thread of this process and return its URL (port 0: a free one)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(
            f"{path} does not exist; give a folder of runs, e.g. dlexp board runs/ "
            "(a sweep or a single run directory works too)."
        )
    if not path.is_dir():
        raise UsageError(f"{path} is a file; give the folder that holds the runs (a run directory or runs/).")
    from tensorboard import program

    from dlexp.read.view import REFRESH_SECS, View

    view = View(path, every=min(reload_interval, REFRESH_SECS)).start()
    atexit.register(view.close)
    board = program.TensorBoard(plugins=dashboards(first_page(path)))
    # --load_fast=false: TensorBoard's own Python loader, which reads runs of this size at once; its default, an
    # experimental data server in a subprocess, announces itself with a notice a learner takes for a problem.
    board.configure(
        argv=[
            None,
            "--logdir",
            str(view.path),
            "--host",
            host,
            "--port",
            str(int(port)),
            "--reload_interval",
            str(reload_interval),
            "--load_fast",
            "false",
            "--samples_per_plugin",
            f"images={IMAGE_SAMPLES}",
        ]
    )
    try:
        return board.launch()
    except program.TensorBoardServerException as err:  # e.g. the port is taken
        view.close()
        raise UsageError(f"{err.msg}; choose another port with --port, or --port 0 for a free one.") from None
    except OSError as err:  # e.g. a host name this machine does not have
        view.close()
        raise UsageError(f"TensorBoard cannot listen on {host}:{port} ({err.strerror or err}).") from None


def serve(path: Path = Path("runs"), host: str = "127.0.0.1", port: int = 6006, console=None) -> int:
    """Run TensorBoard on `path`, print its URL and block until Ctrl-C; returns the exit code (0)."""
    from rich.console import Console

    from dlexp.observe.tensorboard import column_records

    console = console or Console(highlight=False)
    url = start(path, host, port)
    console.print(
        f"TensorBoard on {path} at [bold]{url}{first_page(path)}[/]  (Ctrl-C to stop)", soft_wrap=True, highlight=False
    )
    console.print(f"  the runs side by side: {url}{TABLE_PAGE}", soft_wrap=True, highlight=False)
    sweeps = column_records(path)
    if len(sweeps) > 1:
        console.print(
            f"[yellow]note:[/] {len(sweeps)} sweeps under {path}: HParams shows them in one table, with "
            f"the columns of one of them; to compare one sweep, open it: dlexp board "
            f"{sweeps[0].parent}",
            soft_wrap=True,
            highlight=False,
        )
    if host not in LOCAL_HOSTS:
        console.print(f"[yellow]note:[/] bound to {host}: other machines on this network can open it.")
    # Ctrl-C or SIGTERM stop it, also when started with SIGINT ignored (`dlexp board &` in a script or a
    # background job: Python then never turns Ctrl-C into KeyboardInterrupt by itself).
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)
    try:
        threading.Event().wait()  # the server runs in its own thread
    except KeyboardInterrupt:
        console.print("TensorBoard stopped.")
    return 0


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt
