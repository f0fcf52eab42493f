"""`hpsearch report STUDY`: plots, the lab-style table and a summary, in a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch.cli import common


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.parser(
        prog,
        "Write a study's plots, lab-style table and summary into a folder with an index.html "
        "that works offline.")
    p.add_argument("study", metavar="STUDY")
    common.add_storage(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="default: reports/STUDY")
    return p


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "hpsearch report") -> int:
    args = parse_args(argv, prog)
    from hpsearch.results import report as reports
    from hpsearch.study import storage as stores
    from hpsearch.study.output import quiet_optuna

    quiet_optuna()
    out = args.out or Path("reports") / args.study
    common.check_folder_writable(out, "--out")
    study = stores.load_study_at(args.study, *common.storage_url(args.storage), write=False)
    report = reports.write(study, out)
    drawn = [p.name for p in report.plots if not p.skipped]
    print(f"wrote {out / 'index.html'}: {len(drawn)} plots ({', '.join(drawn) or 'none'}), "
          f"table of {len(report.table.rows)} trials")
    for p in report.plots:
        if p.skipped:
            print(f"skipped {p.name}: {p.skipped}")
    return 0
