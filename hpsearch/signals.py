"""How a command answers Ctrl-C and SIGTERM: at once, as a KeyboardInterrupt, which the command
line turns into one line and exit 130. A trial loop takes the signals over while it runs
(study.loop.StopFlag: the running trial ends at its next step, the study is left consistent)
and gives them back when it ends."""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """From here on, SIGINT and SIGTERM raise KeyboardInterrupt (SIGTERM's default would end
    the process without a word; a SIGINT ignored by the shell that started us would be lost)."""
    for sig in SIGNALS:
        signal.signal(sig, _interrupt)
