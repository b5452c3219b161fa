"""Finding FashionMNIST and loading its splits; never needs the real dataset."""

import numpy as np
import pytest

from study.data import datasets
from study.data.datasets import (
    ALL_FILES,
    DatasetNotFoundError,
    find_data_dir,
    load_arrays,
    load_test_arrays,
)
from study.data.fake_data import write_fake_fashion_mnist
from study.data.idx import IdxFormatError, write_idx

REAL_DOWNLOAD = datasets.download_with_torchvision  # before the fixture below stubs it out


@pytest.fixture(autouse=True)
def no_real_sources(tmp_path, monkeypatch):
    """Point the Debian and cache directories at empty places; make downloads fail."""
    monkeypatch.setenv(datasets.DEBIAN_DIR_ENV, str(tmp_path / "debian"))
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))

    def offline(cache):
        raise OSError("Error downloading:\nnetwork is unreachable (test)")

    monkeypatch.setattr(datasets, "download_with_torchvision", offline)


@pytest.fixture
def data(tmp_path):
    return write_fake_fashion_mnist(tmp_path / "data", n_train=60, n_test=20)


@pytest.mark.parametrize("gz", [False, True])
def test_explicit_dir(tmp_path, gz):
    d = write_fake_fashion_mnist(tmp_path / "d", n_train=20, n_test=10, gz=gz)
    assert find_data_dir(d) == d.resolve()
    assert find_data_dir(str(d)) == d.resolve()


def test_explicit_dir_torchvision_layout(tmp_path):
    raw = write_fake_fashion_mnist(tmp_path / "root" / "FashionMNIST" / "raw", n_train=20, n_test=10)
    assert find_data_dir(tmp_path / "root") == raw.resolve()
    x, _ = load_arrays(tmp_path / "root", "train")  # loading accepts the root too
    assert len(x) == 20


