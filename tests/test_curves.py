"""The --plot figure: a diverged run neither flattens the others nor vanishes, coinciding curves stay distinct,
the legend stays off the curves, and a group's band is its runs' spread."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from rich.console import Console
from test_compare import make_run

from dlexp.read import compare, curves, evidence
from dlexp.read.rows import collect
from dlexp.read.table import build_table

LR = {"0.0001": 0.15, "0.01": 0.028, "0.1": 0.018}


@pytest.fixture
def lr_sweep(tmp_path: Path) -> Path:
    """The learning-rate lesson's shape: four runs that converge, lr=1.0 blowing up to 4e23 and stopping at step 16."""
    root = tmp_path / "lr"
    for i, (lr, final) in enumerate(LR.items()):
        make_run(
            root,
            f"{i}_optimizer.lr={lr}",
            [f"optimizer.lr={lr}"],
            "completed",
            [(0.26, 0.26, 0.0)] + [(final, 0.26 - (0.26 - final) * k / 10, 0.0) for k in range(1, 11)],
        )
    path = make_run(
        root, "4_optimizer.lr=1.0", ["optimizer.lr=1.0"], "diverged", [(0.26, 0.26, 0.0), (4e20, 4.3e23, 0.0)]
    )
    status = (path / "status.json").read_text().replace('"epoch": 1', '"epoch": 15, "diverged_at_step": 16')
    (path / "status.json").write_text(status)
    return root


def figure_of(root: Path, log_scale: bool = True):
    t = build_table(collect([root]))
    return curves.draw_runs([r["_row"] for r in t.records], t.labels, log_scale)


def test_a_diverged_run_is_marked_where_it_stopped_without_flattening_the_others(lr_sweep):
    fig = figure_of(lr_sweep)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high < 1.0 and low < 0.018  # the axis follows the runs that completed
    stops = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert len(stops) == 1 and list(stops[0].get_xdata()) == [15] and list(stops[0].get_ydata()) == [high]
    assert not stops[0].get_clip_on()  # drawn on the edge, never clipped away
    notes = [t.get_text() for t in ax.texts]
    assert "diverged at step 16 (val/loss reached 4.3e+23)" in notes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "optimizer.lr=1.0: diverged at step 16 (×)" in legend
    assert "optimizer.lr=0.1: final 0.018" in legend


def test_the_legend_sits_outside_the_axes(lr_sweep):
    fig = figure_of(lr_sweep)
    fig.canvas.draw()
    ax = fig.axes[0]
    axes_box = ax.get_window_extent()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 > axes_box.x1  # right of the plotting area: covers no curve


def test_coinciding_curves_stay_distinguishable(tmp_path):
    root = tmp_path / "race"
    same = [(2.3, 2.3, 0.1)] + [(2.3 / k, 2.3 / k, 0.5) for k in range(2, 40)]
    for i, optimizer in enumerate(("adam", "adamw")):  # exactly the same numbers
        make_run(root, f"{i}_optimizer={optimizer}", [f"optimizer={optimizer}"], "completed", same)
    adam, adamw = [line for line in figure_of(root, log_scale=False).axes[0].get_lines() if line.get_label()[0] != "_"]
    assert adam.get_color() != adamw.get_color()
    assert adam.get_linestyle() != adamw.get_linestyle() and adam.get_marker() != adamw.get_marker()
    assert adam.get_linewidth() > adamw.get_linewidth() and adamw.get_zorder() > adam.get_zorder()  # thin on top
    assert adam.get_markevery()[0] != adamw.get_markevery()[0]  # their markers sit at different epochs


def seed_groups(root: Path) -> list[evidence.Group]:
    for seed, finals in enumerate([(0.30, 0.50), (0.34, 0.55), (0.26, 0.40)]):
        for optimizer, final in zip(("adam", "sgd"), finals):
            make_run(
                root,
                f"{optimizer}_{seed}",
                [f"optimizer={optimizer}", f"seed={seed}"],
                "completed",
                [(1.0, 1.0, 0.1), (final + 0.1, final + 0.1, 0.5), (final, final, 0.9)],
            )
    make_run(root, "sgd_3", ["optimizer=sgd", "seed=3"], "diverged", [(1.0, 1.0, 0.1), (50.0, 1e9, 0.1)])
    return evidence.seed_groups(collect([root]))


@pytest.mark.parametrize("band", ["std", "minmax"])
def test_group_curves_are_means_with_the_runs_spread_as_band(tmp_path, band):
    groups = seed_groups(tmp_path / "seeds")
    ax = curves.draw_groups(groups, band=band).axes[0]
    means = {
        line.get_label().split(":")[0]: line for line in ax.get_lines() if line.get_label().startswith("optimizer")
    }
    adam_finals = [0.30, 0.34, 0.26]
    assert list(means["optimizer=adam"].get_ydata())[-1] == pytest.approx(statistics.fmean(adam_finals))
    (band_adam, _) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    vertices = band_adam.get_paths()[0].vertices
    ys = vertices[vertices[:, 0] == 2, 1]  # the band at the last epoch
    spread = statistics.stdev(adam_finals)
    lo, hi = (
        (min(adam_finals), max(adam_finals))
        if band == "minmax"
        else (statistics.fmean(adam_finals) - spread, statistics.fmean(adam_finals) + spread)
    )
    assert min(ys) == pytest.approx(lo) and max(ys) == pytest.approx(hi)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    spread_word = "min–max" if band == "minmax" else "± std"
    assert f"optimizer=adam: mean {spread_word} of 3 runs, final 0.3" in legend
    assert "optimizer=sgd: 1 diverged (×)" in legend  # counted, drawn alone, never in the mean
    assert max(ax.get_ylim()) < 2.0  # its 1e9 does not flatten the means


def test_plot_files_are_written(tmp_path):
    seed_groups(tmp_path / "seeds")
    for options in ({}, {"band": "minmax", "log_scale": True}, {"group": False}):
        png = tmp_path / f"{len(options)}{options.get('group', '')}.png"
        compare.main([tmp_path / "seeds"], plot_path=png, console=Console(file=io.StringIO()), **options)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
