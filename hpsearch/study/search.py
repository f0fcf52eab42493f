"""Samplers and pruners: Optuna's own, chosen by name, with defaults for CNN studies of tens of
trials whose steps are 1-based epochs."""

from __future__ import annotations

import optuna

from hpsearch import space as spaces
from hpsearch.errors import UsageError
from hpsearch.study.pruners import EpochMedianPruner


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
    """The median pruner judges a trial from its first epoch on, once 3 trials have completed:
    a trial whose best val accuracy so far is below the median of the completed trials at the
    same epoch stops. Most of what it saves is trials at chance from the first epoch on;
    waiting for 5 trials and sparing epoch 1 trained 211 of the unpruned study's 303 epochs in
    scripts/bench, these settings 172-182 (BENCHMARKS.md)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "epoch-median":
        return EpochMedianPruner(n_startup_trials=3, warmup_epochs=warmup_epochs)
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
