"""One study process as its own worker: plan the study, load the data, open the study, run the
trial loop, and tell the console what happened. Also the dry run, which plans and stops."""

from __future__ import annotations

import gc
import time

import optuna
import torch

from hpsearch.engine import data
from hpsearch.engine.device import pick_device, resolve_precision
from hpsearch.study import artifacts, budget as budgets, output, plan as plans
from hpsearch.study import space as spaces, storage as stores
from hpsearch.study.console import Console, TrialWatcher
from hpsearch.study.loop import Limits, StopFlag, run_trials
from hpsearch.study.objective import Objective
from hpsearch.study.options import DEFAULT_TRIALS, StudyOptions
from hpsearch.study.output import FINISHED
from hpsearch.study.resume import enqueue_baseline, open_study, trials_for_run
from hpsearch.units import fmt_seconds


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


def dry_run(opts: StudyOptions, space: spaces.Space, console: Console) -> int:
    """Print the plan; no storage is opened, no data loaded, nothing trained but the few
    timed steps of the cost model."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = pick_device((opts.devices or (opts.device,))[0])
    precision = resolve_precision(device, space.fixed.get("precision", "auto"))
    prepared = budgets.prepare(opts, space, device, precision, None,
                               planned_trials(opts, space))
    console.say(budgets.plan_text(prepared, device, opts.budget))
    console.say("dry run: nothing stored, nothing trained")
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
               started: float, console: Console,
               arrays: data.FashionMNISTArrays | None = None, node: str | None = None) -> int:
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
    study, claim, limits = open_for_run(opts, space, storage, prepared, device, started)
    tag = f"[{opts.tag}] " if opts.tag else ""
    if not opts.tag:  # a worker's parent printed the plan
        console.say(budgets.plan_text(prepared, device, budgets.remaining(limits)))
    console.say(tag + start_line(opts, study, space, limits, device, splits))
    live = console.bars(*bar_count(study, limits), opts.quiet, opts.tag)
    predict = budgets.predictor(prepared, study)
    objective = Objective(space, splits, device, opts.seed, opts.two_objectives,
                          None if opts.quiet or live else
                          (lambda line: console.say(f"    {tag}{line}")),
                          artifact_store=artifacts.open_store(opts.storage), should_stop=stop,
                          predict=predict, deadline=limits.deadline, bars=live, node=node)
    gate = (None if limits.deadline is None else
            budgets.StartGate(space, predict, limits.deadline))
    return trial_loop(opts, study, objective, limits, claim, stop,
                      output.Progress(tag, started, limits, prepared.plan), live, console, gate)


def open_for_run(opts: StudyOptions, space: spaces.Space, storage, prepared: budgets.Prepared,
                 device: torch.device, started: float):
    """(study, claim, limits): the study created or resumed, its cost model stored for
    workers and resumes, the baseline queued, and this run's limits."""
    planned = prepared.plan.trials
    if planned is None and opts.budget is not None:
        planned = prepared.plan.trials_in(opts.budget)
    study = open_study(opts, storage, space, planned)
    budgets.cost_model(space, device, study)
    claim = stores.TrialClaim(opts.storage, study.study_name)
    enqueue_baseline(study, space, claim)
    limits = Limits(trials_for_run(opts, study, space, claim), opts.total_trials, opts.timeout,
                    budgets.deadline(opts.budget, study, started,
                                     plans.confirm_seconds(opts, prepared.plan)),
                    prepared.plan.per_trial[0])
    return study, claim, limits


def bar_count(study: optuna.Study, limits: Limits) -> tuple[int | None, int]:
    """The study bar's (total, start): toward --total-trials from the trials already finished,
    else toward this run's --trials (open-ended under a budget or timeout alone)."""
    if limits.total is not None:
        return limits.total, len(study.get_trials(deepcopy=False, states=FINISHED))
    return limits.trials, 0


def reporter(progress: output.Progress, live: TrialWatcher | None, console: Console):
    """What happens when a trial finishes (an Optuna callback): its line said, or written
    above the live bars."""
    if live is None:
        return lambda study, t: console.say(progress.line(study, t))
    return lambda study, t: live.finished(progress.line(study, t), progress.left_phrase(study))


def noter(tag: str, live: TrialWatcher | None, console: Console):
    """Where the loop's notes go (a trial the budget did not start): a line, as a trial's."""
    if live is not None:
        return lambda line: live.note(tag + line)
    return lambda line: console.say(tag + line)


def trial_loop(opts: StudyOptions, study: optuna.Study, objective: Objective, limits: Limits,
               claim: stores.TrialClaim, stop: StopFlag, progress: output.Progress,
               live: TrialWatcher | None, console: Console,
               gate: budgets.StartGate | None = None) -> int:
    # Optuna collects garbage after each trial (a pruned trial's traceback keeps its network
    # alive); freezing what lives for the whole run (modules, data, storage) takes it out of
    # those collections: 0.16 s a trial down to nothing.
    gc.freeze()
    try:
        interrupted = run_trials(study, objective, limits, stores.grace_for(opts.heartbeat),
                                 claim, report=reporter(progress, live, console), stop=stop,
                                 gate=gate, note=noter(progress.tag, live, console))
    finally:
        if live is not None:  # gone before anything else is printed
            live.close()
    if interrupted:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        console.warn("\n" + output.interrupted_line(opts.storage, finished))
        return 130
    if not opts.tag:
        console.say(f"\n{progress.elapsed()}; " + output.summary(study, opts.storage))
    return 0
