"""`hpsearch study NAME` (= `python -m hpsearch.study NAME`): run or continue an Optuna study.

    hpsearch study resnet --trials 40
    hpsearch study lenet --trials 20 --train-subset 10000 --max-epochs 5
    hpsearch study lab-lenet          # the lab's one-factor-at-a-time runs

The study lives in the storage (SQLite file hpsearch.db by default): stop it at any time, run
the same command again, and it continues.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch.cli import common
from hpsearch.cli.common import duration, positive
from hpsearch.engine.config import check_split
from hpsearch.study.defaults import PRUNERS, SAMPLERS
from hpsearch.study.options import DEFAULT_TRIALS, FLAGS, StudyOptions, from_fields
from hpsearch.study.defaults import HEARTBEAT_SECONDS, grace_for


def build_parser(prog: str = "hpsearch study") -> argparse.ArgumentParser:
    p = common.parser(
        prog,
        "Run (or continue) an Optuna study of one network on Fashion-MNIST.",
        epilog="NAME is a network (lenet, alexnet, vgg, resnet, alexnet_small, net28) searched "
               "over its search space (studies/NAME.toml here, else the one shipped), or a lab study (lab-lenet, lab-alexnet, lab-vgg, "
               "lab-resnet) that runs the lab's one-factor-at-a-time configurations.")
    p.add_argument("name", metavar="NAME", help="network or lab study")
    _add_extent(p)
    _add_search(p)
    _add_fidelity(p)
    _add_workers(p)
    return p


def _add_extent(p: argparse.ArgumentParser) -> None:
    """How many trials, for how long, in which study."""
    p.add_argument("--trials", type=positive(int, "--trials"), metavar="N",
                   help=f"trials to run in this invocation (default: {DEFAULT_TRIALS}; lab "
                        "studies: the rows not yet run)")
    p.add_argument("--total-trials", type=positive(int, "--total-trials"), metavar="N",
                   help="stop once the study holds N finished (complete or pruned) trials, "
                        "counting those of earlier runs and other workers")
    p.add_argument("--timeout", type=positive(float, "--timeout"), metavar="SECONDS",
                   help="stop starting trials after this many seconds")
    p.add_argument("--budget", type=duration("--budget"), metavar="DURATION",
                   help="wall-clock time for the whole study (90s, 30m, 2h, 1h30m): it picks "
                        "its fidelity (training images, input size, epoch cap) so that about "
                        "20 trials fit, never starts a trial predicted to end past it and stops "
                        "one that would overrun; a resumed study spends what is left")
    p.add_argument("--confirm", action="store_true",
                   help="after the search, re-train its 3 best configurations and the lab's "
                        "baseline over 3 fresh seeds (python -m hpsearch.confirm); with "
                        "--budget, the search leaves the predicted time for it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the study's plan (fidelity, seconds per trial and in all) and "
                        "exit, touching no storage")
    common.add_storage(p)
    p.add_argument("--study-name", metavar="NAME", help="default: NAME")
    p.add_argument("--heartbeat", type=positive(int, "--heartbeat", 3600),
                   default=HEARTBEAT_SECONDS, metavar="SECONDS",
                   help=f"trial heartbeat interval; a trial silent for "
                        f"{grace_for(1)}x this is failed and retried "
                        f"(default {HEARTBEAT_SECONDS})")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines, only per-trial")
    p.add_argument("--tag", help=argparse.SUPPRESS)  # set by the parent on each worker's lines


def _add_search(p: argparse.ArgumentParser) -> None:
    """What is searched and how."""
    p.add_argument("--space", type=Path, metavar="FILE", help="default: studies/NAME.toml here, else the one hpsearch ships")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="default: the space file's [search] sampler, else tpe")
    p.add_argument("--pruner", choices=PRUNERS,
                   help="default: the space file's [search] pruner, else median; none for lab "
                        "studies, whose rows are the lab's table and run to their last epoch. "
                        "epoch-median: the median rule against trials of the same epoch "
                        "budget, never in a trial's last 30%%")
    p.add_argument("--warmup-epochs", type=common.whole("--warmup-epochs"), metavar="N",
                   help="the pruner never judges a trial's first N epochs (default: the space "
                        "file's [search] warmup_epochs, counted in epochs of 50,000 images: "
                        "as many images seen at a subset; else 0)")
    p.add_argument("--two-objectives", action="store_true",
                   help="maximise val accuracy and minimise training seconds (a Pareto front; "
                        "no pruning)")
    common.add_seed(p, "seeds the split and training (and the sampler, unless "
                        "--sampler-seed is given)")
    p.add_argument("--warm-start", metavar="STUDY[,STUDY...]",
                   help="seed a new study from finished studies of the same network in this "
                        "storage: their best configurations are queued after the baseline, "
                        "and their trials copied in for the sampler and pruner where they "
                        "trained on the same data")
    p.add_argument("--sampler-seed", type=common.seed("--sampler-seed"), metavar="N",
                   help="seed of the sampler; parallel workers need different ones, or they "
                        "propose the same trials (--devices/--jobs and scripts/worker see to it)")


def _add_fidelity(p: argparse.ArgumentParser) -> None:
    """What every trial trains on: data, input size, epochs, arithmetic."""
    common.add_data(p)
    p.add_argument("--resize", type=positive(int, "--resize"), metavar="N",
                   help="input side in pixels (default: the network's own)")
    p.add_argument("--max-epochs", type=positive(int, "--max-epochs", 10_000), metavar="N",
                   help="cap every trial's epochs (clips the space's epoch range)")
    common.add_precision(p, None)


def _add_workers(p: argparse.ArgumentParser) -> None:
    """Where trials run: one device here, or several worker processes."""
    common.add_device(p)
    p.add_argument("--devices", metavar="LIST",
                   help="start one worker process per device, e.g. cuda:0,cuda:1 or cpu,cpu; "
                        "all join this study through the storage")
    p.add_argument("--jobs", type=positive(int, "--jobs", 256), default=1, metavar="K",
                   help="worker processes per device (trials at a time on each; default 1)")
    p.add_argument("--threads", type=positive(int, "--threads", 1024), metavar="N",
                   help="torch CPU threads of this process (default: all cores for one "
                        "process; cores / workers when --devices or --jobs start several; "
                        "1 per Ray worker on CPU nodes, which then hold one worker per core)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the workers as tasks on a Ray cluster: auto (the one `ray start` "
                        "made here, or $RAY_ADDRESS), HOST:PORT, ray://HOST:10001, or local (a "
                        "Ray instance started for this study on this machine); on GPUs --jobs "
                        "K puts K workers on each GPU")
    p.add_argument("--max-concurrent", type=positive(int, "--max-concurrent"), metavar="N",
                   help="with --ray: at most N workers at once (default: what the cluster holds)")


def parse_with_source(argv: list[str] | None,
                      prog: str = "hpsearch study") -> tuple[StudyOptions, str]:
    """Parse and check ARGV: (options, what named the storage); a bad value exits 2
    (argparse) or raises UsageError."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    devices = ()
    if args.devices is not None:
        devices = tuple(d.strip() for d in args.devices.split(",") if d.strip())
        if not devices:
            p.error("--devices needs at least one device, e.g. cuda:0,cuda:1")
        if args.device != "auto":
            p.error("give --device or --devices, not both")
    if args.ray is not None and devices:
        p.error("give --ray or --devices, not both: on Ray, the cluster's resources place the "
                "workers (--jobs K per GPU, --threads N cores per CPU worker)")
    if args.ray is not None and not args.ray.strip():
        p.error("--ray needs an address: auto, HOST:PORT, ray://HOST:10001 or local")
    if args.ray is not None and args.device not in ("auto", "cpu", "cuda"):
        p.error(f"--device {args.device} with --ray: Ray picks each worker's GPU; give "
                "--device auto, cpu or cuda")
    if args.max_concurrent is not None and args.ray is None:
        p.error("--max-concurrent caps Ray workers; give it with --ray")
    if args.two_objectives and args.pruner not in (None, "none"):
        p.error(f"--pruner {args.pruner} cannot judge a two-objective study (Optuna prunes "
                "one objective only); leave --pruner out or give none")
    warm = ()
    if args.warm_start is not None:
        warm = tuple(dict.fromkeys(n.strip() for n in args.warm_start.split(",") if n.strip()))
        if not warm:
            p.error("--warm-start needs study names, e.g. --warm-start lenet-2m")
        if args.name.startswith("lab-"):
            p.error(f"--warm-start seeds a search; {args.name} runs the lab's rows as they were")
    check_split(args.val_size, args.train_subset)
    values = {k: v for k, v in vars(args).items() if k in FLAGS}
    url, source = common.storage_url(args.storage)
    return from_fields(args.name, {**values, "devices": devices, "warm_start": warm,
                                   "study_name": args.study_name or args.name,
                                   "url": url}), source


