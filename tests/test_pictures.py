"""Pictures: decision boundaries, fitted curves and per-unit views in TensorBoard, and the compare figures.

Runs go through the real CLI (`python -m dlexp`); their images are read back from the event file with
TensorBoard's own reader, decoded, and judged by colour: orange (red > blue) is class 0, blue is class 1, and the
boundary is where one turns into the other. Pixel positions come from the picture's layout (render.Frame) and the
extent the run saved; each check also verifies that the point markers sit where that layout says they are.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dirs, status_of
from PIL import Image
from scipy import ndimage

from dlexp.observe import pictures, render
from dlexp.read import figures

QUIET = "log.progress=none"


def trained(cli, root: Path, name: str, *args: str) -> Path:
    """`dlexp train ARGS` in a subprocess (working directory `root`) into root/runs/NAME."""
    result = cli("train", *args, QUIET, f"hydra.run.dir=runs/{name}")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "runs" / name


def images(run_dir: Path, tag: str) -> dict[int, np.ndarray]:
    """step -> decoded RGB image of one tag, every step the event file holds."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.IMAGES: 0})
    acc.Reload()
    return {e.step: np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB")) for e in acc.Images(tag)}


def image_tags(run_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.IMAGES: 1})
    acc.Reload()
    return acc.Tags()["images"]


def histogram_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.HISTOGRAMS: 0})
    acc.Reload()
    return [e.step for e in acc.Histograms(tag)] if tag in acc.Tags()["histograms"] else []


def frame_of(run_dir: Path) -> render.Frame:
    """The boundary picture's layout, over the extent the run saved in boundary.npz."""
    return render.Frame(figures.load_boundary(run_dir).extent)


def hue(pixels: np.ndarray) -> np.ndarray:
    """blue minus red: > 0 leans to class 1 (blue), < 0 to class 0 (orange), ~0 on white (p = 0.5)."""
    return pixels[..., 2].astype(int) - pixels[..., 0].astype(int)


def ring(image: np.ndarray, col: float, row: float, radius: float) -> np.ndarray:
    """The pixels on a circle around (col, row): (36, 3)."""
    angles = np.radians(np.arange(0, 360, 10))
    cols = np.round(col + radius * np.cos(angles)).astype(int)
    rows = np.round(row + radius * np.sin(angles)).astype(int)
    return image[rows, cols]


def annulus(image: np.ndarray, col: float, row: float, inner: float, outer: float) -> np.ndarray:
    """The pixels whose centres lie between `inner` and `outer` from (col, row): (P, 3)."""
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    distance = np.hypot(cols + 0.5 - col, rows + 0.5 - row)
    return image[(distance >= inner) & (distance <= outer)]


def boundary_pixels(plot: np.ndarray, keep=None) -> np.ndarray:
    """(M, 2) (x, y) midpoints between neighbouring pixels whose colour flips between orange and blue."""
    side = np.sign(hue(plot))  # (H, W): -1 orange, +1 blue
    found = []
    for axis in (0, 1):
        a, b = side, np.roll(side, -1, axis=axis)
        flips = a * b < 0
        flips[(-1, slice(None)) if axis == 0 else (slice(None), -1)] = False  # no wrap-around
        rows, cols = np.nonzero(flips)
        found.append(np.stack([cols + 0.5 * axis, rows + 0.5 * (1 - axis)], axis=1).astype(float))
    points = np.concatenate(found)
    return points if keep is None else points[keep(points)]


