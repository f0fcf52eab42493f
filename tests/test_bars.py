"""Live progress bars: drawn on a terminal (a pseudo-terminal here), never in a pipe or
under --quiet, and the trial lines come through either way."""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import optuna
import pytest

from conftest import ROOT, run_cli
from hpsearch.engine.config import TrainConfig
from hpsearch.cli import bars

SMALL = ["--train-subset", "1000", "--val-size", "1000", "--max-epochs", "2",
         "--pruner", "none"]


def run_on_a_terminal(*args: str) -> tuple[int, str]:
    """`python -m hpsearch.study ARGS` with stdout and stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0x0 and tqdm draws nothing on it; a real one has a size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.study", *args], cwd=ROOT,
                            stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=600), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_gets_a_study_bar_and_a_trial_bar(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    code, out = run_on_a_terminal("lenet", "--trials", "3", "--storage", url, *SMALL)
    assert code == 0, out
    assert "\r" in out  # redrawn in place
    assert "study:" in out and "/3 [" in out and "3/3 [" in out
    assert "trial 1:" in out and ("epoch/s" in out or "s/epoch" in out)
    # The trial lines are all there, above the bars, and the summary after them.
    assert sum(line.lstrip("\r").startswith("trial ") and "COMPLETE" in line
               for line in out.splitlines()) == 3
    assert "best trial" in out
    assert len(optuna.load_study(study_name="lenet", storage=url).trials) == 3


@pytest.mark.slow
def test_a_pipe_and_quiet_get_plain_lines(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "2", "--storage", url, *SMALL)
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stdout + p.stderr and "epoch/s" not in p.stdout + p.stderr
    assert p.stdout.count("\ntrial ") == 2
    assert "    epoch 1/" in p.stdout  # per-epoch lines where there are no bars
    code, out = run_on_a_terminal("lenet", "--trials", "1", "--storage", url, "--quiet", *SMALL)
    assert code == 0, out
    assert "study:" not in out and "    epoch" not in out and out.count("\ntrial ") == 1


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_for_one_process_on_a_terminal():
    assert bars.wanted(False, None, Terminal())
    assert not bars.wanted(True, None, Terminal())  # --quiet
    assert not bars.wanted(False, "w0 cpu", Terminal())  # a worker of --devices/--jobs
    assert not bars.wanted(False, None, io.StringIO())  # a pipe or a file


def test_bars_count_trials_and_epochs():
    out = Terminal()
    live = bars.LiveBars(4, done=1, stream=out)
    live.started(7, TrainConfig(model="lenet", epochs=3))
    live.epoch(0.5)
    live.epoch(0.6)
    assert live.trial.n == 2 and live.trial.total == 3 and live.trial.postfix == "val acc 0.6000"
    live.finished("trial   7 COMPLETE value 0.6000", "~1m left")
    assert live.trial is None and live.study.n == 2 and live.study.total == 4
    live.close()
    text = out.getvalue()
    assert "trial   7 COMPLETE value 0.6000" in text and "~1m left" in text
    assert "2/4" in text
