"""Run an Optuna study over one network's search space.

    python -m hpsearch.study resnet --trials 40
    python -m hpsearch.study lenet --trials 20 --train-subset 10000 --max-epochs 5
    python -m hpsearch.study lab-lenet          # the lab's one-factor-at-a-time runs

The study lives in the storage (SQLite file hpsearch.db by default): stop it at any time, run
the same command again, and it continues.
"""

from __future__ import annotations

import sys

from hpsearch.cli import run_main
from hpsearch.study.options import parse


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)  # light: --help and bad flags never import torch
    from hpsearch.study.run import run

    return run(opts)


if __name__ == "__main__":
    sys.exit(run_main(main))