def test_explicit_dir_missing_files_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    # A valid Debian copy exists, but an explicit directory must not fall back to it.
    write_fake_fashion_mnist(tmp_path / "debian", n_train=20, n_test=10)
    assert find_data_dir() == (tmp_path / "debian").resolve()
    partial = tmp_path / "partial"
    partial.mkdir()
    write_idx(partial / "train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DatasetNotFoundError) as e:
        find_data_dir(partial)
    msg = str(e.value)
    assert f"--data-dir {partial}" in msg
    assert "missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in msg
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        find_data_dir(tmp_path / "nowhere")


def test_not_found_message_names_three_options_and_places(tmp_path):
    (tmp_path / "debian").mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        find_data_dir(allow_download=False)
    err = e.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    assert "\n" not in msg  # one paragraph
    assert "--data-dir DIR" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "internet" in msg and "torchvision" in msg
    assert str(tmp_path / "debian") in msg and str(tmp_path / "cache") in msg
    assert "downloading disabled" in msg
    for name in ALL_FILES:
        assert name in msg


def test_failed_download_falls_through_to_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download into .* failed \\(OSError: Error downloading: network") as e:
        find_data_dir()
    assert "\n" not in str(e.value)


def test_download_into_cache_is_used(tmp_path, monkeypatch):
    calls = []

    def fake_download(cache):
        calls.append(cache)
        write_fake_fashion_mnist(cache / "FashionMNIST" / "raw", n_train=20, n_test=10, gz=True)

    monkeypatch.setattr(datasets, "download_with_torchvision", fake_download)
    found = find_data_dir()
    assert found == (tmp_path / "cache" / "FashionMNIST" / "raw").resolve()
    assert calls == [tmp_path / "cache"]
    # A second lookup finds the cached copy without downloading again, even offline.
    assert find_data_dir(allow_download=False) == found
    assert len(calls) == 1


def test_debian_dir_comes_before_cache(tmp_path, monkeypatch):
    write_fake_fashion_mnist(tmp_path / "cache", n_train=20, n_test=10)
    assert find_data_dir(allow_download=False) == (tmp_path / "cache").resolve()
    write_fake_fashion_mnist(tmp_path / "debian", n_train=20, n_test=10)
    assert find_data_dir(allow_download=False) == (tmp_path / "debian").resolve()


def test_load_arrays_shapes_and_dtypes(data):
    x, y = load_arrays(data, "train")
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60,) and y.dtype == np.int64 and y.max() <= 9
    xt, yt = load_arrays(data, "test")
    assert xt.shape == (20, 28, 28) and yt.shape == (20,)
    with pytest.raises(ValueError, match="'valid'"):
        load_arrays(data, "valid")


def test_test_split_goes_through_load_test_arrays(data, monkeypatch):
    calls = []
    real = datasets.load_test_arrays
    monkeypatch.setattr(datasets, "load_test_arrays", lambda d: calls.append(d) or real(d))
    load_arrays(data, "train")
    assert calls == []
    load_arrays(data, "test")
    assert calls == [data]


def test_count_mismatch(data):
    write_idx(data / "train-labels-idx1-ubyte", np.zeros(59, np.uint8))
    with pytest.raises(IdxFormatError, match="holds 60 images but .* holds 59 labels"):
        load_arrays(data, "train")


def test_label_out_of_range(data):
    labels = np.zeros(20, np.uint8)
    labels[7] = 12
    write_idx(data / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(IdxFormatError, match="label 12 at index 7 is outside 0..9"):
        load_test_arrays(data)


def test_wrong_image_size(data):
    write_idx(data / "train-images-idx3-ubyte", np.zeros((60, 32, 32), np.uint8))
    with pytest.raises(IdxFormatError, match="images are 32x32, expected 28x28"):
        load_arrays(data, "train")


def test_labels_file_where_images_belong(data):
    write_idx(data / "train-images-idx3-ubyte", np.zeros(60, np.uint8))
    with pytest.raises(IdxFormatError, match="train-images-idx3-ubyte: magic number is 0x00000801, expected 0x00000803"):
        load_arrays(data, "train")


def test_load_from_dir_without_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="missing the test files"):
        load_test_arrays(tmp_path)


def test_download_with_torchvision_renames_into_place(tmp_path, monkeypatch):
    """The real helper, with torchvision's FashionMNIST replaced by a writer of fake files."""
    import sys
    import types

    def fake_fashion_mnist(root, train, download):
        assert download
        write_fake_fashion_mnist(f"{root}/FashionMNIST/raw", n_train=20, n_test=10)

    # `from torchvision.datasets import FashionMNIST` finds this module in sys.modules.
    monkeypatch.setitem(sys.modules, "torchvision.datasets", types.SimpleNamespace(FashionMNIST=fake_fashion_mnist))
    monkeypatch.setattr(datasets, "download_with_torchvision", REAL_DOWNLOAD)  # undo the offline stub
    monkeypatch.setattr(datasets, "_check_reachable", lambda url: None)  # as if online
    cache = tmp_path / "cache"
    assert find_data_dir() == (cache / "FashionMNIST" / "raw").resolve()
    assert sorted(p.name for p in cache.iterdir()) == ["FashionMNIST"]  # no temporary directory left


def test_without_torchvision_the_error_names_the_extra_that_installs_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # importing it raises ImportError
    monkeypatch.setattr(datasets, "download_with_torchvision", REAL_DOWNLOAD)  # undo the offline stub
    monkeypatch.setattr(datasets, "_check_reachable", lambda url: None)  # as if online
    with pytest.raises(DatasetNotFoundError) as error:
        find_data_dir()
    message = " ".join(str(error.value).split())
    assert "torchvision is not installed" in message and "pip install 'bn-dropout-study[download]'" in message


def test_an_unreachable_mirror_fails_in_seconds_before_torchvision_is_imported():
    with pytest.raises(OSError, match=r"cannot reach 127.0.0.1:1 .*offline\?"):
        datasets._check_reachable("http://127.0.0.1:1/")


def test_the_probed_mirror_is_torchvisions():
    from torchvision.datasets import FashionMNIST

    assert FashionMNIST.mirrors[0] == datasets.FASHION_MNIST_MIRROR


def test_a_plain_and_a_gzipped_copy_that_differ_are_refused_naming_both(tmp_path):
    # The plain file was used without a word; which of two datasets was meant is not ours to guess.
    import gzip
    import shutil

    d = write_fake_fashion_mnist(tmp_path / "d", n_train=20, n_test=10)
    images = d / "train-images-idx3-ubyte"
    other = write_fake_fashion_mnist(tmp_path / "other", n_train=20, n_test=10, seed=5)
    with open(other / "train-images-idx3-ubyte", "rb") as source, gzip.open(f"{images}.gz", "wb") as packed:
        shutil.copyfileobj(source, packed)
    with pytest.raises(IdxFormatError) as caught:
        load_arrays(d, "train")
    assert str(images) in str(caught.value) and f"{images}.gz" in str(caught.value) and "different data" in str(caught.value)
    with open(images, "rb") as source, gzip.open(f"{images}.gz", "wb") as packed:  # the same data twice: fine
        shutil.copyfileobj(source, packed)
    assert len(load_arrays(d, "train")[0]) == 20
