"""`hpsearch confirm STUDY`: re-train a study's best configurations over fresh seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch.cli import common
from hpsearch.cli.common import positive
from hpsearch.errors import UsageError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.parser(prog,
                      "Re-train a study's best configurations over fresh seeds, against the "
                      "lab's baseline; the winner alone is evaluated on the test images.")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--top", type=positive(int, "--top", 100), default=3, metavar="K",
                   help="configurations to confirm, best by the search's val accuracy "
                        "(default 3)")
    p.add_argument("--seeds", type=positive(int, "--seeds", 100), default=3, metavar="S",
                   help="fresh seeds per configuration (default 3)")
    p.add_argument("--full", action="store_true",
                   help="train on the whole training split instead of the study's subset")
    common.add_storage(p)
    common.add_device(p)
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder with the four Fashion-MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return p


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def run_confirmation(study, storage, top: int, seeds: int, full: bool, device: str,
                     data_dir: Path | None, quiet: bool) -> None:
    """Confirm STUDY's TOP configurations over SEEDS seeds, printing as it goes (also what
    `hpsearch study --confirm` runs after its search)."""
    from hpsearch.results import confirm
    from hpsearch.study.setup import StudySetup

    print(confirm.cost_line(study, top, seeds, full), flush=True)
    log = None if quiet else (lambda line: print("    " + line, flush=True))
    block = confirm.confirm(study, storage, top, seeds, full,
                            confirm.trainer(StudySetup.of(study), full, device,
                                            data_dir, log),
                            lambda line: print(line, flush=True))
    print("\n".join(confirm.report_lines(block)))


def main(argv: list[str] | None = None, prog: str = "hpsearch confirm") -> int:
    args = parse_args(argv, prog)
    from hpsearch.study import storage as stores
    from hpsearch.study.output import quiet_optuna

    quiet_optuna()
    url, source = common.storage_url(args.storage)
    study = stores.load_study_at(args.study, url, source, write=True)
    if args.full and any("lab_row" in t.user_attrs for t in study.get_trials(deepcopy=False)):
        raise UsageError(f"--full does not apply to the lab study {args.study!r}: its rows are "
                         f"the lab's runs at the lab's settings; confirm without --full")
    common.check_training_inputs(args.device, args.data_dir)
    run_confirmation(study, stores.open_storage(url), args.top, args.seeds, args.full,
                     args.device, args.data_dir, args.quiet)
    return 0
