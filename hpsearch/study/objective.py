"""The Optuna glue: one trial = suggest a config from the space, train it, store what a user
needs to judge it, report each epoch, prune. The training loop itself knows nothing of Optuna;
it sees callbacks. What else a study does around a trial comes in as hooks (TrialHook)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import optuna
import torch

from hpsearch.engine import data
from hpsearch.study import space as spaces
from hpsearch.engine.config import CHANCE, TrainConfig
from hpsearch.errors import TrialEnded
from hpsearch.engine.train import EpochRecord, RunResult, train
from hpsearch.study.output import PRUNED_REASON

CURVES = ("train_loss", "train_acc", "val_loss", "val_acc", "seconds")
RUN_ATTRS = ("total_loss", "total_acc", "final_val_acc", "best_val_acc", "train_seconds",
             "examples_per_s", "params", "device", "status", "reason")


class Interrupted(TrialEnded):
    """The user asked the study to stop (Ctrl-C, SIGTERM); the trial ends as FAIL and a lab
    row it ran is queued again by the next run."""


# Outcomes told to the sampler as a completed trial at chance accuracy, so that it learns to
# avoid what caused them (a FAIL trial is ignored by TPE, which then keeps proposing the
# learning rates that blew up). The trial keeps its status and reason in its user attrs.
AT_CHANCE = ("diverged", "out_of_memory")


def store_result(trial: optuna.Trial, result: RunResult) -> None:
    """Per-epoch curves (one list per metric, index i = epoch i+1) and the run's metrics."""
    doc = result.to_json()
    for name in CURVES:
        trial.set_user_attr(name, [e[name] for e in doc["epochs"]])
    trial.set_user_attr("epochs_run", len(doc["epochs"]))
    for name in RUN_ATTRS:
        trial.set_user_attr(name, doc[name])


class TrialHook:
    """Something a study does around each trial besides training it (live bars, the
    learning-curve artifact, the budget's stop, a stored attr); each method does nothing
    unless overridden. They run inside the objective, not as Optuna's callbacks, because those
    come after the trial has finished, when Optuna refuses writes to it."""

    def started(self, trial: optuna.Trial, cfg: TrainConfig) -> None:
        """Before the first epoch."""

    def epoch(self, trial: optuna.Trial, record: EpochRecord) -> str | None:
        """After each epoch: a reason to stop the trial
        before its next epoch, or None. Not asked to stop after the last one."""
        return None

    def ended(self, trial: optuna.Trial, result: RunResult) -> None:
        """After training, results stored, before the trial's state is decided."""


@dataclass
class Objective:
    """Callable for study.optimize: suggest, train, report, prune, with HOOKS around it.
    Two objectives: (val accuracy up, training seconds down); Optuna cannot prune those, so
    then no intermediate values are reported."""

    space: spaces.Space
    splits: data.Splits
    device: torch.device
    seed: int = 0
    two_objectives: bool = False
    log: Callable[[str], None] | None = None  # the training loop's progress lines
    # Asked after each training step: True ends the trial as interrupted.
    should_stop: Callable[[], bool] | None = None
    hooks: tuple[TrialHook, ...] = ()

    def __call__(self, trial: optuna.Trial):
        cfg = TrainConfig(model=self.space.network, seed=self.seed,
                          **spaces.suggest(trial, self.space))
        trial.set_user_attr("config", asdict(cfg))
        for hook in self.hooks:
            hook.started(trial, cfg)
        result = train(cfg, self.splits, self.device, on_epoch=self._on_epoch(trial, cfg),
                       log=self.log, should_stop=self.should_stop)
        store_result(trial, result)
        for hook in self.hooks:
            hook.ended(trial, result)
        if result.status == "stopped":
            raise optuna.TrialPruned(result.reason)
        if result.status == "interrupted":
            raise Interrupted(result.reason)
        accuracy = CHANCE if result.status in AT_CHANCE else result.final_val_acc
        if self.two_objectives:
            return accuracy, result.train_seconds
        return accuracy

    def _on_epoch(self, trial: optuna.Trial, cfg: TrainConfig):
        def on_epoch(record) -> str | None:
            if not self.two_objectives:
                trial.report(record.val_acc, record.epoch)
            reasons = [hook.epoch(trial, record) for hook in self.hooks]
            # After the last epoch there is nothing left to save: the trial completes, and its
            # value counts for the sampler and for the pruner's median.
            if record.epoch == cfg.epochs:
                return None
            stop = next((r for r in reasons if r is not None), None)
            if stop is None and not self.two_objectives and trial.should_prune():
                stop = f"{PRUNED_REASON} {record.epoch} (val acc {record.val_acc:.4f})"
            return stop

        return on_epoch
