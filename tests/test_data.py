import gzip
import re

import pytest
import torch

from conftest import idx_bytes, write_idx_set
from hpsearch.engine import data
from hpsearch.engine.data import DataError
from hpsearch.errors import UsageError


@pytest.mark.parametrize("packed", [True, False])
def test_generated_idx_files_load_through_torchvision(tmp_path, packed):
    sums = write_idx_set(tmp_path / "src", n_train=200, n_test=50, packed=packed)
    arrays = data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)
    assert arrays.train_x.shape == (200, 28, 28) and arrays.train_x.dtype == torch.uint8
    assert arrays.test_y.shape == (50,)
    raw = idx_bytes("images", 200)
    assert arrays.train_x.flatten().tolist()[:20] == list(raw[16:36])
    assert (data.raw_dir(tmp_path / "root") / "train-images-idx3-ubyte").is_file()


def test_prepared_root_is_reused(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)
    assert data.is_prepared(tmp_path / "root", sums)
    assert data.find_source(None, tmp_path / "root", sums) == str(data.raw_dir(tmp_path / "root"))


def test_missing_file(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte.*dataset-fashion-mnist"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        data.load(tmp_path / "nowhere", root=tmp_path / "root")


def test_truncated_file(tmp_path):
    sums = write_idx_set(tmp_path / "src", packed=False)
    path = tmp_path / "src" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated: .* expected 156816"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_truncated_gzip(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    path = tmp_path / "src" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="not a valid gzip file"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_corrupt_checksum(tmp_path):
    sums = write_idx_set(tmp_path / "src", packed=False)
    path = tmp_path / "src" / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF  # one flipped pixel: same length, same header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"checksum mismatch .* expected " + sums[path.name]):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_wrong_magic(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    # A labels file where images belong.
    (tmp_path / "src" / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes("labels", 200)))
    with pytest.raises(DataError, match=r"wrong magic number 2049 \(expected 2051"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_wrong_shape(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    (tmp_path / "src" / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes("images", 50, size=32)))
    with pytest.raises(DataError, match="images are 32x32, expected 28x28"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_image_and_label_counts_must_match(tmp_path):
    sums = write_idx_set(tmp_path / "src")
    raw = idx_bytes("labels", 40)
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    sums["t10k-labels-idx1-ubyte"] = __import__("hashlib").md5(raw).hexdigest()
    with pytest.raises(DataError, match="t10k has 50 images but 40 labels"):
        data.load(tmp_path / "src", root=tmp_path / "root", checksums=sums)


def test_real_dataset_checksums_and_sizes(arrays):
    assert arrays.train_x.shape == (60_000, 28, 28)
    assert arrays.test_x.shape == (10_000, 28, 28)
    assert torch.bincount(arrays.train_y).tolist() == [6000] * 10


def test_split_is_stratified_disjoint_and_reproducible(arrays):
    train, val = data.stratified_split(arrays.train_y, 10_000, seed=3)
    assert len(train) == 50_000 and len(val) == 10_000
    assert not set(train.tolist()) & set(val.tolist())
    assert torch.bincount(arrays.train_y[val]).tolist() == [1000] * 10
    again_train, again_val = data.stratified_split(arrays.train_y, 10_000, seed=3)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    _, other = data.stratified_split(arrays.train_y, 10_000, seed=4)
    assert not torch.equal(val, other)


def test_train_subset_is_balanced_and_outside_validation(arrays):
    splits = data.make_splits(arrays, torch.device("cpu"), seed=0, train_subset=3000)
    assert len(splits.train) == 3000 and len(splits.val) == 10_000
    assert torch.bincount(splits.train.y).tolist() == [300] * 10
    assert splits.train.x.shape == (3000, 1, 28, 28) and splits.train.x.dtype == torch.uint8


def test_to_input_scales_and_resizes():
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    out = data.to_input(x, 64)
    assert out.shape == (2, 1, 64, 64) and out.dtype == torch.float32
    assert torch.allclose(out, torch.ones_like(out))


def class_counts(labels: torch.Tensor) -> list[int]:
    return torch.bincount(labels, minlength=10).tolist()


@pytest.mark.parametrize("n", [15, 10, 10_000, 59_990])
def test_validation_size_is_exact_and_balanced(arrays, n):
    train, val = data.stratified_split(arrays.train_y, n, seed=3)
    assert (len(val), len(train)) == (n, 60_000 - n)
    assert not set(train.tolist()) & set(val.tolist())
    counts = class_counts(arrays.train_y[val])
    assert min(counts) >= 1 and max(counts) - min(counts) <= 1
    assert min(class_counts(arrays.train_y[train])) >= 1  # every class left to train on


@pytest.mark.parametrize("train_subset,val_size", [(15, 15), (10, 10), (2_999, 9_999)])
def test_make_splits_gives_exactly_the_sizes_asked(arrays, train_subset, val_size):
    splits = data.make_splits(arrays, torch.device("cpu"), val_size=val_size, seed=0,
                              train_subset=train_subset)
    assert (len(splits.train), len(splits.val)) == (train_subset, val_size)
    for split in (splits.train, splits.val):
        counts = class_counts(split.y)
        assert min(counts) >= 1 and max(counts) - min(counts) <= 1, counts


def test_odd_sizes_are_seeded_and_deterministic(arrays):
    def split(seed):
        return data.make_splits(arrays, torch.device("cpu"), val_size=15, seed=seed,
                                train_subset=15)

    a, b, c = split(1), split(1), split(2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    # Which five classes get a second validation image is drawn from the seed too.
    assert class_counts(a.val.y) != class_counts(c.val.y)


VAL_RANGE = "between 10 (one image per class) and 59990 (one image per class left to train on)"
TRAIN_RANGE = "between 10 (one image per class) and 50000 (all the images it is drawn from)"


@pytest.mark.parametrize("kw,message", [
    (dict(val_size=9), f"val_size must be {VAL_RANGE}, got 9"),
    (dict(val_size=3), f"val_size must be {VAL_RANGE}, got 3"),
    (dict(val_size=60_000), f"val_size must be {VAL_RANGE}, got 60000"),
    (dict(train_subset=3), f"train_subset must be {TRAIN_RANGE}, got 3"),
    (dict(train_subset=50_001), f"train_subset must be {TRAIN_RANGE}, got 50001"),
    (dict(val_subset=9), "val_subset must be between 10 (one image per class) and 10000 "
                         "(all the images it is drawn from), got 9"),
])
def test_impossible_sizes_are_refused(arrays, kw, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        data.make_splits(arrays, torch.device("cpu"), **kw)


def test_apportion_is_exact_proportional_and_gives_every_group_one():
    assert data.apportion(15, [5] * 10, ties=[9, 0, 1, 2, 3, 4, 5, 6, 7, 8]) == \
        [2, 2, 2, 2, 1, 1, 1, 1, 1, 2]  # ties: the first five groups in TIES get the extras
    assert data.apportion(20, [100] + [3] * 9, ties=list(range(10))) == [11] + [1] * 9
    assert data.apportion(10, [1] * 10, ties=list(range(10))) == [1] * 10
    assert data.apportion(7, [2, 4, 8], ties=[0, 1, 2]) == [1, 2, 4]
