"""Pictures from plain arrays: decision boundaries, fitted curves, per-unit views. numpy and Pillow only.

The training observer (dlexp/observe/pictures.py) draws TensorBoard images with these functions and
`dlexp compare` draws its figures with the same colours, from the arrays a run saved: neither torch nor
TensorBoard is needed here. Every image is an (H, W, 3) uint8 array; grids are stored row 0 at the TOP
(the largest y), so a grid is an image as it is.

Colours follow TensorFlow Playground: orange for class 0 (negative values), white for 0.5 (zero), blue for
class 1 (positive values); multi-class data gets one colour per class, paler where the model is less sure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ORANGE = (245, 147, 34)  # class 0, the low end of a diverging scale
BLUE = (8, 119, 189)  # class 1, the high end
WHITE = (255, 255, 255)  # p = 0.5, or zero on a symmetric scale
UNDEFINED = (190, 190, 190)  # a non-finite prediction (a diverged model)
# one colour per class beyond two (Tableau 10); more classes cycle through them
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
INK = (40, 40, 40)  # axes, text, point outlines
CURVE = (217, 95, 2)  # a regression model's fitted curve
BAND = (253, 224, 196)  # ... and +-2 of its predicted standard deviations
POINT, POINT_FILL = (70, 110, 160), (158, 202, 225)  # a regression data point: outline, inside
SHEET = (64, 64, 64)  # background between per-unit panels
MARGIN = 0.15  # of the data's range, on every side of a boundary's grid


# --- the grid ----------------------------------------------------------------------------------------------------


def square_extent(x: np.ndarray, margin: float = MARGIN) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): a square around 2-D points (N, 2) with `margin` of the larger range on each side.

    Square so that the picture keeps the data's geometry (a circle stays round)."""
    lo, hi = np.nanmin(x, axis=0).astype(float), np.nanmax(x, axis=0).astype(float)  # (2,), (2,)
    half = max(float((hi - lo).max()), 1e-6) * (0.5 + margin)
    cx, cy = (lo + hi) / 2
    return (cx - half, cx + half, cy - half, cy + half)


