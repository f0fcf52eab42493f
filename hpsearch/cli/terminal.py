"""The Console the commands hand to the study layer: lines to standard output and standard
error as they come (flushed, so a pipe or a log shows them at once), and live bars where a
terminal is there to draw them on."""

from __future__ import annotations

import sys

from hpsearch.cli import bars


class Terminal:
    """Picklable (a Ray task gets one from its driver): it holds no stream, only looks them up."""

    def say(self, line: str) -> None:
        print(line, flush=True)

    def warn(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def bars(self, total: int | None, done: int, quiet: bool,
             tag: str | None) -> bars.LiveBars | None:
        return bars.LiveBars(total, done) if bars.wanted(quiet, tag) else None
