"""Device-resident splits, their per-process cache, normalisation, augmentation, batches."""

import numpy as np
import pytest
import torch

from study.data import datasets

from study.data import device_data

from study.data import idx
from study.vocabulary.config import DataConfig
from study.data.device_data import (
    ERASE_FILL,
    MEAN,
    STD,
    augment,
    batch_indices,
    load_full_train_and_test,
    load_split,
    normalize,
    random_erase,
)
from study.data.fake_data import write_fake_fashion_mnist

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_cache():
    device_data.clear_cache()
    yield
    device_data.clear_cache()


@pytest.fixture
def data(tmp_path):
    return write_fake_fashion_mnist(tmp_path / "data", n_train=200, n_test=50, seed=0)


@pytest.fixture
def read_calls(monkeypatch):
    """Record every IDX file read."""
    calls = []
    real = idx.read_idx

    def spy(path, ndim=None):
        calls.append(path.name)
        return real(path, ndim)

    monkeypatch.setattr(idx, "read_idx", spy)
    return calls


@pytest.fixture
def no_test_reads(monkeypatch):
    def forbidden(d):
        raise AssertionError("the test set was read")

    monkeypatch.setattr(datasets, "load_test_arrays", forbidden)


def test_load_split_shapes_and_stratification(data, no_test_reads):
    s = load_split(DataConfig(data_dir=str(data), val_size=40), CPU)
    assert s.n_train == 160 and s.n_val == 40
    assert s.train_x.shape == (160, 1, 28, 28) and s.train_x.dtype == torch.uint8
    assert s.val_y.dtype == torch.int64 and s.train_x.device == CPU
    assert torch.bincount(s.val_y, minlength=10).tolist() == [4] * 10
    assert np.intersect1d(s.train_idx, s.val_idx).size == 0
    # The tensors are the rows the indices name.
    images, labels = datasets.load_arrays(data, "train")
    np.testing.assert_array_equal(s.val_x[:, 0].numpy(), images[s.val_idx])
    np.testing.assert_array_equal(s.train_y.numpy(), labels[s.train_idx])


def test_train_size_subsets_train_part_only(data):
    full = load_split(DataConfig(data_dir=str(data), val_size=40), CPU)
    small = load_split(DataConfig(data_dir=str(data), val_size=40, train_size=50), CPU)
    assert small.n_train == 50 and np.isin(small.train_idx, full.train_idx).all()
    assert torch.bincount(small.train_y, minlength=10).tolist() == [5] * 10
    np.testing.assert_array_equal(small.val_idx, full.val_idx)  # same validation set
    with pytest.raises(ValueError, match="train_size=161 exceeds the 160 images"):
        load_split(DataConfig(data_dir=str(data), val_size=40, train_size=161), CPU)


def test_val_size_too_large(data):
    with pytest.raises(ValueError, match="val_size=6000 .* 200 images"):
        load_split(DataConfig(data_dir=str(data)), CPU)


def test_folds_cover_training_set(data):
    vals = []
    for fold in range(4):
        s = load_split(DataConfig(data_dir=str(data), fold=fold, n_folds=4), CPU)
        assert s.n_val == 50 and s.n_train == 150
        assert torch.bincount(s.val_y, minlength=10).tolist() == [5] * 10
        vals.append(s.val_idx)
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), np.arange(200))
    sub = load_split(DataConfig(data_dir=str(data), fold=0, n_folds=4, train_size=30), CPU)
    assert sub.n_train == 30 and np.array_equal(sub.val_idx, vals[0])


def test_load_split_cache(data, read_calls):
    cfg = DataConfig(data_dir=str(data), val_size=40)
    first = load_split(cfg, CPU)
    assert sorted(read_calls) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    second = load_split(DataConfig(data_dir=str(data), val_size=40), "cpu")
    assert second is first and second.train_x is first.train_x
    assert len(read_calls) == 2  # not reread
    other = load_split(DataConfig(data_dir=str(data), val_size=20), CPU)
    assert other is not first and other.n_val == 20
    assert len(read_calls) == 2  # a new split of the cached arrays
    device_data.clear_cache()
    load_split(cfg, CPU)
    assert len(read_calls) == 4


