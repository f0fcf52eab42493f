"""`python -m benchmarks ...`: the same as scripts/bench."""

import sys

from benchmarks.engine import main
from hpsearch.cli.common import run_main

sys.exit(run_main(lambda: main(sys.argv[1:])))
