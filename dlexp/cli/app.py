"""The command line. Only this module knows typer; heavy imports happen inside the commands that need them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperCommand

from dlexp import DlexpError
from dlexp.run.resume import may_change  # the help of `resume` says it (a light import: no torch)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help renders without loading rich.markdown
    pretty_exceptions_show_locals=False,
    help="dlexp — a laboratory for deep-learning fundamentals. "
    "Every idea is a switch on the command line; every run leaves TensorBoard curves.",
)
data_app = typer.Typer(no_args_is_help=True, help="Datasets that live outside the package (MNIST, Fashion-MNIST).")
app.add_typer(data_app, name="data")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help"]}


class Command(TyperCommand):
    """Usage lines as click and argparse write them: `dlexp compare [OPTIONS] PATHS...`, `dlexp train [OPTIONS]
    [OVERRIDES]...` (typer writes a required argument as `{paths}...`, which reads like a placeholder)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":  # options are summed up by [OPTIONS]
                name = param.metavar or param.name.upper()
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
        if self.context_settings.get("allow_extra_args"):  # the commands that pass overrides on to Hydra
            pieces.append("[OVERRIDES]...")
        return pieces


def _print_version(value: bool) -> None:
    if value:
        from dlexp.cli.commands import print_version  # the console script answers --version itself; this is for --help

        raise typer.Exit(print_version())


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        is_eager=True,
        callback=_print_version,
        help="Show dlexp's version (and Python's, torch's, Hydra's) and exit.",
    ),
) -> None:
    pass


def _fail(err: DlexpError) -> None:
    from dlexp.run.console import report

    raise typer.Exit(report(err_console, err))


@app.command(cls=Command, context_settings=PASS_THROUGH)
def train(ctx: typer.Context) -> None:
    """Train with Hydra overrides: dlexp train model=mlp optimizer=adam, sweeps with -m.

    Everything after `train` goes to Hydra untouched: key=value, +key=value, ~key, -m/--multirun with
    a,b / range() / choice() sweeps, --cfg job, --config-dir DIR, hydra/launcher=joblib, hydra/sweeper=optuna.

    The choices: `dlexp list` (every group and option), `dlexp list optimizer` (one group).

    The config a command line makes, without training: `dlexp show model=mlp optimizer=adam`.
    """
    from dlexp.cli.commands import train_command

    raise typer.Exit(train_command(ctx.args))


@app.command("list", cls=Command)
def list_options(
    group: str | None = typer.Argument(None, metavar="GROUP", help="Only this group, e.g. optimizer."),
    config_dir: list[Path] = typer.Option(
        [], "--config-dir", "-cd", metavar="DIR", help="Your own options too (marked +), as train reads them."
    ),
) -> None:
    """Every config group and its options, with a one-line description; * marks the default, + your own."""
    from dlexp.cli.listing import print_options

    raise typer.Exit(print_options(group, console, err_console, config_dir))


@app.command(cls=Command, context_settings=PASS_THROUGH)
def show(ctx: typer.Context) -> None:
    """The composed config for these overrides, syntax-highlighted (nothing is trained); a config that cannot
    run is refused as validate refuses it (exit 2)."""
    from omegaconf import OmegaConf
    from rich.syntax import Syntax

    from dlexp import ConfigError
    from dlexp.config import compose
    from dlexp.config.preflight import check_jobs

    try:
        inv = compose.parse_command_line(list(ctx.args))
        with compose.standalone(inv.config_dirs, inv.config_name) as session:
            (cfg,) = check_jobs([inv.overrides], session)
    except ConfigError as err:
        _fail(err)
    text = OmegaConf.to_yaml(compose.without_hydra(cfg))
    console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


@app.command(cls=Command, context_settings=PASS_THROUGH)
def validate(ctx: typer.Context) -> None:
    """Report every problem with these overrides at once, without training (exit 2 if any); -m checks a sweep."""
    from dlexp import ConfigError
    from dlexp.config import compose
    from dlexp.config.preflight import check_jobs

    try:
        inv = compose.parse_command_line(list(ctx.args))
        jobs = compose.sweep_jobs(inv.overrides) if inv.multirun else [inv.overrides]
        with compose.standalone(inv.config_dirs, inv.config_name) as session:
            checked = len(check_jobs(jobs, session))
    except ConfigError as err:
        _fail(err)
    console.print(f"[green]ok[/]: {checked} configuration{'s' if checked > 1 else ''} can run.")


