"""Initialisers vs. their formulas (empirical std / bounds on a large layer) and vs. torch.nn.init."""

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from dlexp import ConfigError
from dlexp.parts.init import SCHEMES, init_weights
from dlexp.parts.models import cnn, mlp

CONF = Path(__file__).resolve().parents[1] / "conf" / "initializer"
FAN_IN, FAN_OUT = 1000, 500  # Linear(1000, 500): weight (500, 1000)


def big_layer(scheme: str, **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_weights(layer, scheme, **kwargs)
    return layer.weight.detach()


EXPECTED_STD = {
    "normal": 1.0,
    "normal_small": 0.01,
    "xavier_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "xavier_uniform": math.sqrt(2 / (FAN_IN + FAN_OUT)),  # U(-b, b) has std b / sqrt(3)
    "he_normal": math.sqrt(2 / FAN_IN),
    "he_uniform": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
    "uniform": 0.05 / math.sqrt(3),
}


@pytest.mark.parametrize("scheme", list(EXPECTED_STD))
def test_empirical_std_matches_formula(scheme):
    w = big_layer(scheme)
    assert abs(w.mean().item()) < 0.01 * EXPECTED_STD[scheme]  # 500k draws: mean's std is std/707
    assert w.std().item() == pytest.approx(EXPECTED_STD[scheme], rel=0.01)


@pytest.mark.parametrize(
    "scheme,bound",
    [
        ("uniform", 0.05),
        ("xavier_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
        ("he_uniform", math.sqrt(6 / FAN_IN)),
    ],
)
def test_uniform_schemes_stay_within_bounds(scheme, bound):
    w = big_layer(scheme)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound  # and fill the interval


def test_uniform_bounds_are_configurable():
    w = big_layer("uniform", low=0.2, high=0.3)
    assert w.min().item() >= 0.2 and w.max().item() <= 0.3
    assert w.mean().item() == pytest.approx(0.25, abs=1e-3)


def test_normal_std_is_configurable():
    assert big_layer("normal", std=0.1).std().item() == pytest.approx(0.1, rel=0.01)


def test_gain_scales_xavier():
    assert big_layer("xavier_normal", gain=5 / 3).std().item() == pytest.approx(
        5 / 3 * EXPECTED_STD["xavier_normal"], rel=0.01
    )


def test_orthogonal_rows_are_orthonormal():
    w = big_layer("orthogonal")  # (500, 1000): rows orthonormal
    assert torch.allclose(w @ w.T, torch.eye(FAN_OUT), atol=1e-4)
    w2 = big_layer("orthogonal", gain=2.0)
    assert torch.allclose(w2 @ w2.T, 4 * torch.eye(FAN_OUT), atol=1e-3)


@pytest.mark.parametrize(
    "scheme,oracle",
    [
        ("normal", lambda w: nn.init.normal_(w, 0.0, 1.0)),
        ("normal_small", lambda w: nn.init.normal_(w, 0.0, 0.01)),
        ("uniform", lambda w: nn.init.uniform_(w, -0.05, 0.05)),
        ("xavier_normal", nn.init.xavier_normal_),
        ("xavier_uniform", nn.init.xavier_uniform_),
        ("he_normal", lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")),
        ("he_uniform", lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")),
        ("lecun_normal", lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear")),
        ("orthogonal", nn.init.orthogonal_),
    ],
)
def test_same_draws_as_torch_nn_init_under_same_seed(scheme, oracle):
    torch.manual_seed(5)
    ours = init_weights(mlp((3,), 2, hidden=[7, 6]), scheme)
    torch.manual_seed(5)
    hand = mlp((3,), 2, hidden=[7, 6])
    with torch.no_grad():
        for m in hand:
            if isinstance(m, nn.Linear):
                oracle(m.weight)
                nn.init.zeros_(m.bias)
    for a, b in zip(ours.parameters(), hand.parameters()):
        assert torch.equal(a, b)


def test_conv_uses_fan_in_of_channels_times_kernel():
    torch.manual_seed(0)
    model = init_weights(cnn((1, 28, 28), 10, channels=[64, 64], kernel_size=5), "he_normal")
    conv2 = model[3]  # Conv2d(64, 64, 5): fan_in 64 * 25
    assert conv2.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 25)), rel=0.02)
    assert torch.count_nonzero(conv2.bias) == 0


def test_zeros_and_constant_are_exact_and_symmetric():
    model = init_weights(mlp((3,), 2, hidden=[4]), "zeros")
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())
    model = init_weights(mlp((3,), 2, hidden=[4]), "constant", value=0.3)
    assert all(torch.all(p == 0.3) for p in model.parameters())
    # Symmetry: every hidden unit computes the same thing.
    hidden = model[1](model[0](torch.randn(5, 3)))
    assert torch.equal(hidden, hidden[:, :1].expand_as(hidden))


def test_bias_option():
    torch.manual_seed(0)
    kept = init_weights(nn.Linear(4, 3), "normal", bias="keep")
    torch.manual_seed(0)
    fresh = nn.Linear(4, 3)
    assert torch.equal(kept.bias, fresh.bias)
    assert torch.all(init_weights(nn.Linear(4, 3), "normal", bias=0.1).bias == 0.1)
    assert torch.count_nonzero(init_weights(nn.Linear(4, 3), "he_normal").bias) == 0
    with pytest.raises(ConfigError, match="bias"):
        init_weights(nn.Linear(4, 3), "normal", bias="ones")


def test_default_touches_nothing():
    torch.manual_seed(11)
    ours = init_weights(mlp((2,), 1, hidden=[10, 10], batchnorm=True), "default")
    torch.manual_seed(11)
    fresh = mlp((2,), 1, hidden=[10, 10], batchnorm=True)
    for a, b in zip(ours.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


def test_default_consumes_no_rng():
    torch.manual_seed(2)
    init_weights(nn.Linear(3, 3), "default")
    after = torch.rand(1)
    torch.manual_seed(2)
    nn.Linear(3, 3)
    assert torch.equal(after, torch.rand(1))


def test_batchnorm_reset_to_identity():
    model = mlp((3,), 2, hidden=[4], batchnorm=True)
    with torch.no_grad():
        model[1].weight.fill_(3.0)
        model[1].bias.fill_(2.0)
    init_weights(model, "xavier_normal")
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ConfigError, match="'glorot'.*default, normal, normal_small"):
        init_weights(nn.Linear(2, 2), "glorot")


def test_one_yaml_per_scheme_and_each_instantiates():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(SCHEMES)
    for path in CONF.glob("*.yaml"):
        cfg = OmegaConf.load(path)
        assert cfg.scheme == path.stem
        init_fn = instantiate(cfg)
        model = mlp((3,), 2, hidden=[4])
        assert init_fn(model) is model
