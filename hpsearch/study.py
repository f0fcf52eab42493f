"""Run an Optuna study over one network's search space.

    python -m hpsearch.study resnet --trials 40
    python -m hpsearch.study lenet --trials 20 --train-subset 10000 --max-epochs 5
    python -m hpsearch.study lab-lenet          # the lab's one-factor-at-a-time runs

The study lives in the storage (SQLite file hpsearch.db by default): stop it at any time, run
the same command again, and it continues.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from hpsearch import artifacts, data, models, notes, space as spaces, storage as stores
from hpsearch.cli import positive, run_main
from hpsearch.errors import UsageError
from hpsearch.objective import Diverged, Objective
from hpsearch.train import PRECISIONS, pick_device

SAMPLERS = ("tpe", "random", "grid", "qmc", "cmaes", "gp")
PRUNERS = ("median", "hyperband", "successive-halving", "none")
STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TWO_OBJECTIVES = ("maximize", "minimize")  # val accuracy, training seconds


def find_space_file(name: str, given: Path | None) -> Path:
    """--space, else studies/NAME.toml in the working directory, else the one shipped here."""
    if given is not None:
        return given
    for folder in (Path("studies"), STUDIES_DIR):
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    known = sorted(p.stem for p in STUDIES_DIR.glob("*.toml"))
    raise UsageError(f"no search space for {name!r} (looked for studies/{name}.toml); "
                     f"known: {', '.join(known)}; or pass --space FILE")


def make_sampler(name: str, seed: int | None, space: spaces.Space) -> optuna.samplers.BaseSampler:
    """Optuna's samplers, with defaults for CNN studies of tens of trials."""
    if name == "tpe":
        # multivariate + group: the space is conditional (parameters per optimizer);
        # constant_liar: parallel workers do not all propose the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True,
                                          group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {}
        for p in space.params:
            if not isinstance(p.distribution, optuna.distributions.CategoricalDistribution):
                raise UsageError(f"the grid sampler needs choices for every parameter; "
                                 f"{p.name} in {space.path} is a range")
            if p.optimizers is not None:
                raise UsageError(f"the grid sampler cannot search {p.name}, which exists only for "
                                 f"some optimizers; use tpe or random")
            grid[p.name] = list(p.distribution.choices)
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.GPSampler(seed=seed)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Steps are 1-based epochs. The median pruner judges a trial from its first epoch on, once
    3 trials have completed: a trial whose best val accuracy so far is below the median of the
    completed trials at the same epoch stops. Most of what it saves is trials at chance from
    the first epoch on; waiting for 5 trials and sparing epoch 1 trained 211 of the unpruned
    study's 303 epochs in scripts/bench, these settings 172-182 (BENCHMARKS.md)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 2),
                                              reduction_factor=3)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def default_pruner(space: spaces.Space) -> str:
    """Median for searches; none for lab studies, whose rows are the lab's table: each row's
    total loss and accuracy are over all of its epochs, so it must run to the last."""
    return "none" if space.is_lab else "median"


def max_epochs_of(space: spaces.Space) -> int:
    """The most epochs any trial of SPACE can train (for Hyperband's resource)."""
    most = space.fixed.get("epochs", 1)
    for p in space.params:
        if p.field == "epochs":
            d = p.distribution
            most = max(most, max(d.choices) if hasattr(d, "choices") else d.high)
    return max([most] + [r["epochs"] for r in space.lab_rows])


def study_setup(args: argparse.Namespace, space: spaces.Space) -> dict:
    """What makes trials of one study comparable; stored with the study, checked on resume."""
    return {"network": space.network, "space": str(space.path.name), "seed": args.seed,
            "train_subset": args.train_subset, "val_size": args.val_size,
            "resize": space.fixed.get("resize"), "max_epochs": args.max_epochs,
            "precision": space.fixed.get("precision", "auto"),
            "objectives": "accuracy,time" if args.two_objectives else "accuracy"}


def sampler_seed(args: argparse.Namespace) -> int:
    return args.seed if args.sampler_seed is None else args.sampler_seed


