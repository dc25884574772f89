"""Optimizers torch.optim does not have: gradient-free search and an Adam-to-SGD switch.

All of them are ordinary `torch.optim.Optimizer` subclasses driven by `step(closure)`, so the
loop never knows which family it drives. `build_optimizer` is how the builder calls a
`_partial_: true` optimizer factory: it injects `model`, `init` and `steps_per_epoch` only into
classes whose `__init__` names them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import torch
from torch import nn

from dlexp import ConfigError
from dlexp.parts.params import Range

Rate = Annotated[float, Range(0, low_open=True)]  # a step size: > 0
NonNegative = Annotated[float, Range(0)]

Closure = Callable[[], torch.Tensor]
Redraw = Callable[[nn.Module], Any]

# ---------------------------------------------------------------------------------------------
# Building


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer],
    model: nn.Module,
    init: Redraw | None = None,
    steps_per_epoch: int | None = None,
) -> torch.optim.Optimizer:
    """Call a `_partial_` optimizer factory on `model.parameters()`, injecting what it asks for.

    `init` is the run's initializer (`init(module)` re-draws parameters in place). PyTorch's
    default initializer is a no-op at build time (the parameters are already PyTorch's), so for
    re-drawing it is replaced by `reset_parameters`, which draws again from PyTorch's own
    distributions.
    """
    names = _init_parameter_names(factory)
    offered = {
        "model": model,
        "init": None if _is_pytorch_default(init) else init,
        "steps_per_epoch": steps_per_epoch,
    }
    injected = {k: v for k, v in offered.items() if k in names}
    return factory(model.parameters(), **injected)


def reset_parameters(model: nn.Module) -> None:
    """Re-draw every parameter from PyTorch's default initialisation (each module's own rule)."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def _init_parameter_names(factory: Callable[..., Any]) -> set[str]:
    """Names explicitly accepted by the target's __init__ (a bare **kwargs accepts nothing here)."""
    target = factory
    while isinstance(target, functools.partial):  # hydra's `_partial_` wraps the class
        target = target.func
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature: inject nothing
        return set()
    return {name for name, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _is_pytorch_default(init: Redraw | None) -> bool:
    """True when `init` would leave PyTorch's initialisation untouched (scheme "default")."""
    if init is None:
        return True
    if not isinstance(init, functools.partial):
        return False
    scheme = init.keywords.get("scheme", inspect.Parameter.empty)
    if scheme is inspect.Parameter.empty:  # not bound: fall back to the function's own default
        try:
            scheme = inspect.signature(init.func).parameters["scheme"].default
        except (KeyError, TypeError, ValueError):
            return False
    return scheme == "default"


# ---------------------------------------------------------------------------------------------
# Gradient-free search


class _GreedySearch(torch.optim.Optimizer):
    """Propose new parameters, evaluate the closure, keep them only if the loss went down.

    The best loss lives in the per-parameter state of the first parameter (a 0-d tensor), so
    `state_dict()` / `load_state_dict()` carry it. The keep/restore decision is made on the
    device with `torch.where`, so a step never waits for the loss to be read back.

    With mini-batches the best loss is the best *batch* loss seen so far, not a full-data loss;
    full-batch training (`batch=full`) gives the textbook algorithm.
    """

    def _propose(self) -> None:
        """Overwrite the parameters with a candidate (under no_grad)."""
        raise NotImplementedError

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _extra_params(self) -> list[torch.Tensor]:
        """Tensors `_propose` may touch beyond the optimizer's own (saved and restored too)."""
        return []

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]  # returns the loss Tensor; torch types it float
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs a closure that returns the loss.")
        params = self._params()
        state = self.state[params[0]]
        if "best_loss" not in state:  # first step: the starting point is the first candidate
            state["best_loss"] = closure().detach().clone()

        touched = params + [t for t in self._extra_params() if all(t is not p for p in params)]
        saved = [t.detach().clone() for t in touched]
        self._propose()
        loss = closure().detach()  # ()
        best = state["best_loss"]  # ()
        # A NaN best (diverged start) is beaten by any number; a NaN candidate never wins.
        better = (loss < best) | (torch.isnan(best) & ~torch.isnan(loss))  # () bool
        for t, s in zip(touched, saved):
            t.copy_(torch.where(better, t, s))
        state["best_loss"] = torch.where(better, loss, best)  # new tensor: callers may keep the old
        return state["best_loss"]


