"""An hpsearch command run in this process, its output captured and what it changes in the
process (environment, folder, signal handlers, torch threads, gc freeze) put back: what the test
suite's run_cli and the fuzz run use instead of a new interpreter, which spends 3-5 s importing
torch and Optuna for each call."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Ran:
    """What a command did: as subprocess.CompletedProcess names it."""

    returncode: int
    stdout: str
    stderr: str


def in_process(name: str, argv: list[str], cwd: Path, env: dict, collect: bool = True) -> Ran:
    """`hpsearch NAME ARGV...` in CWD with ENV added to the environment. An exception other
    than argparse's SystemExit (a traceback, for the user) propagates. COLLECT: collect the
    command's garbage after it (its storages and their connections; 0.2-0.3 s)."""
    from hpsearch.cli import run_command

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = torch.get_num_threads()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run_command(name, argv, f"python -m hpsearch.{name}")
            except SystemExit as exit_:  # argparse's usage errors and --help
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)
        gc.unfreeze()
        if collect:  # PostgreSQL takes 100 connections in all
            gc.collect()
    return Ran(code, out.getvalue(), err.getvalue())
