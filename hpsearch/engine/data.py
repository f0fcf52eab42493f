"""Fashion-MNIST: find the IDX files, verify them, load them through torchvision, split them,
and serve batches as index slices of one uint8 tensor that lives on the training device.

Sources, in order (see `find_source`): a folder the user names (`--data-dir` / HPSEARCH_DATA),
an already prepared root, Debian's /usr/share/datasets/fashion-mnist, torchvision's download.
"Prepared" means the four decompressed IDX files sit in ROOT/FashionMNIST/raw, where
torchvision's `FashionMNIST` class reads them, and their md5 sums match.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from hpsearch.errors import UsageError
from hpsearch.files import write_atomic

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SIZE = 28  # pixels per side of a stored image

# md5 of the *decompressed* files, as published by Zalando and listed in the foundation issue.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# IDX magic numbers: 0x0803 = unsigned bytes, 3 dimensions; 0x0801 = unsigned bytes, 1 dimension.
_MAGIC = {"images": 2051, "labels": 2049}

HOW_TO_GET = (
    "Get a good copy: on Debian run 'apt-get install --reinstall dataset-fashion-mnist' "
    f"(files land in {DEBIAN_DIR}), or download the four .gz files from "
    "https://github.com/zalandoresearch/fashion-mnist and pass their folder with --data-dir."
)


class DataError(UsageError):
    """A dataset file is missing or bad; the message names the file and how to get a good copy."""


def cache_dir() -> Path:
    """What hpsearch keeps between runs on this machine: $HPSEARCH_CACHE, else
    ~/.cache/hpsearch."""
    return Path(os.environ.get("HPSEARCH_CACHE") or Path.home() / ".cache" / "hpsearch")


def default_root() -> Path:
    """Where prepared (decompressed, verified) files are kept between runs."""
    return cache_dir() / "data"


def _kind(name: str) -> str:
    return "images" if "images" in name else "labels"


def _read_source(folder: Path, name: str) -> tuple[Path, bytes]:
    """Bytes of NAME from FOLDER, decompressed if only NAME.gz is there."""
    plain, packed = folder / name, folder / (name + ".gz")
    if plain.is_file():
        return plain, plain.read_bytes()
    if packed.is_file():
        try:
            return packed, gzip.decompress(packed.read_bytes())
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{packed}: not a valid gzip file ({err}). {HOW_TO_GET}") from None
    raise DataError(f"{folder}: missing {name} (or {name}.gz). {HOW_TO_GET}")


def check_idx(path: Path, name: str, data: bytes, md5: str | None) -> int:
    """Validate one IDX file's header, length and checksum; return its item count.

    Header: 4-byte big-endian magic, then one 4-byte size per dimension (items[, rows, cols]).
    """
    kind = _kind(name)
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != _MAGIC[kind]:
        raise DataError(
            f"{path}: wrong magic number {magic} (expected {_MAGIC[kind]} for IDX {kind}); "
            f"this is not a Fashion-MNIST {kind} file. {HOW_TO_GET}"
        )
    ndim = 3 if kind == "images" else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header ({len(data)} bytes). {HOW_TO_GET}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise DataError(
            f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}. {HOW_TO_GET}"
        )
    expected = header + dims[0] * (IMAGE_SIZE * IMAGE_SIZE if kind == "images" else 1)
    if len(data) != expected:
        word = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: {word}: {len(data)} bytes, expected {expected} for {dims[0]} {kind}. "
            f"{HOW_TO_GET}"
        )
    if md5 is not None:
        got = hashlib.md5(data).hexdigest()
        if got != md5:
            raise DataError(
                f"{path}: checksum mismatch (md5 {got} of the decompressed data, expected {md5}); "
                f"the file is corrupt or not the original. {HOW_TO_GET}"
            )
    return dims[0]


def raw_dir(root: Path) -> Path:
    """The folder torchvision's FashionMNIST class reads: ROOT/FashionMNIST/raw."""
    return Path(root) / "FashionMNIST" / "raw"


def _check_counts(counts: dict[str, int], where: Path) -> None:
    for split in ("train", "t10k"):
        images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if images != labels:
            raise DataError(
                f"{where}: {split} has {images} images but {labels} labels; they must match. "
                f"{HOW_TO_GET}"
            )


def prepare(source: Path, root: Path, checksums: dict[str, str | None]) -> None:
    """Verify the four files in SOURCE (plain or .gz) and write them decompressed into ROOT."""
    target = raw_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, md5 in checksums.items():
        path, data = _read_source(Path(source), name)
        counts[name] = check_idx(path, name, data, md5)
        dest = target / name
        if Path(path).resolve() != dest.resolve():
            write_atomic(dest, data)  # a crash never leaves a half-written prepared file
    _check_counts(counts, Path(source))