def line_residual(points: np.ndarray) -> float:
    """Largest distance (pixels) of the points from their total-least-squares line."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]  # the direction of least spread
    return float(np.abs(centred @ normal).max())


def plot_area(image: np.ndarray, frame: render.Frame) -> np.ndarray:
    return image[frame.top : frame.top + frame.height, frame.left : frame.left + frame.width]


def away_from(centres: list[tuple[float, float]], distance: float):
    """A filter keeping boundary points farther than `distance` pixels from every centre (the point markers)."""

    def keep(points):
        ok = np.ones(len(points), bool)
        for c, r in centres:
            ok &= np.hypot(points[:, 0] - c, points[:, 1] - r) > distance
        return ok

    return keep


def panels(sheet: np.ndarray) -> list[np.ndarray]:
    """The per-unit panels of a units/ image: the connected regions that are not the dark sheet."""
    labels, count = ndimage.label((sheet != render.SHEET).any(axis=2))
    return [sheet[box] for box in ndimage.find_objects(labels)]


CORNERS = {(0.0, 0.0): 0, (0.0, 1.0): 1, (1.0, 0.0): 1, (1.0, 1.0): 0}  # XOR's truth table
AND = {(0.0, 0.0): 0, (0.0, 1.0): 0, (1.0, 0.0): 0, (1.0, 1.0): 1}


def marker_check(image: np.ndarray, frame: render.Frame, truth: dict) -> None:
    """Every training point's marker is where the layout puts it: its class's colour inside, a dark ring."""
    r = render.point_radius(len(truth))
    for (x1, x2), cls in truth.items():
        col, row = frame.to_pixel(x1, x2)
        inside = image[int(row), int(col)]
        assert (hue(inside) > 40) == bool(cls), ((x1, x2), inside)
        dark = (annulus(image, col, row, r + 0.5, r + 2).max(axis=1) < 80).mean()
        assert dark > 0.4, f"no dark ring around the point marker at {(x1, x2)}"


# --- runs shared by several tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_cli(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
        return subprocess.run(
            [sys.executable, "-m", "dlexp", *args],
            cwd=cwd or root,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )

    run.root = root
    return run


@pytest.fixture(scope="module")
def xor_mlp(module_cli) -> Path:
    # 6,000 epochs escape the plateau with the preset's seed; hist_every 500: 13 captures, more than TensorBoard's
    # default sample of 10 images per tag
    return trained(
        module_cli, module_cli.root, "xor_mlp", "experiment=xor_mlp", "trainer.epochs=6000", "log.hist_every=500"
    )


@pytest.fixture(scope="module")
def and_perceptron(module_cli) -> Path:
    return trained(module_cli, module_cli.root, "and", "experiment=and_or_perceptron", "trainer.epochs=200")


# --- the boundary in TensorBoard ---------------------------------------------------------------------------------


def test_xor_mlp_ends_with_every_corner_in_its_class_colour(xor_mlp):
    assert status_of(xor_mlp)["metrics"]["val/acc"] == 1.0
    shots = images(xor_mlp, pictures.TAG)
    assert sorted(shots) == list(range(0, 6001, 500))  # step 0, every 500 steps, the end
    frame = frame_of(xor_mlp)
    final = shots[6000]
    assert final.shape[:2] == frame.size
    marker_check(final, frame, CORNERS)
    r = render.point_radius(4)
    for (x1, x2), cls in CORNERS.items():
        around = hue(ring(final, *frame.to_pixel(x1, x2), r + 6))  # the model's colour next to the corner
        assert (around > 60).all() if cls else (around < -60).all(), ((x1, x2), around)


def local_points(frame: render.Frame, points) -> list[tuple[float, float]]:
    """Where data points sit in the plot area, in pixels from its top-left corner."""
    return [(float(c) - frame.left, float(r) - frame.top) for c, r in (frame.to_pixel(*p) for p in points)]


def background(image: np.ndarray, frame: render.Frame, points) -> np.ndarray:
    """(P, 3) the plot area's pixels away from the point markers: the model's own colours."""
    rows, cols = np.mgrid[: frame.height, : frame.width]
    keep = np.ones((frame.height, frame.width), bool)
    for c, r in local_points(frame, points):
        keep &= np.hypot(cols + 0.5 - c, rows + 0.5 - r) > render.point_radius(len(points)) + 3
    return plot_area(image, frame)[keep].astype(int)


def test_xor_mlp_stays_pale_on_its_plateau_then_bends_around_the_corners(xor_mlp):
    shots = images(xor_mlp, pictures.TAG)
    frame = frame_of(xor_mlp)
    for step in range(0, 5001, 500):
        # about 0.5 everywhere (the fresh network, then the plateau): pale, nowhere near either class's colour
        pale = background(shots[step], frame, CORNERS)
        assert np.abs(hue(pale)).max() < 40 and pale.min() > 200, step
    assert np.abs(hue(background(shots[6000], frame, CORNERS))).max() > 200  # escaped: full colours
    edge = boundary_pixels(plot_area(shots[6000], frame), away_from(local_points(frame, CORNERS), 10))
    assert len(edge) > 200 and line_residual(edge) > 20  # two curves around the corners, no line


def test_xor_perceptron_picture_turns_white(cli, tmp_path):
    run_dir = trained(cli, tmp_path, "perceptron", "experiment=xor_perceptron", "trainer.epochs=2000")
    shots = images(run_dir, pictures.TAG)
    assert sorted(shots) == [0, 1000, 2000]
    frame = frame_of(run_dir)
    assert np.abs(hue(background(shots[0], frame, CORNERS))).max() > 40  # a random line at the start
    for step in (1000, 2000):
        assert (background(shots[step], frame, CORNERS) >= 250).all(), step  # p = 0.5 everywhere: white


def test_and_perceptron_splits_the_classes_with_one_straight_line(and_perceptron):
    assert status_of(and_perceptron)["metrics"]["val/acc"] == 1.0
    frame = frame_of(and_perceptron)
    final = images(and_perceptron, pictures.TAG)[200]
    marker_check(final, frame, AND)
    local = local_points(frame, AND)
    edge = boundary_pixels(plot_area(final, frame), away_from(local, 10))
    assert len(edge) > 100  # the line crosses the picture
    assert line_residual(edge) < 1.5  # ... and it is straight
    # (1, 1) on one side of it, the three other corners on the other
    centre, direction = edge.mean(axis=0), np.linalg.svd(edge - edge.mean(axis=0))[2][0]
    side = {
        p: np.sign(direction[0] * (y - centre[1]) - direction[1] * (x - centre[0])) for p, (x, y) in zip(AND, local)
    }
    assert side[(0.0, 0.0)] == side[(0.0, 1.0)] == side[(1.0, 0.0)] != side[(1.0, 1.0)]


def test_first_layer_units_draw_lines_deeper_ones_bend(xor_mlp):
    first, third = images(xor_mlp, "units/1_sigmoid")[6000], images(xor_mlp, "units/3_sigmoid")[6000]
    units = panels(first)
    assert len(units) == 10 and all(p.shape[:2] == (pictures.UNIT_CELLS,) * 2 for p in units)
    straight = [line_residual(edge) for edge in map(boundary_pixels, units) if len(edge) >= 20]
    assert straight and max(straight) < 1.5  # sigmoid(w.x + b): its 0.5 line is straight
    bent = [line_residual(edge) for edge in map(boundary_pixels, panels(third)) if len(edge) >= 20]
    assert max(bent) > 3  # combinations of lines bend


def test_units_show_at_most_32_panels_per_hidden_layer(cli, tmp_path):
    run_dir = trained(cli, tmp_path, "spiral", "data=spiral", "model.hidden=[40,5]", "trainer.epochs=1")
    assert sorted(t for t in image_tags(run_dir) if t.startswith("units/")) == ["units/1_relu", "units/2_relu"]
    for tag, count in (("units/1_relu", 32), ("units/2_relu", 5)):
        for step, sheet in images(run_dir, tag).items():
            assert len(panels(sheet)) == count, (tag, step)


def test_regression_draws_the_fitted_line(cli, tmp_path):
    run_dir = trained(
        cli,
        tmp_path,
        "linear",
        "data=linear",
        "model=perceptron",
        "batch=full",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.epochs=300",
    )
    assert list(image_tags(run_dir)) == [pictures.TAG]  # a curve, and no units: no hidden layer
    shots = images(run_dir, pictures.TAG)
    assert min(shots) == 0 and max(shots) == 300
    saved = figures.load_boundary(run_dir)
    frame = render.Frame(saved.extent, height=180, right=14)
    picture = shots[300]
    assert picture.shape[:2] == frame.size
    rows, cols = np.nonzero((np.abs(picture.astype(int) - render.CURVE) < 30).all(axis=2))  # the curve's pixels
    assert len(set(cols)) > 0.9 * frame.width  # drawn across the whole plot
    x0, x1, y0, y1 = saved.extent
    for col in sorted(set(cols))[5:-5:10]:
        x = x0 + (col + 0.5 - frame.left) / frame.width * (x1 - x0)
        y = y1 - (rows[cols == col].mean() + 0.5 - frame.top) / frame.height * (y1 - y0)
        assert y == pytest.approx(2.0 * x + 0.5, abs=0.1)  # the data's line: slope 2, intercept 0.5


# --- the schedule and the switch -------------------------------------------------------------------------------


def test_pictures_follow_the_histogram_schedule_with_or_without_histograms(cli, tmp_path):
    common = ["data=spiral", "model.hidden=[8]", "trainer.epochs=3", "log.hist_every=5"]
    with_histograms = trained(cli, tmp_path, "with", *common)
    without = trained(cli, tmp_path, "without", *common, "log.histograms=false")
    steps = histogram_steps(with_histograms, "activations/1_relu")
    assert steps == [0, 5, 8, 10, 15, 16, 20, 24]  # 8 steps an epoch: every 5, epoch ends
    assert sorted(images(with_histograms, pictures.TAG)) == steps
    assert sorted(images(without, pictures.TAG)) == steps
    assert sorted(images(without, "units/1_relu")) == steps
    assert histogram_steps(without, "activations/1_relu") == []


def test_boundaries_false_draws_nothing(cli, tmp_path):
    run_dir = trained(cli, tmp_path, "off", "experiment=xor_perceptron", "trainer.epochs=10", "log.boundaries=false")
    assert image_tags(run_dir) == [] and not (run_dir / pictures.FILE).exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            ["data=digits", "log.boundaries=true"],
            "log.boundaries=true draws 2-D inputs .* data=digits has 1x8x8 inputs and class labels; use log.boundaries=auto",
        ),
        (["log.boundaries=maybe"], r"log.boundaries=maybe is not valid\. Valid choices: auto, true, false\."),
    ],
)
def test_bad_boundaries_setting_is_one_sentence_and_writes_nothing(cli, tmp_path, override, expected):
    result = cli("train", *override, QUIET)
    assert result.returncode == 2 and re.search(expected, result.stderr), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "name, kind",
    [
        ("xor", "classes"),
        ("moons", "classes"),
        ("spiral", "classes"),
        ("linear", "curve"),
        ("sine", "curve"),
        ("digits", None),
        ("gaussian", None),
    ],
)
def test_auto_draws_2d_classes_and_1d_regression_only(name, kind):
    from dlexp.config import compose as composer
    from dlexp.run import build

    data = build.load_data(composer.without_hydra(composer.load([f"data={name}"])))
    assert pictures.kind_of(data) == kind
    assert pictures.wanted("auto", data) == (kind is not None) and not pictures.wanted(False, data)


# --- reading back: boundary.npz and the compare figures --------------------------------------------------------


def test_boundary_file_holds_the_final_grid(and_perceptron):
    saved = figures.load_boundary(and_perceptron)
    assert saved.kind == "classes" and saved.probs.shape == (pictures.SAVED_CELLS, pictures.SAVED_CELLS, 2)
    assert saved.x.tolist() == [list(p) for p in AND] and saved.y.tolist() == list(AND.values())
    # the cell nearest each corner predicts the corner's class, as the final picture does
    n, (x0, x1, y0, y1) = pictures.SAVED_CELLS, saved.extent
    for (a, b), cls in AND.items():
        cell = saved.probs[int((y1 - b) / (y1 - y0) * n), int((a - x0) / (x1 - x0) * n)]
        assert np.isclose(cell.sum(), 1, atol=1e-2) and (cell[1] > 0.5) == bool(cls)


@pytest.fixture(scope="module")
def gates(module_cli) -> Path:
    """`dlexp train -m experiment=and_or_perceptron data=and,or,xor`: three perceptrons, one sweep."""
    result = module_cli(
        "train",
        "-m",
        "experiment=and_or_perceptron",
        "data=and,or,xor",
        "trainer.epochs=100",
        QUIET,
        "hydra.sweep.dir=gates",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return module_cli.root / "gates"


def test_compare_boundaries_one_panel_per_run(module_cli, gates, tmp_path):
    result = module_cli("compare", str(gates), "--boundaries", str(tmp_path / "b.png"))
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'b.png'} (3 panels)" in result.stdout
    assert Image.open(tmp_path / "b.png").format == "PNG"
    titles = figures.boundaries_figure(tmp_path / "again.png", [(d.name, [d]) for d in run_dirs(gates)])
    assert titles == [d.name for d in run_dirs(gates)]
    (gates_and,) = [d for d in run_dirs(gates) if status_of(d)["choices"]["data"] == "and"]
    (gates_and / pictures.FILE).rename(tmp_path / "moved.npz")
    try:
        result = module_cli("compare", str(gates), "--boundaries", str(tmp_path / "c.png"))
    finally:
        (tmp_path / "moved.npz").rename(gates_and / pictures.FILE)
    assert "(2 panels; 1 without boundary.npz)" in result.stdout


def grid_edge(probs: np.ndarray) -> np.ndarray:
    """(M, 2) cell-unit midpoints where p(class 1) crosses 0.5 between neighbouring cells of a saved grid."""
    image = np.where(probs[..., 1:2] > 0.5, np.array([0, 0, 255]), np.array([255, 0, 0]))  # blue / red per cell
    return boundary_pixels(image)


def test_gates_sweep_and_and_or_are_straight_lines_xor_is_undecided(gates):
    found = {status_of(d)["choices"]["data"]: figures.load_boundary(d) for d in run_dirs(gates)}
    truth = {"and": AND, "or": {(0.0, 0.0): 0, (0.0, 1.0): 1, (1.0, 0.0): 1, (1.0, 1.0): 1}}
    for gate, classes in truth.items():
        saved = found[gate]
        n, (x0, x1, y0, y1) = saved.probs.shape[0], saved.extent
        for (a, b), cls in classes.items():  # each corner's cell: its class
            assert (saved.probs[int((y1 - b) / (y1 - y0) * n), int((a - x0) / (x1 - x0) * n), 1] > 0.5) == bool(cls)
        edge = grid_edge(saved.probs)
        assert len(edge) > 60 and line_residual(edge) < 1.0, gate  # one straight line, to a cell
    assert np.abs(found["xor"].probs[..., 1] - 0.5).max() < 0.05  # XOR: 50/50 everywhere, a white picture


def test_compare_panels_are_titled_by_overrides_and_accuracy(gates):
    from dlexp.read.evidence import differing_overrides
    from dlexp.read.rows import collect
    from dlexp.read.table import panel_title

    rows = collect([gates])
    keys = differing_overrides(rows)
    titles = [panel_title(row, keys) for row in rows]
    assert titles[:2] == ["data=and\nval/acc 1", "data=or\nval/acc 1"]
    assert re.fullmatch(r"data=xor\nval/acc 0\.\d+", titles[2])  # at most 0.75: never 1


def test_shared_extent_and_resampling():
    p = np.arange(16, dtype=np.float32).reshape(4, 4) / 16  # every cell its own value, exact in float32
    a = figures.Boundary(
        Path("a"), "classes", (0.0, 1.0, 0.0, 1.0), np.zeros((1, 2)), np.zeros(1), probs=np.stack([1 - p, p], axis=-1)
    )
    b = figures.Boundary(
        Path("b"),
        "classes",
        (0.5, 2.0, 0.0, 1.5),
        np.zeros((1, 2)),
        np.zeros(1),
        probs=np.stack([np.full((4, 4), 0.6), np.full((4, 4), 0.4)], axis=-1),
    )
    assert figures.shared_extent([a, b]) == pytest.approx((0.0, 2.0, -0.25, 1.75))
    assert np.array_equal(render.resample(a.probs, a.extent, a.extent, 4), a.probs)
    grid = render.resample(a.probs, a.extent, (0.0, 2.0, -0.25, 1.75), 8)  # (8, 8, 2), cells of 0.25 x 0.25
    assert np.array_equal(grid[3:7, 0:4], a.probs)  # y 1..0 and x 0..1: a, cell for cell
    assert np.isnan(grid[:, 4:]).all() and np.isnan(grid[:3]).all() and np.isnan(grid[7]).all()  # a is not there


@pytest.fixture(scope="module")
def init_sweep(module_cli) -> Path:
    """The init study's sweep (scripts/init_study.sh): 4 initializers x 2 activations, fresh networks."""
    result = module_cli(
        "train",
        "-m",
        "experiment=init_study",
        "initializer=normal,normal_small,xavier_normal,he_normal",
        "model.activation=sigmoid,relu",
        QUIET,
        "hydra.sweep.dir=init",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return module_cli.root / "init"


def by_setting(sweep_dir: Path, values) -> dict[tuple[str, str], object]:
    """{(initializer, activation): value} for values given in run order."""
    keys = [
        tuple(dict(o.split("=", 1) for o in status_of(d)["overrides"])[k] for k in ("initializer", "model.activation"))
        for d in run_dirs(sweep_dir)
    ]
    return dict(zip(keys, values))


def test_compare_histograms_one_row_per_run_one_column_per_layer(module_cli, init_sweep, tmp_path):
    result = module_cli("compare", str(init_sweep), "--histograms", str(tmp_path / "h.png"))
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'h.png'} (40 panels)" in result.stdout  # 8 runs x 5 layers
    assert Image.open(tmp_path / "h.png").format == "PNG"
    described = figures.histograms_figure(tmp_path / "h2.png", [(d.name, d) for d in run_dirs(init_sweep)])
    rows = by_setting(init_sweep, [described[i * 5 : (i + 1) * 5] for i in range(8)])
    for (_, act), row in rows.items():
        assert [d.split()[0] for d in row] == [f"{i}_{act}" for i in range(1, 6)]
        assert all(("saturated " if act == "sigmoid" else "dead ") in d for d in row)  # the share, in every panel
    saturated = [float(re.search(r"saturated (\d+)%", d).group(1)) for d in rows["normal", "sigmoid"]]
    assert min(saturated) == 44 and max(saturated) == 64  # N(0, 1): about half of every layer
    assert all("saturated 0%" in d for d in rows["xavier_normal", "sigmoid"])
    # ReLU under N(0, 1) runs off the shared axis; the panel prints how far: up to ~1e5 in layer 5
    ranges = [re.search(r"0 \.\. (\S+)$", d) for d in rows["normal", "relu"]]
    assert all(ranges) and ranges[0].group(1) == "45" and ranges[-1].group(1) == "1e+05"


