"""How close a job trained in a stack comes to the same job trained alone, and why not closer.

A stack computes each layer of its N jobs with one batched product (`bmm`, `baddbmm`), a run alone with a single
one (`addmm`). The two may take different kernels, which sum in a different order and so round the last bit
differently; which kernel a product takes depends on the CPU (AVX2 or AVX-512, its blocking, FMA), and no
environment variable makes one CPU round like another. So a stacked job equals its run alone to float32 rounding,
not bit for bit, and training carries those last bits along: a step's loss moves by ~1e-7 relative, a weight that
Adam moves by normalised steps by more (a near-zero gradient's sign decides the direction of a whole step).

Exact equality is asserted only where the same operations run on the same data: a run alone against its own
resume, against the hand-written loop, a stack against the same stack continued from its checkpoint, and the
optimizer update alone (elementwise: tests/test_stacked_optim.py).

Every tolerance below was measured with DLEXP_TEST_ROUNDING=ulp (tests/conftest.py: every batched product one
unit in the last place off, as another CPU may round it) and on this CPU, and set with a margin of about 10x over
the largest difference seen; `make test` runs the stacked tests both ways.
"""

from __future__ import annotations

import math

import torch

# Each step's loss and each evaluated metric, relative: to its own size, or to a tenth of the run's largest loss
# where it is smaller (gaussian_nll crosses zero, where a loss has no relative precision: -0.00138 moved by 1.7e-8).
# Largest seen: 1.0e-6 (XOR over 2,000 steps, gaussian_nll over 50); moons and digits over 75 steps: 3.3e-7.
STEP_RTOL = 1e-5
LOSS_FLOOR = 0.1
# Parameters and optimizer state, as the largest difference over a tensor relative to that tensor's largest
# magnitude (a number near zero may move by more than its own size). Largest seen: 1.2e-3, Adam then SGD on moons:
# Adam moves every weight by about its learning rate whatever the gradient's size, so a gradient near zero whose
# last bit flips its sign moves that weight by ~lr the other way. The SGD family: 2e-6.
TENSOR_RTOL = 1e-2


def rel(a: float, b: float) -> float:
    """|a - b| relative to |a| (0 when equal, inf when only one is finite)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), 1e-30)


def close(a: float, b: float, rtol: float = STEP_RTOL, atol: float = 0.0) -> bool:
    return rel(b, a) <= rtol or abs(a - b) <= atol


def assert_close_losses(single: list[float], stacked: list[float], rtol: float = STEP_RTOL) -> float:
    """The same number of losses, each within `rtol` of its size (or of LOSS_FLOOR x the largest); returns the
    largest relative difference."""
    assert len(stacked) == len(single), (len(stacked), len(single))
    floor = LOSS_FLOOR * max((abs(a) for a in single if math.isfinite(a)), default=0.0)
    worst = max(
        (
            rel(a, b) * abs(a) / max(abs(a), floor) if a != b and math.isfinite(a) else rel(a, b)
            for a, b in zip(single, stacked)
        ),
        default=0.0,
    )
    assert worst <= rtol, f"losses differ by {worst:.2e} relative"
    return worst


def scaled_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest |a - b| over a tensor, relative to the tensor's largest |a| (0 for equal tensors)."""
    if torch.equal(a, b):
        return 0.0
    scale = a.abs().max().item() if a.numel() else 0.0
    return (a.double() - b.double()).abs().max().item() / max(scale, 1e-30)


def assert_close_tensors(a: torch.Tensor, b: torch.Tensor, where: str = "", rtol: float = TENSOR_RTOL) -> float:
    """Same dtype and shape, and within `rtol` of the tensor's scale; returns the scaled difference."""
    assert a.dtype == b.dtype and a.shape == b.shape, where
    found = scaled_difference(a, b)
    assert found <= rtol, f"{where}: differs by {found:.2e} of its scale"
    return found


def assert_same_state(a, b, where: str = "", exact: bool = False, rtol: float | None = TENSOR_RTOL) -> None:
    """Nested state dicts (an optimizer's, a checkpoint's): the same structure and plain values; tensors equal
    bit for bit (`exact`) or within `rtol` of their scale (None: their dtype and shape only)."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}/{k}", exact, rtol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]", exact, rtol)
    elif isinstance(a, torch.Tensor):
        if exact:
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
        elif rtol is None:
            assert a.dtype == b.dtype and a.shape == b.shape, where
        else:
            assert_close_tensors(a, b, where, rtol)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