def span(values: np.ndarray, margin: float = 0.1) -> tuple[float, float]:
    """(low, high) of `values` widened by `margin` of their range on each side."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = (hi - lo) * margin or max(abs(hi), 1.0) * margin
    return lo - pad, hi + pad


def grid_points(extent, n: int) -> np.ndarray:
    """(n * n, 2) cell centres of an n x n grid over extent, row by row from the top (largest y) down."""
    x0, x1, y0, y1 = extent
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n  # (n,) left to right
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # (n,) top to bottom
    gx, gy = np.meshgrid(xs, ys)  # (n, n) each
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def resample(values: np.ndarray, extent, target, n: int) -> np.ndarray:
    """A grid (m, m, ...) over `extent` seen on an n x n grid over `target` (nearest cell); NaN outside it."""
    m = values.shape[0]
    points = grid_points(target, n)  # (n*n, 2)
    x0, x1, y0, y1 = extent
    col = np.floor((points[:, 0] - x0) / (x1 - x0) * m).astype(int)  # (n*n,)
    row = np.floor((y1 - points[:, 1]) / (y1 - y0) * m).astype(int)
    inside = (col >= 0) & (col < m) & (row >= 0) & (row < m)
    out = np.full((n * n, *values.shape[2:]), np.nan, dtype=np.float32)
    out[inside] = values[row[inside], col[inside]]
    return out.reshape(n, n, *values.shape[2:])


# --- colours -----------------------------------------------------------------------------------------------------


def _scale_table() -> np.ndarray:
    """(512, 3) uint8: entries 0..510 run orange -> white (255) -> blue; entry 511 is the non-finite grey."""
    t = np.abs(np.arange(511) - 255.0)[:, None] / 255.0  # (511, 1) distance from white
    end = np.where(np.arange(511)[:, None] < 255, np.array(ORANGE, float), np.array(BLUE, float))
    table = np.array(WHITE, float) + t * (end - np.array(WHITE, float))  # (511, 3)
    return np.vstack([table, UNDEFINED]).round().astype(np.uint8)


SCALE = _scale_table()
# The same colours as 32-bit words (R, G, B, 0 in memory order), with the per-unit sheet's background after them:
# gathering one word a pixel is ~3x faster than gathering three bytes, and `rgb` turns the words into pixels.
SHEET_INDEX = len(SCALE)
_COLOURS = np.zeros((len(SCALE) + 1, 4), np.uint8)
_COLOURS[: len(SCALE), :3], _COLOURS[SHEET_INDEX, :3] = SCALE, SHEET
WORDS = _COLOURS.view(np.uint32).ravel()  # (513,)


def scale_index(values: np.ndarray, lo: float, mid: float, hi: float) -> np.ndarray:
    """(...) -> (...) uint16: each value's entry of SCALE on the diverging scale (lo, mid, hi), 511 where not finite.

    A lookup in 511 steps (255 each side of mid): as fine as 8-bit colour can show. Computed in place, in float32."""
    v = np.asarray(values, dtype=np.float32)
    index = np.subtract(v, np.float32(mid))  # above mid: 255 at mid, 510 at hi
    index *= np.float32(255 / max(hi - mid, 1e-12))
    index += np.float32(255)
    below = v < mid  # below mid: 0 at lo, 255 at mid
    np.subtract(v, np.float32(lo), out=index, where=below)
    np.multiply(index, np.float32(255 / max(mid - lo, 1e-12)), out=index, where=below)
    np.clip(index, 0, 510, out=index)
    index += np.float32(0.5)
    index[~np.isfinite(v)] = 511  # NaN and infinities: the grey entry
    return index.astype(np.uint16)


def rgb(words: np.ndarray) -> np.ndarray:
    """(...) colour words of WORDS -> (..., 3) uint8 pixels (a channel at a time: 5x faster than one strided copy)."""
    channels = words.view(np.uint8).reshape(*words.shape, 4)
    pixels = np.empty((*words.shape, 3), np.uint8)
    for c in range(3):
        pixels[..., c] = channels[..., c]
    return pixels


def diverging(values: np.ndarray, lo: float, mid: float, hi: float) -> np.ndarray:
    """(...) -> (..., 3) uint8: orange at lo, white at mid, blue at hi (clipped beyond); grey where not finite."""
    return rgb(np.take(WORDS, scale_index(values, lo, mid, hi)))


def class_colours(n_classes: int) -> np.ndarray:
    """(K, 3) uint8: orange and blue for two classes (as on a probability scale), the palette beyond."""
    if n_classes <= 2:
        return np.array([ORANGE, BLUE], np.uint8)
    return np.array([PALETTE[k % len(PALETTE)] for k in range(n_classes)], np.uint8)


def prediction_colours(probs: np.ndarray) -> np.ndarray:
    """(..., K) class probabilities -> (..., 3) uint8.

    Two classes: p(class 1) on the orange-white-blue scale. More: the predicted class's colour, faded towards
    white as the model's confidence falls to chance (1/K). Grey where a probability is not finite."""
    k = probs.shape[-1]
    if k == 2:
        return diverging(probs[..., 1], 0.0, 0.5, 1.0)
    finite = np.isfinite(probs).all(axis=-1)  # (...)
    p = np.where(finite[..., None], probs, 1.0 / k)
    winner = p.argmax(axis=-1)  # (...)
    confidence = np.clip((p.max(axis=-1) - 1.0 / k) / (1.0 - 1.0 / k), 0, 1)[..., None]
    white = np.array(WHITE, np.float32)
    rgb = white + confidence * (class_colours(k)[winner].astype(np.float32) - white)
    rgb[~finite] = UNDEFINED
    return rgb.round().astype(np.uint8)


