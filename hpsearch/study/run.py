"""One study process: load the space, open the storage, and either start worker processes or
be the worker: plan the study, load the data, open the study, run the trial loop, print what
happened."""

from __future__ import annotations

import gc
import sys
import time

import optuna
import torch

from hpsearch import artifacts, data, space as spaces, storage as stores
from hpsearch.cli import fmt_seconds
from hpsearch.objective import Objective
from hpsearch.study import bars, budget as budgets, output, plan as plans, workers
from hpsearch.study.loop import Limits, StopFlag, run_trials
from hpsearch.study.options import DEFAULT_TRIALS, StudyOptions
from hpsearch.study.output import FINISHED
from hpsearch.study.resume import (enqueue_baseline, load_space, open_study,
                                   trials_for_run)
from hpsearch.train import pick_device, resolve_precision


def run(opts: StudyOptions) -> int:
    """The whole command after parsing; returns the exit status."""
    started = time.monotonic()
    stop = StopFlag().install()
    output.quiet_optuna()
    space = load_space(opts)  # a bad file stops here, before the storage is touched
    if opts.dry_run:
        return dry_run(opts, space)
    if opts.ray is not None:  # the storage is opened once the cluster is found fit for it
        from hpsearch.study import ray_driver

        return ray_driver.run_on_ray(opts, space, stop)
    storage = stores.open_storage(opts.storage, heartbeat=opts.heartbeat)
    if opts.starts_workers:
        return workers.run_workers(opts, space, storage, stop)
    return run_worker(opts, space, storage, stop, started)


def planned_trials(opts: StudyOptions, space: spaces.Space) -> int | None:
    """The trials the plan counts: --trials, the lab's rows, else a total or the default
    (None when a budget or timeout alone ends the study)."""
    if opts.trials is not None:
        return opts.trials
    if space.is_lab:
        return len(space.lab_rows)
    if opts.total_trials is not None:
        return opts.total_trials
    return None if opts.budget else DEFAULT_TRIALS


