"""Live progress bars for a study on a terminal: one for the study (trials, with elapsed time
and what is left) and one for the running trial's epochs. Trial lines are written above the
bars, so the terminal shows the same lines as a plain run, plus where the study is now.
Off the terminal (a pipe, a log file, CI) and under --quiet there are no bars: plain lines."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from hpsearch.engine.config import TrainConfig


def wanted(quiet: bool, tag: str | None, stream: TextIO = sys.stdout) -> bool:
    """Bars only for one study process writing to a terminal: a worker of --devices/--jobs
    shares its parent's terminal with the other workers, whose bars would overwrite each other."""
    return not quiet and not tag and stream.isatty()


class LiveBars:
    """The study bar counts finished trials from DONE toward TOTAL (None: open-ended, as under
    a budget alone); its postfix is the Progress line's time left. The trial bar is remade per
    trial."""

    def __init__(self, total: int | None, done: int = 0, stream: TextIO = sys.stdout):
        self.stream = stream
        self.study = tqdm(total=total, initial=done, desc="study", unit="trial", position=0,
                          file=stream,
                          dynamic_ncols=True, bar_format=_STUDY_FORMAT if total else None)
        self.trial: tqdm | None = None

    def started(self, number: int, cfg: TrainConfig) -> None:
        self._close_trial()
        self.trial = tqdm(total=cfg.epochs, desc=f"trial {number}", unit="epoch", position=1,
                          leave=False, file=self.stream, dynamic_ncols=True)

    def epoch(self, val_acc: float) -> None:
        if self.trial is not None:
            self.trial.set_postfix_str(f"val acc {val_acc:.4f}", refresh=False)
            self.trial.update(1)

    def finished(self, line: str, left: str) -> None:
        """A trial ended: its line goes above the bars, the study bar moves on."""
        self._close_trial()
        self.study.write(line, file=self.stream)
        self.study.set_postfix_str(left, refresh=False)
        self.study.update(1)

    def note(self, line: str) -> None:
        """A line above the bars that moves neither."""
        self.study.write(line, file=self.stream)

    def close(self) -> None:
        self._close_trial()
        self.study.close()

    def _close_trial(self) -> None:
        if self.trial is not None:
            self.trial.close()
            self.trial = None


# tqdm's default, with its own rate-based remaining time left out: trials differ too much in
# length for it, and the postfix carries the plan's estimate instead.
_STUDY_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
