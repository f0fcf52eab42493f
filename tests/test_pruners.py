"""The epoch-aware median pruner on constructed learning curves, against Optuna's median
pruner on the same curves (which prunes in every case below, so each test can fail)."""

import datetime

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch.study.output import WARM_START
from hpsearch.study.output import epoch_budget
from hpsearch.study.pruners import EpochMedianPruner
from hpsearch.study.search import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
START = datetime.datetime(2026, 1, 1)


def frozen(curve: list[float], epochs: int, state=TrialState.COMPLETE, number=0,
           user_attrs: dict | None = None) -> FrozenTrial:
    """A trial given EPOCHS epochs whose val accuracy after epoch e is CURVE[e - 1]."""
    return FrozenTrial(
        number=number, state=state, value=curve[-1] if state == TrialState.COMPLETE else None,
        values=None, datetime_start=START,
        datetime_complete=START if state == TrialState.COMPLETE else None,
        params={"epochs": epochs}, distributions={"epochs": IntDistribution(1, 30)},
        user_attrs=user_attrs or {}, system_attrs={},
        intermediate_values={e: v for e, v in enumerate(curve, start=1)}, trial_id=number)


def study_of(*completed: tuple[list[float], int]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for curve, epochs in completed:
        study.add_trial(frozen(curve, epochs))
    return study


def verdicts(study, trial) -> tuple[bool, bool]:
    """(Optuna's median pruner, ours with a 2-epoch warm-up) on TRIAL."""
    theirs = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    return theirs.prune(study, trial), EpochMedianPruner(3, warmup_epochs=2).prune(study, trial)


ADAM = [0.70, 0.78, 0.82, 0.84, 0.85, 0.86, 0.87, 0.87, 0.88, 0.88]


def test_a_slow_starter_is_not_judged_in_its_warm_up():
    study = study_of((ADAM, 10), (ADAM, 10), (ADAM, 10))
    sgd = [0.10, 0.10]  # LeNet's sigmoids with SGD: chance for the first epochs
    assert verdicts(study, frozen(sgd, 10, TrialState.RUNNING)) == (True, False)
    still = [0.10, 0.10, 0.10]  # past the warm-up and still at chance: pruned
    assert verdicts(study, frozen(still, 10, TrialState.RUNNING)) == (True, True)


def test_a_trial_in_its_last_part_is_never_pruned():
    study = study_of((ADAM, 10), (ADAM, 10), (ADAM, 10))
    late = [0.60, 0.70, 0.75, 0.78, 0.80, 0.82, 0.84, 0.85]  # epoch 8 of 10, a bit below
    assert verdicts(study, frozen(late, 10, TrialState.RUNNING)) == (True, False)
    early = late[:5]  # epoch 5 of 10: judged
    assert verdicts(study, frozen(early, 10, TrialState.RUNNING)) == (True, True)


def test_trials_are_compared_with_trials_of_the_same_epoch_budget():
    short = [0.75, 0.82, 0.86, 0.87, 0.88]  # 5 epochs, e.g. a cosine schedule done early
    long = [0.70, 0.76, 0.79, 0.81, 0.83, 0.85, 0.86, 0.87, 0.88, 0.89] + [0.90] * 10
    study = study_of((short, 5), (short, 5), (short, 5), (long, 20), (long, 20), (long, 20))
    rising = [0.70, 0.77, 0.80]  # a 20-epoch trial at epoch 3, above its own kind
    assert verdicts(study, frozen(rising, 20, TrialState.RUNNING)) == (True, False)
    behind = [0.70, 0.74, 0.76]  # below the other 20-epoch trials: pruned
    assert verdicts(study, frozen(behind, 20, TrialState.RUNNING)) == (True, True)


def test_too_few_of_the_same_budget_means_every_completed_trial_counts():
    short = [0.75, 0.82, 0.86, 0.87, 0.88]
    long = [0.70, 0.76, 0.79] + [0.85] * 17
    study = study_of((short, 5), (short, 5), (short, 5), (long, 20))
    rising = [0.70, 0.77, 0.80]
    assert EpochMedianPruner(3, warmup_epochs=2).prune(study, frozen(rising, 20, TrialState.RUNNING))


def test_nothing_is_pruned_before_three_trials_have_completed():
    study = study_of((ADAM, 10), (ADAM, 10))
    assert not EpochMedianPruner(3).prune(study, frozen([0.1, 0.1, 0.1], 10, TrialState.RUNNING))


def test_the_pruner_is_chosen_by_name_and_its_budget_read_from_the_config():
    pruner = make_pruner("epoch-median", 20, warmup_epochs=4)
    assert isinstance(pruner.inner, EpochMedianPruner) and pruner.inner.warmup_epochs == 4
    t = frozen([0.5], 7)
    assert epoch_budget(t) == 7
    fixed = FrozenTrial(number=0, state=TrialState.RUNNING, value=None, values=None,
                        datetime_start=None, datetime_complete=None, params={},
                        distributions={}, user_attrs={"config": {"epochs": 12}},
                        system_attrs={}, intermediate_values={}, trial_id=0)
    assert epoch_budget(fixed) == 12
    with pytest.raises(ValueError, match="protect_last"):
        EpochMedianPruner(protect_last=1.0)


@pytest.mark.parametrize("name", ["median", "epoch-median"])
def test_every_median_pruner_spares_exactly_the_warm_up_epochs(name):
    """A 2-epoch warm-up: a trial at chance is judged from epoch 3 on, not at epochs 1-2
    (Optuna counts its warm-up from step 0; our steps are epochs from 1)."""
    study = study_of((ADAM, 10), (ADAM, 10), (ADAM, 10))
    pruner = make_pruner(name, 10, warmup_epochs=2)
    judged = [pruner.prune(study, frozen([0.1] * e, 10, TrialState.RUNNING)) for e in (1, 2, 3)]
    assert judged == [False, False, True]
    plain = make_pruner(name, 10)
    assert plain.prune(study, frozen([0.1], 10, TrialState.RUNNING))


def test_hyperband_starts_its_first_rung_after_the_warm_up():
    assert make_pruner("hyperband", 8)._min_resource == 1
    assert make_pruner("hyperband", 8, warmup_epochs=2)._min_resource == 3
    assert make_pruner("hyperband", 2, warmup_epochs=2)._max_resource == 4


@pytest.mark.parametrize("name", ["median", "epoch-median"])
def test_a_warm_starts_queued_bests_are_not_the_median_a_new_trial_is_judged_by(name):
    """Queued bests (the top of an earlier study) at 0.85 by epoch 2 would prune a trial at
    0.80 there; the median is of the study's own sample (the baseline and its own trials)."""
    pruner = make_pruner(name, 10, warmup_epochs=1)
    best = [0.80, 0.85, 0.86, 0.87, 0.88, 0.88, 0.89, 0.89, 0.89, 0.89]
    study = study_of((ADAM, 10))  # the lab's baseline
    for n in range(1, 4):
        study.add_trial(frozen(best, 10, number=n, user_attrs={WARM_START: f"first trial {n}"}))
    trial = frozen([0.70, 0.80], 10, TrialState.RUNNING)
    assert pruner.inner.prune(study, trial)  # what the median rule alone says
    assert not pruner.prune(study, trial)  # 1 sampled trial finished: too few to judge by
    for curve in ([0.6, 0.79] + ADAM[2:], [0.1, 0.5] + ADAM[2:]):
        study.add_trial(frozen(curve, 10))
    # The sample's median at epoch 2 is 0.78 (ADAM, 0.79, 0.5): 0.80 stays, 0.75 goes.
    assert not pruner.prune(study, trial) and pruner.inner.prune(study, trial)
    assert pruner.prune(study, frozen([0.70, 0.75], 10, TrialState.RUNNING))
