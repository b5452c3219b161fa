"""Where FashionMNIST comes from, and reading its IDX files into arrays.

Sources, in order (as docs/installing.md lists them):

1. an explicit data directory (``--data-dir``): if it lacks the files that is an
   error, never a silent fall-back to another copy;
2. the Debian package ``dataset-fashion-mnist`` (`DEBIAN_DATA_DIR`, or the
   directory in the environment variable ``STUDY_DEBIAN_DATA_DIR``);
3. torchvision's download into a cache directory (``~/.cache/bn-dropout-study``,
   or ``STUDY_DATA_CACHE``), used as is when already there; a failed download
   (no internet) just falls through to the error.

A directory holds the data when it has the four IDX files, each plain or ``.gz``,
either directly or in torchvision's layout ``<dir>/FashionMNIST/raw/``.

The test set is read by one function only, `load_test_arrays`, so a test can spy
on it to prove that only final evaluation touches the test set. Other modules
should call it as ``datasets.load_test_arrays(...)`` (not import the name) so a
monkeypatch on this module sees every call.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from study.data import idx
from study.vocabulary.errors import UserError
from study.vocabulary.factors import NUM_CLASSES

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_DIR_ENV = "STUDY_DEBIAN_DATA_DIR"
CACHE_ENV = "STUDY_DATA_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/bn-dropout-study")
TORCHVISION_SUBDIR = Path("FashionMNIST") / "raw"

# (images, labels) file names per split, without the optional ".gz".
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"]
IMAGE_SIZE = (28, 28)


class DatasetNotFoundError(FileNotFoundError, UserError):
    """FashionMNIST is in none of the places looked; the message says how to get it."""


def debian_data_dir() -> Path:
    """Where the Debian package installs the data (tests point it elsewhere via the env var)."""
    return Path(os.environ.get(DEBIAN_DIR_ENV, DEBIAN_DATA_DIR)).expanduser()


def cache_dir() -> Path:
    """Where torchvision downloads the data to, and where we look for an earlier download."""
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR)).expanduser()


def find_file(directory: Path, name: str) -> Path | None:
    """`directory/name`, or `directory/name.gz`, whichever exists (plain first); else None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _check_one_copy(path: Path) -> None:
    """`path` (the plain file `find_file` prefers) and `path.gz` beside it, when both exist, hold the same data;
    else `IdxFormatError`: which of two different datasets was meant is not ours to guess."""
    packed = path.with_name(path.name + ".gz")
    if path.name.endswith(".gz") or not packed.is_file():
        return
    if idx.read_bytes(path) != idx.read_bytes(packed):
        raise idx.IdxFormatError(
            f"{path} and {packed} are both in {path.parent} and hold different data; keep the one you mean "
            "(delete or move the other), then run the command again"
        )


def _missing(directory: Path, names: tuple[str, ...] = ALL_FILES) -> list[str]:
    return [n for n in names if find_file(directory, n) is None]


def _with_files(directory: Path, names: tuple[str, ...] = ALL_FILES) -> Path | None:
    """`directory` or its torchvision layout subdirectory, whichever has all `names`."""
    for candidate in (directory, directory / TORCHVISION_SUBDIR):
        if candidate.is_dir() and not _missing(candidate, names):
            return candidate
    return None


def _describe(directory: Path) -> str:
    """Why `directory` does not count as a data directory, for the error message."""
    if not directory.exists():
        return f"{directory} (does not exist)"
    if not directory.is_dir():
        return f"{directory} (not a directory)"
    missing = _missing(directory)
    text = f"{directory} (missing {', '.join(missing)}"
    sub = directory / TORCHVISION_SUBDIR
    if sub.is_dir():
        text += f"; {sub} is missing {', '.join(_missing(sub)) or 'nothing'}"
    return text + ")"


def _not_found(looked: list[str]) -> DatasetNotFoundError:
    # One paragraph: a user reads it in a terminal or a Ray error log.
    return DatasetNotFoundError(
        f"FashionMNIST was not found. Looked in: {'; '.join(looked)}. "
        f"A data directory needs the files {', '.join(ALL_FILES)} (each may end in .gz), "
        f"directly or under {TORCHVISION_SUBDIR}/. Get the data one of three ways: "
        f"(1) pass --data-dir DIR naming a directory that holds them; "
        f"(2) install the Debian package: `sudo apt-get install {DEBIAN_PACKAGE}` "
        f"(it installs to {DEBIAN_DATA_DIR}); "
        f"(3) run once on a machine with internet access and torchvision installed "
        f"(pip install '{DOWNLOAD_EXTRA}'), which downloads it into "
        f"{cache_dir()} (set {CACHE_ENV} to choose another cache directory)."
    )