def test_init_study_activations_per_layer(init_sweep):
    """The init study's README numbers, from the histograms the figure reads (step 0 of each event file)."""
    from dlexp.observe.tensorboard import read_histograms

    hists = by_setting(
        init_sweep,
        [
            [
                h
                for _, h in sorted(
                    read_histograms(d, "activations/", 0)[1].items(), key=lambda item: figures._layer_index(item[0])
                )
            ]
            for d in run_dirs(init_sweep)
        ],
    )
    spans = {setting: [(h["min"], h["max"]) for h in layers] for setting, layers in hists.items()}
    for layer in hists["normal_small", "sigmoid"]:  # a needle at 0.5: sigmoids
        near = sum(count for left, right, count in layer["buckets"] if 0.46 < left and right < 0.54)  # are drawn
        assert near / layer["num"] > 0.75 and 0.35 < layer["min"] and layer["max"] < 0.65  # in 0..1, 30 buckets
    assert all(hi - lo > 0.3 for lo, hi in spans["xavier_normal", "sigmoid"])  # spread inside (0, 1)
    assert all(5.5 < hi < 7.5 for _, hi in spans["he_normal", "relu"])  # He: one range, every layer
    shrinking = [hi for _, hi in spans["normal_small", "relu"]]
    assert all(later < earlier / 5 for earlier, later in zip(shrinking, shrinking[1:]))  # N(0, 0.01): vanishes
    exploding = [hi for _, hi in spans["normal", "relu"]]
    assert all(later > 3 * earlier for earlier, later in zip(exploding, exploding[1:]))  # N(0, 1): explodes


