"""`hpsearch export STUDY`: the best parameters as JSON, with their test accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hpsearch.cli import common
from hpsearch.cli.common import positive
from hpsearch.engine.config import check_split
from hpsearch.errors import UsageError
from hpsearch.files import write_atomic


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.parser(prog, "Write a study's best parameters as JSON.")
    p.add_argument("study", metavar="STUDY")
    common.add_storage(p)
    p.add_argument("--out", type=Path, metavar="FILE", help="default: best-STUDY.json")
    p.add_argument("--no-test", action="store_true",
                   help="skip the retraining that measures test accuracy")
    p.add_argument("--train-subset", type=positive(int, "--train-subset"), metavar="N",
                   help="retrain on N images instead of the whole training split (faster)")
    common.add_device(p)
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder with the four Fashion-MNIST IDX files")
    p.add_argument("--quiet", action="store_true")
    return p


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "hpsearch export") -> int:
    args = parse_args(argv, prog)
    out = args.out or Path(f"best-{args.study}.json")
    common.check_writable(out, "--out")
    from hpsearch.results import export
    from hpsearch.study.setup import StudySetup
    from hpsearch.study import storage as stores
    from hpsearch.study.output import best_trials, quiet_optuna

    quiet_optuna()
    study = stores.load_study_at(args.study, *common.storage_url(args.storage), write=False)
    best = best_trials(study)
    if not best:
        raise UsageError(f"study {args.study!r} has no completed trial yet; nothing to export")
    setup = StudySetup.of(study)
    check_split(setup.val_size, args.train_subset)
    if not args.no_test:  # the retraining's device and data, before minutes are spent on it
        common.check_training_inputs(args.device, args.data_dir)
    top, note = export.chosen_trial(study, best)
    if note:
        print(note)
    test = None
    if not args.no_test:
        print(f"retraining trial {top.number} to measure test accuracy ...", flush=True)
        log = None if args.quiet else (lambda line: print("    " + line, flush=True))
        test = export.retrain_and_test(top, setup, args.device, args.data_dir,
                                       args.train_subset, log)
    doc = export.build_export(study, test, top)
    write_atomic(out, json.dumps(doc, indent=2, default=str))
    value = doc.get("best_value")
    print(f"wrote {out}: study {args.study!r}"
          + (f", best val acc {value:.4f}" if value is not None else
             f", {len(doc['pareto_front'])} Pareto trials")
          + (f", test acc {test['test_accuracy']:.4f}" if test else ""))
    return 0