def open_study(args: argparse.Namespace, storage, space: spaces.Space) -> optuna.Study:
    setup = study_setup(args, space)
    directions = list(TWO_OBJECTIVES) if args.two_objectives else ["maximize"]
    study = optuna.create_study(
        study_name=args.study_name, storage=storage, load_if_exists=True,
        pruner=make_pruner(args.pruner, max_epochs_of(space)), directions=directions)
    # Mix the trials already there into the seed: a resumed study (or a worker joining late)
    # must not replay the random start-up proposals of an earlier run, while a fresh study
    # stays reproducible. SeedSequence mixes, so (seed, n) pairs do not collide as seed + n would.
    seed = int(np.random.SeedSequence([sampler_seed(args), len(study.trials)]).generate_state(1)[0])
    study.sampler = make_sampler(args.sampler, seed, space)
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", setup)
        study.set_metric_names(["val_accuracy", "train_seconds"][:len(directions)])
        stored = setup
    stored = {"precision": "auto", **stored}  # studies from before --precision ran "auto"
    if stored != setup:
        diff = ", ".join(f"{k}: stored {stored.get(k)!r}, now {setup[k]!r}"
                         for k in setup if stored.get(k) != setup[k])
        raise UsageError(f"study {args.study_name!r} in {storage.url} was run with other "
                         f"settings ({diff}); use the same options, or a new --study-name")
    notes.add_study_note(study, space)  # what it searches, shown by optuna-dashboard
    return study


def enqueue_lab_rows(study: optuna.Study, space: spaces.Space) -> int:
    """Queue each lab row that has no finished, running or waiting trial; return how many
    rows are still to run. A trial cut short by Ctrl-C is queued again on the next run."""
    states = FINISHED + (TrialState.RUNNING, TrialState.WAITING)
    done = {t.user_attrs.get("lab_row") for t in study.get_trials(deepcopy=False, states=states)}
    for i, (row, label) in enumerate(zip(space.lab_rows, space.lab_labels)):
        if i not in done:
            study.enqueue_trial(row, user_attrs={"lab_row": i, "lab_label": label})
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def trial_line(study: optuna.Study, t: FrozenTrial) -> str:
    """One line per finished trial: number, state, value, seconds, params, best so far."""
    seconds = t.duration.total_seconds() if t.duration else 0.0
    if t.state == TrialState.COMPLETE:
        value = " ".join(f"{v:.4f}" for v in t.values)
    elif t.state == TrialState.PRUNED and t.intermediate_values:
        value = f"{t.intermediate_values[max(t.intermediate_values)]:.4f}"
    else:
        value = "-"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    line = f"trial {t.number:>3} {t.state.name:<8} value {value}  {seconds:6.1f} s  {params}"
    reason = t.user_attrs.get("reason")
    if reason:
        line += f"  [{reason}]"
    return line + "  | " + best_phrase(study)


