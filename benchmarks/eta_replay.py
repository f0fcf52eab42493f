"""Replays a finished study: after each finished trial, the study's end as three rules for a
trial's seconds would have predicted it (trials left x seconds each), against its real end.

    python -m benchmarks.eta_replay URL STUDY PRIOR SHARE

PRIOR: the plan's mean trial after the pruner's saving, in seconds (its "in all ... with the
median pruner" over its trials, or the budget over its "about N trials"); SHARE: the plan's
pruned share. Rules: "plan", PRIOR each (what the trial lines use); "own mean", PRIOR weighed
as WEIGHT trials against the mean of the trials so far; "pruned share", the plan's unpruned
mean times the share that trials past the first SKIP (which the pruner cannot judge) kept of
their predicted seconds (user attr predicted_s), weighed against SHARE as WEIGHT trials.
BENCHMARKS.md ("The pruner's saving per study, and the time left") has what it printed."""

from __future__ import annotations

import statistics
import sys

import optuna

WEIGHT, SKIP = 4, 4  # the plan counts as 4 trials; the baseline and 3 start-up trials skipped


def ends(trials, prior: float, share: float) -> dict[str, list[float]]:
    """Each rule's |predicted end - end| / end, after each finished trial but the last."""
    trials = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    start, end = trials[0].datetime_start, trials[-1].datetime_complete
    total = (end - start).total_seconds()
    errors: dict[str, list[float]] = {"plan": [], "own mean": [], "pruned share": []}
    for k in range(1, len(trials)):
        now = (trials[k - 1].datetime_complete - start).total_seconds()
        done = trials[:k]
        later = [t for t in done[SKIP:] if "predicted_s" in t.user_attrs]
        kept = (sum(t.duration.total_seconds() for t in later)
                / sum(t.user_attrs["predicted_s"] for t in later)) if later else share
        each = {"plan": prior,
                "own mean": (WEIGHT * prior + sum(t.duration.total_seconds() for t in done))
                / (WEIGHT + k),
                "pruned share": prior / share * (WEIGHT * share + len(later) * kept)
                / (WEIGHT + len(later))}
        for rule, seconds in each.items():
            errors[rule].append(abs(now + (len(trials) - k) * seconds - total) / total)
    return errors


def main(argv: list[str]) -> None:
    url, name, prior, share = argv[0], argv[1], float(argv[2]), float(argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=name, storage=url).trials
    for rule, errs in ends(trials, prior, share).items():
        print(f"{name} {rule}: median {statistics.median(errs):.3f}, first half "
              f"{statistics.median(errs[:len(errs) // 2]):.3f}, worst {max(errs):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
