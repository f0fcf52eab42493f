"""What every command line shares: bad input becomes a message and exit status 2."""

from __future__ import annotations

import re
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


HOUR = 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhd])")


def duration(name: str) -> Callable[[str], float]:
    """argparse type: seconds of '90s', '30m', '2h', '1h30m' (a number alone is refused:
    which unit?), more than 0."""
    import argparse

    def convert(text: str) -> float:
        clean = text.strip().lower()
        parts = _DURATION.findall(clean)
        if not parts or "".join(n + u for n, u in parts) != clean:
            raise argparse.ArgumentTypeError(
                f"{name} takes a duration: a number and a unit (s, m, h, d), like 90s, 30m, "
                f"2h or 1h30m; got {text!r}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        if seconds <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be more than 0 seconds, got {text!r}")
        return seconds

    return convert


def fmt_seconds(s: float) -> str:
    """1.2 s, 45 s, 3m10s, 2h05m."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < HOUR:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // HOUR)}h{int(s % HOUR // 60):02d}m"
