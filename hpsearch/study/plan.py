"""What a study will cost before it runs, and the fidelity that fits it into a budget.

A trial's seconds come from the cost model (hpsearch/cost.py) and its config; over the space
they are read from a few hundred configs drawn at random from it. A budget (`--budget 30m`)
picks the fidelity: the most expensive one (training images, input size, epoch cap) at which
TARGET_TRIALS median trials, after the pruner's saving, fit into the budget. More trials at a
lower fidelity rather than a few long ones: TPE needs its random start-up trials and about as
many guided ones before its proposals beat random search. But not trials that end inside the
pruner's warm-up (the images the space says a trial needs before it can be judged), nor trials
it cannot judge after it (past_warmup): where every fidelity that holds 20 is of those, the
budget takes fewer, longer trials (MIN_TRIALS, then FEWEST_JUDGED).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from functools import cache

import optuna
import torch

from hpsearch import models
from hpsearch.engine import cost as costs
from hpsearch.study import space as spaces
from hpsearch.engine.config import TrainConfig
from hpsearch.units import HOUR, fmt_seconds
from hpsearch.errors import UsageError
from hpsearch.study.options import Extent, Fidelity, Search
from hpsearch.study.search import choices

TARGET_TRIALS = 20  # trials a budget must hold at the chosen fidelity (see module doc)
MIN_TRIALS = 12  # the fewest it holds where the fidelities with more end inside the warm-up
FEWEST_JUDGED = 10  # fewer still, where the pruner judges them, before MIN_TRIALS it cannot
SAMPLES = 300  # configs drawn from the space to read its fastest, median and slowest trial
# Share of an unpruned study's seconds that a pruned one spends. Median: 0.60, measured by
# scripts/bench over a 20-trial lenet study judged from epoch 1 (BENCHMARKS.md); the others are
# not measured, so no saving is assumed for them.
PRUNED_SHARE = {"median": 0.60}
SUBSETS = (None, 20_000, 10_000, 5_000, 2_000)  # None: the whole training split
EPOCH_CAPS = (None, 10, 6, 3, 1)  # None: the space's own


@dataclass(frozen=True)
class Workload:
    """What every trial trains on, in numbers: a Fidelity (options.py) made concrete."""

    train_images: int
    val_images: int
    size: int
    epochs: tuple[int, int]  # the fewest and most epochs a trial of the space can train

    def phrase(self) -> str:
        low, high = self.epochs
        epochs = f"{low} epochs" if low == high else f"{low}-{high} epochs"
        return (f"{self.train_images:,} train / {self.val_images:,} val images at "
                f"{self.size}x{self.size}, {epochs}")


def workload(space: spaces.Space, fid: Fidelity) -> Workload:
    """FID's numbers for SPACE (at FID already: at_fidelity)."""
    n_train = fid.train_images()
    size = space.fixed.get("resize") or models.spec(space.network).default_size
    epochs = [c["epochs"] for c in sample_configs(space)]
    return Workload(n_train, fid.val_size, size, (min(epochs), max(epochs)))


_SAMPLED: dict[str, tuple[dict, ...]] = {}  # repr(space) -> configs (a Space holds dicts)


def sample_configs(space: spaces.Space) -> tuple[dict, ...]:
    """SAMPLES configs drawn at random from SPACE (the lab's rows, for a lab study)."""
    if space.is_lab:
        return tuple({**space.fixed, **row} for row in space.lab_rows)
    key = repr(space)
    if key not in _SAMPLED:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        configs = []
        for _ in range(SAMPLES):
            trial = study.ask()
            configs.append(spaces.suggest(trial, space))
            study.tell(trial, 0.0)
        _SAMPLED[key] = tuple(configs)
    return _SAMPLED[key]


def measured_batches(space: spaces.Space) -> tuple[int, ...]:
    """The batch sizes the cost model times: the space's smallest, twice that (at most its
    largest), and its largest where that is more (engine.cost.measure times it only where its
    steps are quick: on a CPU a large batch of a large network costs seconds a step). The
    line through the first two alone priced lenet's batches of 128-512 at 0.63x what
    50,000-image trials took (median; BENCHMARKS.md)."""
    sizes = [c.get("batch_size", TrainConfig(model=space.network).batch_size)
             for c in sample_configs(space)]
    low, high = min(sizes), max(sizes)
    return (low, min(2 * low, high)) + ((high,) if high > 2 * low else ())


