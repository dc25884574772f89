"""Loss adapters: each pairs a loss with the target encoding and output link it needs.

Protocol (every adapter, no base class — see tests/test_losses.py for the oracle checks):
    name                              option name as typed on the command line (loss=<name>)
    resolve(data) -> adapter          the concrete adapter for this data (Auto picks one); records
                                      data.task so predict() knows classification from regression.
                                      The builder always does `loss = loss.resolve(data)` first.
    tasks                             the data tasks it trains on ("binary", "multiclass", "regression")
    check(data) -> str | None         one sentence if this loss cannot work on that (labelled) data
    check_model(model) -> str | None  one sentence if the model's output is not what __call__ takes (raw scores
                                      or probabilities); the builder calls it right after building the model
                                      (an adapter of a user's own may leave it out: any output is then taken)
    out_features(data) -> int         model output width
    encode(y, data) -> Tensor         targets encoded once for a whole split
    __call__(output, target) -> Tensor  scalar mean loss on the model's outputs
    elementwise(output, target) -> Tensor  the same loss before the mean, on any leading axes: (N, B, K) outputs
                                      of N networks give (N, B, ...) numbers whose mean per network is its __call__
                                      (a stack of jobs scores each job so: dlexp/stacked/losses.py). __call__ stays
                                      torch's fused mean, which a hand-written loop computes; both forms sit side
                                      by side in one class, and tests/test_losses.py checks they agree
    predict(output) -> Tensor | None  class indices (N,) for accuracy; None for regression
    probabilities(output) -> Tensor | None  class probabilities (N, K), K >= 2, for pictures; None for regression
    mean(output) -> Tensor            regression adapters only: the predicted value (N, D)
    (probabilities and mean are what decision-boundary pictures read; an adapter without them gets none)

The model's outputs are raw scores for every adapter but bce_probs, which takes probabilities (a model that
ends in a sigmoid: model.output_activation=sigmoid, the classic nn.Sequential(..., nn.Sigmoid()) + nn.BCELoss).

Datasets are duck-typed: name, task ("binary" | "multiclass" | "regression" | "unlabelled"),
n_classes, target_dim. Unlabelled data has nothing to train on: the builder skips training (and the
loss) for it, and Auto.resolve() returns the Auto itself.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor

from dlexp.parts.models import output_activation
from dlexp.parts.params import Range

CLASSIFICATION = ("binary", "multiclass")


def _describe(data) -> str:
    """How a refusal names the dataset's task: 'has 10 classes', 'is a regression dataset'."""
    if data.task in CLASSIFICATION:
        return f"has {data.n_classes} classes"
    return f"is a {data.task} dataset"


def _refusal(adapter, data, needs: str) -> str | None:
    """None if the adapter trains on this data's task, else the sentence naming both options and the way out."""
    if data.task in adapter.tasks:
        return None
    others = [a.name for a in ADAPTERS if data.task in a.tasks]
    return (
        f"loss={adapter.name} needs {needs}, but data={data.name} {_describe(data)}; "
        f"use {' or '.join(', '.join(f'loss={n}' for n in others).rsplit(', ', 1))}."
    )


def _raw_scores_refusal(adapter, model, link: str) -> str | None:
    """None if the model outputs raw scores, else the sentence: this loss applies `link` itself."""
    found = output_activation(model)
    if found is None:
        return None
    instead = "use loss=bce_probs or " if found == "sigmoid" and adapter.name == "bce" else ""
    return (
        f"loss={adapter.name} applies the {link} itself and takes raw scores, but the model's output already "
        f"goes through a {found}; {instead}drop the output activation (model.output_activation=null)."
    )


def _one_hot(y: Tensor, n_classes: int) -> Tensor:
    return F.one_hot(y.long(), n_classes).float()  # (N,) -> (N, K)


