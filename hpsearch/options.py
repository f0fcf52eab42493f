"""Command-line options that several commands share, defined once: the storage, the device,
the data folder and split, precision and seed. Each command builds its parser with `parser()`
(no abbreviated flags: `--job 2` must not pass for `--jobs 2`) and adds the groups it needs.

No torch here: `--help` and read-only commands must not pay for importing it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch import storage as stores
from hpsearch.cli import positive
from hpsearch.config import (DEFAULT_VAL_SIZE, MIN_SPLIT, PRECISIONS, SEED_LIMIT,
                             TRAIN_IMAGES)
from hpsearch.errors import UsageError


class Parser(argparse.ArgumentParser):
    """Bad input ends in one line (not argparse's usage block above it), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser that takes flags only as written in full."""
    return Parser(prog=prog, description=description, epilog=epilog, allow_abbrev=False)


def whole(name: str, high: int | None = None, note: str = ""):
    """argparse type: a whole number >= 0 (and < HIGH where given); NOTE says what 0 means."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}")
        if high is not None and not 0 <= value < high:
            raise argparse.ArgumentTypeError(
                f"{name} must be between 0 and {high - 1}, got {value}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be >= 0{note}, got {value}")
        return value

    return convert


def seed(name: str):
    """argparse type: a whole number 0 <= n < 2**32, as numpy's and torch's generators take."""
    return whole(name, SEED_LIMIT)


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", metavar="URL",
                   help=f"SQLAlchemy URL (default: ${stores.ENV} or {stores.DEFAULT_URL})")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda:0, ...")


def add_data(p: argparse.ArgumentParser) -> None:
    """The data folder and the split: which images train and which validate."""
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder with the four Fashion-MNIST IDX files (default: $HPSEARCH_DATA, "
                        "the prepared cache, /usr/share/datasets/fashion-mnist)")
    p.add_argument("--train-subset", type=positive(int, "--train-subset"), metavar="N",
                   help=f"train on a stratified subset of N images of the training split "
                        f"(at least {MIN_SPLIT}: one per class)")
    p.add_argument("--val-size", type=positive(int, "--val-size"), default=DEFAULT_VAL_SIZE,
                   metavar="N", help=f"validation images held out of the {TRAIN_IMAGES:,} "
                                     f"(default {DEFAULT_VAL_SIZE})")


def add_precision(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="arithmetic of convolutions and matmuls; auto: bfloat16 where the "
                        "device multiplies it natively (CUDA compute capability 8.0+, CPUs "
                        "with AMX or AVX512-BF16), float16 with loss scaling on older CUDA "
                        "GPUs, float32 elsewhere")


def add_seed(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--seed", type=seed("--seed"), default=0, help=help)


def check_split(val_size: int, train_subset: int | None) -> None:
    """Refuse split sizes that cannot give every class an image, or ask for more images than
    there are; naming the flag and the values allowed."""
    most_val = TRAIN_IMAGES - MIN_SPLIT
    if not MIN_SPLIT <= val_size <= most_val:
        raise UsageError(f"--val-size must be between {MIN_SPLIT} (one image per class) and "
                         f"{most_val}, got {val_size}")
    most_train = TRAIN_IMAGES - val_size
    if train_subset is not None and not MIN_SPLIT <= train_subset <= most_train:
        raise UsageError(f"--train-subset must be between {MIN_SPLIT} (one image per class) "
                         f"and {most_train} (the training split left by --val-size "
                         f"{val_size}), got {train_subset}")