@cache
def measured_cost(network: str, size: int, precision: str, device: str,
                  batches: tuple[int, int]) -> costs.StepCost:
    """The cost model: the cheapest this machine has kept for this key (engine.cost's cache: a
    lasting load on the machine does not decide the plan), timed only when none is kept or
    the machine is quieter now than when it was."""
    dev = torch.device(device)
    key = f"{costs.machine_key(dev)}|{network}@{size}/{precision}/{device}/batch {batches}"
    file = costs.costs_file()
    return costs.kept(file, key, costs.busy_now()) or costs.remember(
        file, key, costs.measure(network, size, precision, dev, batches))


def trial_seconds(space: spaces.Space, cost: costs.StepCost, fid: Workload) -> list[float]:
    """Predicted seconds of each sampled config, sorted."""
    default_batch = TrainConfig(model=space.network).batch_size
    return sorted(costs.run_seconds(cost, c.get("epochs", 10), fid.train_images,
                                    fid.val_images, c.get("batch_size", default_batch),
                                    c.get("augment", "none"))
                  for c in sample_configs(space))


@dataclass(frozen=True)
class Plan:
    trials: int | None  # None: no count (a total, a budget or a timeout ends it)
    fidelity: Workload
    per_trial: tuple[float, float, float]  # fastest, median, slowest seconds
    mean_trial: float
    pruned_share: float  # of the unpruned seconds a pruned study spends (1: no saving)
    pruner: str
    warmup_epochs: int = 0  # epochs the pruner leaves alone

    def trials_in(self, seconds: float) -> int:
        """How many trials of the mean cost, pruned, fit into SECONDS."""
        return int(seconds / (self.mean_trial * self.pruned_share))

    def total(self, pruned: bool) -> float | None:
        if self.trials is None:
            return None
        return self.trials * self.mean_trial * (self.pruned_share if pruned else 1.0)


def pruned_share(pruner: str, epochs: tuple[int, int], warmup_epochs: int) -> float:
    """The share of its unpruned seconds a study with PRUNER spends, trials of EPOCHS (fewest,
    most) epochs. The measured saving was judged from epoch 1, where a pruned trial can stop
    after 1 of its E epochs; a warm-up of W epochs keeps every trial for W + 1, so the saving
    shrinks to the epochs still cut, (E - 1 - W) / (E - 1) of it at the mean E (a model, not a
    measurement). The last epoch is never pruned, so one-epoch trials save nothing."""
    measured = PRUNED_SHARE.get(pruner)
    mean_epochs = sum(epochs) / 2
    if measured is None or mean_epochs <= 1:
        return 1.0
    cut = max(0.0, (mean_epochs - 1 - warmup_epochs) / (mean_epochs - 1))
    return 1.0 - (1.0 - measured) * cut


def make_plan(space: spaces.Space, cost: costs.StepCost, fid: Workload, trials: int | None,
              search: spaces.SearchDefaults) -> Plan:
    """TRIALS of SPACE at FID, priced by COST, with SEARCH's pruner and warm-up (choices)."""
    secs = trial_seconds(space, cost, fid)
    return Plan(trials, fid, (secs[0], statistics.median(secs), secs[-1]),
                statistics.fmean(secs),
                pruned_share(search.pruner, fid.epochs, search.warmup_epochs),
                search.pruner, search.warmup_epochs)


