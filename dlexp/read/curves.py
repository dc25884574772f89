"""The figure of `dlexp compare --plot`: validation loss per epoch, one line per run, or one mean curve per group
of seeds with a band (± std, or min–max).

Made to be read, not just drawn:
* every curve has its own colour, line style and markers, placed at different epochs, and neighbours alternate
  thick and thin (thin on top): two curves that coincide, adam and adamw, still both show;
* the legend sits outside the axes, so it never covers a curve, and says how each run ended;
* the y axis follows the runs that completed, so a diverged run's 1e23 does not flatten them; what lies off that
  scale is marked at the edge with its value (▲), and a diverged run's stop with a ✕ at the epoch it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

from dlexp import UsageError

LINESTYLES = ["-", "--", "-.", ":"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
MARKS_PER_CURVE = 8  # markers along a curve: enough to tell it, few enough not to hide it
THICK, THIN = 2.6, 1.3  # neighbouring curves alternate; the thin one is drawn on top
NO_CURVE = (
    "none of these runs has validation-loss values in its metrics.csv, so there is nothing to plot; "
    "regression and classification runs log val/loss, gaussian (unlabelled) runs do not."
)


def figure(**options):
    """A matplotlib Figure of its own, outside pyplot: no backend chosen or switched (a notebook's stays as it is),
    nothing left open in pyplot's list of figures. It saves as PNG, and a notebook shows it."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _style(i: int, count: int, points: int) -> dict:
    import matplotlib

    colors = matplotlib.color_sequences["tab10" if count <= 10 else "tab20"]
    spacing = max(1, points // MARKS_PER_CURVE)
    return dict(
        color=colors[i % len(colors)],
        linestyle=LINESTYLES[i % len(LINESTYLES)],
        marker=MARKERS[i % len(MARKERS)],
        markersize=4,
        markevery=(i % spacing, spacing),  # staggered: neighbours (near-equal when sorted) never share one
        linewidth=THICK if i % 2 == 0 else THIN,
        zorder=2 if i % 2 == 0 else 3,
    )


def _ending(row) -> str:
    """'diverged at step 16', 'failed at epoch 3', '' for a completed run."""
    if row.status == "completed":
        return ""
    if row.stopped_at_step is not None:
        return f"{row.status} at step {row.stopped_at_step}"
    return f"{row.status} at epoch {row.epochs}" if row.epochs is not None else row.status


def _limits(steady: list[float], every: list[float], log_scale: bool) -> tuple[float, float]:
    """The y range: the completed runs' values (all values when none completed), padded."""
    values = [v for v in (steady or every) if math.isfinite(v) and (v > 0 or not log_scale)]
    if not values:
        return (0.1, 1.0) if log_scale else (0.0, 1.0)
    low, high = min(values), max(values)
    if log_scale:
        return low / 1.25, high * 1.25
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def _off_scale(ax, xs, ys, low: float, high: float, color, value: bool = True) -> None:
    """Points above (below) the axis: a ▲ (▼) on the edge at their epoch, the most extreme one with its value."""
    for edge, outside, marker, extreme in (
        (high, [(x, y) for x, y in zip(xs, ys) if y > high], "^", max),
        (low, [(x, y) for x, y in zip(xs, ys) if y < low], "v", min),
    ):
        if not outside:
            continue
        ax.plot(
            [x for x, _ in outside],
            [edge] * len(outside),
            linestyle="none",
            marker=marker,
            markersize=7,
            color=color,
            clip_on=False,
            zorder=5,
        )
        x, y = extreme(outside, key=lambda p: p[1])
        if value:
            ax.annotate(
                f"{y:.2g}",
                xy=(x, edge),
                xytext=(5, -10 if edge == high else 4),
                textcoords="offset points",
                fontsize=8,
                color=color,
                annotation_clip=False,
            )


def _stop(ax, row, color, low: float, high: float) -> tuple[float, float] | None:
    """A ✕ where a run that did not complete stopped: on the top edge for a diverged run (its loss left every
    scale), at its last value otherwise. Returns the ✕'s position."""
    if row.status == "completed" or not row.curve:
        return None
    x = row.epochs if row.epochs is not None else row.curve[-1][0]
    y = high if row.status == "diverged" else min(max(row.curve[-1][1], low), high)
    ax.plot(
        [x],
        [y],
        linestyle="none",
        marker="X",
        markersize=10,
        markeredgecolor="black",
        markeredgewidth=0.8,
        color=color,
        clip_on=False,
        zorder=6,
    )
    return x, y


def _diverged_note(rows: list, high: float) -> str:
    """'diverged at step 16 (val/loss reached 4.3e+23)'; for several runs, how many and the range of steps."""
    steps = sorted({r.stopped_at_step for r in rows if r.stopped_at_step is not None})
    where = "" if not steps else f" at step {steps[0]}" if len(steps) == 1 else f" at steps {steps[0]}–{steps[-1]}"
    peak = max((v for r in rows for _, v in r.curve), default=high)
    reached = f" (val/loss reached {peak:.2g})" if peak > high else ""
    return (f"{len(rows)} " if len(rows) > 1 else "") + f"diverged{where}{reached}"


def _notes(ax, notes: list[tuple[tuple[float, float], str, object]]) -> None:
    """Texts next to the ✕ of diverged runs, above the axes (where no curve is), stacked so none overlaps."""
    for k, (xy, text, color) in enumerate(notes):
        ax.annotate(
            text,
            xy=xy,
            xytext=(8, 6 + 11 * k),
            textcoords="offset points",
            fontsize=8,
            color=color,
            fontweight="bold",
            annotation_clip=False,
        )


def _finish(fig, ax, limits: tuple[float, float], log_scale: bool, notes=()):
    _notes(ax, list(notes))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss" + (" (log scale)" if log_scale else ""))
    if log_scale:
        from matplotlib.ticker import LogFormatter

        class Plain(LogFormatter):  # 0.2, 0.3 rather than 2e-01: the ticks LogFormatter labels, written plainly
            def __call__(self, x, pos=None):
                return f"{x:g}" if super().__call__(x, pos) else ""

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False))
    ax.set_ylim(*limits)
    ax.grid(True, alpha=0.3)
    # outside the axes, on the right: the legend never covers a curve
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)
    return fig


