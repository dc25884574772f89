"""Model factories vs. the hand-written nn.Sequential they stand for (same seed -> same parameters)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from dlexp import ConfigError
from dlexp.parts.models import ACTIVATIONS, cnn, mlp, output_activation, perceptron

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    pa, pb = list(a.named_parameters()), list(b.named_parameters())
    assert [n for n, _ in pa] == [n for n, _ in pb]
    for (name, x), (_, y) in zip(pa, pb):
        assert torch.equal(x, y), name


def seeded(build, seed=0):
    torch.manual_seed(seed)
    return build()


def test_mlp_2_10_10_10_1_sigmoid_equals_hand_written():
    ours = seeded(lambda: mlp((2,), 1, hidden=[10, 10, 10], activation="sigmoid"), seed=3)
    hand = seeded(
        lambda: nn.Sequential(
            nn.Linear(2, 10),
            nn.Sigmoid(),
            nn.Linear(10, 10),
            nn.Sigmoid(),
            nn.Linear(10, 10),
            nn.Sigmoid(),
            nn.Linear(10, 1),
        ),
        seed=3,
    )
    assert_same_parameters(ours, hand)
    assert [type(m) for m in ours] == [type(m) for m in hand]
    x = torch.randn(5, 2)
    assert torch.equal(ours(x), hand(x))


def test_output_activation_sigmoid_is_the_classic_sequential():
    """model.output_activation=sigmoid: the classic XOR net, ending in nn.Sigmoid, with the same seeded parameters."""
    ours = seeded(lambda: mlp((2,), 1, hidden=[10, 10, 10], activation="sigmoid", output_activation="sigmoid"), 777)
    hand = seeded(
        lambda: nn.Sequential(
            nn.Linear(2, 10),
            nn.Sigmoid(),
            nn.Linear(10, 10),
            nn.Sigmoid(),
            nn.Linear(10, 10),
            nn.Sigmoid(),
            nn.Linear(10, 1),
            nn.Sigmoid(),
        ),
        seed=777,
    )
    assert [type(m) for m in ours] == [type(m) for m in hand]
    assert_same_parameters(ours, hand)
    x = torch.randn(5, 2)
    assert torch.equal(ours(x), hand(x))
    assert output_activation(ours) == "sigmoid"


def test_every_factory_takes_an_output_activation():
    flat = seeded(lambda: perceptron((2,), 1, output_activation="sigmoid"))
    assert [type(m) for m in flat] == [nn.Linear, nn.Sigmoid]
    assert_same_parameters(flat, seeded(lambda: nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())))
    image = cnn((1, 8, 8), 10, output_activation="tanh")
    assert isinstance(image[-1], nn.Tanh) and isinstance(image[-2], nn.Linear)
    for raw in (perceptron((2,), 1), mlp((2,), 1), cnn((1, 8, 8), 10)):
        assert isinstance(raw[-1], nn.Linear) and output_activation(raw) is None


def test_output_activation_is_read_from_the_model_itself():
    assert output_activation(nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=1))) == "softmax"  # PyTorch's own
    assert output_activation(nn.Sequential(nn.Linear(2, 1), nn.Identity())) is None
    assert output_activation(nn.Sequential(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()))) == "sigmoid"  # nested
    assert output_activation(nn.Sequential(nn.Sigmoid(), nn.Linear(2, 1))) is None


def test_mlp_digits_sized_equals_hand_written():
    ours = seeded(lambda: mlp((1, 8, 8), 10, hidden=[128]), seed=7)
    hand = seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), seed=7)
    assert_same_parameters(ours, hand)
    x = torch.randn(4, 1, 8, 8)
    assert ours(x).shape == (4, 10)
    assert torch.equal(ours(x), hand(x))


def test_perceptron_equals_one_linear_and_flattens_only_images():
    flat = seeded(lambda: perceptron((2,), 1))
    assert_same_parameters(flat, seeded(lambda: nn.Sequential(nn.Linear(2, 1))))
    assert not any(isinstance(m, nn.Flatten) for m in flat)
    image = seeded(lambda: perceptron((1, 28, 28), 10))
    assert_same_parameters(image, seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10))))
    assert image(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_batchnorm_and_dropout_placement():
    model = mlp((4,), 3, hidden=[8, 8], activation="tanh", batchnorm=True, dropout=0.5)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout] * 2 + [nn.Linear]
    assert model[3].p == 0.5


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_follows_each_hidden_linear(name):
    model = mlp((3,), 2, hidden=[5, 5], activation=name)
    modules = list(model)
    for i, m in enumerate(modules[:-1]):
        if isinstance(m, nn.Linear):
            assert isinstance(modules[i + 1], ACTIVATIONS[name])
    # Distinct instances, so a forward hook on one fires for exactly one layer.
    acts = [m for m in modules if isinstance(m, ACTIVATIONS[name])]
    assert len(acts) == 2 and acts[0] is not acts[1]


def test_unknown_activation_names_the_choices():
    with pytest.raises(ConfigError, match="swish.*" + ", ".join(ACTIVATIONS)):
        mlp((2,), 1, hidden=[3], activation="swish")
    with pytest.raises(ConfigError, match="swish"):
        cnn((1, 8, 8), 10, activation="swish")


def test_model_constraints_are_declared_and_reported_by_key():
    """The signature is the schema: validation reads ranges and choices from the factories' annotations."""
    from conftest import compose_cfg

    from dlexp.config.validate import validate

    cfg, choices = compose_cfg(
        "model.hidden=[8,0]", "model.dropout=1.5", "model.activation=banana", "model.output_activation=sigmoidd"
    )
    problems = " ".join(validate(cfg, choices))
    assert "model.hidden=[8, 0] is out of range: it must be >= 1 (each entry)" in problems
    assert "model.dropout=1.5 is out of range: it must be in [0, 1)" in problems
    assert "model.activation=banana is not valid. Valid choices: " + ", ".join(ACTIVATIONS) in problems
    assert "model.output_activation=sigmoidd is not valid. Did you mean 'sigmoid'? Valid choices: " in problems
    cfg, choices = compose_cfg("model=perceptron", "model.output_activation=null")  # null: raw scores, valid
    assert validate(cfg, choices) == []