def plan_lines(plan: Plan, device: str, precision: str) -> list[str]:
    fastest, median, slowest = plan.per_trial
    count = f"{plan.trials} trials" if plan.trials is not None else "trials"
    lines = [f"plan: {count} on {device} ({precision}): {plan.fidelity.phrase()}",
             f"  per trial: fastest {fmt_seconds(fastest)}, median {fmt_seconds(median)}, "
             f"slowest {fmt_seconds(slowest)} (predicted from timed steps on this device)"]
    total = plan.total(pruned=False)
    if total is not None:
        line = f"  in all: ~{fmt_seconds(total)} unpruned"
        if plan.pruned_share < 1:
            saving = round(100 * (1 - plan.pruned_share))
            how = (f"the measured {round(100 * (1 - PRUNED_SHARE[plan.pruner]))}% less its "
                   f"{plan.warmup_epochs}-epoch warm-up" if plan.warmup_epochs else "as measured")
            line += (f", ~{fmt_seconds(plan.total(pruned=True))} with the {plan.pruner} pruner "
                     f"(saves ~{saving}%, {how})")
        lines.append(line)
    return lines


def hour_options(plan: Plan, network: str) -> list[str]:
    """Ways to bring a study predicted at over an hour into one, or nothing."""
    total = plan.total(pruned=True)
    if total is None or total <= HOUR:
        return []
    fid = plan.fidelity
    options = ["--budget 1h (picks the fidelity for you)"]
    subset = int(fid.train_images * HOUR / total) // 1000 * 1000
    if subset >= 2000:
        options.append(f"--train-subset {subset}")
    for size in models.spec(network).budget_sizes[1:]:
        if size < fid.size and total * flops_ratio(network, size, fid.size) <= HOUR:
            options.append(f"--resize {size}")
            break
    return [f"  over an hour: try {', or '.join(options)}"]


@cache
def flops_ratio(network: str, size: int, base: int) -> float:
    """How much cheaper a step at SIZE is than at BASE, by forward FLOPs."""
    return models.forward_flops(network, size) / models.forward_flops(network, base)


def candidates(fid: Fidelity, network: str) -> list[Fidelity]:
    """Fidelities a budget may choose from; what the user fixed (--train-subset, --resize,
    --max-epochs) stays fixed."""
    subsets = (fid.train_subset,) if fid.train_subset else SUBSETS
    sizes = (fid.resize,) if fid.resize else models.spec(network).budget_sizes or (None,)
    caps = (fid.max_epochs,) if fid.max_epochs else EPOCH_CAPS
    default = models.spec(network).default_size
    return [dataclasses.replace(fid, train_subset=n, max_epochs=cap,
                                resize=None if size in (None, default) else size)
            for n in subsets for size in sizes for cap in caps
            if size is None or size >= models.min_size(network)]


CONFIRM_TOP, CONFIRM_SEEDS = 3, 3  # what --confirm runs (hpsearch.confirm's defaults)
CONFIRM_RUNS = (CONFIRM_TOP + 2) * CONFIRM_SEEDS  # the top, the baseline, the winner's test runs


def confirm_seconds(confirm: bool, plan: Plan) -> float:
    """What --confirm (CONFIRM) will take after the search: its runs at the median trial's
    length."""
    return CONFIRM_RUNS * plan.per_trial[1] if confirm else 0.0


def confirm_total(each: list[float], seeds: int) -> float:
    """Seconds of confirming configurations whose runs take EACH seconds over SEEDS seeds:
    theirs, then the baseline's and the winner's test runs, counted as the dearest."""
    return seeds * (sum(each) + 2 * max(each)) if each else 0.0


@dataclass(frozen=True)
class _Priced:
    fidelity: Fidelity
    trial: float  # seconds of the mean trial, after the pruner's saving
    extra: float  # seconds of --confirm after the search
    fastest: float  # seconds of the quickest trial
    work: float  # training_work
    past: int  # how far its trials get past the pruner's warm-up (past_warmup)


THROUGH, JUDGED = 1, 2  # past_warmup's levels, 0 being neither


def past_warmup(epochs: tuple[int, int], warmup: int) -> int:
    """How far trials of EPOCHS (the fewest, the most) get past a pruner's warm-up of WARMUP
    epochs. JUDGED: the shortest trains through it (it has seen the images the space file
    says a trial needs), and the median trial has an epoch the pruner judges, after the
    warm-up and before its last (the median pruner never judges a last epoch). THROUGH: the
    median trial trains past the warm-up, but is not judged there. 0: neither. lenet's
    2-minute main job (warm-up 5 epochs at 10,000 images) left 23 of 60 trials at chance at
    3 epochs (0), 5 of 20 at 5-6 (THROUGH) and 1 of 24 at 5-10 (JUDGED; BENCHMARKS.md)."""
    low, high = epochs
    median = (low + high) / 2
    if low >= warmup and median >= warmup + 2:
        return JUDGED
    return THROUGH if median > warmup else 0


