"""One study process as its own worker: plan the study, load the data, open the study, run the
trial loop, and tell the console what happened. Also the dry run, which plans and stops."""

from __future__ import annotations

import gc
import time

import optuna
import torch

from hpsearch.engine import data
from hpsearch.engine.device import pick_device, resolve_precision
from hpsearch.study import artifacts, budget as budgets, hooks, output, plan as plans
from hpsearch.study import space as spaces, storage as stores, warm
from hpsearch.study.console import Console, TrialWatcher
from hpsearch.study.loop import Limits, StopFlag, run_trials
from hpsearch.study.objective import Objective
from hpsearch.study.options import DEFAULT_TRIALS, Extent, Store, StudyOptions
from hpsearch.study.resume import enqueue_baseline, open_study, trials_for_run, wanted_precision
from hpsearch.units import fmt_seconds


def planned_trials(extent: Extent, space: spaces.Space) -> int | None:
    """The trials the plan counts: --trials, the lab's rows, else a total or the default
    (None when a budget or timeout alone ends the study)."""
    if extent.trials is not None:
        return extent.trials
    if space.is_lab:
        return len(space.lab_rows)
    if extent.total_trials is not None:
        return extent.total_trials
    return None if extent.budget else DEFAULT_TRIALS


def prepare_here(opts: StudyOptions, raw: spaces.Space, device: torch.device,
                 study: optuna.Study | None) -> budgets.Prepared:
    """The run planned on DEVICE: the space file RAW at its fidelity, the cost, the plan."""
    precision = resolve_precision(device, wanted_precision(raw, opts.fidelity))
    return budgets.prepare(raw, opts.fidelity, opts.search, opts.extent, device, precision,
                           study, planned_trials(opts.extent, raw))


def dry_run(opts: StudyOptions, raw: spaces.Space, console: Console) -> int:
    """Print the plan; no storage is opened, no data loaded, nothing trained but the few
    timed steps of the cost model."""
    place = opts.placement
    if place.threads:
        torch.set_num_threads(place.threads)
    device = pick_device((place.devices or (place.device,))[0])
    prepared = prepare_here(opts, raw, device, None)
    console.say(budgets.plan_text(prepared, device, opts.extent.budget))
    console.say("dry run: nothing stored, nothing trained")
    return 0


def start_line(url: str, study: optuna.Study, space: spaces.Space, limits: Limits,
               device: torch.device, splits: data.Splits) -> str:
    finished = output.finished_here(study.get_trials(deepcopy=False))
    plan = [f"{limits.trials} more trials"] if limits.trials is not None else []
    if limits.total:
        plan.append(f"until {limits.total} are finished")
    if limits.deadline is not None:
        plan.append(f"for {fmt_seconds(max(limits.deadline - time.monotonic(), 0.0))}")
    return (f"study {study.study_name!r} ({space.network}, {space.path}) in "
            f"{stores.redact(url)}: {finished} finished trials so far; running "
            f"{', at most '.join(plan)} on {device} ({space.fixed['precision']}), "
            f"{len(splits.train)} train / {len(splits.val)} val images")


def run_worker(opts: StudyOptions, raw: spaces.Space, storage, stop: StopFlag,
               started: float, console: Console,
               arrays: data.FashionMNISTArrays | None = None, node: str | None = None,
               hand_back=None) -> int:
    """One worker on the space file RAW: ARRAYS, when given, instead of the dataset on this
    machine (a Ray task gets the driver's); NODE, when given, is stored on each trial (user
    attr "node"); HAND_BACK, when given, is asked before each trial whether to end here
    (loop.run_trials)."""
    if opts.placement.threads:
        torch.set_num_threads(opts.placement.threads)
    device = pick_device(opts.placement.device)
    prepared = prepare_here(opts, raw, device, budgets.existing_study(opts.store, storage))
    fid, space = prepared.fidelity, prepared.space
    if arrays is None:
        arrays = data.load(opts.placement.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=fid.val_size, seed=opts.search.seed,
                              train_subset=fid.train_subset)
    study, claim, limits = open_for_run(opts, prepared, storage, device, started)
    tag = f"[{opts.tag}] " if opts.tag else ""
    if not opts.tag:  # a worker's parent printed the plan
        console.say(budgets.plan_text(prepared, device, budgets.remaining(limits), study))
    if opts.search.warm_start and not opts.tag:
        console.say(output.warm_start_line(study.user_attrs[output.WARM_START]))
    console.say(tag + start_line(opts.store.url, study, space, limits, device, splits))
    live = console.bars(*bar_count(study, limits), opts.quiet, opts.tag)
    predict = budgets.predictor(prepared, study)
    objective = Objective(space, splits, device, opts.search.seed, opts.search.two_objectives,
                          None if opts.quiet or live else
                          (lambda line: console.say(f"    {tag}{line}")),
                          should_stop=stop,
                          hooks=trial_hooks(opts.store.url, predict, limits.deadline, live, node))
    reserve = confirm_reserve(opts.extent, prepared, predict)
    gate = (None if limits.deadline is None else
            budgets.StartGate(space, predict, limits.deadline, reserve))
    progress = output.Progress(tag, started, limits, prepared.plan, reserve=reserve)
    return trial_loop(opts.store, study, objective, limits, claim, stop, progress, live, console,
                      gate, hand_back)