def test_full_train_and_test_reads_test_through_one_function(data, monkeypatch):
    calls = []
    real = datasets.load_test_arrays
    monkeypatch.setattr(datasets, "load_test_arrays", lambda d: calls.append(d) or real(d))
    s = load_full_train_and_test(str(data), CPU)
    assert calls == [data.resolve()]
    assert s.n_train == 200 and s.n_val == 50 and s.val_idx is None
    assert s.val_x.shape == (50, 1, 28, 28)


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    out = normalize(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    # (torch.allclose, not torch.testing.assert_close: the latter's first call imports for seconds.)
    assert torch.allclose(out.flatten(), torch.tensor([-MEAN / STD, (1 - MEAN) / STD]))


# --- augmentation -----------------------------------------------------------


def _object_images(n, seed=0):
    """uint8 [n, 1, 28, 28] random content kept 2 pixels away from the border."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 2:-2, 2:-2] = torch.randint(1, 256, (n, 1, 24, 24), generator=g, dtype=torch.uint8)
    return x


def _candidates(img):
    """All 25 crop offsets x 2 flips of one [1, 28, 28] image, by a slow reference."""
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
    out = []
    for dy in range(5):
        for dx in range(5):
            crop = padded[:, dy : dy + 28, dx : dx + 28]
            out += [(dy, dx, False, crop), (dy, dx, True, crop.flip(-1))]
    return out


def test_augment_matches_reference_and_varies_per_sample():
    x = _object_images(64)
    before = x.clone()
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device
    assert torch.equal(x, before)  # input untouched
    used = set()
    for img, aug in zip(x, out):
        matches = [(dy, dx, f) for dy, dx, f, c in _candidates(img) if torch.equal(c, aug)]
        assert len(matches) == 1  # each output is exactly one crop+flip of its input
        used.add(matches[0])
    assert len(used) > 20  # samples draw their own transforms
    flips = sum(f for _, _, f in used)
    assert 0 < flips < len(used)
    # Content 2 pixels from the border survives any shift: pixel sums are kept.
    assert torch.equal(out.sum(dim=(1, 2, 3), dtype=torch.int64), x.sum(dim=(1, 2, 3), dtype=torch.int64))


def test_augment_same_image_gets_different_transforms():
    x = _object_images(1).repeat(32, 1, 1, 1)
    out = augment(x, torch.Generator().manual_seed(1))
    assert len({bytes(o.numpy()) for o in out}) > 10


def test_augment_seeded():
    x = _object_images(16)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_flip_keeps_columns_reversed():
    # A single bright column at x=10 lands at column 10+s (no flip) or 17-s (flip), s in -2..2.
    x = torch.zeros(256, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 5:20, 10] = 200
    out = augment(x, torch.Generator().manual_seed(0))
    cols = out.amax(dim=(1, 2)).argmax(dim=1)  # [B] column of the bar
    assert set(cols.tolist()) == set(range(8, 13)) | set(range(15, 20))
    assert out.sum(dim=(1, 2, 3), dtype=torch.int64).eq(15 * 200).all()


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \[B, C, H, W\], got shape \(28, 28\)"):
        augment(torch.zeros(28, 28, dtype=torch.uint8), torch.Generator())
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator is on cpu"):
            augment(torch.zeros(1, 1, 28, 28, dtype=torch.uint8, device="cuda"), torch.Generator())


# --- batches ----------------------------------------------------------------


def test_batch_indices_cover_once_last_partial():
    batches = batch_indices(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert torch.cat(batches).tolist() != list(range(10))  # shuffled


def test_batch_indices_seeded_and_unshuffled():
    a = torch.cat(batch_indices(100, 32, torch.Generator().manual_seed(5)))
    b = torch.cat(batch_indices(100, 32, torch.Generator().manual_seed(5)))
    c = torch.cat(batch_indices(100, 32, torch.Generator().manual_seed(6)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    ordered = batch_indices(5, 2, shuffle=False)
    assert [b.tolist() for b in ordered] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        batch_indices(5, 0, shuffle=False)
    with pytest.raises(ValueError, match="needs a generator"):
        batch_indices(5, 2)


def test_random_erasing_erases_one_rectangle_in_about_p_of_the_images():
    x = torch.full((4000, 1, 28, 28), 255, dtype=torch.uint8)
    before = x.clone()
    out = random_erase(x, torch.Generator().manual_seed(0), p=0.5)
    assert torch.equal(x, before) and out.shape == x.shape and out.dtype == torch.uint8
    erased = out != 255  # [B, 1, H, W]: where the mean pixel went
    assert torch.all(out[erased] == ERASE_FILL)
    hit = erased.flatten(1).any(1)
    assert abs(hit.float().mean().item() - 0.5) < 0.03  # 4,000 draws: sd 0.008
    for mask in erased[hit][:200, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # one solid rectangle: its bounding box is all erased
        assert mask.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    areas = erased[hit].flatten(1).sum(1).float() / (28 * 28)
    assert areas.max() <= 0.34 + 1e-6 and areas.min() >= 0.01  # 2-33% drawn; clipped to the image, rounded
    assert 0.14 < areas.mean() < 0.19  # a uniform area in [0.02, 0.33] has mean 0.175 (less what clipping cuts)


def test_random_erasing_never_erases_at_p_zero_and_always_at_p_one():
    x = _object_images(64)
    assert torch.equal(random_erase(x, torch.Generator().manual_seed(1), p=0.0), x)
    all_erased = random_erase(x, torch.Generator().manual_seed(1), p=1.0)
    assert (all_erased == ERASE_FILL).flatten(1).any(1).all()