class RandomSearch(_GreedySearch):
    """Pure random search: each step draws a fresh parameter vector from the initializer.

    `model` and `init` are injected by the builder: `init(model)` re-draws the model's parameters
    in place (None means PyTorch's default initialisation, i.e. each module's `reset_parameters`).
    Without a model, candidates are drawn from N(0, scale²). Drawing consumes torch's global RNG,
    so a run is deterministic from its seed.

    `lr` is 0 and unused: it exists so lr schedulers and the learning-rate scalar keep working.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        model: nn.Module | None = None,
        init: Redraw | None = None,
        scale: NonNegative = 1.0,
    ):
        super().__init__(params, defaults=dict(lr=0.0, scale=scale))
        self.model = model
        self.init = init

    def _extra_params(self) -> list[torch.Tensor]:
        # Re-drawing walks the whole model: frozen parameters must come back untouched.
        return list(self.model.parameters()) if self.model is not None else []

    def _propose(self) -> None:
        if self.model is not None:
            (self.init or reset_parameters)(self.model)
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.normal_(0.0, group["scale"])


class RandomLocalSearch(_GreedySearch):
    """Random local search (a (1+1) evolution strategy): perturb by N(0, sigma²), keep if better.

    sigma is stored as each group's "lr" (it is the step size of this method), so an lr
    scheduler anneals the search radius and the learning-rate scalar shows it.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], sigma: NonNegative = 0.1):
        super().__init__(params, defaults=dict(lr=sigma))

    def _propose(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(torch.randn_like(p), alpha=group["lr"])


# ---------------------------------------------------------------------------------------------
# Switching optimizers


class AdamThenSGD(torch.optim.Optimizer):
    """Adam for the first `switch_epoch` epochs, then SGD (the "SWATS"-style recipe, fixed switch).

    Holds an inner Adam and an inner SGD over the same parameters and counts steps. Each group's
    "lr" is the learning rate the *next* step uses, and `phase` (0 = Adam, 1 = SGD) is the
    algorithm the next step uses: both flip right after the last Adam step.

    lr schedulers drive the outer "lr". At the switch the lr becomes `lr * sgd_lr / adam_lr`, so
    the schedule's accumulated factor carries over to SGD's base rate (no scheduler: exactly
    `sgd_lr`). SGD's momentum buffer starts empty at the switch.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        steps_per_epoch: int,
        switch_epoch: Annotated[int, Range(0)] = 10,
        adam_lr: Rate = 1e-3,
        sgd_lr: Rate = 0.1,
        momentum: NonNegative = 0.0,
        nesterov: bool = False,
        betas: Annotated[tuple[float, float], Range(0, 1, high_open=True)] = (0.9, 0.999),
        eps: NonNegative = 1e-8,
        weight_decay: NonNegative = 0.0,
    ):
        if nesterov and momentum <= 0:  # a rule between two keys: the constructor's own check
            raise ConfigError(f"optimizer.nesterov=true needs optimizer.momentum > 0, got {momentum}.")
        # A YAML list (ListConfig) in param_groups would not survive a weights_only checkpoint load.
        betas = (float(betas[0]), float(betas[1]))
        defaults = dict(
            lr=adam_lr if switch_epoch > 0 else sgd_lr,
            adam_lr=adam_lr,
            sgd_lr=sgd_lr,
            momentum=momentum,
            nesterov=nesterov,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)
        self.switch_step = switch_epoch * steps_per_epoch
        self.steps = 0
        self.adam = torch.optim.Adam(
            [
                dict(
                    params=g["params"], lr=g["adam_lr"], betas=g["betas"], eps=g["eps"], weight_decay=g["weight_decay"]
                )
                for g in self.param_groups
            ]
        )
        self.sgd = torch.optim.SGD(
            [
                dict(
                    params=g["params"],
                    lr=g["sgd_lr"],
                    momentum=g["momentum"],
                    nesterov=g["nesterov"],
                    weight_decay=g["weight_decay"],
                )
                for g in self.param_groups
            ]
        )

    # The switch, written once: a stack of these (dlexp/stacked/optim.py) calls `next_inner` and `stepped` per job.
    @property
    def phase(self) -> int:
        """0 while the next step is an Adam step, 1 once it is an SGD step."""
        return int(self.steps >= self.switch_step)

    def next_inner(self) -> torch.optim.Adam | torch.optim.SGD:
        """The inner optimizer that takes the next step, its lr set to the outer one (the lr schedulers move and
        loggers see)."""
        inner = self.sgd if self.phase else self.adam
        for outer, group in zip(self.param_groups, inner.param_groups):
            group["lr"] = outer["lr"]
        return inner

    def stepped(self) -> bool:
        """Count a step taken. Right after the last Adam step the lr carries over to SGD's base rate (x sgd_lr /
        adam_lr, keeping a schedule's accumulated factor): True then, the phase has just changed."""
        self.steps += 1
        if self.steps != self.switch_step:
            return False
        for g in self.param_groups:
            g["lr"] = g["lr"] * g["sgd_lr"] / g["adam_lr"]
        return True

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]  # returns the loss Tensor; torch types it float
        loss = self.next_inner().step(closure)
        self.stepped()
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()  # outer param_groups (with the current lr); outer state is empty
        sd["adam"] = self.adam.state_dict()
        sd["sgd"] = self.sgd.state_dict()
        sd["steps"] = self.steps
        sd["switch_step"] = self.switch_step
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        adam, sgd = state_dict.pop("adam"), state_dict.pop("sgd")
        steps, switch_step = state_dict.pop("steps"), state_dict.pop("switch_step")
        super().load_state_dict(state_dict)
        self.adam.load_state_dict(adam)
        self.sgd.load_state_dict(sgd)
        self.steps, self.switch_step = int(steps), int(switch_step)


def constant_lr(optimizer: torch.optim.Optimizer) -> None:
    """scheduler=constant: no scheduler at all, so nothing wraps optimizer.step or runs per epoch."""
    return None
