"""Figures of many runs, drawn from their run directories only: decision boundaries and activation histograms.

* `boundaries_figure`: one panel per run (or per list of runs, e.g. the seeds of one configuration, whose
  predicted probabilities are averaged) from the `boundary.npz` each run saved at its end, in the colours of
  its TensorBoard images (dlexp/observe/render.py) and over one extent shared by every panel.
* `histograms_figure`: the init study's classic figure: activation histograms read from the event files, one
  row per run, one column per layer, at one step, the x-range shared by every panel of an activation kind
  (sigmoid 0..1, tanh -1..1; for the others the median panel's range, so that one exploding run does not
  flatten all the others: a panel reaching beyond it says how far), each panel with its saturated / dead share.

Neither needs the model or the code that trained it; matplotlib draws them once, into a PNG.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlexp import UsageError
from dlexp.observe import render
from dlexp.parts import bounded
from dlexp.read.curves import figure

FILE = "boundary.npz"  # written by the pictures observer (dlexp/observe/pictures.py)
COLUMNS = 4  # boundary panels per row


@dataclass
class Boundary:
    """What a run's final picture showed, as arrays (boundary.npz)."""

    path: Path
    kind: str  # "classes" | "curve"
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    x: np.ndarray  # (N, F) training inputs
    y: np.ndarray  # (N,) labels or (N, 1) targets
    data: str = ""  # the dataset's name: panels of one dataset share one extent
    probs: np.ndarray | None = None  # classes: (n, n, K), row 0 at the top
    grid_x: np.ndarray | None = None  # curve: (M,) inputs and the prediction there
    mean: np.ndarray | None = None
    std: np.ndarray | None = None  # (M,) when the model predicts a variance

    def array(self, name: str) -> np.ndarray:
        """One of the arrays its kind needs (classes: probs; curve: grid_x, mean), which every saved file has."""
        found = getattr(self, name)
        if found is None:
            raise UsageError(f"{self.path / FILE} has no {name} for its {self.kind} picture; train the run again.")
        return found


def load_boundary(run_dir: Path) -> Boundary | None:
    """The run's boundary.npz, or None when it has none (pictures off, or data that has no picture)."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    x0, x1, y0, y1 = (float(v) for v in arrays["extent"])
    optional = {key: arrays[key].astype(np.float32) for key in ("probs", "grid_x", "mean", "std") if key in arrays}
    return Boundary(
        path=Path(run_dir),
        kind=str(arrays["kind"]),
        extent=(x0, x1, y0, y1),
        x=arrays["x"],
        y=arrays["y"],
        data=str(arrays.get("data", "")),
        **optional,
    )


def shared_extent(boundaries: list[Boundary]) -> tuple[float, float, float, float]:
    """The smallest extent holding every run's own (squared again for class pictures, to keep the geometry)."""
    x0, x1, y0, y1 = (f(b.extent[i] for b in boundaries) for i, f in enumerate((min, max, min, max)))
    if boundaries[0].kind != "classes":
        return x0, x1, y0, y1
    return render.square_extent(np.array([[x0, y0], [x1, y1]]), margin=0.0)


def _rgb(colour) -> tuple[float, float, float]:
    return tuple(c / 255 for c in colour)


def boundary_panel(ax, boundaries: list[Boundary], extent, title: str) -> None:
    """One panel from one or several runs of the same data kind: several runs' probabilities (curves) are
    averaged on the shared extent; the first run's training points are drawn on top."""
    first = boundaries[0]
    if first.kind == "classes":
        n = max(b.array("probs").shape[0] for b in boundaries)
        grids = np.stack([render.resample(b.array("probs"), b.extent, extent, n) for b in boundaries])  # (R, n, n, K)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # cells no run covers stay NaN: drawn grey
            probs = np.nanmean(grids, axis=0)  # (n, n, K)
        x0, x1, y0, y1 = extent
        ax.imshow(render.prediction_colours(probs), extent=(x0, x1, y0, y1), origin="upper", interpolation="bilinear")
        colours = render.class_colours(probs.shape[-1]) / 255.0
        ax.scatter(
            first.x[:, 0],
            first.x[:, 1],
            s=14 if len(first.x) > 16 else 50,
            c=colours[first.y.astype(int) % len(colours)],
            edgecolors=_rgb(render.INK),
            linewidths=0.6,
        )
        ax.set_aspect("equal")
    else:
        ax.scatter(
            first.x[:, 0],
            first.y[:, 0],
            s=6,
            color=_rgb(render.POINT_FILL),
            edgecolors=_rgb(render.POINT),
            linewidths=0.3,
        )
        if len(boundaries) == 1:
            grid, mean = first.array("grid_x"), first.array("mean")
            if first.std is not None:
                ax.fill_between(grid, mean - 2 * first.std, mean + 2 * first.std, color=_rgb(render.BAND))
        else:  # each run's curve on one grid over the shared extent, averaged where the runs cover it
            grid = np.linspace(extent[0], extent[1], len(first.array("grid_x")))  # (M,)
            curves = np.stack(
                [np.interp(grid, b.array("grid_x"), b.array("mean"), left=np.nan, right=np.nan) for b in boundaries]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(curves, axis=0)  # (M,)
        ax.plot(grid, mean, color=_rgb(render.CURVE), linewidth=1.8)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8)