def save(fig, path: Path) -> Path:
    """The figure as a PNG, cropped to what it holds (the legend outside the axes included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_runs(path: Path, rows: list, labels: list[str], log_scale: bool = False) -> Path:
    return save(draw_runs(rows, labels, log_scale), path)


def plot_groups(path: Path, groups: list, band: str = "std", log_scale: bool = False) -> Path:
    return save(draw_groups(groups, band, log_scale), path)


def draw_runs(rows: list, labels: list[str], log_scale: bool = False):
    """One line per run, named by the overrides that set it apart, with its final value or how it ended."""
    drawn = [row for row in rows if row.curve]
    if not drawn:
        raise UsageError(NO_CURVE)
    steady = [v for row in drawn if row.status == "completed" for _, v in row.curve]
    low, high = _limits(steady, [v for row in drawn for _, v in row.curve], log_scale)
    fig = figure(figsize=(9, 5))
    ax = fig.subplots()
    notes = []
    for i, row in enumerate(drawn):
        xs, ys = zip(*row.curve)
        name = ", ".join(f"{k}={row.overrides.get(k, '')}" for k in labels) or row.name
        ending = _ending(row)
        label = f"{name}: {ending} (×)" if ending else f"{name}: final {ys[-1]:.3g}"
        style = _style(i, len(drawn), len(xs))
        ax.plot(xs, ys, label=label, **style)
        _off_scale(ax, xs, ys, low, high, style["color"], value=row.status != "diverged")  # the ✕ names it
        xy = _stop(ax, row, style["color"], low, high)
        if xy and row.status == "diverged":
            notes.append((xy, _diverged_note([row], high), style["color"]))
    return _finish(fig, ax, (low, high), log_scale, notes)


def mean_curve(runs: list, band: str = "std") -> list[tuple[float, float, float, float]]:
    """(epoch, mean, lower, upper) over the runs at every epoch they all evaluated; the band is mean ± std
    (sample std; none for one run) or the runs' min and max."""
    from dlexp.read.evidence import describe_all

    per_run = [dict(run.curve) for run in runs]
    epochs = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []
    found = []
    for epoch in epochs:
        s = describe_all([c[epoch] for c in per_run])
        if band == "minmax":
            found.append((epoch, s.mean, s.min, s.max))
        else:
            spread = s.std or 0.0
            found.append((epoch, s.mean, s.mean - spread, s.mean + spread))
    return found


def draw_groups(groups: list, band: str = "std", log_scale: bool = False):
    """One mean curve per group over its completed runs, with a shaded band; runs that did not complete are
    drawn alone, thin, with a ✕ where they stopped, and named so in the legend."""
    curves = {id(g): mean_curve([r for r in g.completed if r.curve], band) for g in groups}
    others = {id(g): [r for r in g.runs if r.status != "completed" and r.curve] for g in groups}
    if not any(curves.values()) and not any(others.values()):
        raise UsageError(NO_CURVE)
    steady = [v for c in curves.values() for _, mean, lo, hi in c for v in (mean, lo, hi)]
    every = steady + [v for rs in others.values() for r in rs for _, v in r.curve]
    low, high = _limits(steady, every, log_scale)
    fig = figure(figsize=(9, 5))
    ax = fig.subplots()
    spread = "min–max" if band == "minmax" else "± std"
    notes = []
    for i, group in enumerate(groups):
        curve = curves[id(group)]
        style = _style(i, len(groups), len(curve) or 1)
        if curve:
            xs, means, lows, highs = zip(*curve)
            n = len([r for r in group.completed if r.curve])
            label = (
                f"{group.label}: mean {spread} of {n} runs, final {means[-1]:.3g}"
                if n > 1
                else f"{group.label}: 1 run, final {means[-1]:.3g}"
            )
            ax.plot(xs, means, label=label, **style)
            if n > 1:
                ax.fill_between(xs, lows, highs, color=style["color"], alpha=0.2, linewidth=0)
            _off_scale(ax, xs, means, low, high, style["color"])
        stopped, xy = others[id(group)], None
        for j, row in enumerate(stopped):
            xs, ys = zip(*row.curve)
            endings = ", ".join(sorted({r.status for r in stopped}))
            first = f"{group.label}: {len(stopped)} {endings} (×)" if j == 0 else None  # one legend entry
            ax.plot(xs, ys, color=style["color"], linestyle=":", linewidth=1.0, label=first, zorder=4)
            _off_scale(ax, xs, ys, low, high, style["color"], value=row.status != "diverged")
            xy = _stop(ax, row, style["color"], low, high) or xy
        diverged = [r for r in stopped if r.status == "diverged"]
        if diverged:
            notes.append((xy, f"{group.label}: {_diverged_note(diverged, high)}", style["color"]))
    return _finish(fig, ax, (low, high), log_scale, notes)
