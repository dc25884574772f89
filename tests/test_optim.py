"""Optimizers and schedulers: YAMLs vs torch.optim, gradient-free search, Adam->SGD switch."""

from __future__ import annotations

import copy
import functools
import io
import math
from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from dlexp.parts.optim import (
    AdamThenSGD,
    RandomLocalSearch,
    RandomSearch,
    build_optimizer,
    reset_parameters,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, generator=g)  # (N, 3)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3 + 0.05 * torch.randn(32, 1, generator=g)  # (N, 1)
    return x, y


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def _closure(model: nn.Module, opt: torch.optim.Optimizer, x, y, backward_calls: list | None = None):
    """The loop's closure (CONTEXT.md), optionally counting backward passes."""

    def closure() -> torch.Tensor:
        loss = nn.functional.mse_loss(model(x), y)
        if torch.is_grad_enabled():
            opt.zero_grad()
            loss.backward()
            if backward_calls is not None:
                backward_calls.append(1)
        return loss

    return closure


def _trajectory(model: nn.Module, opt: torch.optim.Optimizer, steps: int, x, y) -> list[torch.Tensor]:
    out = []
    closure = _closure(model, opt, x, y)
    for _ in range(steps):
        opt.step(closure)
        out.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
    return out


def _load(group: str, name: str):
    return hydra.utils.instantiate(OmegaConf.load(CONF / group / f"{name}.yaml"))