def activation_scale(kind: str, values: np.ndarray) -> tuple[float, float, float]:
    """(lo, mid, hi) of the diverging scale for a unit's output: the activation's own range where it has one."""
    if kind == "sigmoid":
        return 0.0, 0.5, 1.0
    if kind == "tanh":
        return -1.0, 0.0, 1.0
    finite = values[np.isfinite(values)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    return -(top or 1.0), 0.0, top or 1.0


# --- drawing -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round numbers inside [lo, hi], about `count` of them, on a 1 / 2 / 2.5 / 5 x 10^k step."""
    raw = (hi - lo) / max(count, 1)
    if not math.isfinite(raw) or raw <= 0:
        return [lo]
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(i * step, 10) for i in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-9 else "0"


@dataclass(frozen=True)
class Frame:
    """A plot area of `width` x `height` pixels at (left, top) in an image, showing `extent` in data units."""

    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    width: int = 240
    height: int = 240
    left: int = 46
    top: int = 10
    right: int = 56  # room for the colour key
    bottom: int = 34

    @property
    def size(self) -> tuple[int, int]:  # (image height, image width)
        return self.top + self.height + self.bottom, self.left + self.width + self.right

    def to_pixel(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates -> (column, row) in the image, as floats (pixel centres at .5)."""
        x0, x1, y0, y1 = self.extent
        col = self.left + (np.asarray(x, float) - x0) / (x1 - x0) * self.width
        row = self.top + (y1 - np.asarray(y, float)) / (y1 - y0) * self.height
        return col, row


def _canvas(frame: Frame):
    """A white image of the frame's size and a pen on it."""
    from PIL import Image, ImageDraw

    height, width = frame.size
    picture = Image.new("RGB", (width, height), WHITE)
    return picture, ImageDraw.Draw(picture)


def _axes(draw, frame: Frame, names: tuple[str, str]) -> None:
    """Frame, ticks and tick labels in the data's own coordinates, axis names."""
    x0, x1, y0, y1 = frame.extent
    small = font(10)
    left, top, right, bottom = frame.left, frame.top, frame.left + frame.width, frame.top + frame.height
    draw.rectangle([left - 1, top - 1, right, bottom], outline=INK)
    for value in nice_ticks(x0, x1):
        col = float(frame.to_pixel(value, y0)[0])
        draw.line([col, bottom, col, bottom + 4], fill=INK)
        draw.text((col, bottom + 5), label(value), fill=INK, font=small, anchor="mt")
    for value in nice_ticks(y0, y1):
        row = float(frame.to_pixel(x0, value)[1])
        draw.line([left - 5, row, left - 1, row], fill=INK)
        draw.text((left - 7, row), label(value), fill=INK, font=small, anchor="rm")
    draw.text(((left + right) / 2, bottom + 19), names[0], fill=INK, font=font(11), anchor="mt")
    draw.text((4, (top + bottom) / 2), names[1], fill=INK, font=font(11), anchor="lm")


def point_radius(n: int) -> int:
    """Few points are drawn large (the 4 corners of XOR), many small (1,000 moons)."""
    return 6 if n <= 16 else 4 if n <= 200 else 3 if n <= 1000 else 2


def _key(draw, frame: Frame, n_classes: int) -> None:
    """Right of the plot: the probability scale (two classes) or one swatch per class."""
    x = frame.left + frame.width + 10
    small = font(10)
    if n_classes <= 2:
        strip = diverging(np.linspace(1, 0, frame.height), 0.0, 0.5, 1.0)  # (height, 3), 1 at the top
        for i, colour in enumerate(strip.tolist()):
            draw.line([x, frame.top + i, x + 9, frame.top + i], fill=tuple(colour))
        draw.rectangle([x - 1, frame.top - 1, x + 10, frame.top + frame.height], outline=INK)
        for p in (0.0, 0.5, 1.0):
            row = frame.top + (1 - p) * (frame.height - 1)
            draw.text((x + 14, row), label(p), fill=INK, font=small, anchor="lm")
        draw.text((x + 14, frame.top + frame.height + 5), "p(1)", fill=INK, font=small, anchor="mt")
        return
    colours = class_colours(n_classes)
    for k in range(min(n_classes, frame.height // 14)):
        top = frame.top + 14 * k
        draw.rectangle([x, top, x + 9, top + 9], fill=tuple(int(c) for c in colours[k]), outline=INK)
        draw.text((x + 14, top + 5), str(k), fill=INK, font=small, anchor="lm")


def _stamp(size: tuple[int, int], draw_shapes) -> tuple[np.ndarray, np.ndarray]:
    """Shapes drawn once, by draw_shapes(pen), on a transparent layer of `size` (height, width): where they are
    (height, width) and their colours (P, 3), to be pasted onto every picture (Pillow's ellipses are not smoothed,
    so a mask loses nothing)."""
    from PIL import Image, ImageDraw

    height, width = size
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw_shapes(ImageDraw.Draw(layer))
    rgba = np.asarray(layer)
    mask = rgba[..., 3] > 0
    return mask, rgba[..., :3][mask]


class BoundaryPainter:
    """Draws the boundary picture of one run again and again: the axes, the key and the points never change,
    so they are drawn once; each picture is then the template, the scaled plot and the points pasted on top."""

    def __init__(
        self, frame: Frame, x: np.ndarray, y: np.ndarray, n_classes: int, names: tuple[str, str] = ("x1", "x2")
    ):
        self.frame = frame
        picture, draw = _canvas(frame)
        _axes(draw, frame, names)
        _key(draw, frame, n_classes)
        self.template = np.asarray(picture).copy()  # (height, width, 3)
        colours = class_colours(n_classes)
        r = point_radius(len(x))
        cols, rows = frame.to_pixel(x[:, 0], x[:, 1])

        def points(draw) -> None:
            for col, row, cls in zip(cols.tolist(), rows.tolist(), np.asarray(y).tolist()):
                # a white ring inside a dark one: the point stands out on its own colour and on white alike
                draw.ellipse([col - r - 1, row - r - 1, col + r + 1, row + r + 1], fill=(*INK, 255))
                draw.ellipse(
                    [col - r, row - r, col + r, row + r],
                    outline=(*WHITE, 255),
                    fill=(*(int(c) for c in colours[int(cls) % n_classes]), 255),
                )

        self.mask, self.points = _stamp(frame.size, points)  # (height, width), (P, 3)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """The picture of class probabilities (n, n, K) over frame.extent: (height, width, 3) uint8."""
        return self.place(prediction_colours(probs))

    def place(self, colours: np.ndarray) -> np.ndarray:
        """The picture of the grid's colours (n, n, 3) uint8, `prediction_colours` of its probabilities (a stack
        colours every job's grid in one call): (height, width, 3) uint8."""
        from PIL import Image

        f = self.frame
        image = self.template.copy()
        cells = Image.fromarray(colours)
        if cells.size != (f.width, f.height):  # a coarser grid: the model evaluates a quarter of the points
            cells = cells.resize((f.width, f.height), Image.Resampling.BILINEAR)
        image[f.top : f.top + f.height, f.left : f.left + f.width] = np.asarray(cells)
        image[self.mask] = self.points
        return image


class CurvePainter:
    """Draws the picture of a 1-D regression again and again: the data points (x, y), the model's curve with one
    value per plot column and, when the model predicts one, a band of +-2 standard deviations. The axes and the
    points never change, so they are drawn once."""

    def __init__(self, frame: Frame, x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y")):
        picture, draw = _canvas(frame)
        _axes(draw, frame, names)
        self.frame, self.template = frame, np.asarray(picture).copy()
        r = max(point_radius(len(x)) - 1, 2)
        cols, rows = frame.to_pixel(x, y)

        def points(draw) -> None:  # in the plot area's own pixels
            for col, row in zip((cols - frame.left).tolist(), (rows - frame.top).tolist()):
                draw.ellipse([col - r, row - r, col + r, row + r], fill=(*POINT_FILL, 255), outline=(*POINT, 255))

        self.mask, self.points = _stamp((frame.height, frame.width), points)

    def __call__(self, grid_x: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None) -> np.ndarray:
        """The picture of the predictions `mean` (and `std`) at grid_x, one per plot column: (height, width, 3)."""
        from PIL import Image, ImageDraw

        f = self.frame
        plot = np.full((f.height, f.width, 3), 255, np.uint8)
        if std is not None:  # the band, column by column: rows between mean + 2 std and mean - 2 std
            top = np.nan_to_num(f.to_pixel(grid_x, mean + 2 * std)[1] - f.top)  # (width,)
            bottom = np.nan_to_num(f.to_pixel(grid_x, mean - 2 * std)[1] - f.top)
            rows = np.arange(f.height)[:, None]  # (height, 1)
            plot[(rows >= top[None, :]) & (rows <= bottom[None, :])] = BAND
        plot[self.mask] = self.points
        picture = Image.fromarray(plot)
        cols, rows = f.to_pixel(grid_x, mean)
        finite = np.isfinite(rows)
        rows = np.clip(rows - f.top, -2, f.height + 2)  # a curve leaving the plot runs along its edge
        ImageDraw.Draw(picture).line(
            list(zip((cols[finite] - f.left).tolist(), rows[finite].tolist())), fill=CURVE, width=2
        )
        image = self.template.copy()
        image[f.top : f.top + f.height, f.left : f.left + f.width] = np.asarray(picture)
        return image


def units_image(values: np.ndarray, scale: tuple[float, float, float], columns: int = 8, gap: int = 2) -> np.ndarray:
    """One panel per unit: values (U, n, n) of each unit over the grid, on the diverging scale (lo, mid, hi),
    `columns` panels a row (units in order, left to right) on a dark sheet. (height, width, 3) uint8."""
    return unit_sheets(scale_index(values, *scale)[None], columns, gap)[0]


def unit_sheets(index: np.ndarray, columns: int = 8, gap: int = 2) -> np.ndarray:
    """`units_image` of many networks at once from their panels' `scale_index` (M, U, n, n): (M, height, width, 3).

    The panels are laid into a (rows x columns) block of the sheet with one reshape, not one copy per unit, and
    coloured with the sheet in one gather."""
    m, units, n = index.shape[:3]
    columns = max(1, min(columns, units))
    rows = math.ceil(units / columns)
    cell = n + gap
    sheet = np.full((m, gap + rows * cell, gap + columns * cell), SHEET_INDEX, np.uint16)
    padded = np.full((m, rows * columns, n, n), SHEET_INDEX, np.uint16)  # a last, shorter row: background
    padded[:, :units] = index
    block = sheet[:, gap:, gap:].reshape(m, rows, cell, columns, cell)  # a view: (M, row, y, column, x)
    block[:, :, :n, :, :n] = padded.reshape(m, rows, columns, n, n).transpose(0, 1, 3, 2, 4)
    return rgb(np.take(WORDS, sheet))