def best_phrase(study: optuna.Study) -> str:
    try:
        best = study.best_trials
    except ValueError:
        best = []
    if not best:
        return "no completed trial yet"
    if len(study.directions) > 1:
        return f"Pareto front: {len(best)} trials"
    return f"best: trial {best[0].number} ({best[0].value:.4f})"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class _HideDiverged(logging.Filter):
    """Optuna logs a failed trial with its traceback; a diverged run is an expected outcome,
    already reported on our own trial line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], Diverged))


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.get_logger("optuna").addFilter(_HideDiverged())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hpsearch.study",
        description="Run (or continue) an Optuna study of one network on Fashion-MNIST.",
        epilog="NAME is a network (lenet, alexnet, vgg, resnet, alexnet_small, net28) searched "
               "over studies/NAME.toml, or a lab study (lab-lenet, lab-alexnet, lab-vgg, "
               "lab-resnet) that runs the lab's one-factor-at-a-time configurations.")
    p.add_argument("name", metavar="NAME", help="network or lab study")
    p.add_argument("--trials", type=positive(int, "--trials"), metavar="N",
                   help="trials to run in this invocation (default: 10; lab studies: the rows "
                        "not yet run)")
    p.add_argument("--total-trials", type=positive(int, "--total-trials"), metavar="N",
                   help="stop once the study holds N finished (complete or pruned) trials, "
                        "counting those of earlier runs and other workers")
    p.add_argument("--timeout", type=positive(float, "--timeout"), metavar="SECONDS",
                   help="stop starting trials after this many seconds")
    p.add_argument("--storage", metavar="URL",
                   help=f"SQLAlchemy URL (default: $HPSEARCH_STORAGE or {stores.DEFAULT_URL})")
    p.add_argument("--study-name", help="default: NAME")
    p.add_argument("--space", type=Path, metavar="FILE", help="default: studies/NAME.toml")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--pruner", choices=PRUNERS,
                   help="default: median; none for lab studies, whose rows are the lab's "
                        "table and run to their last epoch")
    p.add_argument("--two-objectives", action="store_true",
                   help="maximise val accuracy and minimise training seconds (a Pareto front; "
                        "no pruning)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and training (and the "
                   "sampler, unless --sampler-seed is given)")
    p.add_argument("--sampler-seed", type=int, metavar="N",
                   help="seed of the sampler; parallel workers need different ones, or they "
                        "propose the same trials (--devices/--jobs and scripts/worker see to it)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda:0, ...")
    p.add_argument("--train-subset", type=positive(int, "--train-subset"), metavar="N",
                   help="train every trial on a stratified subset of N training images")
    p.add_argument("--val-size", type=positive(int, "--val-size"), default=10_000)
    p.add_argument("--resize", type=positive(int, "--resize"), metavar="N",
                   help="input side in pixels (default: the network's own)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="arithmetic of every trial's convolutions and matmuls (default: the "
                        "space's, else auto: bfloat16 on CUDA and on CPUs that multiply it "
                        "natively, float32 elsewhere)")
    p.add_argument("--max-epochs", type=positive(int, "--max-epochs"), metavar="N",
                   help="cap every trial's epochs (clips the space's epoch range)")
    p.add_argument("--data-dir", type=Path, help="folder with the four Fashion-MNIST IDX files")
    p.add_argument("--heartbeat", type=positive(int, "--heartbeat"),
                   default=stores.HEARTBEAT_SECONDS, metavar="SECONDS",
                   help=f"trial heartbeat interval; a trial silent for "
                        f"{stores.GRACE_SECONDS // stores.HEARTBEAT_SECONDS}x this is failed and "
                        f"retried (default {stores.HEARTBEAT_SECONDS})")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines, only per-trial")
    p.add_argument("--devices", metavar="LIST",
                   help="start one worker process per device, e.g. cuda:0,cuda:1 or cpu,cpu; "
                        "all join this study through the storage")
    p.add_argument("--jobs", type=positive(int, "--jobs"), default=1, metavar="K",
                   help="worker processes per device (trials at a time on each; default 1)")
    p.add_argument("--threads", type=positive(int, "--threads"), metavar="N",
                   help="torch CPU threads of this process (default: all cores for one "
                        "process; cores / workers when --devices or --jobs start several)")
    p.add_argument("--tag", help=argparse.SUPPRESS)  # set by the parent on each worker's lines
    args = p.parse_args(argv)
    args.study_name = args.study_name or args.name
    if args.devices is not None:
        args.devices = [d.strip() for d in args.devices.split(",") if d.strip()]
        if not args.devices:
            p.error("--devices needs at least one device, e.g. cuda:0,cuda:1")
        if "--device" in (argv or sys.argv[1:]):
            p.error("give --device or --devices, not both")
    return args


def load_space(args: argparse.Namespace) -> spaces.Space:
    space = spaces.load(find_space_file(args.name, args.space))
    given = {k: v for k, v in (("resize", args.resize), ("precision", args.precision))
             if v is not None}
    if given:
        space = spaces.Space(space.path, space.network, space.params, {**space.fixed, **given},
                             space.lab_rows, space.lab_labels)
    models.check_size(space.network, space.fixed.get("resize") or
                      models.spec(space.network).default_size)
    if args.max_epochs is not None:
        space = spaces.cap_epochs(space, args.max_epochs)
    return space


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    quiet_optuna()
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM ends like Ctrl-C
    space = load_space(args)  # a bad file stops here, before the storage is touched
    args.pruner = args.pruner or default_pruner(space)
    url = stores.resolve_url(args.storage)
    storage = stores.open_storage(url, heartbeat=args.heartbeat)
    if args.devices or args.jobs > 1:
        # The parent creates the study (so workers never race to create tables or the study),
        # then only waits for its workers.
        study = open_study(args, storage, space)
        if space.is_lab:
            enqueue_lab_rows(study, space)
        return run_workers(args, argv, url)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    arrays = data.load(args.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=args.val_size, seed=args.seed,
                              train_subset=args.train_subset)
    study = open_study(args, storage, space)
    n_trials = args.trials
    if space.is_lab:
        pending = enqueue_lab_rows(study, space)
        n_trials = n_trials or pending
    elif n_trials is None and args.total_trials is None:
        n_trials = 10
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    plan = [f"{n_trials} more trials"] if n_trials is not None else []
    if args.total_trials:
        plan.append(f"until {args.total_trials} are finished")
    print(f"study {study.study_name!r} ({space.network}, {space.path}) in {url}: "
          f"{finished} finished trials so far; running {', at most '.join(plan)}"
          + f" on {device}, {len(splits.train)} train / {len(splits.val)} val images",
          flush=True)

    tag = f"[{args.tag}] " if args.tag else ""
    log = None if args.quiet else (lambda line: print(f"    {tag}{line}", flush=True))
    objective = Objective(space, splits, device, args.seed, args.two_objectives, log,
                          artifact_store=artifacts.open_store(url))
    grace = stores.grace_for(args.heartbeat)
    # Optuna collects garbage after each trial (a pruned trial's traceback keeps its network
    # alive); freezing what lives for the whole run (modules, data, storage) takes it out of
    # those collections: 0.16 s a trial down to nothing.
    gc.freeze()
    start = time.perf_counter()
    try:
        run_trials(study, objective, n_trials, args.total_trials, args.timeout, grace,
                   stores.TrialClaim(url, study.study_name),
                   report=lambda s, t: print(tag + trial_line(s, t), flush=True))
    except KeyboardInterrupt:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print(f"\ninterrupted: {finished} finished trials are safe in {url}; "
              f"run the same command to continue", file=sys.stderr)
        return 130
    if not args.tag:
        print(f"\n{time.perf_counter() - start:.1f} s; " + summary(study, url))
    return 0


def run_trials(study: optuna.Study, objective: Objective, n_trials: int | None,
               total: int | None, timeout: float | None, grace: int,
               claim: stores.TrialClaim, report) -> None:
    """Run trials one at a time until N_TRIALS ran here, TIMEOUT passed, or the study holds
    TOTAL finished trials, counting those of every worker on the storage.

    Before each trial the worker takes CLAIM and counts finished and running trials: it starts
    one only if they leave room under TOTAL, and lets go of CLAIM once that trial is RUNNING,
    so a group of workers lands on TOTAL rather than overshooting by the trials in flight (as
    MaxTrialsCallback alone would). While the rest of the total is running elsewhere it waits:
    a worker that dies leaves its trial to go stale, and Optuna then fails it and queues a
    retry (RetryHeartbeatStaleTrialCallback), which a live worker runs.
    """
    deadline = time.monotonic() + timeout if timeout else None

    def started(trial: optuna.Trial):
        claim.release()  # the trial is RUNNING in the storage: the next count sees it
        return objective(trial)

    ran = 0
    while n_trials is None or ran < n_trials:
        if deadline is not None and time.monotonic() >= deadline:
            return
        try:
            if total is not None:
                claim.acquire()
                optuna.storages.fail_stale_trials(study)
                counts = {s: len(study.get_trials(deepcopy=False, states=(s,)))
                          for s in FINISHED + (TrialState.RUNNING, TrialState.WAITING)}
                finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
                if finished >= total:
                    break
                if (finished + counts[TrialState.RUNNING] >= total
                        and not counts[TrialState.WAITING]):
                    claim.release()
                    time.sleep(1)  # the rest is in flight elsewhere; see whether it lands
                    continue
            study.optimize(started, n_trials=1, callbacks=[report], catch=(Diverged,),
                           gc_after_trial=True)
        finally:
            claim.release()
        ran += 1
    sweep_stale_trials(study, grace)


def sweep_stale_trials(study: optuna.Study, grace: int) -> None:
    """Wait (at most GRACE + 1 s) for RUNNING trials to finish or go stale, failing the stale
    ones through Optuna. Optuna checks for stale trials only when a trial starts, so without
    this a worker killed near the end would leave its trial RUNNING once the others stop."""
    deadline = time.monotonic() + grace + 1
    while time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(1)


def split_trials(n: int | None, workers: int) -> list[int | None]:
    """N trials shared out among WORKERS as evenly as possible (None: no per-worker count)."""
    if n is None:
        return [None] * workers
    return [n // workers + (i < n % workers) for i in range(workers)]


def worker_argv(argv: list[str], device: str, threads: int, trials: int | None,
                tag: str, seed: int) -> list[str]:
    """ARGV without the flags that start workers or count this invocation's trials, plus this
    worker's device, thread count, share of the trials, sampler seed and tag."""
    drop = {"--devices", "--jobs", "--trials", "--threads", "--sampler-seed"}
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in drop:
            skip = True
            continue
        if arg.split("=", 1)[0] in drop:
            continue
        out.append(arg)
    out += ["--device", device, "--threads", str(threads), "--tag", tag, "--sampler-seed", str(seed)]
    return out + (["--trials", str(trials)] if trials is not None else [])


