"""Studies for the report, table and dashboard tests. Most are built in-process from trials with
the user attrs hpsearch's objective stores, without training; `trained_study` trains for real,
where the artifact upload must be exercised."""

from __future__ import annotations

import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from conftest import ROOT
from hpsearch.study import artifacts, hooks
from hpsearch.engine import data
from hpsearch.study import notes
from hpsearch.study import space as spaces
from hpsearch.study.objective import Objective
from hpsearch.study.storage import open_storage

LENET_DISTRIBUTIONS = {
    "optimizer": CategoricalDistribution(["sgd", "momentum", "adam"]),
    "lr_sgd": FloatDistribution(0.01, 3.0, log=True),
    "lr_adam": FloatDistribution(1e-4, 3e-2, log=True),
    "batch_size": CategoricalDistribution([64, 128, 256, 512]),
    "epochs": IntDistribution(1, 3),
}
CHANCE_REASON = "stuck at chance accuracy: best val acc 0.100 with 10 classes"


def run_attrs(config: dict, val_acc: list[float], status: str = "completed",
              reason: str = "") -> dict:
    """What objective.store_result leaves on a trial that trained len(VAL_ACC) epochs."""
    n = len(val_acc)
    train_acc = [max(a - 0.02, 0.0) for a in val_acc]
    train_loss = [2.3 * (1.0 - a) + 0.1 for a in train_acc]
    total_loss = sum(train_loss) / n
    if status == "diverged":
        train_loss[-1], total_loss = None, None  # NaN is stored as null
    return {"train_loss": train_loss, "train_acc": train_acc, "val_acc": val_acc,
            "val_loss": [2.3 * (1.0 - a) for a in val_acc], "seconds": [1.0] * n,
            "epochs_run": n, "total_loss": total_loss, "total_acc": sum(train_acc) / n,
            "final_val_acc": val_acc[-1], "best_val_acc": max(val_acc),
            "train_seconds": 1.25 * n, "examples_per_s": 800.0, "params": 61_706,
            "device": "cpu", "status": status, "reason": reason, "config": config}


def lenet_config(params: dict) -> dict:
    lr = params.get("lr_sgd", params.get("lr_adam"))
    return {"model": "lenet", "optimizer": params["optimizer"], "lr": lr, "momentum": None,
            "weight_decay": 0.0, "epochs": params["epochs"], "batch_size": params["batch_size"],
            "schedule": "constant", "resize": None, "seed": 0, "workers": 0}


def add(study: optuna.Study, kind: str, params: dict, val_acc: list[float],
        distributions: dict | None = None, config: dict | None = None,
        user_attrs: dict | None = None) -> None:
    """Add one trial of KIND: complete, chance (complete, at 10%), pruned or diverged."""
    distributions = distributions or LENET_DISTRIBUTIONS
    config = config or lenet_config(params)
    state = {"complete": TrialState.COMPLETE, "chance": TrialState.COMPLETE,
             "pruned": TrialState.PRUNED, "diverged": TrialState.FAIL}[kind]
    status, reason = {"complete": ("completed", ""), "chance": ("completed", CHANCE_REASON),
                      "pruned": ("stopped", f"pruned after epoch {len(val_acc)}"),
                      "diverged": ("diverged", "training loss non-finite or above 1000 at "
                                               "epoch 1, step 2 (lr 3)")}[kind]
    # The objective reports each epoch to Optuna, except the one where training diverged.
    reported = val_acc if kind != "diverged" else val_acc[:-1]
    study.add_trial(create_trial(
        state=state, params=params, distributions={k: distributions[k] for k in params},
        value=val_acc[-1] if state == TrialState.COMPLETE else None,
        intermediate_values={i + 1: v for i, v in enumerate(reported)},
        user_attrs={**run_attrs(config, val_acc, status, reason), **(user_attrs or {})}))


def new_study(url: str, name: str, network: str = "lenet", directions=("maximize",)):
    study = optuna.create_study(study_name=name, storage=url, directions=list(directions))
    study.set_user_attr("setup", {"network": network, "space": f"{name}.toml", "seed": 0,
                                  "train_subset": 1000, "val_size": 1000})
    study.set_metric_names(["val_accuracy", "train_seconds"][:len(directions)])
    return study


