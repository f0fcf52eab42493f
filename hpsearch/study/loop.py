"""The trial loop of one worker: start trials one at a time until this run's count, the
timeout or the study's total is reached, or the user asks it to stop.

Workers of one study share a claim (storage.TrialClaim) around each start, held until the
trial is RUNNING in the storage, where the next worker's count sees it: a group with a total
lands on it instead of overshooting by the trials in flight (as MaxTrialsCallback alone
would), and on SQLite two workers cannot both take the same queued trial (the baseline, say;
the second could not tell it: "Cannot tell a COMPLETE trial"). While the rest of the total
runs elsewhere a worker waits: a dead worker's trial goes stale, Optuna fails it and queues a
retry, which a live worker runs.

Stopping is by flag (`StopFlag`): a signal handler that only records the signal cannot be lost,
whereas a KeyboardInterrupt raised from a handler can land inside a finalizer during Optuna's
garbage collection after a trial, where Python prints it as "Exception ignored" and goes on.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.study import storage as stores
from hpsearch.errors import TrialEnded
from hpsearch.signals import SIGNALS, received
from hpsearch.study.output import finished_here


class StopFlag:
    """The first SIGINT or SIGTERM asks for a stop at the next safe point (between trials, or
    after a training step); a second one stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.signum: int | None = None

    def install(self) -> StopFlag:
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        return self

    @contextlib.contextmanager
    def installed(self):
        """The flag takes the signals for the block (a trial loop), then gives them back to
        what had them (interrupt_on_signals, for the command line)."""
        saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
        self.install()
        if self.signum is None and received() is not None:  # one came during the set-up
            self.signum = received()
        try:
            yield self
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


@dataclass(frozen=True)
class Limits:
    trials: int | None  # trials of this run; None: no count
    total: int | None  # finished trials of the whole study (every worker) to stop at
    timeout: float | None  # seconds after which no trial starts
    deadline: float | None = None  # time.monotonic() at which the budget ends
    quickest: float = 0.0  # predicted seconds of the quickest trial: none starts if it cannot end
    skips: int = 3  # trials in a row not started as too long for the budget end the run


def budget_spent(limits: Limits, skipped_in_a_row: int) -> bool:
    """No trial can end before the budget does, or the sampler keeps proposing ones that
    cannot (each refused before it was stored)."""
    if limits.deadline is None:
        return False
    return (time.monotonic() + limits.quickest > limits.deadline
            or skipped_in_a_row >= limits.skips)


def room_for_a_trial(study: optuna.Study, total: int) -> bool | None:
    """True: start a trial. None: the total is in flight elsewhere, wait. False: it is reached.
    Finished plus running trials count; a queued (WAITING) retry does not make room, as the
    running trials may still land on the total."""
    optuna.storages.fail_stale_trials(study)
    # One read for both counts: read apart, a trial finishing in between is counted in
    # neither, and the group overshoots the total by one.
    trials = study.get_trials(deepcopy=False)
    finished = finished_here(trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if finished >= total:
        return False
    return None if finished + running >= total else True


def run_trials(study: optuna.Study, objective: Callable, limits: Limits, grace: int,
               claim: stores.TrialClaim, report: Callable[[optuna.Study, FrozenTrial], None],
               stop: Callable[[], bool],
               gate: Callable[[optuna.Study], str | None] | None = None,
               note: Callable[[str], None] = lambda line: None,
               hand_back: Callable[[], bool] | None = None) -> bool:
    """Run trials until LIMITS or STOP; return True when STOP ended it. Each start holds
    CLAIM until its trial is RUNNING (module doc); with a total the worker starts only where
    there is room, else waits. GATE may refuse a start (nothing stored; NOTE is told why);
    LIMITS.skips refusals in a row end the run. HAND_BACK, asked before each start, ends
    the run at once (a Ray task giving its slot to another study; the others sweep)."""
    deadline = time.monotonic() + limits.timeout if limits.timeout else None

    def started(trial: optuna.Trial):
        claim.release()  # the trial is RUNNING in the storage: the next count sees it
        return objective(trial)

    def run_one() -> str:
        with claim.held():
            if limits.total is not None:
                room = room_for_a_trial(study, limits.total)
                if room is not True:
                    return "full" if room is False else "wait"
            refused = gate(study) if gate is not None else None
            if refused is not None:
                note(f"not started: {refused}")
                return "refused"
            study.optimize(started, n_trials=1, callbacks=[report], catch=(TrialEnded,),
                           gc_after_trial=True)
            return "ran"

    ran = skipped = 0
    while limits.trials is None or ran < limits.trials:
        if stop():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            break
        if budget_spent(limits, skipped):
            break
        if hand_back is not None and hand_back():
            return False
        outcome = run_one()
        if outcome == "full":
            break
        if outcome == "wait":
            time.sleep(1)  # see whether the trials in flight land
        skipped = skipped + 1 if outcome == "refused" else 0
        ran += outcome == "ran"
    sweep_stale_trials(study, grace, stop)
    return stop()


def sweep_stale_trials(study: optuna.Study, grace: int, stop: Callable[[], bool]) -> None:
    """Wait (at most GRACE + 1 s) for RUNNING trials to finish or go stale, failing the stale
    ones through Optuna. Optuna checks for stale trials only when a trial starts, so without
    this a worker killed near the end would leave its trial RUNNING once the others stop."""
    deadline = time.monotonic() + grace + 1
    while time.monotonic() < deadline and not stop():
        optuna.storages.fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(1)
