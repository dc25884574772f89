"""Weight initialisation: one function that walks the modules by type (nanoGPT `_init_weights`).

Built from conf/initializer/<scheme>.yaml with `_partial_: true`, so the builder calls
`init_fn(model)` right after building the model, and random search calls it again to draw fresh
parameters from the same distribution.

Each scheme draws a Linear/Conv2d weight with exactly one torch.nn.init call, so a run can be
reproduced by hand with the same seed. fan_in of a Conv2d weight (out, in, kh, kw) is in*kh*kw.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from dlexp import ConfigError
from dlexp.parts.params import OneOf

SCHEMES = (
    "default",  # PyTorch's own init (Kaiming-uniform with a=sqrt(5)); touches nothing
    "normal",  # N(0, std^2), std 1 unless set
    "normal_small",  # N(0, std^2), std 0.01 unless set
    "uniform",  # U(low, high), [-0.05, 0.05] unless set
    "xavier_normal",  # Glorot: std = gain * sqrt(2 / (fan_in + fan_out))
    "xavier_uniform",  # Glorot: bound = gain * sqrt(6 / (fan_in + fan_out))
    "he_normal",  # Kaiming, fan_in, ReLU gain: std = sqrt(2 / fan_in)
    "he_uniform",  # Kaiming, fan_in, ReLU gain: bound = sqrt(6 / fan_in)
    "lecun_normal",  # std = 1 / sqrt(fan_in)
    "orthogonal",  # (flattened) W has orthonormal rows or columns, scaled by gain
    "zeros",  # every weight and bias 0: perfect symmetry, nothing learns
    "constant",  # every weight (and bias) = value: perfect symmetry
)

_DEFAULT_STD = {"normal": 1.0, "normal_small": 0.01}


def _draw_weight(w: torch.Tensor, scheme: str, std, low, high, value, gain) -> None:
    """Fill one Linear/Conv2d weight in place according to `scheme`."""
    if scheme in _DEFAULT_STD:
        nn.init.normal_(w, 0.0, _DEFAULT_STD[scheme] if std is None else float(std))
    elif scheme == "uniform":
        nn.init.uniform_(w, -0.05 if low is None else float(low), 0.05 if high is None else float(high))
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w, gain=gain)
    elif scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w, gain=gain)
    elif scheme == "he_normal":
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
    elif scheme == "he_uniform":
        nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")
    elif scheme == "lecun_normal":
        fan_in = nn.init._calculate_fan_in_and_fan_out(w)[0]
        nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in))
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, gain=gain)
    elif scheme == "zeros":
        nn.init.zeros_(w)
    elif scheme == "constant":
        nn.init.constant_(w, value)


@torch.no_grad()
def init_weights(
    model: nn.Module,
    scheme: Annotated[str, OneOf(SCHEMES)] = "default",
    std: float | None = None,
    low: float | None = None,
    high: float | None = None,
    value: float = 0.5,
    gain: float = 1.0,
    bias: str | float | None = None,
) -> nn.Module:
    """Re-initialise Linear/Conv2d/BatchNorm parameters of `model` in place and return it.

    scheme "default" touches nothing, so the model equals a hand-built one after the same seed.
    bias: "zeros", "keep" (PyTorch's draw) or a number; None means the scheme's natural
    choice — zeros, except `constant`, whose biases get `value` too so symmetry is exact.
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"initializer.scheme={scheme!r} is not a valid scheme; choose one of {', '.join(SCHEMES)}.")
    if scheme == "default":
        return model
    if bias is None:
        bias = value if scheme == "constant" else "zeros"
    if not (bias in ("zeros", "keep") or isinstance(bias, (int, float))):
        raise ConfigError(f"initializer.bias={bias!r} is not valid; choose zeros, keep or a number.")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            _draw_weight(m.weight, scheme, std, low, high, float(value), float(gain))
            if m.bias is not None and bias != "keep":
                nn.init.constant_(m.bias, 0.0 if bias == "zeros" else float(bias))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)  # BatchNorm starts as the identity map
            nn.init.zeros_(m.bias)
    return model
