"""The benchmark's command line, parsed without importing torch (so `hpsearch bench --help`
answers at once): what `scripts/bench` takes."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch.cli.common import duration, parser, positive, seed

NETWORKS = ("lenet", "net28", "resnet", "alexnet_small")  # engine.FULL_CASES, in that order
FIDELITY_FORM = "NETWORK:TRIALS:TRAIN:VAL:EPOCHS, e.g. lenet:20:20000:5000:10"


def parse_args(argv: list[str] | None, prog: str = "scripts/bench") -> argparse.Namespace:
    p = parser(
        prog,
        "Time hpsearch's engine against the lab's own pipeline (DataLoader, "
        "per-step .item()) on this machine, plus a pruned vs unpruned study; or, "
        "with --precision-check, compare float32 and bfloat16 accuracy.")
    p.add_argument("--tiny", action="store_true",
                   help="a few hundred images, one epoch, a 2-trial study (seconds; for tests)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), metavar="FILE",
                   help="JSON file for every figure (default bench.json)")
    p.add_argument("--repeats", type=positive(int, "--repeats", 100), metavar="N",
                   help="runs of each side per network and of each study, alternating; the "
                        "fastest counts (default 2, tiny 1)")
    p.add_argument("--networks", metavar="LIST",
                   help="comma-separated subset of: "
                        f"{', '.join(NETWORKS)} (default all)")
    parts = p.add_mutually_exclusive_group()
    parts.add_argument("--no-study", action="store_true", help="skip the study-level figure")
    parts.add_argument("--study-only", action="store_true", help="only the study-level figure")
    p.add_argument("--precision-check", action="store_true",
                   help="instead of timing: val accuracy in float32 against bfloat16 autocast")
    p.add_argument("--cost-check", action="store_true",
                   help="instead of timing: the cost model's predicted trial seconds against "
                        "the measured ones, over a 20-trial lenet and a 10-trial net28 study "
                        "(about 6 minutes)")
    p.add_argument("--search", action="store_true",
                   help="instead of timing: search configurations (sampler + pruner) over "
                        "--seeds study seeds at a fixed fidelity, lenet and net28 (hours); "
                        "writes the JSON and a plot beside it")
    p.add_argument("--seeds", type=positive(int, "--seeds", 100), default=5, metavar="S",
                   help="with --search: study seeds per configuration (default 5); with "
                        "--knobs, --peer or --warm-check: training or study seeds (give 3)")
    p.add_argument("--first-seed", type=seed("--first-seed"), default=0, metavar="N",
                   help="with --peer or --warm-check: study seeds N..N+S-1 (default 0), to add "
                        "seeds to an earlier run")
    p.add_argument("--search-at", metavar="FIDELITY",
                   help="with --search: this fidelity instead of the standard ones, "
                        f"{FIDELITY_FORM}")
    p.add_argument("--config", action="append", metavar="NAME",
                   help="with --search: only this configuration, by its name in the table "
                        "(repeat for more; the first is the one gains are paired against)")
    p.add_argument("--space", type=Path, metavar="FILE",
                   help="with --search: every study searches this space file instead of "
                        "studies/NETWORK.toml (an earlier version, say, to pair against)")
    p.add_argument("--ray-check", action="store_true",
                   help="instead of timing: a 12-trial lenet study by two worker processes "
                        "(--devices cpu,cpu) against two Ray workers (--ray local); needs the "
                        "ray extra (about 2 minutes)")
    p.add_argument("--fuzz", action="store_true",
                   help="instead of timing: generated bad command lines for every command and "
                        "generated space files (benchmarks/fuzz.py), counted: 10,000 and 5,000 "
                        "(--tiny: 400 and 200)")
    p.add_argument("--signals", action="store_true",
                   help="instead of timing: SIGINT or SIGTERM at random moments of study, "
                        "export and confirm runs, 20 of each (--tiny: 2); each must end within "
                        "5 s with exit 130 and nothing RUNNING or half-written")
    p.add_argument("--load-check", action="store_true",
                   help="instead of timing: the resnet --trials 40 dry run on a quiet machine "
                        "against the same beside a training study (about 5 minutes)")
    p.add_argument("--knobs", action="store_true",
                   help="instead of timing: each knob a space may search (schedule, warm-up, "
                        "label smoothing, augmentation) on one good lenet and net28 "
                        "configuration over --seeds training seeds, paired against constant "
                        "lr with none (about 40 minutes at 3 seeds; --tiny: seconds)")
    p.add_argument("--peer", choices=("flaml",),
                   help="instead of timing: hpsearch's --budget study against FLAML's tuner "
                        "(flaml.tune, CFO, sample size as its resource) at the same budget on "
                        "the same space and training function, each winner retrained over 3 "
                        "fresh seeds and tested; per --seeds study seed (needs the bench extra)")
    p.add_argument("--warm-check", action="store_true",
                   help="instead of timing: a --budget study warm-started from a 2-minute one "
                        "against a cold one, per --seeds study seed: the time each takes to "
                        "reach the cold study's best val (with --peer, shares its cold study)")
    p.add_argument("--budget", type=duration("--budget"), metavar="DURATION",
                   help="with --peer or --warm-check: each arm's budget (default: lenet 10m, "
                        "net28 20m)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda:0, ...")
    return p.parse_args(argv)