def dry_run(opts: StudyOptions, space: spaces.Space) -> int:
    """Print the plan; no storage is opened, no data loaded, nothing trained but the few
    timed steps of the cost model."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = pick_device((opts.devices or (opts.device,))[0])
    precision = resolve_precision(device, space.fixed.get("precision", "auto"))
    prepared = budgets.prepare(opts, space, device, precision, None,
                               planned_trials(opts, space))
    print(budgets.plan_text(prepared, device, opts.budget))
    print("dry run: nothing stored, nothing trained")
    return 0


def start_line(opts: StudyOptions, study: optuna.Study, space: spaces.Space, limits: Limits,
               device: torch.device, splits: data.Splits) -> str:
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    plan = [f"{limits.trials} more trials"] if limits.trials is not None else []
    if limits.total:
        plan.append(f"until {limits.total} are finished")
    if limits.deadline is not None:
        plan.append(f"for {fmt_seconds(limits.deadline - time.monotonic())}")
    return (f"study {study.study_name!r} ({space.network}, {space.path}) in "
            f"{stores.redact(opts.storage)}: {finished} finished trials so far; running "
            f"{', at most '.join(plan)} on {device} ({space.fixed['precision']}), "
            f"{len(splits.train)} train / {len(splits.val)} val images")


def run_worker(opts: StudyOptions, space: spaces.Space, storage, stop: StopFlag,
               started: float, arrays: data.FashionMNISTArrays | None = None,
               node: str | None = None) -> int:
    """One worker: ARRAYS, when given, instead of the dataset on this machine (a Ray task gets
    the driver's); NODE, when given, is stored on each trial (user attr "node")."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = pick_device(opts.device)
    precision = resolve_precision(device, space.fixed.get("precision", "auto"))
    prepared = budgets.prepare(opts, space, device, precision, storage,
                               planned_trials(opts, space))
    opts, space = prepared.opts, prepared.space
    if arrays is None:
        arrays = data.load(opts.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=opts.val_size, seed=opts.seed,
                              train_subset=opts.train_subset)
    planned = prepared.plan.trials
    if planned is None and opts.budget is not None:
        planned = prepared.plan.trials_in(opts.budget)
    study = open_study(opts, storage, space, planned)
    budgets.cost_model(space, device, study)  # stored for workers and resumes
    claim = stores.TrialClaim(opts.storage, study.study_name)
    enqueue_baseline(study, space, claim)
    limits = Limits(trials_for_run(opts, study, space, claim), opts.total_trials, opts.timeout,
                    budgets.deadline(opts.budget, study, started,
                                     plans.confirm_seconds(opts, prepared.plan)),
                    prepared.plan.per_trial[0])
    tag = f"[{opts.tag}] " if opts.tag else ""
    if not opts.tag:  # a worker's parent printed the plan
        print(budgets.plan_text(prepared, device, budgets.remaining(limits)), flush=True)
    print(tag + start_line(opts, study, space, limits, device, splits), flush=True)
    live = bars.LiveBars(*bar_count(study, limits)) if bars.wanted(opts.quiet, opts.tag) else None
    objective = Objective(space, splits, device, opts.seed, opts.two_objectives,
                          None if opts.quiet or live else
                          (lambda line: print(f"    {tag}{line}", flush=True)),
                          artifact_store=artifacts.open_store(opts.storage), should_stop=stop,
                          predict=budgets.predictor(prepared, study), deadline=limits.deadline,
                          bars=live, node=node)
    return trial_loop(opts, study, objective, limits, claim, stop,
                      output.Progress(tag, started, limits, prepared.plan), live)


def bar_count(study: optuna.Study, limits: Limits) -> tuple[int | None, int]:
    """The study bar's (total, start): toward --total-trials from the trials already finished,
    else toward this run's --trials (open-ended under a budget or timeout alone)."""
    if limits.total is not None:
        return limits.total, len(study.get_trials(deepcopy=False, states=FINISHED))
    return limits.trials, 0


def reporter(progress: output.Progress, live: bars.LiveBars | None):
    """What happens when a trial finishes: its line printed, or written above the live bars."""
    if live is None:
        return lambda study, t: print(progress.line(study, t), flush=True)
    return lambda study, t: live.finished(progress.line(study, t), progress.left_phrase(study))


def trial_loop(opts: StudyOptions, study: optuna.Study, objective: Objective, limits: Limits,
               claim: stores.TrialClaim, stop: StopFlag, progress: output.Progress,
               live: bars.LiveBars | None) -> int:
    # Optuna collects garbage after each trial (a pruned trial's traceback keeps its network
    # alive); freezing what lives for the whole run (modules, data, storage) takes it out of
    # those collections: 0.16 s a trial down to nothing.
    gc.freeze()
    try:
        interrupted = run_trials(study, objective, limits, stores.grace_for(opts.heartbeat),
                                 claim, report=reporter(progress, live), stop=stop)
    finally:
        if live is not None:  # gone before anything else is printed
            live.close()
    if interrupted:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        print("\n" + output.interrupted_line(opts.storage, finished), file=sys.stderr)
        return 130
    if not opts.tag:
        print(f"\n{progress.elapsed()}; " + output.summary(study, opts.storage))
    if opts.confirm and not opts.tag:  # a worker's parent confirms once all are done
        confirm_winner(opts, study)
    return 0


def confirm_winner(opts: StudyOptions, study: optuna.Study) -> None:
    """--confirm: hpsearch.confirm's defaults on the study just searched."""
    from hpsearch import confirm

    top, seeds = plans.CONFIRM_TOP, plans.CONFIRM_SEEDS
    print("\n" + confirm.cost_line(study, top, seeds, False), flush=True)
    log = None if opts.quiet else (lambda line: print("    " + line, flush=True))
    block = confirm.confirm(study, study._storage, top, seeds, False,
                            confirm.trainer(study.user_attrs.get("setup", {}), False,
                                            opts.device, opts.data_dir, log),
                            lambda line: print(line, flush=True))
    print("\n".join(confirm.report_lines(block)))