def _roundtrip(sd: dict) -> dict:
    """Through bytes with weights_only=True, the way a checkpoint is read back."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# --- torch.optim options ------------------------------------------------------------------------

ORACLES = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.01),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.99),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_torch_optimizer_yaml_matches_torch_optim_bit_for_bit(name):
    x, y = _data()
    ours_model, ref_model = _model(), _model()
    ours = build_optimizer(_load("optimizer", name), ours_model, init=None, steps_per_epoch=4)
    ref = ORACLES[name](ref_model.parameters())
    assert type(ours) is type(ref)
    ours_traj = _trajectory(ours_model, ours, 20, x, y)
    ref_traj = _trajectory(ref_model, ref, 20, x, y)
    for a, b in zip(ours_traj, ref_traj):
        assert torch.equal(a, b)
    assert not torch.equal(ours_traj[0], ours_traj[-1])  # it did move
    _roundtrip(ours.state_dict())  # no OmegaConf objects (betas) in a checkpoint


def test_every_optimizer_yaml_has_header_and_commented_keys():
    files = sorted((CONF / "optimizer").glob("*.yaml")) + sorted((CONF / "scheduler").glob("*.yaml"))
    names = {f.stem for f in files}
    assert {
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "random_search",
        "random_local_search",
        "adam_then_sgd",
        "constant",
        "step",
        "exponential",
        "cosine",
    } <= names
    for f in files:
        lines = f.read_text().splitlines()
        assert lines[0].startswith(f"# dlexp train {f.parent.name}={f.stem}"), f
        assert lines[1].startswith("# ") and len(lines[1]) > 10, f
        for line in lines[2:]:
            if line and not line.startswith(("_target_", "_partial_")):
                assert "#" in line, f"{f}: key without a comment: {line!r}"
        assert OmegaConf.load(f)._partial_ is True


# --- build_optimizer ----------------------------------------------------------------------------


def test_build_optimizer_injects_only_named_arguments():
    model = _model()
    init = functools.partial(nn.init.normal_)  # anything callable; never reaches SGD
    sgd = build_optimizer(functools.partial(torch.optim.SGD, lr=0.1), model, init, 7)
    assert isinstance(sgd, torch.optim.SGD)  # SGD would raise TypeError on any extra kwarg

    seen = {}

    class Probe(torch.optim.SGD):
        def __init__(self, params, steps_per_epoch, lr=0.1):
            seen["steps_per_epoch"] = steps_per_epoch
            super().__init__(params, lr=lr)

    build_optimizer(functools.partial(Probe, lr=0.2), model, init, 7)
    assert seen == {"steps_per_epoch": 7}

    rs = build_optimizer(_load("optimizer", "random_search"), model, init, 7)
    assert rs.model is model and rs.init is init
    ats = build_optimizer(_load("optimizer", "adam_then_sgd"), model, init, 7)
    assert ats.switch_step == 10 * 7


def test_build_optimizer_maps_default_initializer_to_reset_parameters():
    def init_weights(model, scheme="default"):
        pass

    model = _model()
    for init in (None, functools.partial(init_weights), functools.partial(init_weights, scheme="default")):
        assert build_optimizer(RandomSearch, model, init, 1).init is None  # -> reset_parameters
    xavier = functools.partial(init_weights, scheme="xavier_normal")
    assert build_optimizer(RandomSearch, model, xavier, 1).init is xavier


def test_reset_parameters_redraws_like_pytorch_default():
    model = _model(0)
    torch.manual_seed(5)
    reset_parameters(model)
    torch.manual_seed(5)
    ref = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))  # same draws, same order
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


# --- gradient-free search -----------------------------------------------------------------------


def _search(kind: str, model: nn.Module, init=None):
    if kind == "random_search":
        return RandomSearch(model.parameters(), model=model, init=init)
    return RandomLocalSearch(model.parameters(), sigma=0.1)


@pytest.mark.parametrize("kind", ["random_search", "random_local_search"])
def test_search_never_calls_backward_and_loss_never_increases(kind):
    x, y = _data()
    model = _model()
    opt = _search(kind, model)
    calls: list = []
    closure = _closure(model, opt, x, y, calls)
    with torch.no_grad():
        start = nn.functional.mse_loss(model(x), y)
    losses = [opt.step(closure) for _ in range(200)]
    assert calls == []
    assert all(p.grad is None for p in model.parameters())
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in losses)
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    # Global random search from PyTorch's small default init is slow: ask only for progress.
    assert losses[-1] < (0.5 * start if kind == "random_local_search" else start)
    with torch.no_grad():  # the returned loss is the loss of the parameters that were kept
        assert torch.equal(nn.functional.mse_loss(model(x), y), losses[-1])


def test_random_search_draws_from_the_injected_initializer():
    model = _model()
    draws = []

    def init(m: nn.Module) -> None:
        draws.append(1)
        with torch.no_grad():
            for p in m.parameters():
                p.uniform_(-0.01, 0.01)

    start = [p.detach().clone() for p in model.parameters()]
    opt = RandomSearch(model.parameters(), model=model, init=init)
    x, y = _data()
    closure = _closure(model, opt, x, y)
    for _ in range(5):
        opt.step(closure)
        kept_start = all(torch.equal(a, b) for a, b in zip(start, model.parameters()))
        assert kept_start or all(p.abs().max() <= 0.01 for p in model.parameters())
    assert len(draws) == 5


def test_random_search_without_model_draws_from_normal_and_minimises_quadratic():
    torch.manual_seed(0)
    w = nn.Parameter(torch.full((2,), 3.0))
    opt = RandomSearch([w], scale=1.0)
    target = torch.tensor([0.5, -0.5])

    def closure():
        return ((w - target) ** 2).sum()

    first = opt.step(closure)
    for _ in range(300):
        last = opt.step(closure)
    assert last < first and last < 0.1
    assert w.grad is None


def test_random_search_restores_rejected_candidates_exactly():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    # A closure that makes every candidate look worse than the starting point.
    calls = iter([torch.tensor(1.0), torch.tensor(2.0), torch.tensor(float("nan"))])
    opt = RandomSearch(model.parameters(), model=model)
    opt.step(lambda: next(calls))  # baseline 1.0, candidate 2.0 -> rejected
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)
    calls = iter([torch.tensor(float("nan"))])
    assert opt.step(lambda: next(calls)) == 1.0  # a NaN candidate never wins
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["random_search", "random_local_search"])
def test_search_state_dict_round_trip_gives_identical_continuation(kind):
    x, y = _data()
    model = _model()
    opt = _search(kind, model)
    closure = _closure(model, opt, x, y)
    for _ in range(10):
        opt.step(closure)
    sd = _roundtrip(opt.state_dict())
    saved_params = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()

    cont_a = [opt.step(closure) for _ in range(10)]
    params_a = [p.detach().clone() for p in model.parameters()]

    model_b = _model(seed=123)
    model_b.load_state_dict(saved_params)
    opt_b = _search(kind, model_b)
    opt_b.load_state_dict(sd)
    best_b = opt_b.state[next(iter(model_b.parameters()))]["best_loss"]
    assert isinstance(best_b, torch.Tensor) and torch.equal(best_b, sd["state"][0]["best_loss"])
    torch.set_rng_state(rng)
    closure_b = _closure(model_b, opt_b, x, y)
    cont_b = [opt_b.step(closure_b) for _ in range(10)]
    assert all(torch.equal(a, b) for a, b in zip(cont_a, cont_b))
    assert all(torch.equal(a, b) for a, b in zip(params_a, model_b.parameters()))


def test_random_local_search_sigma_is_the_lr_a_scheduler_anneals():
    model = _model()
    opt = _load("optimizer", "random_local_search")(model.parameters())
    assert opt.param_groups[0]["lr"] == 0.1
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    x, y = _data()
    opt.step(_closure(model, opt, x, y))
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.05


# --- AdamThenSGD --------------------------------------------------------------------------------


def _ats(model: nn.Module, **kw) -> AdamThenSGD:
    args = dict(steps_per_epoch=3, switch_epoch=2, adam_lr=0.01, sgd_lr=0.05, momentum=0.9)
    return AdamThenSGD(model.parameters(), **{**args, **kw})


def test_adam_then_sgd_follows_adam_then_sgd_bit_for_bit():
    x, y = _data()
    model = _model()
    opt = _ats(model)
    assert opt.phase == 0 and opt.param_groups[0]["lr"] == 0.01
    traj = _trajectory(model, opt, 6, x, y)
    assert opt.phase == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.05)
    traj += _trajectory(model, opt, 6, x, y)

    ref_model = _model()
    adam = torch.optim.Adam(ref_model.parameters(), lr=0.01)
    ref = _trajectory(ref_model, adam, 6, x, y)
    sgd = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9)  # fresh momentum buffer
    ref += _trajectory(ref_model, sgd, 6, x, y)
    for a, b in zip(traj, ref):
        assert torch.equal(a, b)


def test_adam_then_sgd_yaml_and_lr_scalar_flip_at_the_switch():
    model = _model()
    opt = build_optimizer(_load("optimizer", "adam_then_sgd"), model, None, steps_per_epoch=2)
    x, y = _data()
    closure = _closure(model, opt, x, y)
    lrs, phases = [], []
    for _ in range(24):
        opt.step(closure)
        lrs.append(opt.param_groups[0]["lr"])
        phases.append(opt.phase)
    # 10 epochs x 2 steps of Adam; lr and phase describe the next step, so both flip after step 20.
    assert lrs[:19] == [0.001] * 19 and lrs[19:] == [pytest.approx(0.1)] * 5
    assert phases == [0] * 19 + [1] * 5


def test_adam_then_sgd_switch_epoch_zero_is_sgd_from_the_start():
    model = _model()
    opt = _ats(model, switch_epoch=0)
    assert opt.phase == 1 and opt.param_groups[0]["lr"] == 0.05


def test_adam_then_sgd_with_scheduler_carries_the_decay_factor_over():
    x, y = _data()
    model = _model()
    opt = _ats(model, steps_per_epoch=2, switch_epoch=2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    closure = _closure(model, opt, x, y)
    lrs = []
    for _epoch in range(4):
        for _ in range(2):
            opt.step(closure)
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    # factor 0.5 per epoch applied to Adam's 0.01, then to SGD's 0.05 with the factor so far kept.
    assert lrs == pytest.approx([0.005, 0.05 * 0.25, 0.05 * 0.125, 0.05 * 0.0625])


@pytest.mark.parametrize("cut", [2, 5, 6, 9])
def test_adam_then_sgd_state_dict_round_trip_mid_run(cut):
    x, y = _data()
    model = _model()
    opt = _ats(model)
    closure = _closure(model, opt, x, y)
    for _ in range(cut):
        opt.step(closure)
    sd = _roundtrip(opt.state_dict())
    saved_params = copy.deepcopy(model.state_dict())
    cont_a = _trajectory(model, opt, 12 - cut, x, y)

    model_b = _model(seed=99)
    model_b.load_state_dict(saved_params)
    opt_b = _ats(model_b)
    opt_b.load_state_dict(sd)
    assert opt_b.steps == cut and opt_b.phase == int(cut >= 6)
    cont_b = _trajectory(model_b, opt_b, 12 - cut, x, y)
    for a, b in zip(cont_a, cont_b):
        assert torch.equal(a, b)
    assert opt_b.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_adam_then_sgd_refuses_bad_settings():
    from conftest import compose_cfg

    from dlexp import ConfigError
    from dlexp.config.validate import validate

    cfg, choices = compose_cfg("optimizer=adam_then_sgd", "optimizer.switch_epoch=-1", "optimizer.sgd_lr=0")
    problems = validate(cfg, choices)
    assert "optimizer.switch_epoch=-1 is out of range: it must be >= 0." in problems
    assert "optimizer.sgd_lr=0 is out of range: it must be > 0." in problems
    with pytest.raises(ConfigError, match="nesterov"):  # a rule between two keys: the constructor's
        _ats(_model(), nesterov=True, momentum=0.0)


# --- schedulers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("constant", [0.1] * 12),
        ("step", [0.1] * 9 + [0.01] * 3),
        ("exponential", [0.1 * 0.95**k for k in range(1, 13)]),
        ("cosine", [0.05 * (1 + math.cos(math.pi * k / 12)) for k in range(1, 13)]),
    ],
)
def test_scheduler_yaml_instantiates_and_steps_per_epoch(name, expected):
    cfg = OmegaConf.merge(
        {"trainer": {"epochs": 12}},
        {"scheduler": OmegaConf.load(CONF / "scheduler" / f"{name}.yaml")},
    )
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = hydra.utils.instantiate(cfg.scheduler)(opt)
    if name == "constant":  # no scheduler object: nothing to step, nothing wrapping optimizer.step
        assert sched is None
    else:
        assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    lrs = []
    for _epoch in range(12):
        opt.step()
        if sched is not None:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx(expected, abs=1e-9)
