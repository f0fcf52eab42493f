"""Write a study's best parameters as JSON, with their test accuracy and the command that
reproduces them.

    hpsearch export lenet --out best-lenet.json

The test accuracy comes from training the best configuration once more, on the study's whole
training split (50,000 images unless the study's --val-size differs; no subset), and evaluating
it once on the 10,000 test images. Nothing else in hpsearch touches the test images.
"""

from __future__ import annotations

import time

import optuna
import torch
import torchvision
from optuna.trial import FrozenTrial

from hpsearch.engine import data
from hpsearch.engine.batches import eval_batch_size
from hpsearch.engine.config import TrainConfig, train_command
from hpsearch.engine.device import pick_device
from hpsearch.engine.train import evaluate, train
from hpsearch.results import confirm
from hpsearch.study.setup import ATTR as SETUP_ATTR, StudySetup

CONFIRMATION = confirm.ATTR


def reproduce_command(cfg: TrainConfig, setup: StudySetup, train_subset: int | None) -> str:
    """The `python -m hpsearch.train` line that trains CFG on the study's split."""
    return train_command(cfg, train_subset, setup.val_size)


def trial_entry(t: FrozenTrial, setup: StudySetup) -> dict:
    cfg = TrainConfig(**t.user_attrs["config"])
    return {
        "number": t.number,
        "values": t.values,
        "params": t.params,
        "config": t.user_attrs["config"],
        "user_attrs": t.user_attrs,
        "command": reproduce_command(cfg, setup, setup.train_subset),
    }


def test_accuracy(cfg: TrainConfig, setup: StudySetup, arrays: data.FashionMNISTArrays,
                  device: torch.device, train_subset: int | None, log) -> dict:
    """Train CFG on the study's training split (optionally a subset) and evaluate once on the
    test images."""
    splits = data.make_splits(arrays, device, val_size=setup.val_size,
                              seed=cfg.seed, train_subset=train_subset)
    start = time.perf_counter()
    result = train(cfg, splits, device, log=log)
    net_test = data.test_split(arrays, device)
    _, acc = evaluate(result.model, net_test, cfg.size,
                      eval_batch_size(cfg.batch_size, cfg.size, device), device, cfg.precision)
    return {
        "test_accuracy": acc,
        "trained_on": f"{len(splits.train)} images of the training split "
                      f"({len(splits.val)} validation images held out), seed {cfg.seed}",
        "evaluated_on": f"the {len(net_test)} Fashion-MNIST test images",
        "val_accuracy_of_retrain": result.final_val_acc,
        "status": result.status,
        "seconds": time.perf_counter() - start,
        "device": str(device),
        "command": reproduce_command(cfg, setup, train_subset),
    }


def chosen_trial(study: optuna.Study, best: list[FrozenTrial]) -> tuple[FrozenTrial, str | None]:
    """The confirmed winner where the study is confirmed (hpsearch confirm), else the most
    accurate best trial; and a note when the two differ."""
    top = max(best, key=lambda t: t.values[0])
    block = study.user_attrs.get(CONFIRMATION)
    if block and block["winner"]["trial"] is not None:
        winner = study.trials[block["winner"]["trial"]]
        note = None
        if winner.number != top.number:
            note = (f"exporting the confirmed winner, trial {winner.number} (best mean over "
                    f"{len(block['seeds'])} seeds), not the search's best, trial {top.number}")
        return winner, note
    return top, None


def retrain_and_test(trial: FrozenTrial, setup: StudySetup, device_name: str, data_dir,
                     train_subset: int | None, log) -> dict:
    """TRIAL's config retrained (on the whole training split, or TRAIN_SUBSET images) and
    evaluated once on the test images."""
    cfg = TrainConfig(**trial.user_attrs["config"])
    arrays = data.load(data_dir or data.env_data_dir())
    return {"trial": trial.number,
            **test_accuracy(cfg, setup, arrays, pick_device(device_name), train_subset, log)}


def build_export(study: optuna.Study, test: dict | None, chosen: FrozenTrial) -> dict:
    setup = StudySetup.of(study)
    two = len(study.directions) > 1
    best = study.best_trials
    doc = {
        "study": study.study_name,
        "network": setup.network,
        "directions": [d.name.lower() for d in study.directions],
        "metric_names": study.metric_names,
        "setup": study.user_attrs.get(SETUP_ATTR, {}),  # as stored
    }
    if two:
        doc["pareto_front"] = [trial_entry(t, setup) for t in best]
    else:
        entry = trial_entry(chosen, setup)
        doc.update(best_value=chosen.value, best_trial=entry["number"], params=entry["params"],
                   config=entry["config"], user_attrs=entry["user_attrs"],
                   command=entry["command"])
    doc["test"] = test
    doc["confirmation"] = study.user_attrs.get(CONFIRMATION)
    doc["versions"] = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                       "optuna": optuna.__version__}
    return doc
