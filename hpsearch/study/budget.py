"""A study's cost model and budget: measured (or read back from the study), the fidelity a
--budget picks (kept by a resumed study), what the budget has left, and the plan printed
before the first trial."""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import time
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from hpsearch import models
from hpsearch.engine import cost as costs
from hpsearch.study import space as spaces
from hpsearch.engine.config import TrainConfig
from hpsearch.study import plan as plans
from hpsearch.study.output import COPIED, FINISHED, best_configs, pruned_share, run_here
from hpsearch.study.options import Extent, Fidelity, Search, Store
from hpsearch.study.resume import at_fidelity, with_precision
from hpsearch.study.search import choices
from hpsearch.study.setup import ATTR as SETUP_ATTR, StudySetup

COST_ATTR = "cost_models"  # study user attr: key -> StepCost json, reused by workers and resumes


@dataclass(frozen=True)
class Prepared:
    """A study run made concrete: its fidelity (a budget's pick filled in), its extent, its
    space at that fidelity (precision resolved), the cost model and the plan."""

    fidelity: Fidelity
    extent: Extent
    search: Search
    space: spaces.Space
    cost: costs.StepCost
    plan: plans.Plan


def cost_key(space: spaces.Space, device: torch.device) -> str:
    size = space.fixed.get("resize") or models.spec(space.network).default_size
    batches = ",".join(map(str, plans.measured_batches(space)))
    return (f"{space.network}@{size}/{space.fixed['precision']}/{device}/batch {batches}/"
            f"{torch.get_num_threads()} threads")


def cost_model(space: spaces.Space, device: torch.device,
               study: optuna.Study | None) -> costs.StepCost:
    """The cost model stored in STUDY under this key, else measured now (and stored)."""
    key = cost_key(space, device)
    stored = study.user_attrs.get(COST_ATTR, {}) if study is not None else {}
    if key in stored:
        return costs.StepCost.from_json(stored[key])
    size = space.fixed.get("resize") or models.spec(space.network).default_size
    cost = plans.measured_cost(space.network, size, space.fixed["precision"], str(device),
                               plans.measured_batches(space))
    if study is not None:
        study.set_user_attr(COST_ATTR, {**stored, key: cost.to_json()})
    return cost


def between(low: costs.StepCost, high: costs.StepCost, size: int) -> costs.StepCost:
    """The cost at SIZE, read off the line through the costs measured at two sizes, against
    forward FLOPs (a step's fixed part does not shrink with the image; FLOPs alone would
    say it does)."""
    f_low, f_high = (models.forward_flops(low.network, c.size) for c in (low, high))
    t = 0.0 if f_high == f_low else (models.forward_flops(low.network, size) - f_low) / (f_high - f_low)

    def mix(a: float, b: float) -> float:
        return a + t * (b - a)

    batches = tuple(b for b in low.batch_sizes if b in high.batch_sizes)  # both timed
    return dataclasses.replace(low, size=size, batch_sizes=batches,
                               step_s=tuple(mix(low.step_seconds(b), high.step_seconds(b))
                                            for b in batches),
                               eval_s_per_image=mix(low.eval_s_per_image, high.eval_s_per_image))


def existing_study(where: Store, storage) -> optuna.Study | None:
    if storage is None or where.study_name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=where.study_name, storage=storage)


def fit_budget(raw: spaces.Space, fid: Fidelity, search: Search, extent: Extent,
               precision: str, device: torch.device, stored: StudySetup | None) -> Fidelity:
    """The fidelity the budget picks around what FID fixed, for the space file RAW; a study
    that exists (its STORED setup) keeps its own."""
    if stored is not None:
        return dataclasses.replace(fid, train_subset=stored.train_subset,
                                   max_epochs=stored.max_epochs, resize=stored.resize)

    def space_of(cand: Fidelity) -> spaces.Space:
        return with_precision(at_fidelity(raw, cand), precision)

    base = cost_model(space_of(fid), device, None)
    sizes = models.spec(base.network).budget_sizes
    if fid.resize is not None or not sizes:
        return plans.choose_fidelity(fid, search, extent, space_of, lambda size: base)
    small = cost_model(space_of(dataclasses.replace(fid, resize=sizes[-1])), device, None)
    return plans.choose_fidelity(fid, search, extent, space_of,
                                 lambda size: between(small, base, size))