def run_workers(args: argparse.Namespace, argv: list[str], url: str) -> int:
    """One process per device and job, each `python -m hpsearch.study` on the same storage.
    CPU threads are shared out so that workers x threads does not exceed the cores."""
    devices = args.devices or [args.device]
    slots = [(d, j) for d in devices for j in range(args.jobs)]
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(slots))
    shares = split_trials(args.trials, len(slots))
    if args.trials is None and args.total_trials is None:
        shares = split_trials(10, len(slots))
    print(f"starting {len(slots)} workers ({', '.join(devices)} x {args.jobs} jobs, "
          f"{threads} threads each) on {url}", flush=True)
    procs = []
    for i, ((device, _), n) in enumerate(zip(slots, shares)):
        if n == 0:
            continue
        cmd = [sys.executable, "-m", "hpsearch.study",
               *worker_argv(argv, device, threads, n, f"w{i} {device}",
                            sampler_seed(args) * 1000 + i)]
        procs.append(subprocess.Popen(cmd))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        print(f"\ninterrupted: finished trials are safe in {url}; "
              "run the same command to continue", file=sys.stderr)
        return 130
    study = optuna.load_study(study_name=args.study_name, storage=url)
    print("\n" + summary(study, url))
    failed = [c for c in codes if c != 0]
    return failed[0] if failed else 0


def summary(study: optuna.Study, url: str) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    lines = [f"study {study.study_name!r}: " +
             ", ".join(f"{n} {k}" for k, n in counts.items() if n)]
    try:
        best = study.best_trials
    except ValueError:
        best = []
    for t in best if len(study.directions) > 1 else best[:1]:
        values = ", ".join(f"{v:.4f}" for v in t.values)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
        lines.append(f"best trial {t.number}: {values} with {params}")
    if not best:
        lines.append("no completed trial yet")
    lines.append(f"storage: {url}")
    lines.append(f"export:  python -m hpsearch.export {study.study_name} --storage {url}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_main(main))
