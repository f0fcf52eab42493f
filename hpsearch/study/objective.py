"""The Optuna glue: one trial = suggest a config from the space, train it, store what a user
needs to judge it. The training loop itself knows nothing of Optuna; it sees callbacks."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore

from hpsearch.study import artifacts
from hpsearch.engine import data
from hpsearch.study import space as spaces
from hpsearch.engine.config import CHANCE, TrainConfig
from hpsearch.errors import TrialEnded
from hpsearch.engine.train import RunResult, train

if TYPE_CHECKING:
    from hpsearch.study.console import TrialWatcher

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


@dataclass
class Objective:
    """Callable for study.optimize. Two objectives: (val accuracy up, training seconds down);
    Optuna cannot prune those, so then no intermediate values are reported."""

    space: spaces.Space
    splits: data.Splits
    device: torch.device
    seed: int = 0
    two_objectives: bool = False
    log: Callable[[str], None] | None = None
    # Where each trial's learning-curve PNG goes (artifacts.open_store); None: nowhere.
    artifact_store: FileSystemArtifactStore | None = None
    # Asked at the training loop's progress points: True ends the trial as interrupted.
    should_stop: Callable[[], bool] | None = None
    # config -> predicted seconds (hpsearch/cost.py), stored beside the measured ones.
    predict: Callable[[TrainConfig], float] | None = None
    # time.monotonic() at which the study's budget ends: no epoch is begun that would end
    # after it (whether a trial starts at all is budget.StartGate's to say, before it is stored)
    deadline: float | None = None
    # Live progress on a terminal (the command line's bars): told of each trial and epoch.
    bars: TrialWatcher | None = None
    node: str | None = None  # the Ray node a task runs on, stored on each trial


    def __call__(self, trial: optuna.Trial):
        cfg = TrainConfig(model=self.space.network, seed=self.seed,
                          **spaces.suggest(trial, self.space))
        trial.set_user_attr("config", asdict(cfg))
        if self.node is not None:
            trial.set_user_attr("node", self.node)
        if self.predict is not None:
            trial.set_user_attr("predicted_s", self.predict(cfg))
        if self.bars is not None:
            self.bars.started(trial.number, cfg)
        result = train(cfg, self.splits, self.device, on_epoch=self._on_epoch(trial, cfg),
                       log=self.log, should_stop=self.should_stop)
        store_result(trial, result)
        # Uploaded before the trial ends, so pruned and diverged runs show their curves too.
        if self.artifact_store is not None and result.epochs:
            artifacts.upload_learning_curve(trial, self.artifact_store)
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
            if self.bars is not None:
                self.bars.epoch(record.val_acc)
            if not self.two_objectives:
                trial.report(record.val_acc, record.epoch)
            # After the last epoch there is nothing left to save: the trial completes, and its
            # value counts for the sampler and for the pruner's median.
            if record.epoch == cfg.epochs:
                return None
            # A next epoch that would end after the budget does is not begun.
            if self.deadline is not None and time.monotonic() + record.seconds > self.deadline:
                return f"budget: stopped after epoch {record.epoch}, the next would overrun"
            if not self.two_objectives and trial.should_prune():
                return f"pruned after epoch {record.epoch} (val acc {record.val_acc:.4f})"
            return None

        return on_epoch