def confirm_reserve(extent: Extent, prepared: budgets.Prepared, predict):
    """study -> the seconds --confirm needs beyond what the budget's deadline already keeps
    for it (the plan's price): re-priced from the study's best configurations so far."""
    if not extent.confirm:
        return None
    kept = plans.confirm_seconds(True, prepared.plan)
    return lambda study: max(0.0, budgets.confirm_seconds(study, predict) - kept)


def trial_hooks(url: str, predict, deadline: float | None, live: TrialWatcher | None,
                node: str | None) -> tuple[hooks.TrialHook, ...]:
    """What each trial does besides training: its predicted seconds stored beside the
    measured ones, the Ray node that ran it, live bars, the budget's stop, its curve."""
    found = [hooks.StoreAttr("predicted_s", predict)]
    if node is not None:
        found.append(hooks.StoreAttr("node", lambda cfg: node))
    if live is not None:
        found.append(hooks.Watched(live))
    if deadline is not None:
        found.append(hooks.BudgetStop(deadline))
    store = artifacts.open_store(url)
    if store is not None:
        found.append(hooks.CurveArtifact(store))
    return tuple(found)


def open_for_run(opts: StudyOptions, prepared: budgets.Prepared, storage,
                 device: torch.device, started: float):
    """(study, claim, limits): the study created or resumed, its cost model stored for
    workers and resumes, the baseline queued, and this run's limits."""
    extent, space, where = prepared.extent, prepared.space, opts.store
    planned = prepared.plan.trials
    if planned is None and extent.budget is not None:
        planned = prepared.plan.trials_in(extent.budget)
    study = open_study(where, opts.search, prepared.fidelity, storage, space, planned)
    budgets.cost_model(space, device, study)
    claim = stores.TrialClaim(where.url, study.study_name)
    enqueue_baseline(study, space, claim)
    warm.apply(study, space, opts.search.warm_start, storage, claim)
    limits = Limits(trials_for_run(extent, study, space, claim), extent.total_trials,
                    extent.timeout,
                    budgets.deadline(extent.budget, study, started,
                                     plans.confirm_seconds(extent.confirm, prepared.plan)),
                    prepared.plan.per_trial[0])
    return study, claim, limits


def bar_count(study: optuna.Study, limits: Limits) -> tuple[int | None, int]:
    """The study bar's (total, start): toward --total-trials from the trials already finished,
    else toward this run's --trials (open-ended under a budget or timeout alone)."""
    if limits.total is not None:
        return limits.total, output.finished_here(study.get_trials(deepcopy=False))
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


def trial_loop(where: Store, study: optuna.Study, objective: Objective, limits: Limits,
               claim: stores.TrialClaim, stop: StopFlag, progress: output.Progress,
               live: TrialWatcher | None, console: Console,
               gate: budgets.StartGate | None = None, hand_back=None) -> int:
    # Optuna collects garbage after each trial (a pruned trial's traceback keeps its network
    # alive); freezing what lives for the whole run (modules, data, storage) takes it out of
    # those collections: 0.16 s a trial down to nothing.
    gc.freeze()
    try:
        with stop.installed():
            interrupted = run_trials(study, objective, limits, stores.grace_for(where.heartbeat),
                                     claim, report=reporter(progress, live, console), stop=stop,
                                     gate=gate, note=noter(progress.tag, live, console),
                                     hand_back=hand_back)
    finally:
        if live is not None:  # gone before anything else is printed
            live.close()
    if interrupted:
        finished = output.finished_here(study.get_trials(deepcopy=False))
        console.warn("\n" + output.interrupted_line(where.url, finished))
        return 130
    if not progress.tag:
        console.say(f"\n{progress.elapsed()}; " + output.summary(study, where.url))
    return 0
