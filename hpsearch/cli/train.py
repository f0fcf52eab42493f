"""`hpsearch train MODEL`: one training run, one row of the lab's table.

    hpsearch train lenet --epochs 10 --lr 0.9 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.cli import common
from hpsearch.cli.common import positive
from hpsearch.files import write_atomic
from hpsearch.engine.config import (AUGMENTS, CROP_PAD, MOMENTUM_DEFAULTS, OPTIMIZERS,
                                    SCHEDULES, TrainConfig, check_split)

if TYPE_CHECKING:
    from hpsearch.engine.train import RunResult


def summary_line(r: RunResult) -> str:
    line = (f"{r.config.model}: total loss {r.total_loss:.4f}, total acc {r.total_acc:.4f}, "
            f"val acc {r.final_val_acc:.4f}, {r.train_seconds:.1f} s, "
            f"{r.examples_per_s:,.0f} examples/s, {r.status}")
    return line + (f" ({r.reason})" if r.reason else "")


def build_parser(prog: str = "hpsearch train") -> argparse.ArgumentParser:
    p = common.parser(
        prog,
        "Train one network once on Fashion-MNIST (one row of the lab's table). "
        "Unset hyperparameters default to the lab's baseline for that network.",
    )
    p.add_argument("model", metavar="MODEL", help="a network (`hpsearch models` lists them)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the lab's (sgd)")
    p.add_argument("--lr", type=positive(float, "--lr"), help="learning rate (> 0)")
    p.add_argument("--momentum", type=float, help=f"for {', '.join(MOMENTUM_DEFAULTS)} only")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=SCHEDULES, default="constant",
                   help="learning rate over the run: constant (the lab's), cosine, linear or "
                        "one-cycle (each of the last three ends at zero)")
    p.add_argument("--warmup", type=float, default=0.0, metavar="SHARE",
                   help="share of the run's steps over which lr first rises from 0 (default 0)")
    p.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS",
                   help="label smoothing of the training loss, in [0, 1) (default 0)")
    p.add_argument("--augment", choices=AUGMENTS, default="none",
                   help=f"training images flipped left-right at random, shifted up to "
                        f"{CROP_PAD} px (crop), or both, drawn on the device each epoch "
                        f"(default none, as the lab)")
    p.add_argument("--epochs", type=positive(int, "--epochs", 10_000))
    p.add_argument("--batch-size", type=positive(int, "--batch-size", 60_000))
    workers = common.whole("--workers", note=" (0: batches from the device, no DataLoader)")
    p.add_argument("--workers", type=workers, default=0,
                   help="DataLoader worker processes; 0 (default) keeps the data on the device")
    p.add_argument("--resize", type=positive(int, "--resize"), metavar="N",
                   help="input side in pixels (default: the network's own)")
    common.add_seed(p, help="seeds the split, the initial weights and the batch order")
    common.add_device(p)
    common.add_precision(p, "auto")
    common.add_data(p)
    p.add_argument("--json", type=Path, metavar="FILE", help="write the whole result here")
    return p


def parse_args(argv: list[str] | None, prog: str = "hpsearch train") -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run the flags ask for; what they leave out is the lab's baseline for the network
    (an unknown network is refused here, naming those there are)."""
    from hpsearch import models

    base = models.baseline(args.model)
    given = {"optimizer": args.optimizer, "lr": args.lr, "epochs": args.epochs,
             "batch_size": args.batch_size}
    chosen = {k: v if v is not None else base[k] for k, v in given.items()}
    return TrainConfig(
        model=args.model, momentum=args.momentum, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup=args.warmup, label_smoothing=args.label_smoothing,
        augment=args.augment,
        resize=args.resize, seed=args.seed, workers=args.workers,
        precision=args.precision, **chosen)


def main(argv: list[str] | None = None, prog: str = "hpsearch train") -> int:
    args = parse_args(argv, prog)
    check_split(args.val_size, args.train_subset)
    if args.json is not None:
        common.check_writable(args.json, "--json")
    from hpsearch.engine import data
    from hpsearch.engine.device import pick_device, resolve_precision
    from hpsearch.engine.train import check_config, train

    cfg = check_config(config_from_args(args))
    device = pick_device(args.device)
    precision = resolve_precision(device, cfg.precision)
    data.check_data_dir(args.data_dir)
    arrays = data.load(args.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=args.val_size, seed=args.seed,
                              train_subset=args.train_subset)
    print(f"{cfg.model} at {cfg.size}x{cfg.size} on {device} ({precision}): "
          f"{cfg.optimizer} lr {cfg.lr:g}, "
          f"{cfg.epochs} epochs, batch {cfg.batch_size}; {len(splits.train)} train / "
          f"{len(splits.val)} val images from {arrays.source}", flush=True)
    result = train(cfg, splits, device, log=lambda line: print(line, flush=True))
    print(summary_line(result))
    if args.json:
        write_atomic(args.json, json.dumps(result.to_json(), indent=2))
    return 0