DOWNLOAD_EXTRA = "bn-dropout-study[download]"  # pyproject.toml: torchvision, for this download only
# Where torchvision downloads FashionMNIST from (torchvision.datasets.FashionMNIST.mirrors).
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _check_reachable(url: str, timeout_s: float = 5.0) -> None:
    """Raise OSError unless a TCP connection to the URL's host opens within `timeout_s`."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise OSError(f"cannot reach {parsed.hostname}:{port} ({e}); offline?") from e


def download_with_torchvision(cache: Path) -> None:
    """Download FashionMNIST with torchvision into `cache/FashionMNIST/raw`; raise on failure.

    Downloads into a temporary directory and renames it into place, so several
    processes starting at once never see (or leave) a half-written copy.
    """
    _check_reachable(FASHION_MNIST_MIRROR)  # offline: fail in a second, not after importing torchvision
    try:
        from torchvision.datasets import FashionMNIST  # import here: only this path needs it
    except ImportError as e:
        raise ImportError(f"torchvision is not installed (an optional extra: pip install '{DOWNLOAD_EXTRA}')") from e

    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="download-", dir=cache))
    try:
        # download=True fetches all four files, whichever split is named.
        FashionMNIST(root=str(tmp), train=True, download=True)
        target = cache / TORCHVISION_SUBDIR.parent
        if not (target / "raw").is_dir():
            try:
                os.rename(tmp / TORCHVISION_SUBDIR.parent, target)
            except OSError:
                if _with_files(cache) is None:  # lost a race to a complete copy: fine
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def find_data_dir(data_dir: str | Path | None = None, allow_download: bool = True) -> Path:
    """The directory holding the four FashionMNIST IDX files, resolved to an absolute path.

    See the module docstring for the order of sources. Raises `DatasetNotFoundError`
    when none has the data, naming where it looked and the three ways to get it.
    """
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        found = _with_files(directory)
        if found is None:
            raise _not_found([f"--data-dir {_describe(directory)}"])
        return found.resolve()

    looked = []
    debian = debian_data_dir()
    found = _with_files(debian)
    if found is not None:
        return found.resolve()
    looked.append(f"Debian package directory {_describe(debian)}")

    cache = cache_dir()
    found = _with_files(cache)
    if found is None and allow_download:
        try:
            download_with_torchvision(cache)
        except Exception as e:  # offline, torchvision missing, disk full: fall through to the error
            reason = " ".join(str(e).split())  # torchvision's messages span lines; keep one paragraph
            looked.append(f"torchvision download into {cache} failed ({type(e).__name__}: {reason})")
        found = _with_files(cache)
    if found is not None:
        return found.resolve()
    looked.append(f"download cache {_describe(cache)}" + ("" if allow_download else " (downloading disabled)"))
    raise _not_found(looked)


def _read_split(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one split's images (uint8 [N, 28, 28]) and labels (int64 [N])."""
    image_name, label_name = SPLIT_FILES[split]
    directory = Path(data_dir)
    directory = _with_files(directory, (image_name, label_name)) or directory
    image_path, label_path = find_file(directory, image_name), find_file(directory, label_name)
    if image_path is None or label_path is None:
        raise _not_found([f"{directory} (missing the {split} files {image_name} or {label_name})"])

    _check_one_copy(image_path)
    _check_one_copy(label_path)
    images = idx.read_idx(image_path, ndim=3)  # [N, H, W]
    labels = idx.read_idx(label_path, ndim=1)  # [N]
    if images.shape[1:] != IMAGE_SIZE:
        raise idx.IdxFormatError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28; "
            f"this is not FashionMNIST: point --data-dir at the FashionMNIST files"
        )
    if len(images) != len(labels):
        raise idx.IdxFormatError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels; "
            f"the two files must come from the same download: download both again "
            f"(or reinstall `{DEBIAN_PACKAGE}`)"
        )
    if len(images) == 0:
        raise idx.IdxFormatError(f"{image_path} holds no images; download the files again")
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if len(bad):
        raise idx.IdxFormatError(
            f"{label_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is outside 0..{NUM_CLASSES - 1} "
            f"({len(bad)} such labels); FashionMNIST has {NUM_CLASSES} classes: download the file again "
            f"(or reinstall `{DEBIAN_PACKAGE}`)"
        )
    return images, labels.astype(np.int64)


def fingerprint(images: np.ndarray, labels: np.ndarray) -> dict:
    """What identifies a split's content wherever its files lie: image count and a SHA-256 of the decoded arrays."""
    digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
    digest.update(np.ascontiguousarray(images).tobytes())
    return {"images": int(len(images)), "sha256": digest.hexdigest()[:16]}


def load_test_arrays(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10k test images (uint8 [N, 28, 28]) and labels (int64 [N]).

    The only reader of the test set: final evaluation calls it, nothing else should.
    """
    return _read_split(data_dir, "test")


def load_arrays(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 [N, 28, 28]) and labels (int64 [N]) of `split` ("train" or "test").

    `data_dir` is a directory `find_data_dir` returned (or its torchvision root).
    The test split goes through `load_test_arrays`.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split == "test":
        return load_test_arrays(data_dir)
    return _read_split(data_dir, "train")