def parse(argv: list[str] | None, prog: str = "hpsearch study") -> StudyOptions:
    """The options of ARGV (parse_with_source without the source)."""
    return parse_with_source(argv, prog)[0]


def main(argv: list[str] | None = None, prog: str = "hpsearch study") -> int:
    opts, source = parse_with_source(argv, prog)  # light: --help, bad flags import no torch
    from hpsearch.cli.terminal import Terminal
    from hpsearch.study.run import run

    code = run(opts, source, Terminal())
    if code == 0 and opts.extent.confirm and not opts.dry_run and not opts.tag:
        confirm_winner(opts)  # a worker's parent (or the Ray driver) confirms once all are done
    return code


def confirm_winner(opts: StudyOptions) -> None:
    """--confirm: `hpsearch confirm`'s defaults on the study just searched, on the first device
    the search used (the CPU for a Ray driver)."""
    from hpsearch.cli.confirm import run_confirmation
    from hpsearch.study import plan as plans, storage as stores

    where, place = opts.store, opts.placement
    storage = stores.open_storage(where.url, heartbeat=where.heartbeat)
    study = stores.load_study(where.study_name, storage)
    device = "cpu" if place.ray else (place.devices or (place.device,))[0]
    print()
    run_confirmation(study, storage, plans.CONFIRM_TOP, plans.CONFIRM_SEEDS, False, device,
                     place.data_dir, opts.quiet)