def test_mlp_yaml_documents_every_activation():
    """The option's comment lists what model.activation accepts: the same list as dlexp.parts.models.ACTIVATIONS."""
    for name in ("mlp.yaml", "cnn.yaml"):
        line = next(text for text in (CONF / name).read_text().splitlines() if text.startswith("activation:"))
        assert line.split("#", 1)[1].split() == " | ".join(ACTIVATIONS).split(), name


@pytest.mark.parametrize("side", [8, 28])
def test_cnn_shapes_for_digits_and_mnist(side):
    model = cnn((1, side, side), 10)
    assert model(torch.randn(2, 1, side, side)).shape == (2, 10)
    # Flatten size is computed arithmetically: 16 channels x (side // 4)^2 pixels.
    first_linear = next(m for m in model if isinstance(m, nn.Linear))
    assert first_linear.in_features == 16 * (side // 4) ** 2


def test_cnn_equals_hand_written_lenet():
    ours = seeded(lambda: cnn((1, 28, 28), 10), seed=1)
    hand = seeded(
        lambda: nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        ),
        seed=1,
    )
    assert_same_parameters(ours, hand)


def test_cnn_refuses_flat_data_and_over_pooling():
    with pytest.raises(ConfigError, match="model=cnn needs image data"):
        cnn((2,), 1)
    with pytest.raises(ConfigError, match="down to nothing"):
        cnn((1, 8, 8), 10, channels=[4, 4, 4, 4])


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_yaml_instantiates_with_injected_sizes(path):
    cfg = OmegaConf.load(path)
    in_shape = (1, 8, 8)
    model = instantiate(cfg, in_shape=in_shape, out_features=10)
    assert isinstance(model, nn.Sequential)
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)
    assert path.read_text().startswith("# dlexp train")


def test_default_mlp_yaml_matches_hand_written_under_seed():
    cfg = OmegaConf.load(CONF / "mlp.yaml")
    ours = seeded(lambda: instantiate(cfg, in_shape=(1, 8, 8), out_features=10), seed=0)
    width = cfg.hidden[0]
    hand = seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)), seed=0)
    assert_same_parameters(ours, hand)
