"""Model factories: perceptron, mlp, cnn — each returns a flat nn.Sequential.

The builder injects `in_shape` (one sample's feature shape, e.g. (2,) or (1, 8, 8)) and
`out_features` (from the loss adapter); users only set the YAML keys.

A model ends in a Linear layer (raw scores: the loss adapter applies the link, sigmoid or softmax, itself)
unless `output_activation` names an activation module to append, e.g. sigmoid for a model that outputs
probabilities (the classic `nn.Sequential(..., nn.Linear(10, 1), nn.Sigmoid())` with `nn.BCELoss`).

Layers are created in exactly the order a person would write them by hand, and nothing else
touches the global RNG while building, so after `torch.manual_seed(s)` a factory's parameters
are identical to those of the hand-written `nn.Sequential`. The Sequential stays flat so the
histogram observer finds every Linear/Conv2d followed by its activation module in
`model.named_modules()`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated

from torch import nn

from dlexp import ConfigError
from dlexp.parts.params import OneOf, Range

# The activations `model.activation` accepts. Classes, not instances: every layer needs its own module so
# forward hooks fire once per layer.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,  # x * sigmoid(x), also called swish
    "mish": nn.Mish,  # x * tanh(softplus(x))
    "identity": nn.Identity,
}
Activation = Annotated[str, OneOf(ACTIVATIONS)]
OutputActivation = Annotated[str | None, OneOf(ACTIVATIONS)]  # None: raw scores, nothing appended
Sizes = Annotated[Sequence[int], Range(1)]  # widths, channel counts: each at least 1


def make_activation(name: str, key: str = "model.activation") -> nn.Module:
    """A fresh activation module by name; unknown names list the valid choices."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"{key}={name!r} is not a valid activation; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def activation_name(module: nn.Module) -> str | None:
    """The name under which `module`'s class is in ACTIVATIONS (nn.Tanh -> "tanh"), None if it is not there."""
    return next((name for name, kind in ACTIVATIONS.items() if type(module) is kind), None)


def output_activation(model: nn.Module) -> str | None:
    """The activation the model's output goes through last ('sigmoid', 'softmax'), or None for raw scores.

    Read from the model itself (its last leaf module, in registration order: forward order for a Sequential),
    so it holds for any model built from modules, not only dlexp's factories. nn.Identity is no activation.
    """
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    if not leaves:
        return None
    named = activation_name(leaves[-1])
    if named is not None:
        return None if isinstance(leaves[-1], nn.Identity) else named
    kind = type(leaves[-1])
    if kind.__module__ == nn.modules.activation.__name__:  # PyTorch's others: nn.Softmax
        return kind.__name__.lower()
    return None


def _output(layers: list[nn.Module], activation: str | None) -> nn.Sequential:
    """The model: `layers` (ending in the output Linear) and the optional output activation after them."""
    if activation is not None:  # parameter-free: the seeded parameters stay those of the hand-written model
        layers.append(make_activation(activation, "model.output_activation"))
    return nn.Sequential(*layers)


def _shape(in_shape: Iterable[int]) -> tuple[int, ...]:
    # Hydra may hand us a ListConfig; the arithmetic below wants plain ints.
    return tuple(int(d) for d in in_shape)


def _sizes(hidden: int | Iterable[int]) -> list[int]:
    return [int(hidden)] if isinstance(hidden, int) else [int(h) for h in hidden]


def _flatten_if_image(shape: tuple[int, ...]) -> list[nn.Module]:
    return [nn.Flatten()] if len(shape) > 1 else []


def perceptron(in_shape: Sequence[int], out_features: int, output_activation: OutputActivation = None) -> nn.Sequential:
    """One Linear layer on the (flattened) inputs: a linear classifier/regressor [+ output activation]."""
    shape = _shape(in_shape)
    return _output([*_flatten_if_image(shape), nn.Linear(math.prod(shape), int(out_features))], output_activation)


def mlp(
    in_shape: Sequence[int],
    out_features: int,
    hidden: Sizes = (64,),
    activation: Activation = "relu",
    batchnorm: bool = False,
    dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.0,
    output_activation: OutputActivation = None,
) -> nn.Sequential:
    """[Flatten] + (Linear [+BatchNorm1d] + act [+Dropout]) per hidden size + Linear [+ output activation]."""
    shape = _shape(in_shape)
    layers = _flatten_if_image(shape)
    width = math.prod(shape)
    for size in _sizes(hidden):
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))  # normalises pre-activations, as in Ioffe & Szegedy
        layers.append(make_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(float(dropout)))
        width = size
    layers.append(nn.Linear(width, int(out_features)))  # raw scores, unless an output activation follows
    return _output(layers, output_activation)


def cnn(
    in_shape: Sequence[int],
    out_features: int,
    channels: Sizes = (6, 16),
    hidden: Sizes = (120, 84),
    activation: Activation = "relu",
    kernel_size: Annotated[int, Range(1)] = 5,
    output_activation: OutputActivation = None,
) -> nn.Sequential:
    """LeNet-style: (Conv2d + act + MaxPool2d(2)) per channel count, Flatten, MLP head [+ output activation]."""
    shape = _shape(in_shape)
    if len(shape) != 3:
        raise ConfigError(
            f"model=cnn needs image data shaped (C, H, W), but the data has feature shape {shape}; "
            "use model=mlp or an image dataset (digits, mnist, mnist_5k, fashion_mnist)."
        )
    c, h, w = shape
    k = int(kernel_size)
    pad = k // 2  # 'same'-style padding so 8x8 digits survive two poolings (8 -> 4 -> 2)
    layers: list[nn.Module] = []
    for out_c in _sizes(channels):
        layers += [nn.Conv2d(c, out_c, k, padding=pad), make_activation(activation), nn.MaxPool2d(2)]
        # Output size computed arithmetically (no probe forward pass, so the RNG is untouched).
        h, w = (h + 2 * pad - k + 1) // 2, (w + 2 * pad - k + 1) // 2
        c = out_c
        if h < 1 or w < 1:
            raise ConfigError(
                f"model.channels={list(channels)} pools the {shape[1]}x{shape[2]} input down to nothing; "
                "use fewer conv blocks."
            )
    layers.append(nn.Flatten())
    width = c * h * w
    for size in _sizes(hidden):
        layers += [nn.Linear(width, size), make_activation(activation)]
        width = size
    layers.append(nn.Linear(width, int(out_features)))
    return _output(layers, output_activation)