@app.command(cls=Command)
def compare(
    paths: list[Path] = typer.Argument(
        ..., metavar="PATHS", help="Sweep directories, run directories or folders of runs."
    ),
    sort: str | None = typer.Option(
        None, help="Sort by a metric, e.g. val/loss (ascending) or -val/acc; the verdict is on this metric."
    ),
    columns: str | None = typer.Option(
        None,
        "--columns",
        help="The columns, e.g. val/acc,weight/1_linear,epochs: any scalar the runs logged, epochs, wall_time.",
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="Group the runs by these keys, e.g. optimizer "
        "or optimizer,optimizer.lr (default: runs that differ only in seed).",
    ),
    group: bool = typer.Option(True, "--group/--no-group", help="--no-group: one row per run, never groups."),
    csv: Path | None = typer.Option(None, "--csv", help="Also write the table as CSV."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the table as Markdown."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw validation-loss curves into this PNG."),
    band: str = typer.Option("std", "--band", help="Band around a group's mean curve: std or minmax."),
    log_scale: bool = typer.Option(False, "--log", help="Log-scale y axis for --plot."),
    boundaries: Path | None = typer.Option(
        None, "--boundaries", help="Draw each run's final decision boundary (or fitted curve) into this PNG."
    ),
    histograms: Path | None = typer.Option(
        None, "--histograms", help="Draw activation histograms into this PNG (row: run, column: layer)."
    ),
    step: int | None = typer.Option(
        None, "--step", help="The step --histograms shows (default 0, the fresh network; else the nearest)."
    ),
) -> None:
    """The runs under a sweep (or any folder) as one table: differing overrides, final/best metrics, status.

    Runs that differ only in seed become one row per group (mean ± std) with a verdict: is the best group's
    lead larger than the noise between seeds?
    """
    from dlexp.read import compare as comparing

    try:
        code = comparing.main(
            paths,
            sort=sort,
            csv_path=csv,
            markdown_path=markdown,
            plot_path=plot,
            log_scale=log_scale,
            console=console,
            by=by,
            group=group,
            band=band,
            columns=columns,
            boundaries_path=boundaries,
            histograms_path=histograms,
            step=step,
        )
    except DlexpError as err:
        _fail(err)
    raise typer.Exit(code)


@app.command(cls=Command)
def diff(
    run_a: Path = typer.Argument(..., metavar="RUN_A", help="A run directory."),
    run_b: Path = typer.Argument(..., metavar="RUN_B", help="Another run directory."),
) -> None:
    """What differs between two runs: config keys, config group options, final metrics side by side."""
    from dlexp.read import diff as differ

    try:
        code = differ.main(run_a, run_b, console)
    except DlexpError as err:
        _fail(err)
    raise typer.Exit(code)


@app.command(cls=Command)
def board(
    path: Path = typer.Argument(Path("runs"), metavar="PATH", help="Folder of runs (a sweep, a run, or runs/)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; give 0.0.0.0 explicitly to expose it."),
    port: int = typer.Option(6006, help="Port (0 = a free one)."),
) -> None:
    """Start TensorBoard on a runs folder, bound to localhost, and print the address of the page to read first."""
    from dlexp.read import board as boarding

    try:
        code = boarding.serve(path, host=host, port=port, console=console)
    except DlexpError as err:
        _fail(err)
    raise typer.Exit(code)


# resume's help, not a docstring: what may change is resume.MAY_CHANGE's sentence
RESUME_HELP = f"""Continue a stopped run from its checkpoint, exactly; or finish a stopped sweep.

    A run that was interrupted (Ctrl-C), terminated (SIGTERM), crashed (killed without warning) or failed
    (a full disk) continues from its last checkpoint. A completed run has nothing to do, unless an override
    extends it: `dlexp resume RUN trainer.epochs=210` trains a 200-epoch run 10 epochs more (status.json
    records it under `resumes`). Only {may_change()}.
    A sweep directory: its unfinished jobs run (continued or started), the finished ones are left untouched.
    """


@app.command(cls=Command, context_settings=PASS_THROUGH, help=RESUME_HELP)
def resume(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The run (or sweep) directory to continue."),
) -> None:
    from dlexp.config import app as application

    try:
        code = application.resume(run_dir, list(ctx.args), console)
    except DlexpError as err:
        _fail(err)
    raise typer.Exit(code)


@data_app.command("download", cls=Command)
def data_download(
    name: str = typer.Argument(..., metavar="NAME", help="mnist or fashion_mnist"),
    root: Path | None = typer.Option(None, help="Folder for the IDX files."),
    mirror: str | None = typer.Option(None, help="Base URL to download from."),
) -> None:
    """Fetch a dataset's IDX files and verify their checksums."""
    from dlexp.parts import idx  # numpy only: no torch for a download

    try:
        files = idx.download(name, root=root, mirror=mirror, report=lambda m: console.print(m))
    except DlexpError as err:
        _fail(err)
    console.print(f"[green]ok[/]: {len(files)} files in {files[0].parent if files else root}")