def test_compare_histograms_step_and_its_errors(module_cli, init_sweep, gates, tmp_path):
    result = module_cli("compare", str(init_sweep), "--histograms", str(tmp_path / "h.png"), "--step", "7")
    assert result.returncode == 0 and "(40 panels)" in result.stdout  # nothing trained: step 0 is nearest
    result = module_cli("compare", str(init_sweep), "--step", "7")
    assert result.returncode == 2 and "--step 7 chooses the step of the --histograms figure" in result.stderr
    result = module_cli("compare", str(gates), "--histograms", str(tmp_path / "none.png"))
    assert result.returncode == 2 and "none of these runs has activation histograms" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "none.png").exists()


# --- TensorBoard keeps every image ----------------------------------------------------------------------------


def test_board_serves_every_captured_picture(xor_mlp):
    from test_board import get, wait_for

    process = subprocess.Popen(
        [sys.executable, "-m", "dlexp", "board", str(xor_mlp), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", process.stdout.readline()).group(0)
        served = wait_for(lambda: get(url + "data/plugin/images/tags"))  # the board names the one run
        ((run, tags),) = served.items()
        assert {pictures.TAG, "units/1_sigmoid", "units/2_sigmoid", "units/3_sigmoid"} <= set(tags)
        shown = get(url + "data/plugin/images/images?" + urllib.parse.urlencode({"run": run, "tag": pictures.TAG}))
        assert [s["step"] for s in shown] == list(range(0, 6001, 500))  # 13 > TensorBoard's default of 10
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


# --- the lessons' pictures ----------------------------------------------------------------------------------------


def test_moons_lesson_a_line_then_bends(tmp_path):
    """scripts/moons.sh: what the README's moons lesson says, from the runs and the figure the script leaves."""
    from test_lessons import run_script, sweep_runs, swept

    result = run_script("moons", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (sweep_dir,) = (tmp_path / "runs" / "lessons" / "moons").iterdir()
    assert "(3 panels)" in result.stdout and Image.open(sweep_dir / "boundaries.png").format == "PNG"
    accuracy = {swept(s, "model.hidden"): s["metrics"]["val/acc"] for s in sweep_runs(tmp_path, "moons").values()}
    assert accuracy == pytest.approx({"[]": 0.895, "[3]": 0.99, "[16,16]": 0.98}, abs=0.0051)
    by_hidden = {swept(status_of(d), "model.hidden"): d for d in run_dirs(sweep_dir)}
    residual = {hidden: line_residual(grid_edge(figures.load_boundary(d).probs)) for hidden, d in by_hidden.items()}
    assert residual["[]"] < 1.0  # the perceptron: one straight line
    assert residual["[3]"] > 3 and residual["[16,16]"] > 3  # hidden units bend it
    assert sorted(images(by_hidden["[]"], pictures.TAG)) == list(range(0, 301, 30))
    deep = by_hidden["[16,16]"]
    first = [boundary_pixels(p) for p in panels(images(deep, "units/1_tanh")[300])]
    second = [boundary_pixels(p) for p in panels(images(deep, "units/2_tanh")[300])]
    assert len(first) == len(second) == 16
    assert max(line_residual(e) for e in first if len(e) >= 20) < 1.5  # tanh(w.x + b): straight edges
    assert max(line_residual(e) for e in second if len(e) >= 20) > 3  # the second layer's curves


def test_a_panel_of_several_runs_averages_them_on_the_shared_extent(tmp_path):
    """What grouping seeds will call: one panel from a list of runs (here two hand-made boundaries)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.full((4, 4), 0.2, dtype=np.float32)
    a = figures.Boundary(
        Path("a"),
        "classes",
        (0.0, 1.0, 0.0, 1.0),
        np.zeros((1, 2)),
        np.zeros(1, int),
        probs=np.stack([1 - p, p], axis=-1),
    )
    b = figures.Boundary(
        Path("b"),
        "classes",
        (0.0, 1.0, 0.0, 1.0),
        np.zeros((1, 2)),
        np.zeros(1, int),
        probs=np.stack([p, 1 - p], axis=-1),
    )  # 0.8 where a says 0.2
    fig, ax = plt.subplots()
    figures.boundary_panel(ax, [a, b], (0.0, 1.0, 0.0, 1.0), "two seeds")
    shown = ax.get_images()[0].get_array()  # the colours drawn
    assert np.array_equal(shown, render.prediction_colours(np.full((4, 4, 2), 0.5)))  # mean 0.5: white
    # curves over different x-ranges (seeds draw different data): averaged where both exist, each alone elsewhere
    x = np.linspace(0.0, 1.0, 11)
    line = figures.Boundary(
        Path("c"), "curve", (0.0, 1.0, -1.0, 1.0), np.zeros((1, 1)), np.zeros((1, 1)), grid_x=x, mean=x
    )  # y = x on [0, 1]
    flat = figures.Boundary(
        Path("d"),
        "curve",
        (1.0, 2.0, -1.0, 1.0),
        np.zeros((1, 1)),
        np.zeros((1, 1)),
        grid_x=x + 1,
        mean=np.full(11, -1.0),
    )  # y = -1 on [1, 2]
    ax.clear()
    figures.boundary_panel(ax, [line, flat], (0.0, 2.0, -1.0, 1.0), "two curves")
    xs, ys = ax.get_lines()[0].get_data()
    assert xs.tolist() == pytest.approx(np.linspace(0.0, 2.0, 11).tolist())
    assert ys.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.0, -1.0, -1.0, -1.0, -1.0, -1.0])
    plt.close(fig)


def test_pictures_are_encoded_beside_training_and_every_one_is_written_by_close(tmp_path, caplog):
    """Board.images hands the encoding to the painting thread and returns; close waits for every picture, written
    in the order given; one that cannot be made is said in the log and left out, the others are written."""
    import threading

    from dlexp.observe.tensorboard import Board, painting

    board = Board(tmp_path)
    shades = {step: np.full((6, 5, 3), (step * 10, 255 - step * 10, 7), np.uint8) for step in range(12)}
    made_on = []

    def later(pixels):
        made_on.append(threading.current_thread().name)
        return {"picture": pixels}

    for step, pixels in shades.items():
        board.images({"picture": pixels} if step % 2 else (lambda p=pixels: later(p)), step)
    board.images(lambda: {"picture": np.zeros((2, 2))}, 12)  # not an RGB image: png cannot encode it
    board.close()
    assert board.pending == []
    written = images(tmp_path, "picture")
    assert sorted(written) == list(range(12))
    for step, pixels in shades.items():
        assert np.array_equal(written[step], pixels), step
    assert made_on and all(name.startswith("dlexp-pictures") for name in made_on)
    assert "the pictures of step 12 could not be drawn" in caplog.text
    if hasattr(os, "fork"):  # a forked process (a joblib worker) gets a painting thread of its own
        parent = painting()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok = painting() is not parent and painting().submit(lambda: 41 + 1).result(timeout=10) == 42
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
