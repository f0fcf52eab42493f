"""The `hpsearch` command: parsing and printing only; the work is done by the layers below
(engine, models, study, results), which return values and never print.

    hpsearch study resnet --trials 40
    hpsearch --help

Each subcommand is a module here with `main(argv, prog)`. This file imports none of them (and
so neither torch nor Optuna) until one is named, so `hpsearch --help` answers at once.
"""

from __future__ import annotations

import importlib
import sys

# name -> what it does, in the order `hpsearch --help` lists them
COMMANDS = {
    "study": "run or continue an Optuna study of one network (the main command)",
    "train": "train one network once: one row of the lab's table",
    "confirm": "re-train a study's best configurations over fresh seeds",
    "export": "write a study's best parameters as JSON, with their test accuracy",
    "report": "plots, the lab-style table and a summary of a study, in a folder",
    "models": "the networks, or one network layer by layer",
    "dashboard": "optuna-dashboard on the study storage, with the trials' artifacts",
    "worker": "one study worker on a shared storage, for clusters without Ray",
    "bench": "the benchmarks (from a source checkout)",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hpsearch COMMAND [ARGS...]   (hpsearch COMMAND --help for its flags)", "",
             "Hyperparameter studies for convolutional networks on Fashion-MNIST, on Optuna "
             "and PyTorch.", "", "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, about in COMMANDS.items()]
    return "\n".join(lines)


def run_command(name: str, argv: list[str], prog: str) -> int:
    """Subcommand NAME on ARGV, its usage errors as one line and exit status 2."""
    from hpsearch.cli.common import run_main

    module = importlib.import_module(f"hpsearch.cli.{name}")
    return run_main(lambda: module.main(argv, prog))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from hpsearch import __version__

        print(f"hpsearch {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"hpsearch: error: unknown command {name!r}; choose one of: "
              f"{', '.join(COMMANDS)} (see hpsearch --help)", file=sys.stderr)
        return 2
    return run_command(name, argv[1:], f"hpsearch {name}")


def entry(name: str) -> None:
    """`python -m hpsearch.NAME ARGS...`: the same as `hpsearch NAME ARGS...`."""
    sys.exit(run_command(name, sys.argv[1:], f"python -m hpsearch.{name}"))
