"""Where a study's words go. The study layer never prints: its drivers are handed a Console by
the command line (hpsearch/cli/terminal.py prints; a library caller may pass `Silent`)."""

from __future__ import annotations

from typing import Protocol

from hpsearch.engine.config import TrainConfig


class TrialWatcher(Protocol):
    """Live progress of a study's trials (the command line's bars on a terminal)."""

    def started(self, number: int, cfg: TrainConfig) -> None: ...

    def epoch(self, val_acc: float) -> None: ...

    def finished(self, line: str, left: str) -> None: ...

    def note(self, line: str) -> None: ...

    def close(self) -> None: ...


class Console(Protocol):
    def say(self, line: str) -> None:
        """A line of progress or result (standard output)."""

    def warn(self, line: str) -> None:
        """A line about something wrong or cut short (standard error)."""

    def bars(self, total: int | None, done: int, quiet: bool,
             tag: str | None) -> TrialWatcher | None:
        """Live bars toward TOTAL trials from DONE, where they are wanted; None: plain lines."""


class Silent:
    """A Console that keeps everything to itself: lines are collected, never printed."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)

    def warn(self, line: str) -> None:
        self.lines.append(line)

    def bars(self, total, done, quiet, tag) -> None:
        return None
