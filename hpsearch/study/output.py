"""What a study prints: one line per finished trial, the start line, the summary. Storage URLs
appear only through storage.redact, so a password never reaches the terminal or a log."""

from __future__ import annotations

import logging
import time
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# User attr of a trial a warm start copied in from another study (study/warm.py): it informs
# the sampler and the pruner, but this study did not run it.
COPIED = "copied_from"
WARM_START = "warm_start"  # the study's user attr: what its warm start did (study/warm.py)
# How the reason of a trial its pruner stopped begins (a budget's stop says "budget: ...").
PRUNED_REASON = "pruned after epoch"
# How a queued best moved to the most epochs a trial trains here says so (study/warm.py).
PROMOTED = "(the longest here)"

from hpsearch.study import storage as stores
from hpsearch.units import fmt_seconds
from hpsearch.errors import TrialEnded


def epoch_budget(trial: FrozenTrial) -> int | None:
    """The epochs TRIAL was given: its epochs parameter, else its stored config's."""
    if "epochs" in trial.params:
        return int(trial.params["epochs"])
    return trial.user_attrs.get("config", {}).get("epochs")


def run_here(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials the study ran itself (not a warm start's copies), with a duration."""
    return [t for t in trials if t.state in FINISHED and COPIED not in t.user_attrs
            and t.duration is not None]


def pruned_share(trials: list[FrozenTrial]) -> float | None:
    """Seconds the study's own finished trials took over the seconds they would have taken
    unpruned, a trial its pruner stopped scaled by the epochs it was given over those it
    trained (one the budget stopped would not have run on); None when it pruned none. The
    plan assumes one share per pruner; a study's own differs: 0.50 and 0.72 for net28's
    20-minute studies and 0.59 for resnet's hour where the plan counted 0.60, 0.96-0.98 for
    lenet's 3-epoch trials where it counted 0.80 (BENCHMARKS.md)."""
    spent = unpruned = 0.0
    pruned = False
    for t in run_here(trials):
        seconds = t.duration.total_seconds()
        given, trained = epoch_budget(t), max(t.intermediate_values, default=0)
        if (t.state == TrialState.PRUNED and given and 0 < trained < given
                and t.user_attrs.get("reason", "").startswith(PRUNED_REASON)):
            pruned = True
            unpruned += seconds * given / trained
        else:
            unpruned += seconds
        spent += seconds
    return spent / unpruned if pruned and unpruned > 0 else None


def finished_here(trials: list[FrozenTrial]) -> int:
    """Finished trials the study ran itself, what --total-trials and the counts go by: a warm
    start's copies are not runs of this study."""
    return sum(t.state in FINISHED and COPIED not in t.user_attrs for t in trials)


def warm_start_line(doc: dict) -> str:
    """One sentence: where the study started from."""
    parts = []
    for name, copied in doc["copied"].items():
        parts.append(f"{name}: {copied} finished trial{'s' if copied != 1 else ''} copied"
                     if copied is not None else
                     f"{name}: nothing copied (other data, arithmetic or objectives)")
    queued = len(doc["queued"])
    longest = sum(PROMOTED in " ".join(q["moved"]) for q in doc["queued"])
    return (f"warm start from {', '.join(doc['sources'])} ({'; '.join(parts)}); "
            f"{queued} of their best configuration{'s' if queued != 1 else ''} queued "
            f"after the baseline" + (f", {longest} at the most epochs a trial trains here"
                                     if longest else ""))


def trial_line(study: optuna.Study, t: FrozenTrial) -> str:
    """One line per finished trial: number, state, value, seconds, params, best so far."""
    seconds = t.duration.total_seconds() if t.duration else 0.0
    if t.state == TrialState.COMPLETE:
        value = " ".join(f"{v:.4f}" for v in t.values)
    elif t.state == TrialState.PRUNED and t.intermediate_values:
        value = f"{t.intermediate_values[max(t.intermediate_values)]:.4f}"
    else:
        value = "-"
    params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
    line = f"trial {t.number:>3} {t.state.name:<8} value {value}  {seconds:6.1f} s  {params}"
    reason = t.user_attrs.get("reason")
    if reason:
        line += f"  [{reason}]"
    return line + "  | " + best_phrase(study)


class Progress:
    """Trial lines with the run's elapsed time and its predicted time left: from the budget
    when there is one, else from the trials still to run times the plan's mean trial. The
    plan's, not the study's own trials so far: its first trials (the baseline, the start-up
    trials the pruner cannot judge) are dearer than the rest, and replayed over five studies
    an estimate leaning on them was no better than the plan's (BENCHMARKS.md)."""

    def __init__(self, tag: str, started: float, limits, plan, workers: int = 1,
                 reserve=None):
        self.tag, self.started, self.limits, self.plan = tag, started, limits, plan
        self.workers = workers  # running side by side: the trials left take 1/workers as long
        # study -> seconds the budget keeps back beyond its deadline (budget.StartGate's)
        self.reserve = reserve or (lambda study: 0.0)
        self.reported = 0

    def elapsed(self) -> str:
        return f"{fmt_seconds(time.monotonic() - self.started)} elapsed"

    def left(self, study: optuna.Study) -> float | None:
        limits, estimates = self.limits, []
        # Seconds each trial still to run adds, its workers sharing them.
        each = self.plan.mean_trial * self.plan.pruned_share / self.workers
        if limits.trials is not None:
            estimates.append(max(limits.trials - self.reported, 0) * each)
        if limits.total is not None:
            finished = finished_here(study.get_trials(deepcopy=False))
            estimates.append(max(limits.total - finished, 0) * each)
        if limits.deadline is not None:
            estimates.append(max(limits.deadline - self.reserve(study) - time.monotonic(), 0.0))
        return min(estimates) if estimates else None

    def left_phrase(self, study: optuna.Study) -> str:
        left = self.left(study)
        return "" if left is None else f"~{fmt_seconds(left)} left"

    def line(self, study: optuna.Study, t: FrozenTrial) -> str:
        self.reported += 1
        left = self.left_phrase(study)
        eta = f", {left}" if left else ""
        return f"{self.tag}{trial_line(study, t)}  ({self.elapsed()}{eta})"


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    try:
        return study.best_trials
    except ValueError:  # no completed trial
        return []


def best_configs(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The K best completed trials by their first value, one per configuration (the seed
    aside): what --confirm re-runs. Diverged and out-of-memory trials (told to the sampler at
    chance) are none of them."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("status", "completed") == "completed" and "config" in t.user_attrs]
    done.sort(key=lambda t: (-t.values[0], t.number))
    chosen, seen = [], set()
    for t in done:
        key = repr(sorted({**t.user_attrs["config"], "seed": 0}.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(t)
        if len(chosen) == k:
            break
    return chosen


def best_phrase(study: optuna.Study) -> str:
    best = best_trials(study)
    if not best:
        return "no completed trial yet"
    if len(study.directions) > 1:
        return f"Pareto front: {len(best)} trials"
    return f"best: trial {best[0].number} ({best[0].value:.4f})"


def fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary(study: optuna.Study, url: str) -> str:
    """Counts by state, the best trial(s), where the study is and how to export it."""
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    copied = sum(COPIED in t.user_attrs for t in trials)
    lines = [f"study {study.study_name!r}: " +
             ", ".join(f"{n} {k}" for k, n in counts.items() if n) +
             (f" ({copied} of them copied by its warm start)" if copied else "")]
    share = pruned_share(trials)
    if share is not None:
        lines.append(f"pruning: its trials took {share:.0%} of the seconds they would have "
                     f"taken unpruned")
    best = best_trials(study)
    for t in best if len(study.directions) > 1 else best[:1]:
        values = ", ".join(f"{v:.4f}" for v in t.values)
        params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
        lines.append(f"best trial {t.number}: {values} with {params}")
    if not best:
        lines.append("no completed trial yet")
    shown = stores.redact(url)
    lines.append(f"storage: {shown}")
    storage_flag = "" if url == stores.DEFAULT_URL else f" --storage '{shown}'"
    lines.append(f"export:  hpsearch export {study.study_name}{storage_flag}")
    return "\n".join(lines)


def interrupted_line(url: str, finished: int | None = None) -> str:
    count = "finished trials are" if finished is None else f"{finished} finished trials are"
    return (f"interrupted: {count} safe in {stores.redact(url)}; "
            f"run the same command to continue")


class _HideTrialEnded(logging.Filter):
    """Optuna logs a failed trial with its traceback. A trial that diverged, ran out of memory
    or was interrupted is an expected outcome, already reported on our own trial line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and
                    isinstance(record.exc_info[1], (TrialEnded, KeyboardInterrupt)))


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # On the handlers, not the logger: a logger's filters see only its own records, and
    # Optuna logs a failed trial from the child logger optuna.study._optimize.
    for handler in optuna.logging.get_logger("optuna").handlers:
        if not any(isinstance(f, _HideTrialEnded) for f in handler.filters):
            handler.addFilter(_HideTrialEnded())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
