"""IDX reading and writing, and the synthetic dataset writer."""

import gzip
import struct

import numpy as np
import pytest

from study.data.datasets import SPLIT_FILES, load_arrays
from study.data.fake_data import class_templates, write_fake_fashion_mnist
from study.data.idx import IdxFormatError, read_idx, write_idx


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_round_trip_images(tmp_path, images, name):
    path = write_idx(tmp_path / name, images)
    out = read_idx(path, ndim=3)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)
    assert out.flags.writeable  # torch.from_numpy must not warn about read-only memory


def test_round_trip_labels_gz_is_compressed(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "l-idx1-ubyte.gz", labels)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path, ndim=1), labels)
    np.testing.assert_array_equal(read_idx(path), labels)  # ndim=None accepts labels


def test_gzip_detected_by_magic_not_suffix(tmp_path, images):
    gz = write_idx(tmp_path / "a.gz", images)
    renamed = gz.rename(tmp_path / "no-suffix-idx3-ubyte")
    np.testing.assert_array_equal(read_idx(renamed), images)
    plain = write_idx(tmp_path / "plain", images).rename(tmp_path / "plain-but-named.gz")
    np.testing.assert_array_equal(read_idx(plain), images)


def _raw(magic: int, dims: tuple, payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def test_wrong_magic_names_file_found_and_expected(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(_raw(0x12345678, (1,), b"\x00"))
    with pytest.raises(IdxFormatError) as e:
        read_idx(path, ndim=3)
    msg = str(e.value)
    assert str(path) in msg and "0x12345678" in msg and "0x00000803" in msg
    assert "dataset-fashion-mnist" in msg  # says what to do


def test_wrong_element_type(tmp_path):
    path = tmp_path / "float-idx1-ubyte"
    path.write_bytes(_raw(0x00000D01, (2,), b"\x00" * 8))  # 0x0D = float32
    with pytest.raises(IdxFormatError, match="element type byte is 0x0d"):
        read_idx(path)


def test_wrong_number_of_dims(tmp_path):
    labels = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(IdxFormatError, match="dimension count is 1, expected 3"):
        read_idx(labels, ndim=3)
    two_d = tmp_path / "two-d"
    two_d.write_bytes(_raw(0x00000802, (2, 2), b"\x00" * 4))
    with pytest.raises(IdxFormatError, match="dimension count is 2"):
        read_idx(two_d)  # neither images nor labels


def test_truncated_file(tmp_path, images):
    path = write_idx(tmp_path / "t", images)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IdxFormatError, match=r"truncated: header says shape 5x28x28 = 3920 bytes of data, found 3910"):
        read_idx(path)


def test_too_long_file(tmp_path, images):
    path = write_idx(tmp_path / "t", images)
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00")
    with pytest.raises(IdxFormatError, match="too long \\(3 extra bytes\\)"):
        read_idx(path)


def test_truncated_gzip(tmp_path, images):
    path = write_idx(tmp_path / "t.gz", images)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxFormatError, match="gzip data is corrupt or truncated"):
        read_idx(path)


def test_short_header(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(IdxFormatError, match="holds 0 bytes"):
        read_idx(path)
    path.write_bytes(struct.pack(">I", 0x00000803) + b"\x00\x00")  # dims cut short
    with pytest.raises(IdxFormatError, match="too short for its 16-byte header"):
        read_idx(path)


def test_write_idx_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        write_idx(tmp_path / "x", np.zeros((28, 28), np.uint8))


def test_gzip_output_is_reproducible(tmp_path, images):
    a = write_idx(tmp_path / "a.gz", images).read_bytes()
    b = write_idx(tmp_path / "b.gz", images).read_bytes()
    assert a == b and gzip.decompress(a)[:4] == b"\x00\x00\x08\x03"


# --- synthetic dataset ------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_fake_dataset_files_and_balance(tmp_path, gz):
    d = write_fake_fashion_mnist(tmp_path, n_train=105, n_test=20, seed=3, gz=gz)
    suffix = ".gz" if gz else ""
    for split in ("train", "test"):
        for name in SPLIT_FILES[split]:
            assert (d / f"{name}{suffix}").is_file()
    x, y = load_arrays(d, "train")
    assert x.shape == (105, 28, 28) and y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert counts.min() >= 10 and counts.max() <= 11


def test_fake_dataset_is_seeded(tmp_path):
    a = load_arrays(write_fake_fashion_mnist(tmp_path / "a", 50, 10, seed=1), "train")[0]
    b = load_arrays(write_fake_fashion_mnist(tmp_path / "b", 50, 10, seed=1), "train")[0]
    c = load_arrays(write_fake_fashion_mnist(tmp_path / "c", 50, 10, seed=2), "train")[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fake_dataset_is_learnable(tmp_path):
    """Classes are separable: nearest class mean (fit on train) classifies test images."""
    d = write_fake_fashion_mnist(tmp_path, n_train=300, n_test=100, seed=0)
    x, y = load_arrays(d, "train")
    xt, yt = load_arrays(d, "test")
    means = np.stack([x[y == c].astype(np.float32).mean(0) for c in range(10)])  # [10, 28, 28]
    dist = ((xt[:, None].astype(np.float32) - means[None]) ** 2).sum(axis=(2, 3))  # [N, 10]
    assert (dist.argmin(1) == yt).mean() > 0.9
    # Templates keep clear of the border, so a 2-pixel crop shift keeps the object.
    t = class_templates(0)
    assert t[:, :3].max() == 0 and t[:, :, -3:].max() == 0 and t.max() == 1.0
