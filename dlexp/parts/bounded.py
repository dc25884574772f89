"""Which activations are bounded, and how near a bound an output counts as saturated: written once for the
histograms (their axis, the saturated share), the per-unit pictures (their colour scale) and the figures that read
runs back. Torch-free on purpose: reading runs back never imports torch. (The activation modules a model can use are
`dlexp.parts.models.ACTIVATIONS`; a bounded one is added there and here.)
"""

from __future__ import annotations

# The output range of each bounded activation, by the name a tag gives it: its class name in lower case
# (activations/3_sigmoid). The others are unbounded: their axes and colour scales follow the values.
RANGES: dict[str, tuple[float, float]] = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
SATURATION_MARGIN = 0.01  # an output within 0.01 of a bound is saturated: sigmoid < 0.01 or > 0.99, |tanh| > 0.99


def kind(module: object) -> str:
    """The name an activation module goes by in tags and in RANGES: nn.Sigmoid -> "sigmoid"."""
    return type(module).__name__.lower()


def saturation(name: str) -> tuple[float, float] | None:
    """(centre, distance from it beyond which an output is saturated) of a bounded activation, None otherwise:
    (0.5, 0.49) for a sigmoid, (0.0, 0.99) for tanh."""
    bounds = RANGES.get(name)
    if bounds is None:
        return None
    lo, hi = bounds
    return (lo + hi) / 2, (hi - lo) / 2 - SATURATION_MARGIN
