"""Loss adapters vs. torch.nn.functional (values and gradients), pairings and refusals."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from dlexp.parts.losses import BCE, CE, MAE, MSE, Auto, BCEProbs, GaussianNLL, Huber, SparseCE

CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"


def dataset(task: str, n_classes: int = 0, target_dim: int = 0, name: str | None = None):
    """Stand-in for dlexp.parts.data.Dataset with only the attributes losses may use."""
    return SimpleNamespace(name=name or task, task=task, n_classes=n_classes, target_dim=target_dim)


BINARY = dataset("binary", n_classes=2, name="moons")
DIGITS = dataset("multiclass", n_classes=10, name="digits")
SINE = dataset("regression", target_dim=1, name="sine")
REG3 = dataset("regression", target_dim=3, name="reg3")
GAUSSIAN = dataset("unlabelled", name="gaussian")
ALL_LOSSES = [MSE, MAE, Huber, BCE, BCEProbs, CE, SparseCE, GaussianNLL, Auto]
RAW = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))  # ends in a Linear: raw scores
PROBS = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Sigmoid())  # outputs probabilities


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def value_and_grad(fn, output, target):
    out = output.clone().requires_grad_(True)
    loss = fn(out, target)
    loss.backward()
    return loss.detach(), out.grad


def assert_matches(ours, oracle, output, target, atol=1e-6):
    v1, g1 = value_and_grad(ours, output, target)
    v2, g2 = value_and_grad(oracle, output, target)
    assert v1.shape == ()
    assert torch.allclose(v1, v2, atol=atol), (v1, v2)
    assert torch.allclose(g1, g2, atol=atol)


@pytest.mark.parametrize(
    "adapter,oracle",
    [
        (MSE(), F.mse_loss),
        (MAE(), F.l1_loss),
        (Huber(), F.huber_loss),
        (Huber(delta=0.3), lambda o, t: F.huber_loss(o, t, delta=0.3)),
    ],
    ids=["mse", "mae", "huber", "huber_delta"],
)
def test_pointwise_losses_match_functional(adapter, oracle):
    output, target = torch.randn(64, 3) * 2, torch.randn(64, 3)
    assert_matches(adapter.resolve(REG3), oracle, output, target)


def test_bce_matches_functional():
    y = torch.randint(0, 2, (64,))
    loss = BCE().resolve(BINARY)
    target = loss.encode(y, BINARY)
    assert target.shape == (64, 1) and target.dtype == torch.float32
    assert_matches(loss, F.binary_cross_entropy_with_logits, torch.randn(64, 1) * 3, target)


def test_bce_probs_matches_nn_bce_loss_on_probabilities():
    """bce_probs is nn.BCELoss: the same value and gradient, on the outputs of a sigmoid."""
    y = torch.randint(0, 2, (64,))
    loss = BCEProbs().resolve(BINARY)
    target = loss.encode(y, BINARY)
    assert target.shape == (64, 1) and target.dtype == torch.float32 and loss.out_features(BINARY) == 1
    probabilities = torch.sigmoid(torch.randn(64, 1) * 3)
    assert_matches(loss, nn.BCELoss(), probabilities, target, atol=0)
    # the same loss as bce on the logits, up to float32 rounding
    logits = torch.randn(64, 1) * 3
    assert torch.allclose(loss(torch.sigmoid(logits), target), BCE()(logits, target), rtol=1e-5)


def test_bce_probs_predicts_and_reads_probabilities():
    loss = BCEProbs().resolve(BINARY)
    output = torch.tensor([[0.2], [0.7], [0.5], [0.51]])
    assert torch.equal(loss.predict(output), torch.tensor([0, 1, 0, 1]))  # p > 0.5, as logit > 0 for bce
    assert torch.equal(loss.probabilities(output), torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5], [0.49, 0.51]]))
    logits = torch.randn(50, 1)
    assert torch.equal(loss.predict(torch.sigmoid(logits)), BCE().predict(logits))


def test_bce_probs_refuses_a_model_without_probabilities_in_one_sentence():
    assert BCEProbs().check_model(PROBS) is None
    assert BCEProbs().check_model(RAW) == (
        "loss=bce_probs takes probabilities, but the model's output is raw scores; "
        "set model.output_activation=sigmoid, or use loss=bce (on raw scores)."
    )
    tanh = nn.Sequential(nn.Linear(2, 1), nn.Tanh())
    assert "the output of a tanh, not a probability" in BCEProbs().check_model(tanh)
    assert BCEProbs().check(DIGITS).startswith("loss=bce_probs needs a binary dataset, but data=digits has 10 classes")


@pytest.mark.parametrize("adapter,link", [(BCE(), "sigmoid"), (CE(), "softmax"), (SparseCE(), "softmax")])
def test_losses_on_raw_scores_refuse_a_model_that_squashes_its_output(adapter, link):
    """A second sigmoid (or a softmax of sigmoids) trains, but not what the user meant: refused, with the way out."""
    assert adapter.check_model(RAW) is None
    sentence = adapter.check_model(PROBS)
    assert sentence.startswith(
        f"loss={adapter.name} applies the {link} itself and takes raw scores, but the model's "
        "output already goes through a sigmoid; "
    )
    assert sentence.endswith("drop the output activation (model.output_activation=null).")
    assert ("use loss=bce_probs" in sentence) == (adapter.name == "bce")


@pytest.mark.parametrize("adapter", [MSE(), MAE(), Huber(), GaussianNLL()])
def test_pointwise_losses_take_any_output(adapter):
    assert adapter.check_model(RAW) is None and adapter.check_model(PROBS) is None  # sigmoid + mse is classic


def test_ce_matches_cross_entropy_with_probability_targets():
    probs = torch.softmax(torch.randn(32, 5), dim=1)
    assert_matches(CE(), F.cross_entropy, torch.randn(32, 5), probs)


def test_sparse_ce_matches_cross_entropy_with_labels():
    y = torch.randint(0, 10, (32,))
    loss = SparseCE().resolve(DIGITS)
    assert loss.encode(y, DIGITS).dtype == torch.int64
    assert_matches(loss, F.cross_entropy, torch.randn(32, 10), loss.encode(y, DIGITS))


def test_ce_on_one_hot_equals_sparse_ce_on_labels():
    y = torch.randint(0, 10, (128,))
    output = torch.randn(128, 10) * 4
    ce, sparse = CE().resolve(DIGITS), SparseCE().resolve(DIGITS)
    one_hot = ce.encode(y, DIGITS)
    assert one_hot.shape == (128, 10) and torch.equal(one_hot.argmax(1), y)
    v1, g1 = value_and_grad(ce, output, one_hot)
    v2, g2 = value_and_grad(sparse, output, sparse.encode(y, DIGITS))
    assert torch.allclose(v1, v2, atol=1e-6)
    assert torch.allclose(g1, g2, atol=1e-6)


def test_gaussian_nll_matches_functional_with_softplus_variance():
    loss = GaussianNLL().resolve(REG3)
    output, target = torch.randn(64, 6), torch.randn(64, 3)

    def oracle(o, t):
        var = F.softplus(o[:, 3:]) + 1e-6
        return F.gaussian_nll_loss(o[:, :3], t, var, eps=1e-6)

    assert_matches(loss, oracle, output, target)
    assert torch.all(loss.variance(torch.full((2, 6), -50.0)) > 0)
    assert torch.equal(loss.mean(output), output[:, :3])
    assert loss.predict(output) is None


def test_gaussian_nll_full_is_the_exact_normal_log_density():
    loss = GaussianNLL(full=True)
    output, target = torch.randn(16, 2), torch.randn(16, 1)
    dist = torch.distributions.Normal(output[:, :1], loss.variance(output).sqrt())
    assert torch.allclose(loss(output, target), -dist.log_prob(target).mean(), atol=1e-5)


@pytest.mark.parametrize(
    "adapter,data,width",
    [
        (MSE(), SINE, 1),
        (MSE(), REG3, 3),
        (MSE(), BINARY, 1),
        (MSE(), DIGITS, 10),
        (MAE(), DIGITS, 10),
        (Huber(), BINARY, 1),
        (Huber(), REG3, 3),
        (BCE(), BINARY, 1),
        (BCEProbs(), BINARY, 1),
        (CE(), BINARY, 2),
        (CE(), DIGITS, 10),
        (SparseCE(), BINARY, 2),
        (SparseCE(), DIGITS, 10),
        (GaussianNLL(), SINE, 2),
        (GaussianNLL(), REG3, 6),
    ],
)
def test_out_features_and_encoding_fit_the_model(adapter, data, width):
    loss = adapter.resolve(data)
    assert loss.check(data) is None
    assert loss.out_features(data) == width
    n = 20
    y = torch.randn(n, data.target_dim) if data.task == "regression" else torch.randint(0, data.n_classes, (n,))
    output = torch.randn(n, width, requires_grad=True)
    value = loss(torch.sigmoid(output) if isinstance(loss, BCEProbs) else output, loss.encode(y, data))
    assert value.shape == () and torch.isfinite(value)
    value.backward()  # the pairing is trainable end to end


@pytest.mark.parametrize("adapter", [MSE(), MAE(), Huber()])
def test_pointwise_losses_predict_classes(adapter):
    binary = adapter.resolve(BINARY)
    assert torch.equal(binary.predict(torch.tensor([[0.4], [0.6], [-1.0]])), torch.tensor([0, 1, 0]))
    multi = type(adapter)().resolve(DIGITS)
    output = torch.randn(7, 10)
    assert torch.equal(multi.predict(output), output.argmax(1))
    assert type(adapter)().resolve(SINE).predict(torch.randn(4, 1)) is None


def test_pointwise_encoding_per_task():
    y = torch.tensor([0, 2, 1])
    assert torch.equal(MSE().encode(y, dataset("multiclass", n_classes=3)), torch.eye(3)[[0, 2, 1]])
    assert torch.equal(MSE().encode(torch.tensor([1, 0]), BINARY), torch.tensor([[1.0], [0.0]]))
    reg = torch.randn(4, 1)
    assert torch.equal(MSE().encode(reg, SINE), reg)


def test_classification_losses_predict():
    assert torch.equal(BCE().predict(torch.tensor([[-0.1], [0.1]])), torch.tensor([0, 1]))
    output = torch.randn(9, 4)
    assert torch.equal(CE().predict(output), output.argmax(1))
    assert torch.equal(SparseCE().predict(output), output.argmax(1))


def test_probabilities_follow_each_losss_link():
    """What pictures colour by: BCE's sigmoid, the softmax of ce / sparse_ce, the identity of pointwise losses
    (clipped and renormalised); rows sum to 1 and agree with predict()."""
    logits = torch.randn(50, 1) * 3
    sigmoid = torch.sigmoid(logits)
    assert torch.allclose(BCE().probabilities(logits), torch.cat([1 - sigmoid, sigmoid], dim=1))
    scores = torch.randn(50, 4) * 3
    for adapter in (CE(), SparseCE()):
        assert torch.allclose(adapter.probabilities(scores), torch.softmax(scores, dim=1))
    binary, multi = MSE().resolve(BINARY), MSE().resolve(dataset("multiclass", n_classes=4))
    raw = torch.tensor([[-0.3], [0.2], [0.7], [1.4]])
    assert torch.allclose(binary.probabilities(raw), torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.3, 0.7], [0.0, 1.0]]))
    one_hot_ish = torch.tensor([[0.2, -0.1, 0.6, 0.2], [-1.0, -1.0, -1.0, -1.0]])
    assert torch.allclose(multi.probabilities(one_hot_ish), torch.tensor([[0.2, 0.0, 0.6, 0.2], [0.25] * 4]))
    for adapter, output in ((BCE(), logits), (CE(), scores), (binary, raw), (multi, scores)):
        p = adapter.probabilities(output)
        assert torch.allclose(p.sum(1), torch.ones(len(p))) and ((p >= 0) & (p <= 1)).all()
        # the same class as predict(), except where a pointwise output is <= 0 for every class (then all tie)
        decided = output.max(1).values > 0 if adapter is multi else torch.ones(len(p), dtype=torch.bool)
        assert decided.sum() > len(p) // 2
        assert torch.equal(p.argmax(1)[decided], adapter.predict(output)[decided])
    assert MSE().resolve(SINE).probabilities(torch.randn(3, 1)) is None
    assert GaussianNLL().probabilities(torch.randn(3, 2)) is None
    out = torch.randn(5, 2)
    assert torch.equal(MSE().resolve(SINE).mean(out[:, :1]), out[:, :1])
    assert torch.equal(GaussianNLL().mean(out), out[:, :1])


def test_bce_on_digits_refused_in_one_sentence():
    assert BCE().check(DIGITS) == (
        "loss=bce needs a binary dataset, but data=digits has 10 classes; "
        "use loss=ce, loss=sparse_ce, loss=mse, loss=mae or loss=huber."
    )
    assert BCE().check(SINE) == (
        "loss=bce needs a binary dataset, but data=sine is a regression dataset; "
        "use loss=mse, loss=mae, loss=huber or loss=gaussian_nll."
    )


@pytest.mark.parametrize(
    "adapter,data,words",
    [
        (BCE(), SINE, ["loss=bce", "data=sine", "regression"]),
        (CE(), SINE, ["loss=ce", "data=sine", "regression"]),
        (SparseCE(), REG3, ["loss=sparse_ce", "data=reg3", "regression"]),
        (GaussianNLL(), DIGITS, ["loss=gaussian_nll", "data=digits", "10 classes"]),
        (GaussianNLL(), BINARY, ["loss=gaussian_nll", "data=moons", "2 classes"]),
    ],
)
def test_impossible_pairings_are_refused(adapter, data, words):
    sentence = adapter.check(data)
    assert sentence is not None and sentence.count(".") == 1 and sentence.endswith(".")
    for word in words:
        assert word in sentence


@pytest.mark.parametrize("data,expected", [(BINARY, BCE), (DIGITS, CE), (SINE, MSE)])
def test_auto_resolves_to_the_one_right_loss(data, expected):
    loss = Auto().resolve(data)
    assert type(loss) is expected and loss.check(data) is None
    assert loss.resolve(data) is loss  # resolving again is a no-op


def test_auto_on_unlabelled_resolves_to_itself_and_must_be_resolved_before_use():
    auto = Auto()
    assert auto.resolve(GAUSSIAN) is auto
    with pytest.raises(RuntimeError, match="resolve"):
        auto(torch.zeros(1), torch.zeros(1))
    with pytest.raises(RuntimeError, match="resolve"):
        auto.out_features(DIGITS)


@pytest.mark.parametrize("cls", ALL_LOSSES[:-1])
def test_concrete_adapters_resolve_to_themselves(cls):
    loss = cls()
    data = SINE if cls in (MSE, MAE, Huber, GaussianNLL) else BINARY
    assert loss.resolve(data) is loss


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_loss_yaml_instantiates(path):
    loss = instantiate(OmegaConf.load(path))
    assert loss.name == path.stem
    assert path.read_text().startswith("# dlexp train")


def test_yaml_options_cover_every_adapter():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(cls.name for cls in ALL_LOSSES)


def _cases():
    """(adapter resolved for its data, outputs (N, B, K), targets (N, B, ...)) for every concrete adapter."""
    n, b = 3, 16
    labels = torch.randint(0, 2, (n, b))
    classes = torch.randint(0, 10, (n, b))
    return [
        (MSE().resolve(REG3), torch.randn(n, b, 3), torch.randn(n, b, 3)),
        (MAE().resolve(REG3), torch.randn(n, b, 3), torch.randn(n, b, 3)),
        (Huber(delta=0.3).resolve(REG3), torch.randn(n, b, 3), torch.randn(n, b, 3)),
        (BCE().resolve(BINARY), torch.randn(n, b, 1) * 3, labels.float().unsqueeze(-1)),
        (BCEProbs().resolve(BINARY), torch.rand(n, b, 1), labels.float().unsqueeze(-1)),
        (CE().resolve(DIGITS), torch.randn(n, b, 10), F.one_hot(classes, 10).float()),
        (SparseCE().resolve(DIGITS), torch.randn(n, b, 10), classes),
        (GaussianNLL(full=True).resolve(REG3), torch.randn(n, b, 6), torch.randn(n, b, 3)),
    ]


@pytest.mark.parametrize(
    "case", range(8), ids=lambda i: ["mse", "mae", "huber", "bce", "bce_probs", "ce", "sparse_ce", "gaussian_nll"][i]
)
def test_elementwise_form_averages_to_the_loss_for_each_of_n_networks(case):
    """The two forms of each loss side by side: `elementwise` on (N, B, ...) averaged per network is __call__ on that
    network's (B, ...) alone, in value and gradient (to float32 rounding: the fused mean sums in its own order)."""
    adapter, output, target = _cases()[case]
    each = adapter.elementwise(output, target)  # (N, B, ...)
    assert each.shape[:2] == output.shape[:2]
    per_network = each.flatten(1).mean(1)  # (N,)
    for i in range(output.shape[0]):
        assert torch.equal(adapter.elementwise(output[i], target[i]), each[i])  # the leading axis changes nothing
        assert_matches(lambda o, t: adapter.elementwise(o, t).mean(), adapter, output[i], target[i])
        assert torch.allclose(per_network[i], adapter(output[i], target[i]), rtol=1e-6, atol=0)