def boundaries_figure(path: Path, panels: list[tuple[str, list[Path]]]) -> list[str]:
    """One panel per (title, run directories) that saved a boundary, into the PNG at `path`; the panels' titles.

    Panels of one dataset share one extent; all share one colour scale."""
    loaded = [(title, [b for b in map(load_boundary, dirs) if b is not None]) for title, dirs in panels]
    loaded = [(title, found) for title, found in loaded if found]
    if not loaded:
        raise UsageError(
            "none of these runs saved a decision boundary (boundary.npz): runs draw one on 2-D data "
            "with class labels or 1-D regression data, unless log.boundaries=false."
        )

    def key(b: Boundary) -> tuple[str, str]:
        return b.kind, b.data

    extents = {
        k: shared_extent([b for _, found in loaded for b in found if key(b) == k])
        for k in {key(found[0]) for _, found in loaded}
    }
    columns = min(COLUMNS, len(loaded))
    rows = math.ceil(len(loaded) / columns)
    fig = figure(figsize=(3.3 * columns, 3.5 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (title, found) in zip(axes.flat, loaded):
        boundary_panel(ax, found, extents[key(found[0])], title)
    for ax in axes.flat[len(loaded) :]:
        fig.delaxes(ax)
    if any(kind == "classes" for kind, _ in extents):
        fig.suptitle(
            textwrap.fill(
                "colour: the predicted probability of class 1 (orange 0, white 0.5, blue 1), or "
                "the predicted class, paler where less sure",
                30 * columns,
            ),
            fontsize=8,
        )
    return _save(fig, path)


def _layer_index(tag: str) -> int:
    return int(tag.split("/", 1)[1].split("_", 1)[0])  # "activations/3_sigmoid" -> 3


def _kind(tag: str) -> str:
    return tag.rsplit("_", 1)[1]  # "activations/3_sigmoid" -> "sigmoid"


def histograms_figure(path: Path, runs: list[tuple[str, Path]], step: int = 0) -> list[str]:
    """Activation histograms, one row per (label, run directory), one column per layer, at the captured step
    nearest to `step`, into the PNG at `path`; returns each drawn panel's title and notes ("3_sigmoid saturated
    52%")."""
    from dlexp.observe.tensorboard import read_histograms

    read = []
    for label, run_dir in runs:
        found, hists, scalars = read_histograms(run_dir, "activations/", step)
        if hists:
            read.append((label if found == step else f"{label}\n(step {found})", hists, scalars))
    if not read:
        raise UsageError(
            "none of these runs has activation histograms in its event file; they are written "
            "unless log.histograms=false."
        )
    spans: dict[str, list[tuple[float, float]]] = {}  # activation kind -> every panel's (min, max)
    for _, hists, _ in read:
        for tag, h in hists.items():
            spans.setdefault(_kind(tag), []).append((h["min"], h["max"]))
    ranges = {
        kind: bounded.RANGES.get(kind)
        or (min(0.0, float(np.median([lo for lo, _ in found]))), max(float(np.median([hi for _, hi in found])), 1e-6))
        for kind, found in spans.items()
    }
    columns = max(_layer_index(tag) for _, hists, _ in read for tag in hists)
    fig = figure(figsize=(2.2 * columns + 1.4, 1.45 * len(read) + 0.8), layout="constrained")
    axes = fig.subplots(len(read), columns, squeeze=False)
    drawn = set()
    for r, (label, hists, scalars) in enumerate(read):
        for tag, h in hists.items():
            ax = axes[r][_layer_index(tag) - 1]
            drawn.add(ax)
            _histogram_panel(ax, tag, h, scalars, ranges[_kind(tag)])
        axes[r][0].set_ylabel(textwrap.fill(label, 28), rotation=0, ha="right", va="center", fontsize=7)
    for ax in axes.flat:
        if ax not in drawn:
            fig.delaxes(ax)
    fig.suptitle(
        textwrap.fill(
            f"activations at step {step}: share of the probe's values per bucket, one x-range per activation kind",
            22 * columns + 10,
        ),
        fontsize=8,
    )
    return _save(fig, path)


def _histogram_panel(ax, tag: str, h: dict, scalars: dict[str, float], x_range) -> None:
    name = tag.split("/", 1)[1]
    buckets = h["buckets"]  # [(left, right, count)], as TensorBoard draws
    edges = np.array([buckets[0][0], *(right for _, right, _ in buckets)], dtype=float)
    counts = np.asarray([count for _, _, count in buckets], dtype=float)
    if edges[-1] - edges[0] <= 0:  # a constant: one needle, visible
        width = (x_range[1] - x_range[0]) / 200
        edges = np.array([edges[0] - width, edges[0] + width])
        counts = counts[:1]
    ax.stairs(counts / max(h["num"], 1), edges, fill=True, color=_rgb(render.BLUE))
    ax.set_xlim(*x_range)
    ax.locator_params(axis="x", nbins=4)
    ax.tick_params(labelsize=6)
    ax.set_yticks([])
    ax.set_title(name, fontsize=7)
    notes = [
        f"{word} {scalars[f'{kind}/{name}']:.0%}"
        for kind, word in (("saturation", "saturated"), ("dead", "dead"))
        if f"{kind}/{name}" in scalars
    ]
    if h["max"] > x_range[1] or h["min"] < x_range[0]:  # beyond the shared range: say how far
        notes.append(f"{h['min']:.2g} .. {h['max']:.2g}")
    if notes:
        ax.text(0.97, 0.9, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=7)


def _save(fig, path: Path) -> list[str]:
    """Write the PNG; return each panel's title and the notes printed in it, one string per panel."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    described = [" ".join([ax.get_title(), *(text.get_text() for text in ax.texts)]) for ax in fig.axes]
    fig.savefig(path, dpi=110)
    return described