def is_prepared(root: Path, checksums: dict[str, str | None]) -> bool:
    """True when ROOT already holds the four decompressed files with the right checksums."""
    folder = raw_dir(root)
    if not all((folder / name).is_file() for name in checksums):
        return False
    try:
        prepare(folder, root, checksums)
    except DataError:
        return False
    return True


def find_source(data_dir: Path | None, root: Path, checksums: dict[str, str | None]) -> str:
    """Make ROOT prepared from the first source that exists; return a phrase naming the source.

    A folder the user named is used or refused, never silently skipped.
    """
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"{data_dir}: no such folder (given as the data folder). {HOW_TO_GET}")
        prepare(Path(data_dir), root, checksums)
        return str(data_dir)
    if is_prepared(root, checksums):
        return str(raw_dir(root))
    if DEBIAN_DIR.is_dir():
        prepare(DEBIAN_DIR, root, checksums)
        return str(DEBIAN_DIR)
    return _download(root, checksums)


def check_data_dir(data_dir: Path | None, checksums: dict[str, str | None] = FASHION_MNIST_MD5,
                   flag: str = "--data-dir") -> None:
    """The preflight of a named data folder (DATA_DIR, else $HPSEARCH_DATA): it exists and
    holds the four files, plain or .gz; their contents are verified when they are loaded. With
    no folder named there is nothing to check here (load finds or downloads the files)."""
    if data_dir is None and env_data_dir() is not None:
        data_dir, flag = env_data_dir(), "$HPSEARCH_DATA"
    if data_dir is None:
        return
    folder = Path(data_dir)
    try:
        folder.stat()
    except OSError as err:
        if err.errno != errno.ENOENT:  # a name too long, a loop of links: the system says
            raise DataError(f"{flag} {folder}: {err.strerror}. {HOW_TO_GET}") from None
    if not folder.is_dir():
        raise DataError(f"{flag} {folder}: no such folder. {HOW_TO_GET}")
    missing = [name for name in checksums
               if not (folder / name).is_file() and not (folder / (name + ".gz")).is_file()]
    if missing:
        raise DataError(f"{flag} {folder}: missing {', '.join(missing)} (or .gz). {HOW_TO_GET}")


def _download(root: Path, checksums: dict[str, str | None]) -> str:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(root), train=True, download=True)
    except Exception as err:  # network errors come in many types; all mean the same here
        raise DataError(
            f"Fashion-MNIST is not on this machine and torchvision could not download it ({err}). "
            f"{HOW_TO_GET}"
        ) from None
    prepare(raw_dir(root), root, checksums)
    return "torchvision download"


@dataclass(frozen=True)
class FashionMNISTArrays:
    """The whole dataset on the CPU: images uint8 [N, 28, 28], labels int64 [N]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str


def load(
    data_dir: Path | None = None,
    root: Path | None = None,
    checksums: dict[str, str | None] = FASHION_MNIST_MD5,
) -> FashionMNISTArrays:
    """Prepare Fashion-MNIST (see module doc) and load it through torchvision's dataset class."""
    from torchvision.datasets import FashionMNIST

    root = Path(root) if root is not None else default_root()
    source = find_source(data_dir, root, checksums)
    train = FashionMNIST(str(root), train=True, download=False)
    test = FashionMNIST(str(root), train=False, download=False)
    return FashionMNISTArrays(train.data, train.targets, test.data, test.targets, source)


def apportion(n: int, sizes: list[int], ties: list[int]) -> list[int]:
    """N items shared exactly among groups of SIZES (each >= 1) in proportion to the sizes,
    every group at least one: a group whose proportional share is below one gets one, and the
    others share what is left, until every share is at least one; then by largest remainder
    (Hamilton's method), equal remainders first to the group that comes first in TIES (a
    permutation of the group numbers). No group gets more than its size.
    Needs len(sizes) <= n <= sum(sizes)."""
    shares = [1] * len(sizes)
    groups = list(range(len(sizes)))
    while True:
        left, total = n - (len(sizes) - len(groups)), sum(sizes[g] for g in groups)
        small = {g for g in groups if left * sizes[g] < total}  # share left * size / total < 1
        if not small:
            break
        groups = [g for g in groups if g not in small]
    # Integer quotients and remainders of left * size / total: exact, so ties are true ties.
    quotients = {g: divmod(left * sizes[g], total) for g in groups}
    for g, (q, _) in quotients.items():
        shares[g] = q
    rank = {group: i for i, group in enumerate(ties)}
    by_remainder = sorted(groups, key=lambda g: (-quotients[g][1], rank[g]))
    for g in by_remainder[:left - sum(q for q, _ in quotients.values())]:
        shares[g] += 1
    return shares


