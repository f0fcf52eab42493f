"""How a command answers Ctrl-C and SIGTERM: at once, as a KeyboardInterrupt, which the command
line turns into one line and exit 130. A trial loop takes the signals over while it runs
(study.loop.StopFlag: the running trial ends after its current step, the study is left
consistent) and gives them back when it ends.

A KeyboardInterrupt raised where Python ignores exceptions (a finalizer run by the garbage
collector: "Exception ignored in ...") would be lost, so each signal is also recorded:
`stop_requested` raises it again at the next training step, and a trial loop that starts after
one ends at once."""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # signals since interrupt_on_signals, for those raised and lost


def _interrupt(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """From here on, SIGINT and SIGTERM raise KeyboardInterrupt (SIGTERM's default would end
    the process without a word; a SIGINT ignored by the shell that started us would be lost)."""
    _received.clear()
    for sig in SIGNALS:
        signal.signal(sig, _interrupt)


def ignore_signals() -> None:
    """A command that has done its work and said so exits with its own status: a signal that
    comes now changes nothing (at interpreter shutdown Python would hand it to the default
    handler, and the process would die of it instead)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def received() -> int | None:
    """The first signal since interrupt_on_signals, if one came."""
    return _received[0] if _received else None


def stop_requested() -> bool:
    """False, or KeyboardInterrupt raised again for a signal that came (and whose own
    KeyboardInterrupt may have been lost): what a training run outside a study asks after
    each step."""
    if _received:
        raise KeyboardInterrupt
    return False