class _Pointwise:
    """Shared shape logic of mse / mae / huber: regression, or classification on encoded targets.

    Binary: one output column, float target 0/1, class = output > 0.5.
    Multiclass: K outputs, one-hot targets, class = argmax. The link is the identity in both
    cases (the classic 'regress the one-hot vector' setup the losses lesson compares with ce).
    """

    name = "pointwise"
    tasks = ("binary", "multiclass", "regression")
    task: str | None = None

    def resolve(self, data) -> _Pointwise:
        self.task = data.task
        return self

    def check(self, data) -> str | None:
        return _refusal(self, data, "labelled data")

    def check_model(self, model) -> str | None:
        return None  # the identity link: raw scores and squashed outputs (a sigmoid for mse) alike

    def out_features(self, data) -> int:
        if data.task == "regression":
            return data.target_dim
        return 1 if data.task == "binary" else data.n_classes

    def encode(self, y: Tensor, data) -> Tensor:
        if data.task == "regression":
            return y.float()  # (N, D)
        if data.task == "binary":
            return y.float().unsqueeze(1)  # (N,) -> (N, 1)
        return _one_hot(y, data.n_classes)  # (N, K)

    def predict(self, output: Tensor) -> Tensor | None:
        if self.task == "binary":
            return (output[:, 0] > 0.5).long()  # (N,)
        if self.task == "multiclass":
            return output.argmax(dim=1)  # (N,)
        return None

    def probabilities(self, output: Tensor) -> Tensor | None:
        """The outputs read as probabilities (identity link): clipped to [0, 1], one-hot rows renormalised."""
        if self.task == "binary":
            p = output[:, :1].clamp(0, 1)  # (N, 1)
            return torch.cat([1 - p, p], dim=1)  # (N, 2)
        if self.task == "multiclass":
            p = output.clamp_min(0)  # (N, K)
            total = p.sum(dim=1, keepdim=True)  # (N, 1)
            return torch.where(total > 0, p / total.clamp_min(1e-12), torch.full_like(p, 1 / p.shape[1]))
        return None

    def mean(self, output: Tensor) -> Tensor:
        return output  # (N, D): the identity link


class MSE(_Pointwise):
    """Mean squared error on raw outputs."""

    name = "mse"

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target, reduction="none")


class MAE(_Pointwise):
    """Mean absolute error (L1) on raw outputs: robust to outliers, constant-size gradients."""

    name = "mae"

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(output, target)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(output, target, reduction="none")


class Huber(_Pointwise):
    """Quadratic for |error| < delta, linear beyond it: MSE near the target, MAE far away."""

    name = "huber"

    def __init__(self, delta: Annotated[float, Range(0, low_open=True)] = 1.0):
        self.delta = float(delta)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(output, target, delta=self.delta)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(output, target, reduction="none", delta=self.delta)


class BCE:
    """Binary cross-entropy on one logit per sample (sigmoid link folded in, numerically stable)."""

    name = "bce"
    tasks = ("binary",)
    task: str | None = None

    def resolve(self, data) -> BCE:
        self.task = data.task
        return self

    def check(self, data) -> str | None:
        return _refusal(self, data, "a binary dataset")

    def check_model(self, model) -> str | None:
        return _raw_scores_refusal(self, model, "sigmoid")

    def out_features(self, data) -> int:
        return 1

    def encode(self, y: Tensor, data) -> Tensor:
        return y.float().unsqueeze(1)  # (N,) -> (N, 1)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")

    def predict(self, output: Tensor) -> Tensor | None:
        return (output[:, 0] > 0).long()  # logit > 0 <=> probability > 0.5

    def probabilities(self, output: Tensor) -> Tensor | None:
        p = torch.sigmoid(output[:, :1])  # (N, 1): the link the loss folds in
        return torch.cat([1 - p, p], dim=1)  # (N, 2)


class BCEProbs(BCE):
    """Binary cross-entropy on probabilities (nn.BCELoss): the model ends in a sigmoid, as in the classic script.

    The same loss as bce in exact arithmetic; in float32 the two round differently (bce folds the sigmoid
    into a stable log-sigmoid), and over thousands of steps the difference shows (the XOR plateau's escape).
    F.binary_cross_entropy clamps log(p) at -100, so a saturated output gives a large, finite loss.
    """

    name = "bce_probs"

    def check_model(self, model) -> str | None:
        found = output_activation(model)
        if found == "sigmoid":
            return None
        output = "raw scores" if found is None else f"the output of a {found}, not a probability"
        return (
            f"loss=bce_probs takes probabilities, but the model's output is {output}; "
            "set model.output_activation=sigmoid, or use loss=bce (on raw scores)."
        )

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(output, target)  # what nn.BCELoss() computes

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(output, target, reduction="none")

    def predict(self, output: Tensor) -> Tensor | None:
        return (output[:, 0] > 0.5).long()  # (N,)

    def probabilities(self, output: Tensor) -> Tensor:
        """Class probabilities (N, 2), what a decision-boundary picture shades: the output itself and 1 - it."""
        p = output[:, :1]  # (N, 1): already probabilities
        return torch.cat([1 - p, p], dim=1)  # (N, 2): columns are classes 0 and 1


