"""The `hpsearch` command: parsing and printing only; the work is done by the layers below
(engine, models, study, results), which return values and never print.

    hpsearch study resnet --trials 40
    hpsearch --help

Each subcommand is a module here with `main(argv, prog)`. This file imports none of them (and
so neither torch nor Optuna) until one is named, so `hpsearch --help` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys

from hpsearch.signals import interrupt_on_signals

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

    return run_main(lambda: importlib.import_module(f"hpsearch.cli.{name}").main(argv, prog))


def main(argv: list[str] | None = None) -> int:
    interrupt_on_signals()  # first: a signal while the subcommand imports ends it in one line
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


def console() -> None:
    """The `hpsearch` console script (and `python -m hpsearch`): main, then exit with its
    status."""
    leave(main())


def entry(name: str) -> None:
    """`python -m hpsearch.NAME ARGS...`: the same as `hpsearch NAME ARGS...`."""
    interrupt_on_signals()
    leave(run_command(name, sys.argv[1:], f"python -m hpsearch.{name}"))


def leave(code: int) -> None:
    """Exit with CODE. An interrupted command (130) leaves at once, its output flushed: an
    interpreter shutting down after a KeyboardInterrupt that passed through native code (torch's
    bindings) kills itself with SIGINT instead, which a caller sees as -2, not 130; and what
    the command wrote is already committed."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)
