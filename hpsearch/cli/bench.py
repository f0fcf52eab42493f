"""`hpsearch bench ...`: the benchmarks of a source checkout (benchmarks/, which is not part of
the installed package), the same as scripts/bench there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from hpsearch.errors import UsageError


def main(argv: list[str] | None = None, prog: str = "hpsearch bench") -> int:
    checkout = Path.cwd()
    if (checkout / "benchmarks" / "engine.py").is_file() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # the console script's path holds only its own folder
    if importlib.util.find_spec("benchmarks") is None:
        raise UsageError("the benchmarks live in hpsearch's source checkout (benchmarks/), not "
                         "in the installed package; run `hpsearch bench` from the checkout's "
                         "root, or scripts/bench there")
    from benchmarks.options import parse_args

    parse_args(argv, prog)  # --help and bad flags answered before torch is imported
    from benchmarks.engine import main as bench_main

    return bench_main(argv, prog)
