"""Constraints on the parameters of components, declared where the parameters are and read by validation.

dlexp's own factories declare them in their signatures, next to the default:

    def mlp(..., dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.0,
            activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu")

PyTorch's optimizers and schedulers cannot carry dlexp's annotations, so the ranges their constructors enforce
(and a learning rate that can learn at all) are listed once here, by parameter name (`TORCH_OPTIM`).
No torch import: validation reads these before anything is built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """low <= value <= high (either end optional, either end open); a list is checked element by element."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def holds(self, value: float) -> bool:
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok

    def problem(self, path: str, value: Any) -> str | None:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if any(not self.holds(v) for v in numbers):
            each = " (each entry)" if isinstance(value, (list, tuple)) else ""
            return f"{path}={_show(value)} is out of range: it must be {self.describe()}{each}."
        return None


@dataclass(frozen=True)
class OneOf:
    """The value must be one of these names."""

    choices: tuple[str, ...]

    def __init__(self, choices) -> None:
        object.__setattr__(self, "choices", tuple(choices))

    def problem(self, path: str, value: Any) -> str | None:
        if isinstance(value, str) and value not in self.choices:
            from dlexp.config.catalog import suggest

            return (
                f"{path}={value} is not valid.{suggest(value, self.choices)} Valid choices: {', '.join(self.choices)}."
            )
        return None


# The ranges torch.optim's constructors enforce, by parameter name (plus lr > 0: a zero rate never learns).
TORCH_OPTIM: dict[str, Range] = {
    "lr": Range(0, low_open=True),
    "momentum": Range(0),
    "dampening": Range(0),
    "weight_decay": Range(0),
    "eps": Range(0),
    "alpha": Range(0),
    "lr_decay": Range(0),
    "initial_accumulator_value": Range(0),
    "betas": Range(0, 1, high_open=True),
    "gamma": Range(0, low_open=True),
    "step_size": Range(1),
    "eta_min": Range(0),
}


def constraints(target: str, obj: Callable) -> dict[str, list]:
    """parameter name -> its declared constraints (Range / OneOf) for this target."""
    found: dict[str, list] = {}
    if target.startswith("torch.optim."):
        found = {name: [rule] for name, rule in TORCH_OPTIM.items()}
    function = inspect.getattr_static(obj, "__init__") if isinstance(obj, type) else obj  # a class: its constructor
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # a user's target with annotations that do not resolve: nothing declared
        return found
    for name, hint in hints.items():
        rules = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, (Range, OneOf))]
        if rules:
            found[name] = rules
    return found


def _show(value: Any) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, (list, tuple)) else str(value)
