"""A stack's pictures, painted for all its jobs at once, against each job painting its own from the same numbers.

`Pictures.stack_capture` evaluates the stack over every job's grids in one batched pass, then colours every job's
boundary and unit panels at once and lays the unit sheets at once. The oracle is `Pictures.paint`, the single run's
drawing, given the same job's rows of that pass: the images must be the same pixels, bit for bit. (That the
stack's pass equals each job's own forward pass to float32 rounding is tests/test_vectorized.py's business.)
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
import torch
from conftest import compose_cfg

from dlexp.observe import pictures, render
from dlexp.run import build
from dlexp.run.loop import TrainState
from dlexp.stacked import StackedGroup
from dlexp.stacked.loop import StackView


class Images:
    """A board that keeps the images it is given (made at once when it is given what makes them)."""

    def __init__(self):
        self.written: list[tuple[int, dict]] = []

    def images(self, images, step: int) -> None:
        made = images() if callable(images) else images
        self.written.append((step, {tag: pixels.copy() for tag, pixels in made.items()}))


def _stack(data: str, activation: str, seeds=(0, 1, 2)):
    exps = [
        build.assemble(
            compose_cfg(f"data={data}", "model.hidden=[12,12]", f"model.activation={activation}", f"seed={s}")[0]
        )
        for s in seeds
    ]
    return exps, StackedGroup(exps)


@pytest.mark.parametrize(
    ("data", "activation"), [("xor", "sigmoid"), ("moons", "tanh"), ("moons", "relu"), ("blobs", "relu")]
)
def test_a_stack_paints_every_job_at_once_as_each_job_paints_its_own(tmp_path, data, activation):
    exps, group = _stack(data, activation)
    group.batches.begin([0] * group.size)
    group.train_step(*group.batches.batch(0))  # not the fresh networks: units differ between jobs
    boards = [Images() for _ in exps]
    members = [
        (row, TrainState(step=7), pictures.Pictures(boards[row], exp.model, exp.loss, exp.data, tmp_path / str(row)))
        for row, exp in enumerate(exps)
    ]
    view = StackView(cast(Any, SimpleNamespace(group=group)))  # what a view reads of its loop: the group
    assert pictures.Pictures.stack_capture(members[1:], view) == {}  # rows 1 and 2: one row of the stack left out

    out, _ = view.over([p.grid for _, _, p in members])  # (N, G, out): the same pass, for the oracle
    units = view.over([p.unit_grid for _, _, p in members], layers=True)[1]
    assert boards[0].written == []
    for row, _, painted in members[1:]:
        oracle = Images()
        alone = pictures.Pictures(oracle, exps[row].model, exps[row].loss, exps[row].data, tmp_path / "alone")
        alone.paint(7, out[row], alone.seen_in(units, row))
        [(step, images)] = boards[row].written
        [(_, expected)] = oracle.written
        assert step == 7 and list(images) == list(expected)
        assert len(images) == 3  # the boundary and two hidden layers' units
        for tag in expected:
            assert np.array_equal(images[tag], expected[tag]), tag
        assert painted.last_step == 7 and painted.drawn == 1
    assert pictures.Pictures.stack_capture(members[1:], view) == {}  # the same step again: nothing drawn twice
    assert all(len(b.written) == 1 for b in boards[1:])


def test_a_board_that_refuses_pictures_leaves_no_capture_waiting_for_ever(tmp_path):
    """A member's board raises when handed its images (its earlier pictures could not be written: a full disk):
    the capture waits only for the members handed over before it, and the stack's next capture goes on."""
    import threading

    exps, group = _stack("xor", "sigmoid")

    class Refuses(Images):
        def images(self, images, step: int) -> None:
            raise OSError(28, "No space left on device")

    boards = [Images(), Refuses(), Images()]
    members = [
        (row, TrainState(step=3), pictures.Pictures(boards[row], exp.model, exp.loss, exp.data, tmp_path / str(row)))
        for row, exp in enumerate(exps)
    ]
    view = StackView(cast(Any, SimpleNamespace(group=group)))
    with pytest.raises(OSError):
        pictures.Pictures.stack_capture(members, view)
    assert [len(b.written) for b in boards] == [1, 0, 0]  # row 0 handed over, row 1 refused, row 2 never reached
    later = [(row, TrainState(step=4), p) for row, _, p in members if row != 1]
    finished = threading.Thread(target=pictures.Pictures.stack_capture, args=(later, view), daemon=True)
    finished.start()
    finished.join(timeout=60)
    assert not finished.is_alive()
    assert [len(b.written) for b in boards] == [2, 0, 1]


def test_unit_sheets_lay_many_networks_panels_as_one_networks_sheet():
    values = torch.linspace(-3, 3, 5 * 11 * 6 * 6).reshape(5, 11, 6, 6).numpy()
    values[0, 0, 0, 0] = np.nan
    sheets = render.unit_sheets(render.scale_index(values, -3.0, 0.0, 3.0), columns=4)  # (5, H, W, 3)
    for m in range(5):
        expected = np.empty((2 + 3 * 8, 2 + 4 * 8, 3), np.uint8)
        expected[:] = render.SHEET
        for u in range(11):  # the sheet drawn panel by panel
            top, left = 2 + (u // 4) * 8, 2 + (u % 4) * 8
            expected[top : top + 6, left : left + 6] = render.diverging(values[m, u], -3.0, 0.0, 3.0)
        assert np.array_equal(sheets[m], expected)


def test_the_colour_lookup_equals_the_scale_computed_pixel_by_pixel():
    """`diverging` (in place, one word gathered a pixel) against the scale's rule written out in float32."""
    values = np.concatenate(
        [
            np.linspace(-4, 4, 10003, dtype=np.float32),
            np.array([np.nan, np.inf, -np.inf, 0.5, 0.25, 0.75, 0.75], np.float32),
        ]
    )
    for lo, mid, hi in ((0.0, 0.5, 1.0), (-1.0, 0.0, 1.0), (-2.75, 0.0, 2.75), (0.0, 0.0, 3.0)):
        below = (values - np.float32(lo)) * np.float32(255 / max(mid - lo, 1e-12))
        above = (values - np.float32(mid)) * np.float32(255 / max(hi - mid, 1e-12)) + np.float32(255)
        index = np.clip(np.where(values < mid, below, above), 0, 510)
        index = np.where(np.isfinite(values), index + np.float32(0.5), 511).astype(np.intp)
        assert np.array_equal(
            render.diverging(values.reshape(-1, 7, 1), lo, mid, hi), render.SCALE[index].reshape(-1, 7, 1, 3)
        )
