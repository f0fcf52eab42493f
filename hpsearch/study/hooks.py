"""What a study does around each trial besides training it, as objective hooks (TrialHook):
an attr stored when it starts, live bars, the budget's stop before an epoch that would overrun,
the learning-curve artifact."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from optuna.artifacts import FileSystemArtifactStore

from hpsearch.engine.config import TrainConfig
from hpsearch.study import artifacts
from hpsearch.study.console import TrialWatcher
from hpsearch.study.objective import TrialHook


@dataclass
class StoreAttr(TrialHook):
    """Stores VALUE(cfg) as user attr NAME when a trial starts (the predicted seconds, the
    Ray node that runs it)."""

    name: str
    value: Callable[[TrainConfig], object]

    def started(self, trial, cfg):
        trial.set_user_attr(self.name, self.value(cfg))


@dataclass
class Watched(TrialHook):
    """Tells live progress (the command line's bars) of each trial and epoch."""

    watcher: TrialWatcher

    def started(self, trial, cfg):
        self.watcher.started(trial.number, cfg)

    def epoch(self, trial, record):
        self.watcher.epoch(record.val_acc)
        return None


@dataclass
class BudgetStop(TrialHook):
    """No epoch is begun that would end after DEADLINE (a time.monotonic()), judged by the
    epoch just run. Whether a trial starts at all is budget.StartGate's to say, before it is
    stored."""

    deadline: float

    def epoch(self, trial, record):
        if time.monotonic() + record.seconds > self.deadline:
            return f"budget: stopped after epoch {record.epoch}, the next would overrun"
        return None


@dataclass
class CurveArtifact(TrialHook):
    """Each trial's learning-curve PNG, uploaded before the trial ends, so that pruned and
    diverged runs show their curves too."""

    store: FileSystemArtifactStore

    def ended(self, trial, result):
        if result.epochs:
            artifacts.upload_learning_curve(trial, self.store)