SEVERAL = [  # kind, params, val acc per epoch
    ("complete", {"optimizer": "sgd", "lr_sgd": 0.9, "batch_size": 256, "epochs": 2}, [0.55, 0.68]),
    ("complete", {"optimizer": "adam", "lr_adam": 0.003, "batch_size": 64, "epochs": 3},
     [0.70, 0.76, 0.79]),
    ("complete", {"optimizer": "sgd", "lr_sgd": 0.3, "batch_size": 128, "epochs": 2}, [0.50, 0.61]),
    ("complete", {"optimizer": "sgd", "lr_sgd": 2.0, "batch_size": 512, "epochs": 3},
     [0.40, 0.58, 0.66]),
    ("complete", {"optimizer": "momentum", "lr_sgd": 0.05, "batch_size": 64, "epochs": 2},
     [0.62, 0.72]),
    ("chance", {"optimizer": "sgd", "lr_sgd": 0.01, "batch_size": 512, "epochs": 2}, [0.10, 0.10]),
    ("pruned", {"optimizer": "sgd", "lr_sgd": 0.02, "batch_size": 512, "epochs": 3}, [0.10, 0.11]),
    ("diverged", {"optimizer": "sgd", "lr_sgd": 2.9, "batch_size": 64, "epochs": 2}, [0.35, 0.10]),
]


def lenet_study(url: str, name: str, n_complete: int) -> optuna.Study:
    """A lenet study with the first N_COMPLETE completed trials of SEVERAL, then a pruned and a
    diverged one; with all five completed, also one at chance level."""
    study = new_study(url, name)
    completes = [s for s in SEVERAL if s[0] == "complete"][:n_complete]
    extras = [s for s in SEVERAL if s[0] != "complete" and (n_complete == 5 or s[0] != "chance")]
    for kind, params, acc in completes + extras:
        add(study, kind, params, acc)
    return study


def lab_study(url: str, network: str = "alexnet") -> optuna.Study:
    """lab-NETWORK with every row of studies/lab-NETWORK.toml, added in reverse order (the
    table must restore the lab's); the lr=0.5 row diverged."""
    space = spaces.load(ROOT / "hpsearch" / "studies" / f"lab-{network}.toml")
    study = new_study(url, f"lab-{network}", network)
    dists = {p.name: p.distribution for p in space.params}
    rows = list(enumerate(zip(space.lab_rows, space.lab_labels)))
    for i, (row, label) in reversed(rows):
        config = {"model": network, **row, "momentum": None, "weight_decay": 0.0,
                  "schedule": "constant", "resize": 96, "seed": 0}
        kind = "diverged" if label == "lr=0.5" else "complete"
        add(study, kind, dict(row), [0.5 + 0.01 * i, 0.6 + 0.01 * i], dists, config,
            {"lab_row": i, "lab_label": label})
    return study


TRAINED = [{"optimizer": "adam", "lr_adam": 0.01, "batch_size": 256, "epochs": 1},
           {"optimizer": "sgd", "lr_sgd": 0.9, "batch_size": 256, "epochs": 1}]


def trained_study(url: str, name: str, arrays) -> optuna.Study:
    """A lenet study of len(TRAINED) one-epoch trials, really trained on 1,000 images, each
    uploading its learning curve to the artifact folder of URL, with the study's dashboard note."""
    splits = data.make_splits(arrays, torch.device("cpu"), seed=0, train_subset=1000,
                              val_subset=500)
    space = spaces.cap_epochs(spaces.load(ROOT / "hpsearch" / "studies" / "lenet.toml"), 1)
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize")
    study.set_user_attr("setup", {"network": "lenet", "space": "lenet.toml", "max_epochs": 1})
    notes.add_study_note(study, space)
    for params in TRAINED:
        study.enqueue_trial(params)
    objective = Objective(space, splits, torch.device("cpu"),
                          hooks=(hooks.CurveArtifact(artifacts.open_store(url)),))
    study.optimize(objective, n_trials=len(TRAINED))
    return study
