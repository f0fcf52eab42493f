"""Ctrl-C and SIGTERM at random moments (scripts/bench --signals): `hpsearch study`, `export`
and `confirm` on a small real lenet study, each run once to its end to learn how long it
takes, then started again and again with SIGINT or SIGTERM sent at a moment drawn uniformly
from that span (start-up, parsing and planning included). Each must end within LIMIT_S of
the signal with exit 130 (or 0, when it had finished first), leave no trial RUNNING in any
study of the storage, and leave no file half-written (the exported JSON parses, no temporary
file is left beside it, every study the search made holds its setup)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

LIMIT_S = 5.0
TINY = ["--train-subset", "2000", "--val-size", "1000", "--max-epochs", "2", "--quiet"]


def commands(url: str) -> dict[str, list[str]]:
    return {"study": ["study", "lenet", "--storage", url, "--trials", "2", *TINY],
            "export": ["export", "lenet", "--storage", url, "--train-subset", "2000",
                       "--out", "best.json", "--quiet"],
            "confirm": ["confirm", "lenet", "--storage", url, "--top", "2", "--seeds", "2",
                        "--quiet"]}


# What each command prints once its work is done: a run that printed it before the signal
# took effect has rightly ended with exit 0.
DONE = {"study": "storage: ", "export": "wrote ", "confirm": "winner: "}


def hpsearch(argv: list[str], cwd: Path) -> subprocess.Popen:
    # faulthandler: a run still going LIMIT_S after the signal is sent SIGABRT, and the
    # traceback of each of its threads, where it hung, goes into the result.
    return subprocess.Popen([sys.executable, "-m", "hpsearch", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def reset(url: str) -> None:
    """Drop the confirmation studies, so that every confirm run trains (a finished one would
    only read back what it stored)."""
    storage = optuna.storages.RDBStorage(url)
    for name in optuna.get_all_study_names(storage):
        if name.endswith("-confirm"):
            optuna.delete_study(study_name=name, storage=storage)
    storage.engine.dispose()


def damage(url: str, cwd: Path) -> list[str]:
    """What a stopped run left wrong: RUNNING trials, a study without its setup, a JSON that
    does not parse, a temporary file."""
    found = []
    storage = optuna.storages.RDBStorage(url)
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            found.append(f"{name}: {len(running)} RUNNING")
        if not name.endswith("-confirm") and "setup" not in study.user_attrs:
            found.append(f"{name}: no setup")
    storage.engine.dispose()
    out = cwd / "best.json"
    if out.exists():
        try:
            json.loads(out.read_text())
        except ValueError:
            found.append("best.json does not parse")
    found += [f"left {p.name}" for p in cwd.glob(".best.json.*")]
    return found


def one(name: str, argv: list[str], cwd: Path, delay: float, sig: int) -> dict:
    proc = hpsearch(argv, cwd)
    time.sleep(delay)
    sent = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(sig)
        finished_first = False
    else:
        finished_first = True
    hung = False
    try:
        proc.wait(timeout=2 * LIMIT_S)
    except subprocess.TimeoutExpired:  # past the limit: where is it?
        hung = True
        proc.send_signal(signal.SIGABRT)
        proc.wait()
    took = round(time.monotonic() - sent, 2)
    out, err = proc.stdout.read(), proc.stderr.read().strip().splitlines()
    return {"delay_s": round(delay, 2), "signal": signal.Signals(sig).name,
            "exit": proc.returncode, "finished_first": finished_first, "to_exit_s": took,
            "work_done": proc.returncode == 0 and DONE[name] in out,
            "last_line": err[-1] if err else "",
            "hung": hung,
            "stderr_tail": err[-40:] if hung or proc.returncode not in (0, 130) else []}


def check(runs: int, say, seed: int = 0, warm_span: bool = True) -> list[dict]:
    """RUNS signalled runs of each command; one summary per command. The span the signals
    are drawn from is a second, warm run's (WARM_SPAN), else the first's (quicker; a few
    more runs finish before their signal)."""
    rng = random.Random(seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        url = f"sqlite:///{cwd / 's.db'}"
        base = subprocess.run([sys.executable, "-m", "hpsearch", "study", "lenet", "--storage",
                               url, "--trials", "3", *TINY], cwd=cwd, capture_output=True,
                              text=True)
        if base.returncode != 0:
            raise RuntimeError(f"the study to signal could not be made: {base.stderr[-500:]}")
        for name, argv in commands(url).items():
            spans = []
            for _ in range(2 if warm_span else 1):  # the second is warm (data prepared)
                reset(url)
                started = time.monotonic()
                hpsearch(argv, cwd).wait()
                spans.append(time.monotonic() - started)
            span = spans[-1]
            results = []
            for i in range(runs):
                reset(url)
                r = one(name, argv, cwd, rng.uniform(0, span),
                        rng.choice([signal.SIGINT, signal.SIGTERM]))
                r["damage"] = damage(url, cwd)
                results.append(r)
            # Signalled while working: those not ended, nor done with their work, before it.
            signalled = [r for r in results if not r["finished_first"] and not r["work_done"]]
            summary = {"command": name, "span_s": round(span, 1), "runs": runs,
                       "signalled": len(signalled),
                       "done_first": runs - len(signalled),
                       "exit_130": sum(r["exit"] == 130 for r in signalled),
                       "slowest_exit_s": max((r["to_exit_s"] for r in signalled), default=0.0),
                       "damaged": sum(bool(r["damage"]) for r in results), "results": results}
            summary["met"] = (summary["exit_130"] == len(signalled) and not summary["damaged"]
                              and summary["slowest_exit_s"] <= LIMIT_S)
            say(f"signals: {name}: {len(signalled)} of {runs} signalled runs, "
                f"{summary['exit_130']} exit 130, slowest exit {summary['slowest_exit_s']} s, "
                f"{summary['damaged']} damaged")
            out.append(summary)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| command | run to its end | runs | done before the signal | signalled while "
             "working | exit 130 | slowest exit after the signal | damaged | target met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['command']} | {r['span_s']} s | {r['runs']} | {r['done_first']} | "
                     f"{r['signalled']} | {r['exit_130']} | {r['slowest_exit_s']} s | "
                     f"{r['damaged']} | {'yes' if r['met'] else 'NO'} |")
    return "\n".join(lines)
