"""Durations as people write them (90s, 30m, 1h30m) and as hpsearch prints them (3m10s)."""

from __future__ import annotations

import re


HOUR = 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhd])")


def parse_duration(text: str, name: str) -> float:
    """Seconds of '90s', '30m', '2h', '1h30m' (a number alone is refused: which unit?), more
    than 0; ValueError naming NAME (the flag) and what is allowed otherwise."""
    clean = text.strip().lower()
    parts = _DURATION.findall(clean)
    if not parts or "".join(n + u for n, u in parts) != clean:
        raise ValueError(f"{name} takes a duration: a number and a unit (s, m, h, d), like 90s, "
                         f"30m, 2h or 1h30m; got {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{name} must be more than 0 seconds, got {text!r}")
    return seconds


def fmt_seconds(s: float) -> str:
    """1.2 s, 45 s, 3m10s, 2h05m."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < HOUR:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // HOUR)}h{int(s % HOUR // 60):02d}m"
