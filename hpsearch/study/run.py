"""One study process: load the space, open the storage, and either start worker processes or
be the worker: load the data, open the study, run the trial loop, print what happened."""

from __future__ import annotations

import gc
import sys
import time

import optuna
import torch

from hpsearch import artifacts, data, space as spaces, storage as stores
from hpsearch.objective import Objective
from hpsearch.study import output, workers
from hpsearch.study.loop import Limits, StopFlag, run_trials
from hpsearch.study.options import StudyOptions
from hpsearch.study.resume import FINISHED, load_space, open_study, trials_for_run, with_precision
from hpsearch.train import pick_device, resolve_precision


def run(opts: StudyOptions) -> int:
    """The whole command after parsing; returns the exit status."""
    stop = StopFlag().install()
    output.quiet_optuna()
    space = load_space(opts)  # a bad file stops here, before the storage is touched
    storage = stores.open_storage(opts.storage, heartbeat=opts.heartbeat)
    if opts.starts_workers:
        return workers.run_workers(opts, space, storage, stop)
    return run_worker(opts, space, storage, stop)


def resolved(space: spaces.Space, device: torch.device) -> spaces.Space:
    """SPACE with "auto" (or the space's) precision replaced by what DEVICE runs."""
    return with_precision(space, resolve_precision(device, space.fixed.get("precision", "auto")))


def start_line(opts: StudyOptions, study: optuna.Study, space: spaces.Space, limits: Limits,
               device: torch.device, splits: data.Splits) -> str:
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    plan = [f"{limits.trials} more trials"] if limits.trials is not None else []
    if limits.total:
        plan.append(f"until {limits.total} are finished")
    return (f"study {study.study_name!r} ({space.network}, {space.path}) in "
            f"{stores.redact(opts.storage)}: {finished} finished trials so far; running "
            f"{', at most '.join(plan)} on {device} ({space.fixed['precision']}), "
            f"{len(splits.train)} train / {len(splits.val)} val images")


def run_worker(opts: StudyOptions, space: spaces.Space, storage, stop: StopFlag) -> int:
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = pick_device(opts.device)
    space = resolved(space, device)
    arrays = data.load(opts.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=opts.val_size, seed=opts.seed,
                              train_subset=opts.train_subset)
    study = open_study(opts, storage, space)
    claim = stores.TrialClaim(opts.storage, study.study_name)
    limits = Limits(trials_for_run(opts, study, space, claim), opts.total_trials, opts.timeout)
    print(start_line(opts, study, space, limits, device, splits), flush=True)
    tag = f"[{opts.tag}] " if opts.tag else ""
    log = None if opts.quiet else (lambda line: print(f"    {tag}{line}", flush=True))
    objective = Objective(space, splits, device, opts.seed, opts.two_objectives, log,
                          artifact_store=artifacts.open_store(opts.storage), should_stop=stop)
    # Optuna collects garbage after each trial (a pruned trial's traceback keeps its network
    # alive); freezing what lives for the whole run (modules, data, storage) takes it out of
    # those collections: 0.16 s a trial down to nothing.
    gc.freeze()
    start = time.perf_counter()
    if run_trials(study, objective, limits, stores.grace_for(opts.heartbeat), claim,
                  report=lambda s, t: print(tag + output.trial_line(s, t), flush=True),
                  stop=stop):
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print("\n" + output.interrupted_line(opts.storage, finished), file=sys.stderr)
        return 130
    if not opts.tag:
        print(f"\n{time.perf_counter() - start:.1f} s; " + output.summary(study, opts.storage))
    return 0