def prepare(raw: spaces.Space, fid: Fidelity, search: Search, extent: Extent,
            device: torch.device, precision: str, study: optuna.Study | None,
            trials: int | None) -> Prepared:
    """Fit the budget (if any), put the space file RAW at the fidelity, resolve precision,
    measure (or read from STUDY) the cost model, and plan TRIALS."""
    if extent.budget is not None:
        stored = (StudySetup.of(study) if study is not None and SETUP_ATTR in study.user_attrs
                  else None)
        fid = fit_budget(raw, fid, search, extent, precision, device, stored)
    space = with_precision(at_fidelity(raw, fid), precision)
    cost = cost_model(space, device, study)
    plan = plans.make_plan(space, cost, plans.workload(space, fid), trials,
                           choices(search, space, fid.train_images()))
    return Prepared(fid, extent, search, space, cost, plan)


def spent_seconds(study: optuna.Study) -> float:
    """Wall-clock seconds the study's trials have taken, overlaps (parallel workers) counted
    once: the union of their [start, end] spans, a running trial's up to now."""
    now = datetime.datetime.now()
    spans = sorted((t.datetime_start, t.datetime_complete or now)
                   for t in study.get_trials(deepcopy=False) if t.datetime_start is not None)
    total, end = 0.0, None
    for start, stop in spans:
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def deadline(budget: float | None, study: optuna.Study, started: float,
             reserve: float = 0.0) -> float | None:
    """The time.monotonic() at which this run's share of BUDGET ends: what the study's trials
    have not spent, less RESERVE (kept for --confirm), counted from STARTED (this run's start,
    so its set-up counts too)."""
    if budget is None:
        return None
    return started + max(budget - reserve - spent_seconds(study), 0.0)


def predictor(prepared: Prepared, study: optuna.Study | None = None):
    """config -> predicted seconds of a trial at the study's fidelity: the cost model's, times
    what STUDY's own trials say of it (calibration)."""
    fid = prepared.plan.fidelity

    def model(cfg: TrainConfig) -> float:
        return costs.run_seconds(prepared.cost, cfg.epochs, fid.train_images, fid.val_images,
                                 cfg.batch_size, cfg.augment)

    def predict(cfg: TrainConfig) -> float:
        return model(cfg) * (1.0 if study is None else calibration(study, model))

    return predict


CALIBRATION_RANGE = (0.5, 3.0)  # beyond this a trial is an outlier, not a lesson


def calibration(study: optuna.Study, model) -> float:
    """Median of measured / modelled seconds over the study's trials that trained to their
    end (1 until there are two). Timed steps on a small random split can miss what a
    full-size split costs: full-data net28 trials ran 18-39% over the model (BENCHMARKS.md);
    the study's own trials correct that from the third trial on."""
    ratios = [t.duration.total_seconds() / model(TrainConfig(**t.user_attrs["config"]))
              for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.user_attrs.get("status") == "completed" and "config" in t.user_attrs
              and COPIED not in t.user_attrs and t.duration and t.duration.total_seconds() > 0]
    if len(ratios) < 2:
        return 1.0
    low, high = CALIBRATION_RANGE
    return min(max(statistics.median(ratios), low), high)


def plan_text(prepared: Prepared, device: torch.device, remaining: float | None,
              study: optuna.Study | None = None) -> str:
    """The plan, and for a STUDY that has run trials, what they took (a resumed study)."""
    lines = plans.plan_lines(prepared.plan, str(device), prepared.space.fixed["precision"])
    lines += timing_notes(prepared.cost)
    trials = [] if study is None else study.get_trials(deepcopy=False)
    lines += so_far(trials)
    extent = prepared.extent
    if extent.budget is not None:
        left = "" if remaining is None else f", {plans.fmt_seconds(remaining)} of it left"
        fits = prepared.plan.trials_in(extent.budget if remaining is None else remaining)
        lines.append(f"  budget {plans.fmt_seconds(extent.budget)}{left}: about {fits} trials "
                     f"at this fidelity")
    else:
        lines += plans.hour_options(prepared.plan, prepared.space.network)
    if prepared.search.warm_start:
        lines.append(f"  warm start from {', '.join(prepared.search.warm_start)}: their best "
                     f"configurations first, their trials copied where the data is the same")
    if extent.confirm:
        lines.append(f"  then --confirm: {plans.CONFIRM_RUNS} runs, "
                     f"~{plans.fmt_seconds(plans.confirm_seconds(True, prepared.plan))}"
                     + (", reserved from the budget (more if the study's best configurations "
                        "prove slower)" if extent.budget else ""))
    return "\n".join(lines)