def choose_fidelity(fid: Fidelity, search: Search, extent: Extent, space_of,
                    cost_at) -> Fidelity:
    """The candidate fidelity (around what FID fixed) whose trials the pruner judges past its
    warm-up (past_warmup) with the most training work where TARGET_TRIALS (or --trials)
    median trials, after the pruner's saving, fit into the budget of EXTENT; failing that, the
    same with MIN_TRIALS, then FEWEST_JUDGED; then MIN_TRIALS whose median trial trains past
    the warm-up; then any candidate that holds TARGET_TRIALS; the cheapest candidate when none does, if one trial of
    it fits. SPACE_OF(fid) gives the space at that fidelity, COST_AT(size) the cost model at
    that input size."""
    want, budget = extent.trials or TARGET_TRIALS, extent.budget
    priced = []
    for cand in candidates(fid, space_of(fid).network):
        space = space_of(cand)
        work = workload(space, cand)
        used = choices(search, space, work.train_images)
        plan = make_plan(space, cost_at(work.size), work, want, used)
        extra = confirm_seconds(extent.confirm, plan)
        priced.append(_Priced(cand, plan.mean_trial * plan.pruned_share, extra,
                              plan.per_trial[0] + extra, training_work(space.network, work),
                              past_warmup(work.epochs, used.warmup_epochs)))
    # Most training work first, not most seconds: seconds spent evaluating the fixed validation
    # split buy nothing (resnet at 1h ranked 2,000 images at 48x48 over 10,000 at 32x32). A
    # one-epoch cap comes last: such trials cannot be pruned, leave epochs and the schedule out
    # of the search, and rank configurations by how fast they start, not where they end.
    priced.sort(key=lambda p: (p.fidelity.max_epochs != 1, p.work), reverse=True)
    # A trial that ends inside the warm-up has not seen the images the space file says it
    # needs before it can be judged: lenet's 2-minute main job on a float32 CPU at 10,000
    # images and 3 epochs (warm-up 5) left 23 of 60 trials at chance over 3 seeds; at 10,000
    # and 5-10 epochs, 1 of 24, best val 0.821 against 0.775 (BENCHMARKS.md). Fewer trials
    # that learn beat more that cannot; MIN_TRIALS of 10 took 50,000 images and 3 epochs,
    # where 5-6 trials ran (the cost model is optimistic there) and best val fell to 0.785.
    # Where no fidelity holds MIN_TRIALS judged trials, FEWEST_JUDGED of them still beat
    # MIN_TRIALS the pruner never judges: on a float32 CPU lenet's 2 minutes ran 11 at 10,000
    # images and 5-10 epochs (1 pruned at chance, best val 0.8517) where 5-6 epochs left 14
    # of 50 at chance over 3 seeds.
    fewer, fewest = min(want, MIN_TRIALS), min(want, FEWEST_JUDGED)
    for trials, past in ((want, JUDGED), (fewer, JUDGED), (fewest, JUDGED), (fewer, THROUGH),
                         (want, 0)):
        for p in priced:
            if p.past >= past and trials * p.trial + p.extra <= budget:
                return p.fidelity
    cheapest = min(priced, key=lambda p: want * p.trial + p.extra)
    if cheapest.fastest > budget:
        raise UsageError(f"--budget {fmt_seconds(budget)} is too small: the quickest trial at "
                         f"the lowest fidelity takes ~{fmt_seconds(cheapest.fastest)}; give at "
                         f"least --budget {math.ceil(cheapest.fastest * 1.2)}s")
    return cheapest.fidelity


def training_work(network: str, fid: Workload) -> float:
    """A trial's training FLOPs, up to a constant: images x mean epochs x FLOPs per image."""
    return (fid.train_images * sum(fid.epochs) / 2
            * models.forward_flops(network, fid.size))
