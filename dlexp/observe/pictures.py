"""Pictures of what the model computes over its input space, as TensorBoard images (`log.boundaries`).

* `boundary/prediction`: on 2-D inputs with class labels, the predicted probability of class 1 (two classes) or
  the predicted class and its confidence (more classes) over a square grid around the data, the training
  points on top in their label's colour; on 1-D regression data, the fitted curve over the data points.
* `units/<layer>`: on 2-D inputs, one small panel per hidden unit (the first 32 of each layer): the unit's
  output over the same square, i.e. what each neuron computes (TensorFlow Playground's neuron view).

Pictures are drawn at every capture of the histogram schedule (step 0, every `log.hist_every` steps, evaluated
epochs, the end) with numpy and Pillow (dlexp/observe/render.py): a forward pass over the grid, no matplotlib.
At the end of the run the final grid is saved as `boundary.npz` in the run directory, so that
`dlexp compare --boundaries` draws every run of a sweep from disk, without its model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dlexp.observe import render
from dlexp.observe.histograms import find_layers, layer_outputs, needs_mode_toggle
from dlexp.parts import bounded
from dlexp.run import record

log = logging.getLogger("dlexp")

TAG = "boundary/prediction"
UNITS = "units/"  # + the layer, as in activations/<layer>: units/1_sigmoid
FILE = "boundary.npz"  # the final grid, for dlexp compare
MAX_UNITS = 32  # panels per layer
CELLS = 120  # grid cells per side of the boundary picture (drawn 2x: 240 pixels)
UNIT_CELLS = 48  # grid cells (= pixels) per side of a unit's panel
SAVED_CELLS = 128  # grid cells per side in boundary.npz
CHUNK = 16384  # grid points per forward pass: wide layers stay small in memory


def kind_of(data) -> str | None:
    """ "classes" for 2-D inputs with class labels, "curve" for 1-D inputs with one regression target, else None."""
    shape = tuple(data.feature_shape)
    if shape == (2,) and data.task in ("binary", "multiclass"):
        return "classes"
    if shape == (1,) and data.task == "regression" and data.target_dim == 1:
        return "curve"
    return None


# What a loss adapter must offer to turn outputs into a picture (dlexp's own all do; a user's may not).
READS = {"classes": "probabilities", "curve": "mean"}


def wanted(setting, data, loss=None) -> bool:
    """log.boundaries: auto and true draw whenever the data can be drawn (and the loss reads its outputs); false
    never."""
    kind = kind_of(data)
    return bool(setting) and kind is not None and (loss is None or hasattr(loss, READS[kind]))


def problem(setting, data, loss=None) -> str | None:
    """One sentence when log.boundaries=true asks for pictures this data (or loss) cannot give."""
    kind = kind_of(data)
    if setting is not True:
        return None
    if kind is not None:
        if loss is None or hasattr(loss, READS[kind]):
            return None
        return (
            f"log.boundaries=true needs the outputs as {READS[kind]}, but loss={getattr(loss, 'name', '?')} "
            f"has no {READS[kind]}() method; use log.boundaries=auto or false."
        )
    shape = tuple(data.feature_shape)
    inputs = f"{shape[0]}-D" if len(shape) == 1 else "x".join(map(str, shape))
    targets = {"binary": "binary labels", "multiclass": "class labels", "unlabelled": "no labels"}.get(
        data.task, f"{data.target_dim} regression target{'s' if data.target_dim != 1 else ''}"
    )
    return (
        f"log.boundaries=true draws 2-D inputs with class labels or 1-D inputs with one regression target, "
        f"but data={data.name} has {inputs} inputs and {targets}; use log.boundaries=auto or false."
    )


def unit_tag(layer) -> tuple[str, str]:
    """(the layer's name under units/, the kind of its colour scale): its activation's, else the linear output's."""
    if layer.activation is None:
        return layer.name, "linear"
    return layer.act_name, bounded.kind(layer.activation)


class Pictures:
    """Observer: draws the boundary (or curve) and per-unit images at each capture, saves the final grid at the end.

    Notified through `on_capture(state)` at every captured step and `on_end(state, status)`.
    """

    def __init__(self, board, model: nn.Module, loss, data, run_dir: Path):
        self.board, self.model, self.loss, self.path = board, model, loss, Path(run_dir) / FILE
        self.kind, self.data_name = kind_of(data), data.name
        device = data.x_train.device
        inputs = torch.cat([data.x_train, data.x_val]).cpu().numpy()  # (N, F): the extent covers both
        self.x = data.x_train.cpu().numpy()  # (N, F) points drawn
        self.y = data.y_train.cpu().numpy()  # (N,) labels or (N, 1) targets
        self.painter: render.BoundaryPainter | render.CurvePainter
        if self.kind == "classes":
            self.frame = render.Frame(render.square_extent(inputs))
            self.grid = torch.from_numpy(render.grid_points(self.frame.extent, CELLS)).to(device)
            self.unit_grid = torch.from_numpy(render.grid_points(self.frame.extent, UNIT_CELLS)).to(device)
            self.hidden = find_layers(model)[:-1]  # the last layer is the output
            self.painter = render.BoundaryPainter(self.frame, self.x, self.y, max(data.n_classes, 2))
        else:
            targets = torch.cat([data.y_train, data.y_val]).cpu().numpy()
            self.frame = render.Frame(
                (*render.span(inputs, render.MARGIN), *render.span(targets)), height=180, right=14
            )
            self.painter = render.CurvePainter(self.frame, self.x[:, 0], self.y[:, 0])
            x0, x1 = self.frame.extent[:2]
            columns = x0 + (np.arange(self.frame.width) + 0.5) * (x1 - x0) / self.frame.width
            self.grid = torch.from_numpy(columns.astype(np.float32)).unsqueeze(1).to(device)  # (width, 1)
            self.hidden = []
        self.toggle_mode = needs_mode_toggle(model)
        self.last_step: int | None = None
        self.seconds, self.drawn = 0.0, 0

    # --- observer protocol -------------------------------------------------------------------------
    def on_capture(self, state) -> None:
        self.draw(state.step)

    def on_end(self, state, status: str) -> None:
        try:  # a picture is never worth the run's record: a failure here is logged, the run ends as it was
            self.draw(state.step)  # the final picture, unless this step was captured already
            self.save(state.step)
        except Exception:
            log.exception("pictures: the final picture could not be drawn")
        log.info("pictures: %d captures drawn in %.0f ms", self.drawn, self.seconds * 1000)

    # --- the same for a stack of networks, all evaluated over their grids in one pass (dlexp/stacked/loop.py) --
    @staticmethod
    def stack_capture(members: list, stack) -> dict:
        """A captured step for these members ((row, state, observer) of the stack's networks): the networks as they
        stand (`stack.frozen()`) go to the painting thread with the members, and the stack trains on. There, one
        `StackCapture` evaluates them over every member's grid in one batched pass (and over its unit grid, layer by
        layer), colours every member's grid at once (`paint_many`) and hands each member its images. Returns {}:
        a picture that cannot be drawn is said in its run's log and left out (`Board.images`), as alone."""
        by_step: dict[int, list] = {}
        for row, state, pictures in members:
            if state.step != pictures.last_step:
                by_step.setdefault(state.step, []).append((row, pictures))
        for step, painters in by_step.items():
            StackCapture.hand_over(StackCapture(stack.frozen(), step, painters))
        return {}

    @staticmethod
    def paint_many(painters: list, out: Tensor, units: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """What `paint` computes for many networks of one stack, (row, Pictures) each, on 2-D classes, from the
        stack's outputs over their grids (N, G, out) and its layers over their unit grids: the probabilities of
        every member read back and coloured at once, (M, n, n, 3), every hidden layer's units coloured at once (one
        call per colour scale) and laid into sheets at once, {tag: (M, height, width, 3)}. Member m's images are
        then `place(colours[m], its sheets)`: the same pixels as its `paint`."""
        first = painters[0][1]
        rows = torch.tensor([row for row, _ in painters])
        mine = out.index_select(0, rows)  # (M, G, out): the members' rows of the stack
        probs = first.probabilities(mine.reshape(-1, mine.shape[-1]))  # (M * G, K): each row as alone
        colours = render.prediction_colours(probs.reshape(len(painters), CELLS, CELLS, -1))  # (M, n, n, 3)
        sheets = {}
        for layer, (pre, act) in zip(first.hidden, units):
            values = (act if act is not None else pre).index_select(0, rows)[:, :, :MAX_UNITS]  # (M, n*n, U)
            values = values.transpose(1, 2).reshape(len(painters), -1, UNIT_CELLS, UNIT_CELLS).float().cpu().numpy()
            tag, kind = unit_tag(layer)
            scales = [render.activation_scale(kind, v) for v in values]  # per member: (lo, mid, hi)
            index = np.empty(values.shape, np.uint16)  # (M, U, n, n): each panel's colours on its scale
            for scale in dict.fromkeys(scales):  # sigmoid, tanh: one scale for all; relu: each member its own
                same = [m for m, s in enumerate(scales) if s == scale]
                index[same] = render.scale_index(values[same], *scale)
            sheets[UNITS + tag] = render.unit_sheets(index)  # (M, height, width, 3)
        return colours, sheets

    def place(self, colours: np.ndarray, sheets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The images of one capture from its grid's colours and its unit sheets (on the painting thread)."""
        if not isinstance(self.painter, render.BoundaryPainter):
            raise TypeError(f"a {self.kind} picture is not placed from a grid's colours")
        return {TAG: self.painter.place(colours), **sheets}

    def seen_in(self, units: list, row: int) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Row `row`'s hidden layers in a stack's layers over the unit grids, as `layer_outputs` gives one network's."""
        return {
            layer.name: (pre[row], None if act is None else act[row]) for layer, (pre, act) in zip(self.hidden, units)
        }

    # --- drawing -----------------------------------------------------------------------------------------
    def draw(self, step: int) -> None:
        if step == self.last_step:
            return
        seen = layer_outputs(self.model, self.hidden, self.unit_grid, self.toggle_mode) if self.hidden else {}
        self.paint(step, self.outputs(self.grid), seen)

    def paint(self, step: int, out: Tensor, seen: dict[str, tuple[Tensor, Tensor | None]]) -> None:
        """The pictures of `step` from the model's raw outputs over `grid` (G, out) and, per hidden layer, its
        (pre-activation, activation) over `unit_grid`, as `layer_outputs` gives them. A stack of jobs computes these
        for all its jobs in one pass (`stack_capture`)."""
        if step == self.last_step:
            return
        started = time.perf_counter()
        self.show(step, self.images(out, seen), started)

    def images(self, out: Tensor, seen: dict[str, tuple[Tensor, Tensor | None]]) -> dict[str, np.ndarray]:
        """`paint`'s images: {tag: (H, W, 3) uint8}."""
        images = {TAG: self.prediction_image(out)}
        for layer, (values, scale) in self.unit_values(seen).items():
            images[UNITS + layer] = render.units_image(values, scale)
        return images

    def show(self, step: int, images: dict[str, np.ndarray] | Callable[[], dict], started: float | None = None) -> None:
        """The images of `step` (or what makes them, on the painting thread) written as one event; `started`: when
        their drawing began (perf_counter), for the time the run spent on its pictures."""
        self.last_step = step
        self.board.images(images, step)
        self.drawn += 1
        if started is not None:
            self.seconds += time.perf_counter() - started

    def prediction_image(self, out: Tensor) -> np.ndarray:
        if isinstance(self.painter, render.BoundaryPainter):  # kind "classes"
            probs = self.probabilities(out).reshape(CELLS, CELLS, -1)  # (n, n, K), row 0 at the top
            return self.painter(probs)
        return self.painter(self.grid[:, 0].cpu().numpy(), *self.curve(out))

    def unit_values(
        self, seen: dict[str, tuple[Tensor, Tensor | None]]
    ) -> dict[str, tuple[np.ndarray, tuple[float, float, float]]]:
        """layer -> ((U, n, n) outputs of its first MAX_UNITS units over the unit grid, their colour scale)."""
        found = {}
        for layer in self.hidden:
            pre, act = seen[layer.name]
            out = (act if act is not None else pre)[:, :MAX_UNITS]  # (n*n, U)
            values = out.T.reshape(-1, UNIT_CELLS, UNIT_CELLS).float().cpu().numpy()  # (U, n, n)
            tag, kind = unit_tag(layer)
            found[tag] = values, render.activation_scale(kind, values)
        return found

    # --- the model over a grid -------------------------------------------------------------------------
    def outputs(self, x: Tensor) -> Tensor:
        """Raw model outputs for many inputs, in eval mode, without autograd, CHUNK rows at a time."""
        was_training = self.model.training
        if self.toggle_mode:
            self.model.eval()
        try:
            with torch.no_grad():
                return torch.cat([self.model(x[i : i + CHUNK]) for i in range(0, x.shape[0], CHUNK)])  # (N, out)
        finally:
            if self.toggle_mode:
                self.model.train(was_training)

    def probabilities(self, out: Tensor) -> np.ndarray:
        """(N, K) class probabilities of raw outputs (N, out) through the loss adapter: they may be logits or not."""
        return self.loss.probabilities(out).float().cpu().numpy()

    def curve(self, out: Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """The predicted value (N,) of raw outputs (N, out) and, if the loss models one (gaussian_nll), its
        standard deviation (N,)."""
        variance = getattr(self.loss, "variance", None)
        std = variance(out)[:, 0].sqrt().float().cpu().numpy() if variance is not None else None
        return self.loss.mean(out)[:, 0].float().cpu().numpy(), std

    # --- the file compare reads ----------------------------------------------------------------------
    def save(self, step: int) -> None:
        """boundary.npz: what the final picture shows, as arrays (written whole, then renamed into place)."""
        fields = dict(
            kind=np.array(self.kind),
            data=np.array(self.data_name),
            extent=np.array(self.frame.extent),
            step=np.array(step),
            x=self.x.astype(np.float32),
            y=self.y,
        )
        if self.kind == "classes":
            grid = torch.from_numpy(render.grid_points(self.frame.extent, SAVED_CELLS)).to(self.grid.device)
            fields["probs"] = (
                self.probabilities(self.outputs(grid)).reshape(SAVED_CELLS, SAVED_CELLS, -1).astype(np.float16)
            )
        else:
            mean, std = self.curve(self.outputs(self.grid))
            fields.update(grid_x=self.grid[:, 0].cpu().numpy(), mean=mean)
            if std is not None:
                fields["std"] = std
        with record.replacing(self.path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, **fields)


class StackCapture:
    """One captured step of a stack's members, made on the painting thread while the stack trains on: the grid
    passes of the frozen networks and the colouring once for all members (asked for by the first member's images),
    then each member's own images. What the passes hold is let go once every member has its images.

    At most one capture waits for the painting thread (`hand_over`): the stack's passes hold every member's grid
    outputs, and a stack that captures faster than they are painted waits rather than piling them up."""

    waiting: tuple[int, StackCapture] | None = None  # (process, the capture it handed over last): one painting
    # thread per process; a forked process (a joblib worker) waits for none of its parent's

    def __init__(self, frozen, step: int, painters: list):
        self.frozen, self.step, self.painters = frozen, step, painters  # painters: (row, Pictures) each
        self.made: tuple | BaseException | None = None  # (out, units, painted or None), or why it failed
        self.served, self.expected = 0, len(painters)  # members whose images were made / will be asked for
        self.done = threading.Event()
        self.lock = threading.Lock()

    @classmethod
    def hand_over(cls, capture: StackCapture) -> None:
        """Each member's images to its board, made on the painting thread; after the one handed over before
        has been painted. A board that refuses them (its earlier pictures could not be written) raises here; the
        capture then waits only for the members handed over before it."""
        if cls.waiting is not None and cls.waiting[0] == os.getpid():
            cls.waiting[1].done.wait()
        cls.waiting = (os.getpid(), capture)
        shown = 0
        try:
            for m, (_, pictures) in enumerate(capture.painters):
                pictures.show(capture.step, partial(capture.images, m))
                shown += 1
        finally:
            capture.count(expected=shown)

    def images(self, m: int) -> dict[str, np.ndarray]:
        """Member m's images (on the painting thread)."""
        row, pictures = self.painters[m]
        started = time.perf_counter()
        try:
            with self.lock:
                if self.made is None:
                    self.made = self.passes()
                made = self.made
            if isinstance(made, BaseException):
                raise made
            out, units, painted = made
            if painted is None:  # the stack's painting failed: each member paints alone, only its own fails
                return pictures.images(out[row], pictures.seen_in(units, row))
            colours, sheets = painted
            return pictures.place(colours[m], {tag: sheet[m] for tag, sheet in sheets.items()})
        finally:
            pictures.seconds += time.perf_counter() - started
            self.count(served=1)

    def count(self, served: int = 0, expected: int | None = None) -> None:
        """One more member served, or how many will be: once all are, the passes are let go and the capture done."""
        with self.lock:
            self.served += served
            self.expected = self.expected if expected is None else expected
            if self.served >= self.expected:
                self.made = None
                self.done.set()

    def passes(self) -> tuple | BaseException:
        """The frozen stack over every member's grid (and unit grid), coloured for all members at once."""
        try:
            mine = dict(self.painters)
            size = self.frozen.size
            out, _ = self.frozen.over([mine[r].grid if r in mine else None for r in range(size)])  # (N, G, out)
            units: list = []
            if any(p.hidden for p in mine.values()):
                grids = [mine[r].unit_grid if r in mine and mine[r].hidden else None for r in range(size)]
                units = self.frozen.over(grids, layers=True)[1]  # per Linear: (N, U, width) each
        except Exception as err:
            return err
        painted = None
        if self.painters[0][1].kind == "classes":  # a curve: one picture a member, drawn as alone
            with contextlib.suppress(Exception):
                painted = Pictures.paint_many(self.painters, out, units)
        return out, units, painted