def so_far(trials: list) -> list[str]:
    """What the trials a study has run took: a trial on average, and the pruner's share."""
    own = run_here(trials)
    if not own:
        return []
    mean = statistics.fmean(t.duration.total_seconds() for t in own)
    share = pruned_share(trials)
    pruned = ("" if share is None else
              f"; pruning took {share:.0%} of the seconds they would have taken unpruned")
    return [f"  so far: {len(own)} trials, {plans.fmt_seconds(mean)} each on average{pruned}"]


def timing_notes(cost: costs.StepCost) -> list[str]:
    """What the plan says of its timings when they were not clean: repeats that disagreed,
    a machine busy while they ran, a timing slower than this machine's fastest of it."""
    notes = []
    if cost.slower_now > costs.DISAGREE:
        notes.append(f"  timed {cost.slower_now:.1f}x slower now than this machine's fastest "
                     f"timing of it ({cost.measured}; another process busy?): the plan uses "
                     f"that one, and the study's own trials correct it as they finish")
    elif cost.spread > costs.DISAGREE:
        notes.append(f"  the timed steps varied {cost.spread:.1f}x from one repeat to the next "
                     f"(another process busy on this machine?): the plan takes the fastest, "
                     f"and the study's own trials correct it as they finish")
    if cost.busy > BUSY_PER_CORE and cost.slower_now <= costs.DISAGREE:
        notes.append(f"  timed while this machine was busy (load average {cost.busy:.1f} per "
                     f"core): its seconds may be high until the study's own trials correct "
                     f"them")
    return notes


BUSY_PER_CORE = 0.75  # load average per core above which a timing is said to be disturbed


def remaining(limits) -> float | None:
    """Seconds of the budget left now (None: no budget)."""
    return None if limits.deadline is None else max(limits.deadline - time.monotonic(), 0.0)


def confirm_seconds(study: optuna.Study, predict) -> float:
    """--confirm's seconds, priced from the study as it stands: its best configurations, the
    ones it would confirm, priced by PREDICT (the calibrated predictor); 0 before a trial has
    completed. The plan prices them at its median trial, before any trial ran; the
    winners of a net28 study (batch 64, the most epochs) took 1.17x that and ran the 20-minute
    budget 1m57s over (BENCHMARKS.md)."""
    return plans.confirm_total([predict(TrainConfig(**t.user_attrs["config"]))
                                for t in best_configs(study, plans.CONFIRM_TOP)],
                               plans.CONFIRM_SEEDS)


class StartGate:
    """Whether the study's next trial can end before the budget does, decided before anything
    is stored, so that a trial the budget would not start leaves no trace in the study.

    A trial already queued (the lab's baseline, a lab row, the retry of a dead worker's trial)
    is judged by its own parameters. Otherwise the sampler proposes in a copy of the study
    held in memory (its finished trials, the same sampler); a proposal predicted to end in
    time is queued in the study, and the trial loop's next trial runs exactly it."""

    def __init__(self, space: spaces.Space, predict, deadline: float, reserve=None):
        self.space, self.predict, self.deadline = space, predict, deadline
        # study -> seconds to keep back beyond DEADLINE (--confirm's, re-priced each time)
        self.reserve = reserve or (lambda study: 0.0)

    def __call__(self, study: optuna.Study) -> str | None:
        """None: start the next trial; else why it is not started."""
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            params, queue = waiting[0].system_attrs.get("fixed_params", {}), False
        else:
            params, queue = self.propose(study), True
        values = spaces.suggest(optuna.trial.FixedTrial(params), self.space)
        predicted = self.predict(TrainConfig(model=self.space.network, **values))
        kept = self.reserve(study)
        left = self.deadline - kept - time.monotonic()
        if predicted > left:
            more = f" ({kept:.0f} s more kept for --confirm)" if kept > 0 else ""
            return f"budget: predicted {predicted:.0f} s, {max(left, 0):.0f} s left{more}"
        if queue:
            study.enqueue_trial(params)
        return None

    def propose(self, study: optuna.Study) -> dict:
        """The parameters the study's sampler would give its next trial."""
        shadow = optuna.create_study(directions=study.directions, sampler=study.sampler)
        shadow.add_trials(study.get_trials(deepcopy=False,
                                           states=FINISHED + (TrialState.FAIL,)))
        trial = shadow.ask()
        spaces.suggest(trial, self.space)
        return trial.params
