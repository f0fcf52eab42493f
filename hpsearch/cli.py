"""What every command line shares: bad input becomes a message and exit status 2."""

from __future__ import annotations

import sys
from typing import Callable

from hpsearch.errors import UsageError


def run_main(main: Callable[[], int]) -> int:
    """Run MAIN; a UsageError prints 'error: ...' to stderr and returns 2, without a traceback.
    Ctrl-C returns 130 with one line instead of a traceback."""
    try:
        return main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def positive(kind: type, name: str) -> Callable[[str], object]:
    """argparse type: a number > 0, with a message that names the flag and what is allowed."""
    import argparse

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a {kind.__name__}, got {text!r}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        return value

    return convert
