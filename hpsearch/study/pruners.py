"""A median pruner for trials whose steps are epochs and whose lengths differ (a search space
with an epochs parameter). Optuna's MedianPruner compares a trial at epoch e with every
completed trial at epoch e, from the first epoch on. On LeNet that went wrong three ways
(40-trial study, full data): SGD at the lab's own good setting sits at chance for its first
epochs, so every SGD trial was pruned at epoch 1; and trials pruned after 70% or more of their
epochs, within 0.005-0.017 of the best, had spent most of their cost for nothing, judged
against trials of other lengths (whose cosine schedules, say, were further along).

Either median rule judges a trial against a sample of the study's own search: the best
configurations a warm start queued are left out of it (SampledOnly)."""

from __future__ import annotations

import statistics

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.study.output import WARM_START, epoch_budget


class EpochMedianPruner(optuna.pruners.BasePruner):
    """The median rule (a trial's best value so far against the median of completed trials
    at the same epoch), with three changes:

    - warm-up: epochs 1..WARMUP_EPOCHS are never judged;
    - last part: a trial is never pruned after more than (1 - PROTECT_LAST) of its epochs;
    - peers: the completed trials with the same epoch budget, once there are N_STARTUP_TRIALS
      of them; until then every completed trial that reached the epoch.
    """

    def __init__(self, n_startup_trials: int = 3, warmup_epochs: int = 0,
                 protect_last: float = 0.3):
        if not 0 <= protect_last < 1:
            raise ValueError(f"protect_last must be in [0, 1), got {protect_last}")
        self.n_startup_trials = n_startup_trials
        self.warmup_epochs = warmup_epochs
        self.protect_last = protect_last

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step <= self.warmup_epochs:
            return False
        budget = epoch_budget(trial)
        if budget is not None and step > (1 - self.protect_last) * budget:
            return False
        peers = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if step in t.intermediate_values]
        same = [t for t in peers if epoch_budget(t) == budget]
        if len(same) >= self.n_startup_trials:
            peers = same
        if len(peers) < self.n_startup_trials:
            return False
        median = statistics.median(t.intermediate_values[step] for t in peers)
        values = [v for s, v in trial.intermediate_values.items() if s <= step]
        if study.direction == StudyDirection.MAXIMIZE:
            return max(values) < median
        return min(values) > median


class SampledOnly(optuna.pruners.BasePruner):
    """INNER, a median rule, reading the study without the trials a warm start queued (user
    attr warm_start). Those are the best of an earlier study, not a sample of this one: left
    in, they become the median at epoch 2, few new trials finish to lower it again, and a
    10-minute lenet study warm-started from a 2-minute one pruned 46 of its 50 trials
    (BENCHMARKS.md). Trials copied from earlier studies stay: they are a search's sample."""

    def __init__(self, inner: optuna.pruners.BasePruner):
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_WithoutQueued(study), trial)


class _WithoutQueued:
    """STUDY as a pruner reads it (get_trials, direction), less its queued bests."""

    def __init__(self, study: optuna.Study):
        self._study = study

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states)
                if WARM_START not in t.user_attrs]

    def __getattr__(self, name: str):
        return getattr(self._study, name)
