"""Samplers and pruners: Optuna's own, chosen by name, with defaults for CNN studies of tens of
trials whose steps are 1-based epochs."""

from __future__ import annotations

import math

import optuna

from hpsearch.engine.config import DEFAULT_VAL_SIZE, TRAIN_IMAGES
from hpsearch.study import space as spaces
from hpsearch.errors import UsageError
from hpsearch.study.options import Search
from hpsearch.study.pruners import EpochMedianPruner, SampledOnly


def startup_trials(planned: int | None) -> int:
    """TPE's random start-up trials: a quarter of the planned study, between 4 and 10 (a
    12-trial study searches guided after its first 4, not its first 10)."""
    if planned is None:
        return 10
    return min(10, max(4, round(planned / 4)))


def make_sampler(name: str, seed: int | None, space: spaces.Space,
                 planned: int | None = None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # multivariate + group: the space is conditional (parameters per optimizer);
        # constant_liar: parallel workers do not all propose the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(planned),
                                          multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.GPSampler(seed=seed)


def grid_of(space: spaces.Space) -> dict[str, list]:
    """The grid sampler's search space: every parameter must be a list of choices that exists
    for every optimizer."""
    grid = {}
    for p in space.params:
        if not isinstance(p.distribution, optuna.distributions.CategoricalDistribution):
            raise UsageError(f"the grid sampler needs choices for every parameter; "
                             f"{p.name} in {space.path} is a range")
        if p.optimizers is not None:
            raise UsageError(f"the grid sampler cannot search {p.name}, which exists only for "
                             f"some optimizers; use tpe or random")
        grid[p.name] = list(p.distribution.choices)
    return grid


def make_pruner(name: str, max_epochs: int, warmup_epochs: int = 0) -> optuna.pruners.BasePruner:
    """A pruner by NAME whose steps are 1-based epochs; epochs 1..WARMUP_EPOCHS of a trial are
    never judged. Median: a trial whose best val accuracy so far is below the median of the
    completed trials at the same epoch stops, once 3 trials have completed (a warm start's
    queued bests not counted); most of what it saves is trials at chance from their first
    epochs on (scripts/bench, BENCHMARKS.md)."""
    if name == "median":
        # Optuna judges a step from n_warmup_steps on; our steps start at 1.
        return SampledOnly(optuna.pruners.MedianPruner(n_startup_trials=3,
                                                       n_warmup_steps=warmup_epochs + 1))
    if name == "epoch-median":
        return SampledOnly(EpochMedianPruner(n_startup_trials=3, warmup_epochs=warmup_epochs))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=warmup_epochs + 1,
            max_resource=max(max_epochs, warmup_epochs + 2), reduction_factor=3)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup_epochs + 1,
                                                      reduction_factor=3)
    return optuna.pruners.NopPruner()


# The training images a space file's warm-up is counted at: the default split's (50,000).
WARMUP_IMAGES = TRAIN_IMAGES - DEFAULT_VAL_SIZE


def warmup_at(epochs: int, train_images: int) -> int:
    """A warm-up of EPOCHS epochs of WARMUP_IMAGES, in epochs of TRAIN_IMAGES: as many images
    seen before the pruner judges. What keeps a trial from being judged at chance is the
    steps it has taken: lenet's plain SGD leaves chance by epoch 2 at 50,000 images, but at
    20,000 a 1-epoch warm-up left 2-4 trials of 11-13 at chance, and 3 epochs left none
    (BENCHMARKS.md)."""
    return math.ceil(epochs * WARMUP_IMAGES / train_images) if epochs else 0


def choices(search: Search, space: spaces.Space, train_images: int) -> spaces.SearchDefaults:
    """The sampler, pruner and warm-up a study whose trials train on TRAIN_IMAGES uses: the
    command line's, else the space file's [search] (lab studies: no pruner). --warmup-epochs
    counts epochs as they are; the space file's warm-up is counted in images (warmup_at)."""
    own = space.search
    # A two-objective study reports no epochs (Optuna prunes one objective only).
    pruner = search.pruner or ("none" if search.two_objectives else own.pruner)
    warmup = (warmup_at(own.warmup_epochs, train_images) if search.warmup_epochs is None
              else search.warmup_epochs)
    return spaces.SearchDefaults(sampler=search.sampler or own.sampler, pruner=pruner,
                                 warmup_epochs=warmup)


def max_epochs_of(space: spaces.Space) -> int:
    """The most epochs any trial of SPACE can train (for Hyperband's resource)."""
    most = space.fixed.get("epochs", 1)
    for p in space.params:
        if p.field == "epochs":
            most = max(most, spaces.highest(p.distribution))
    return max([most] + [r["epochs"] for r in space.lab_rows])