def _shuffled_classes(labels: torch.Tensor, seed: int) -> tuple[list[torch.Tensor], list[int]]:
    """Each class's indices into LABELS in a seeded random order, and a seeded order of the
    classes that breaks apportion's ties. The ties are drawn last so that the per-class orders
    (and with them every split whose sizes divide evenly) are those of earlier versions."""
    gen = torch.Generator().manual_seed(seed)
    members = []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        members.append(idx[torch.randperm(len(idx), generator=gen)])
    ties = torch.randperm(len(members), generator=gen).tolist()
    return members, ties


def stratified_split(
    labels: torch.Tensor, n_val: int, seed: int, name: str = "validation size"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of range(len(labels)) into (train, validation) index tensors, validation of
    exactly N_VAL items; both hold every class, in the proportions of the whole as near as
    whole items allow (apportion). NAME: what N_VAL is called in an error."""
    members, ties = _shuffled_classes(labels, seed)
    k, n = len(members), len(labels)
    if min(len(m) for m in members) < 2:
        raise UsageError(f"every class needs at least 2 images to appear on both sides of a "
                         f"split; these labels have a class with {min(len(m) for m in members)}")
    if not k <= n_val <= n - k:
        raise UsageError(f"{name} must be between {k} (one image per class) and "
                         f"{n - k} (one image per class left to train on), got {n_val}")
    # Each class keeps one image back for training; validation shares the rest.
    shares = apportion(n_val, [len(m) - 1 for m in members], ties)
    val = torch.cat([m[:share] for m, share in zip(members, shares)])
    train = torch.cat([m[share:] for m, share in zip(members, shares)])
    return train.sort().values, val.sort().values


def stratified_subset(index: torch.Tensor, labels: torch.Tensor, n: int, seed: int,
                      name: str = "subset size") -> torch.Tensor:
    """A seeded subset of exactly N entries of INDEX (sorted) that holds every class of
    LABELS[INDEX], in their proportions as near as whole items allow (apportion). NAME: what N
    is called in an error."""
    members, ties = _shuffled_classes(labels[index], seed)
    if not len(members) <= n <= len(index):
        raise UsageError(f"{name} must be between {len(members)} (one image per class) and "
                         f"{len(index)} (all the images it is drawn from), got {n}")
    shares = apportion(n, [len(m) for m in members], ties)
    # Each class's last SHARE, as subsets were taken before sizes were exact, so that a subset
    # whose size divides evenly keeps the images it always had.
    keep = torch.cat([m[len(m) - share:] for m, share in zip(members, shares)])
    return index[keep.sort().values]


@dataclass(frozen=True)
class Split:
    """One split on the training device: images uint8 [N, 1, 28, 28], labels int64 [N]."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split


def make_splits(
    arrays: FashionMNISTArrays,
    device: torch.device,
    val_size: int = 10_000,
    seed: int = 0,
    train_subset: int | None = None,
    val_subset: int | None = None,
) -> Splits:
    """Seeded, stratified train/validation split of the 60,000 training images, moved once to
    DEVICE: exactly VAL_SIZE validation images (VAL_SUBSET of them when given) and the rest to
    train on (exactly TRAIN_SUBSET of them when given). The test images are not touched here."""
    train_idx, val_idx = stratified_split(arrays.train_y, val_size, seed, "val_size")
    if train_subset is not None:
        train_idx = stratified_subset(train_idx, arrays.train_y, train_subset, seed,
                                      "train_subset")
    if val_subset is not None:
        val_idx = stratified_subset(val_idx, arrays.train_y, val_subset, seed, "val_subset")
    return Splits(_to_split(arrays.train_x, arrays.train_y, train_idx, device),
                  _to_split(arrays.train_x, arrays.train_y, val_idx, device))


def test_split(arrays: FashionMNISTArrays, device: torch.device) -> Split:
    """The 10,000 test images: only for evaluating what a study exports."""
    return _to_split(arrays.test_x, arrays.test_y, torch.arange(len(arrays.test_y)), device)


def _to_split(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, device: torch.device) -> Split:
    return Split(x[idx].unsqueeze(1).contiguous().to(device), y[idx].to(device))


def to_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, 1, 28, 28] -> float [B, 1, size, size] in [0, 1], on x's device.

    Same as the lab's transforms.Resize + ToTensor for upscaling (bilinear, no antialias needed).
    """
    out = x.float().div_(255.0)
    if size != x.shape[-1]:
        out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)
    return out


def env_data_dir() -> Path | None:
    """The data folder named by HPSEARCH_DATA, if any."""
    value = os.environ.get("HPSEARCH_DATA")
    return Path(value) if value else None