class _Categorical:
    """Shared logic of ce / sparse_ce: K logits (2 for binary), class = argmax."""

    name = "categorical"
    tasks = CLASSIFICATION
    task: str | None = None

    def resolve(self, data):
        self.task = data.task
        return self

    def check(self, data) -> str | None:
        return _refusal(self, data, "a classification dataset")

    def check_model(self, model) -> str | None:
        return _raw_scores_refusal(self, model, "softmax")

    def out_features(self, data) -> int:
        return data.n_classes

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        # ce: mean over the batch of -sum_k p_k log softmax(z)_k; F.cross_entropy takes probability targets and
        # computes exactly this in one fused kernel (faster than writing it out). sparse_ce: integer labels.
        return F.cross_entropy(output, target)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        """(..., K) logits, (..., K) probabilities or (...) labels -> (...): each sample's cross-entropy."""
        k = output.shape[-1]
        flat = target.reshape(-1, k) if target.dim() == output.dim() else target.reshape(-1)  # (M, K) or (M,)
        return F.cross_entropy(output.reshape(-1, k), flat, reduction="none").view(output.shape[:-1])

    def predict(self, output: Tensor) -> Tensor | None:
        return output.argmax(dim=1)  # (N,)

    def probabilities(self, output: Tensor) -> Tensor | None:
        return output.softmax(dim=1)  # (N, K)


class CE(_Categorical):
    """Categorical cross-entropy against one-hot (or any probability) targets."""

    name = "ce"

    def encode(self, y: Tensor, data) -> Tensor:
        return _one_hot(y, data.n_classes)  # (N, K)


class SparseCE(_Categorical):
    """Cross-entropy against integer class labels (what F.cross_entropy expects)."""

    name = "sparse_ce"

    def encode(self, y: Tensor, data) -> Tensor:
        return y.long()  # (N,)


class GaussianNLL:
    """Regression with uncertainty: the model outputs a mean and a variance per target.

    Output (N, 2D) = [mean (N, D) | raw variance (N, D)]; softplus(raw) + eps keeps the variance
    positive with a smooth gradient (exp would overflow on large raw values).
    """

    name = "gaussian_nll"
    tasks = ("regression",)
    task: str | None = None

    def __init__(self, eps: Annotated[float, Range(0, low_open=True)] = 1e-6, full: bool = False):
        self.eps = float(eps)
        self.full = bool(full)

    def resolve(self, data) -> GaussianNLL:
        self.task = data.task
        return self

    def check(self, data) -> str | None:
        return _refusal(self, data, "a regression dataset")

    def check_model(self, model) -> str | None:
        return None  # the variance's link (softplus) is applied to the raw second half of the output

    def out_features(self, data) -> int:
        return 2 * data.target_dim

    def encode(self, y: Tensor, data) -> Tensor:
        return y.float()  # (N, D)

    def mean(self, output: Tensor) -> Tensor:
        return output.chunk(2, dim=-1)[0]  # (..., D)

    def variance(self, output: Tensor) -> Tensor:
        return F.softplus(output.chunk(2, dim=-1)[1]) + self.eps  # (..., D), > 0

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.gaussian_nll_loss(self.mean(output), target, self.variance(output), full=self.full, eps=self.eps)

    def elementwise(self, output: Tensor, target: Tensor) -> Tensor:
        mean, variance = self.mean(output), self.variance(output)
        return F.gaussian_nll_loss(mean, target, variance, full=self.full, eps=self.eps, reduction="none")

    def predict(self, output: Tensor) -> Tensor | None:
        return None

    def probabilities(self, output: Tensor) -> Tensor | None:
        return None


class Auto:
    """The one right loss for the data: bce for binary, ce for multiclass, mse for regression."""

    name = "auto"

    CHOICES: dict[str, type[BCE] | type[CE] | type[MSE]] = {"binary": BCE, "multiclass": CE, "regression": MSE}

    def resolve(self, data):
        choice = self.CHOICES.get(data.task)
        # Unlabelled data: nothing to resolve to; the builder skips training, check() says why.
        return self if choice is None else choice().resolve(data)

    def _unresolved(self, *_args, **_kwargs):
        raise RuntimeError("loss=auto must be resolved first: call `loss = loss.resolve(data)`.")

    check = check_model = out_features = encode = __call__ = elementwise = predict = probabilities = _unresolved


# Every loss a dataset can be trained with, whatever the model, for the "use loss=..." advice of a refusal
# (bce_probs also needs a model that ends in a sigmoid: its own refusal says so).
ADAPTERS = (BCE, CE, SparseCE, MSE, MAE, Huber, GaussianNLL)  # the natural choices first
