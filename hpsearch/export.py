"""Write a study's best parameters as JSON, with their test accuracy and the command that
reproduces them.

    python -m hpsearch.export lenet --out best-lenet.json

The test accuracy comes from training the best configuration once more, on the study's whole
training split (50,000 images unless the study's --val-size differs; no subset), and evaluating
it once on the 10,000 test images. Nothing else in hpsearch touches the test images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna
import torch
import torchvision
from optuna.trial import FrozenTrial

from hpsearch import confirm, data, options, storage as stores
from hpsearch.cli import positive, run_main
from hpsearch.errors import UsageError

CONFIRMATION = confirm.ATTR
from hpsearch.study.output import quiet_optuna
from hpsearch.config import DEFAULT_VAL_SIZE, TrainConfig, train_command
from hpsearch.train import evaluate, eval_batch_size, pick_device, train

def reproduce_command(cfg: TrainConfig, setup: dict, train_subset: int | None) -> str:
    """The `python -m hpsearch.train` line that trains CFG on the study's split."""
    return train_command(cfg, train_subset, setup.get("val_size", DEFAULT_VAL_SIZE))


def trial_entry(t: FrozenTrial, setup: dict) -> dict:
    cfg = TrainConfig(**t.user_attrs["config"])
    return {
        "number": t.number,
        "values": t.values,
        "params": t.params,
        "config": t.user_attrs["config"],
        "user_attrs": t.user_attrs,
        "command": reproduce_command(cfg, setup, setup.get("train_subset")),
    }


def test_accuracy(cfg: TrainConfig, setup: dict, arrays: data.FashionMNISTArrays,
                  device: torch.device, train_subset: int | None, log) -> dict:
    """Train CFG on the study's training split (optionally a subset) and evaluate once on the
    test images."""
    splits = data.make_splits(arrays, device, val_size=setup.get("val_size", DEFAULT_VAL_SIZE),
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


def chosen_trial(study: optuna.Study, best: list[FrozenTrial]) -> FrozenTrial:
    """The confirmed winner where the study is confirmed (hpsearch.confirm), else the most
    accurate best trial."""
    top = max(best, key=lambda t: t.values[0])
    block = study.user_attrs.get(CONFIRMATION)
    if block and block["winner"]["trial"] is not None:
        winner = study.trials[block["winner"]["trial"]]
        if winner.number != top.number:
            print(f"exporting the confirmed winner, trial {winner.number} (best mean over "
                  f"{len(block['seeds'])} seeds), not the search's best, trial {top.number}")
        return winner
    return top


def build_export(study: optuna.Study, test: dict | None, chosen: FrozenTrial) -> dict:
    setup = study.user_attrs.get("setup", {})
    two = len(study.directions) > 1
    best = study.best_trials
    doc = {
        "study": study.study_name,
        "network": setup.get("network"),
        "directions": [d.name.lower() for d in study.directions],
        "metric_names": study.metric_names,
        "setup": setup,
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser("python -m hpsearch.export", "Write a study's best parameters as JSON.")
    p.add_argument("study", metavar="STUDY")
    options.add_storage(p)
    p.add_argument("--out", type=Path, metavar="FILE", help="default: best-STUDY.json")
    p.add_argument("--no-test", action="store_true",
                   help="skip the retraining that measures test accuracy")
    p.add_argument("--train-subset", type=positive(int, "--train-subset"), metavar="N",
                   help="retrain on N images instead of the whole training split (faster)")
    options.add_device(p)
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder with the four Fashion-MNIST IDX files")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_optuna()
    study, _ = stores.load_study_at(args.study, args.storage)
    try:
        best = study.best_trials
    except ValueError:
        best = []
    if not best:
        raise UsageError(f"study {args.study!r} has no completed trial yet; nothing to export")
    setup = study.user_attrs.get("setup", {})
    options.check_split(setup.get("val_size", DEFAULT_VAL_SIZE), args.train_subset)
    test = None
    top = chosen_trial(study, best)
    if not args.no_test:
        cfg = TrainConfig(**top.user_attrs["config"])
        device = pick_device(args.device)
        arrays = data.load(args.data_dir or data.env_data_dir())
        print(f"retraining trial {top.number} to measure test accuracy ...", flush=True)
        log = None if args.quiet else (lambda line: print("    " + line, flush=True))
        test = {"trial": top.number,
                **test_accuracy(cfg, setup, arrays, device, args.train_subset, log)}
    doc = build_export(study, test, top)
    out = args.out or Path(f"best-{args.study}.json")
    out.write_text(json.dumps(doc, indent=2, default=str))
    value = doc.get("best_value")
    print(f"wrote {out}: study {args.study!r}"
          + (f", best val acc {value:.4f}" if value is not None else
             f", {len(doc['pareto_front'])} Pareto trials")
          + (f", test acc {test['test_accuracy']:.4f}" if test else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
