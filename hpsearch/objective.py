"""The Optuna glue: one trial = suggest a config from the space, train it, store what a user
needs to judge it. The training loop itself knows nothing of Optuna; it sees callbacks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore

from hpsearch import artifacts, data, space as spaces
from hpsearch.config import TrainConfig
from hpsearch.errors import TrialEnded
from hpsearch.train import RunResult, train

CURVES = ("train_loss", "train_acc", "val_loss", "val_acc", "seconds")
RUN_ATTRS = ("total_loss", "total_acc", "final_val_acc", "best_val_acc", "train_seconds",
             "examples_per_s", "params", "device", "status", "reason")


class Diverged(TrialEnded):
    """The training loss blew up; the trial ends as FAIL with the reason stored."""


class OutOfMemory(TrialEnded):
    """The device ran out of memory; the trial ends as FAIL, the study goes on."""


class Interrupted(TrialEnded):
    """The user asked the study to stop (Ctrl-C, SIGTERM); the trial ends as FAIL and a lab
    row it ran is queued again by the next run."""


ENDINGS = {"diverged": Diverged, "out_of_memory": OutOfMemory, "interrupted": Interrupted}


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

    def __call__(self, trial: optuna.Trial):
        cfg = TrainConfig(model=self.space.network, seed=self.seed,
                          **spaces.suggest(trial, self.space))
        trial.set_user_attr("config", asdict(cfg))

        def on_epoch(record) -> str | None:
            if self.two_objectives:
                return None
            trial.report(record.val_acc, record.epoch)
            # After the last epoch there is nothing left to save: the trial completes, and its
            # value counts for the sampler and for the pruner's median.
            if record.epoch < cfg.epochs and trial.should_prune():
                return f"pruned after epoch {record.epoch} (val acc {record.val_acc:.4f})"
            return None

        result = train(cfg, self.splits, self.device, on_epoch=on_epoch, log=self.log,
                       should_stop=self.should_stop)
        store_result(trial, result)
        # Uploaded before the trial ends, so pruned and diverged runs show their curves too.
        if self.artifact_store is not None and result.epochs:
            artifacts.upload_learning_curve(trial, self.artifact_store)
        if result.status == "stopped":
            raise optuna.TrialPruned(result.reason)
        if result.status in ENDINGS:
            raise ENDINGS[result.status](result.reason)
        if self.two_objectives:
            return result.final_val_acc, result.train_seconds
        return result.final_val_acc
