"""A stack's histogram capture against `Histograms.capture` of each job alone, on the job's own model.

The stack evaluates the probe batch with batched products, which round the last bit differently from a run's single
ones (tests/tolerance.py): minima, maxima and sums agree to float32 rounding, and a value on a bucket's edge may fall
on either side of it.
"""

from __future__ import annotations

import pytest
from conftest import compose_cfg

from dlexp.observe.histograms import BINS, EXTRA, Histograms, capture_values, find_layers, probe_batch
from dlexp.run import build
from dlexp.stacked import StackedGroup
from dlexp.stacked import histograms as stacked_histograms


class Written(Histograms):
    """Histograms whose write keeps what it was given instead of writing it."""

    def write(self, values, uses, step):
        self.written = (values, uses, step)


def _group(activation: str):
    jobs = [
        [
            "data=moons",
            "model.hidden=[16,16]",
            f"model.activation={activation}",
            f"seed={s}",
            f"optimizer.lr={lr}",
            "device=cpu",
        ]
        for s, lr in ((0, 0.01), (1, 0.1), (2, 0.001))
    ]
    exps = [build.assemble(compose_cfg(*j)[0]) for j in jobs]
    return exps, StackedGroup(exps)


@pytest.mark.kernels
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_stacked_capture_equals_each_jobs_own_capture(activation, extra):
    exps, group = _group(activation)
    group.batches.begin([0] * group.size)
    for k in range(3):
        group.train_step(*group.batches.batch(k))
    before = stacked_histograms.snapshot(group)
    group.train_step(*group.batches.batch(3))  # the step whose update ratio is captured
    ratios = stacked_histograms.update_ratios(group, before)
    measured = stacked_histograms.layer_tensors(group, stacked_histograms.probe(group), ratios)
    uses, values = capture_values(find_layers(exps[0].model), measured, group.size, () if extra else EXTRA)

    for row, exp in enumerate(exps):
        old = [w[row].clone() for w in before]
        group.write_back(row)
        alone = Written(None, exp.model, probe_batch(exp.data), extra=extra)
        for layer, w in zip(alone.layers, old):
            alone.before[id(layer.module.weight)] = w
        alone.before_step = 4  # the weights kept before step 4, as on_capture_next does
        alone.capture(4)
        own_values, own_uses, _ = alone.written
        assert uses == own_uses
        kinds = [u[0] for u in uses]
        assert "hist" in kinds and "scalar" in kinds and (activation == "relu") == ("dead" in kinds)
        # pre-activations and biases are computed only when they are written (log.extra_histograms)
        assert any(tag.startswith(("preactivations/", "biases/")) for _, tag, _ in uses) == extra
        assert len(values[row]) == len(own_values)
        at = 0
        for kind, tag, _ in uses:  # min, max, sums to float rounding; counts nearly
            width = 4 + BINS if kind == "hist" else 1
            mine, theirs = values[row][at : at + width], own_values[at : at + width]
            if kind == "hist":
                assert mine[:4] == pytest.approx(theirs[:4], rel=1e-5, abs=1e-6), tag
                assert sum(mine[4:]) == sum(theirs[4:]), tag
                assert sum(abs(a - b) for a, b in zip(mine[4:], theirs[4:])) <= 2, tag  # one value on an edge
            else:
                assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-7), tag
            at += width
