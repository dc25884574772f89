"""IDX files (the MNIST container format): find them, read them, download them.

numpy only, no torch: `dlexp data download mnist` must start quickly.

IDX layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, one dtype code byte, one byte with
the number of dimensions, then one big-endian uint32 per dimension, then the values, big-endian,
row-major. Files may be gzipped; we detect gzip from its magic bytes, not from the file name.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from dlexp import DataError

# The four standard files, in the order (train images, train labels, test images, test labels).
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Published MD5s of the gzipped files (the same table torchvision's datasets/mnist.py uses).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# Tried in order when the user names no mirror; the first that serves a file with the right MD5 wins.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

# IDX dtype code -> big-endian numpy dtype.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_TIMEOUT_S = 60  # per network read; a stalled mirror fails instead of hanging forever


def default_root(name: str) -> Path:
    """Folder holding dataset `name`: $DLEXP_DATA/<name> if DLEXP_DATA is set, else ~/.cache/dlexp/<name>."""
    parent = os.environ.get("DLEXP_DATA") or "~/.cache/dlexp"
    return Path(parent).expanduser() / name


def resolve_root(name: str, root: str | Path | None) -> Path:
    """The folder to use: `root` with ~ expanded, or the default for `name`."""
    return Path(root).expanduser() if root else default_root(name)


def find_files(name: str, root: str | Path | None) -> list[Path]:
    """Paths of the four IDX files in `root` (plain or .gz); DataError naming every missing one."""
    folder = resolve_root(name, root)
    found, missing = [], []
    for stem in FILES:
        # Prefer the plain file: a user who unpacked the archives gets the faster read.
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            missing.append(f"{stem}(.gz)")
        else:
            found.append(hit)
    if missing:
        raise DataError(
            f"{name} files missing in {folder}: {', '.join(missing)}; "
            f"run `dlexp data download {name}` to fetch them (or point data.root or DLEXP_DATA elsewhere)."
        )
    return found


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """The array stored in one IDX file (gzipped or not), in native byte order.

    `ndim`, when given, is the number of dimensions the caller expects (3 for images, 1 for labels).
    Any unreadable, truncated or inconsistent file raises DataError, never a raw traceback.
    """
    path = Path(path)
    hint = "delete it and run `dlexp data download` again"
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut gzip is EOFError
        raise DataError(f"cannot read {path} ({exc}); {hint}.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); {hint}.")
    dtype, n_dims = np.dtype(_DTYPES[raw[2]]), raw[3]
    if ndim is not None and n_dims != ndim:
        raise DataError(f"{path} holds a {n_dims}-dimensional array where {ndim} dimensions were expected; {hint}.")
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header; {hint}.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        shape = "x".join(map(str, dims))
        raise DataError(
            f"{path} is truncated or corrupt: its header announces {shape} values ({expected} bytes) "
            f"but it holds {len(raw) - header} bytes; {hint}."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy (frombuffer's is read-only)


def read_split(name: str, root: str | Path | None) -> tuple[np.ndarray, ...]:
    """(train images, train labels, test images, test labels) as uint8 arrays, checked against each other."""
    paths = find_files(name, root)
    train_x, test_x = read_idx(paths[0], ndim=3), read_idx(paths[2], ndim=3)
    train_y, test_y = read_idx(paths[1], ndim=1), read_idx(paths[3], ndim=1)
    pairs = ((train_x, train_y, paths[0], paths[1]), (test_x, test_y, paths[2], paths[3]))
    for images, labels, img_path, lbl_path in pairs:
        if len(images) != len(labels):
            raise DataError(f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels.")
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise DataError(f"{img_path} and {lbl_path} must hold unsigned bytes (IDX type 0x08).")
        if labels.size and labels.max() > 9:
            raise DataError(f"{lbl_path} holds label {labels.max()}, outside the classes 0..9.")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{paths[0]} has images of {train_x.shape[1:]} but {paths[2]} of {test_x.shape[1:]}.")
    return train_x, train_y, test_x, test_y


def md5(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    name: str,
    root: str | Path | None = None,
    mirror: str | None = None,
    *,
    report: Callable[[str], None] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> list[Path]:
    """Fetch the four gzipped IDX files of `name` ("mnist" or "fashion_mnist") into `root`.

    `mirror` is a base URL (or a local folder) replacing the built-in mirrors, which are tried in order.
    Files already present with the right MD5 are kept. Each file is written to a temporary file in
    `root` and renamed only once its MD5 matches, so an interrupted download never leaves a file that
    looks complete. `checksums` (file name -> MD5) replaces the built-in table (tests serve small files).
    Returns the paths of the four .gz files.
    """
    if name not in CHECKSUMS:
        raise DataError(f"cannot download unknown dataset '{name}'; choose one of: {', '.join(CHECKSUMS)}.")
    say = report or (lambda _msg: None)
    table = dict(checksums) if checksums is not None else CHECKSUMS[name]
    if mirror and "://" not in mirror:  # a local folder holding the .gz files (an offline machine)
        mirror = Path(mirror).expanduser().resolve().as_uri()
    mirrors = (mirror,) if mirror else MIRRORS[name]
    folder = resolve_root(name, root)
    created = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {folder} ({exc.strerror or exc}).") from None

    paths = []
    try:
        for filename, expected in table.items():
            target = folder / filename
            if target.is_file() and md5(target) == expected:
                say(f"{filename}: already present, checksum ok")
            else:
                _fetch(filename, expected, mirrors, target, say)
            paths.append(target)
    except BaseException:  # no network, Ctrl-C: the folders made for nothing go again (verified files stay)
        for made in created:
            try:
                made.rmdir()  # only succeeds while empty
            except OSError:
                break
        raise
    return paths


def _fetch(filename: str, expected: str, mirrors: tuple[str, ...], target: Path, say: Callable[[str], None]) -> None:
    """Download `filename` from the first mirror that serves it with MD5 `expected`; DataError if none does."""
    problems = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        say(f"{filename}: downloading {url}")
        try:
            got = _download_atomically(url, target, expected)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError/HTTPError/timeouts are OSError
            problems.append(f"{url} failed ({_reason(exc)})")
            continue
        if got == expected:
            say(f"{filename}: {target.stat().st_size / 1e6:.1f} MB, checksum ok")
            return
        problems.append(f"{url} served a file with MD5 {got} instead of {expected}")
    hint = "check the network or pass --mirror URL" if len(mirrors) > 1 else "check the URL or try another --mirror"
    raise DataError(f"could not download {filename}: {'; '.join(problems)}; {hint}.")


def _reason(exc: BaseException) -> str:
    """Short cause of a failed request: 'HTTP 404 File not found', 'timed out', 'Name or service not known'."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return str(getattr(exc, "reason", None) or exc)


def _download_atomically(url: str, target: Path, expected: str) -> str:
    """Stream `url` into a temp file beside `target`; rename it into place only if its MD5 is `expected`.

    Returns the MD5 of what was served. The temp file is removed on a mismatch and on any error, so a
    half-written or wrong file never carries the final name.
    """
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() == expected:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # no-op after a successful rename
    return digest.hexdigest()
