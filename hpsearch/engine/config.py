"""What one training run is, in plain values: the config, the names each field may take, the
chance-level rule, and the `python -m hpsearch.train` command that reproduces a config.

Nothing here imports torch, so read-only commands (reports, --help) stay quick.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from hpsearch.errors import UsageError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
# Learning-rate schedules over a run's steps (engine/train.lr_factor): constant; cosine, linear
# (to zero at the run's last step) and one-cycle (up over the first 30%, then down to zero).
SCHEDULES = ("constant", "cosine", "linear", "one-cycle")
# Augmentation of the training images, drawn per image and epoch on the device
# (engine/batches.augment): a horizontal flip with probability 1/2, a random crop of the image
# padded by CROP_PAD pixels on each side (a shift of up to CROP_PAD in x and y), or both.
AUGMENTS = ("none", "flip", "crop", "crop-flip")
CROP_PAD = 2  # pixels, on the 28x28 images before any resize
# Arithmetic of convolutions and matmuls. "auto" resolves per device (engine/device.py):
# bfloat16 where the hardware multiplies it natively, float16 with loss scaling on CUDA GPUs
# that only have float16 tensor cores, float32 elsewhere.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Optimizers whose momentum can be set, and the value used when it is not given.
MOMENTUM_DEFAULTS = {"momentum": 0.9, "nesterov": 0.9, "rmsprop": 0.0}
CLASSES = 10  # Fashion-MNIST's classes
CHANCE = 1.0 / CLASSES
CHANCE_MARGIN = 0.05  # a best val accuracy below CHANCE + this is "stuck at chance"
TRAIN_IMAGES = 60_000  # Fashion-MNIST's training images, split into train and validation
DEFAULT_VAL_SIZE = 10_000  # validation images held out of them
MIN_SPLIT = CLASSES  # the smallest split that gives every class an image
SEED_LIMIT = 2**32  # seeds are 0 <= seed < this (numpy's and torch's generators take them)


@dataclass(frozen=True)
class TrainConfig:
    model: str
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float | None = None  # None: MOMENTUM_DEFAULTS, or none at all for plain sgd/adam*
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 256
    schedule: str = "constant"
    warmup: float = 0.0  # share of the run's steps over which lr rises linearly from 0 first
    label_smoothing: float = 0.0  # of the training loss's targets (0: plain cross-entropy)
    augment: str = "none"  # one of AUGMENTS (the lab's: none)
    resize: int | None = None  # input side in pixels; None: the network's default
    seed: int = 0
    workers: int = 0  # > 0: feed batches through a DataLoader with this many worker processes
    precision: str = "auto"  # one of PRECISIONS

    @property
    def size(self) -> int:
        from hpsearch import models  # torch: only where a run is built

        return self.resize or models.spec(self.model).default_size


def at_chance(best_val_acc: float) -> bool:
    """A run whose best val accuracy stays within CHANCE_MARGIN of 1/10 learned nothing."""
    return best_val_acc < CHANCE + CHANCE_MARGIN


def train_command(cfg: TrainConfig, train_subset: int | None = None,
                  val_size: int = DEFAULT_VAL_SIZE) -> str:
    """The `python -m hpsearch.train` line that trains CFG on the same split."""
    defaults = TrainConfig(model=cfg.model)
    args = ["python", "-m", "hpsearch.train", cfg.model, "--optimizer", cfg.optimizer,
            "--lr", repr(cfg.lr), "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size)]
    if cfg.momentum is not None:
        args += ["--momentum", repr(cfg.momentum)]
    if cfg.weight_decay:
        args += ["--weight-decay", repr(cfg.weight_decay)]
    if cfg.schedule != defaults.schedule:
        args += ["--schedule", cfg.schedule]
    if cfg.warmup:
        args += ["--warmup", repr(cfg.warmup)]
    if cfg.label_smoothing:
        args += ["--label-smoothing", repr(cfg.label_smoothing)]
    if cfg.augment != defaults.augment:
        args += ["--augment", cfg.augment]
    if cfg.resize is not None:
        args += ["--resize", str(cfg.resize)]
    if cfg.workers:
        args += ["--workers", str(cfg.workers)]
    if cfg.precision != defaults.precision:
        args += ["--precision", cfg.precision]
    args += ["--seed", str(cfg.seed)]
    if train_subset is not None:
        args += ["--train-subset", str(train_subset)]
    if val_size != DEFAULT_VAL_SIZE:
        args += ["--val-size", str(val_size)]
    return shlex.join(args)


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
