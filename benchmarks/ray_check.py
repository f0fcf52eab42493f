"""scripts/bench --ray-check: the same small lenet study run by two subprocess workers
(`--devices cpu,cpu`) and by two Ray workers on a Ray started for it (`--ray local`), one after
the other on this machine: wall clock, trials per hour, and what Ray's start-up costs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

from benchmarks.cost_check import CHECKOUT, CostStudy


FULL = CostStudy("lenet", 12, 5_000, 2_000, 3)
TINY = CostStudy("lenet", 2, 500, 500, 1)
WAYS = {"subprocess": ["--devices", "cpu,cpu"], "ray": ["--ray", "local"]}


def run_way(way: str, plan: CostStudy, say) -> dict:
    import optuna
    from optuna.trial import TrialState

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ray-check.db"
        cmd = [sys.executable, "-m", "hpsearch.study", plan.network, "--trials", str(plan.trials),
               "--pruner", "none", "--seed", "0", "--storage", url,
               "--train-subset", str(plan.train_subset), "--val-size", str(plan.val_size),
               "--max-epochs", str(plan.max_epochs), "--quiet", *WAYS[way]]
        say(f"ray check: {shlex.join(cmd[1:])}")
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True,
                              env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        trials = optuna.load_study(study_name=plan.network, storage=url).get_trials(
            states=(TrialState.COMPLETE, TrialState.PRUNED))
    connect = re.search(r"ray: connected to \S+ in ([\d.]+) s", proc.stdout)
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    return {"way": way, "command": shlex.join(cmd), "wall_s": wall, "trials": len(trials),
            "trials_per_hour": len(trials) * 3600 / wall,
            "trial_span_s": (last - first).total_seconds(),
            "ray_connect_s": float(connect.group(1)) if connect else None}


def check(plan: CostStudy, say) -> dict:
    ways = [run_way(way, plan, say) for way in WAYS]
    return {**asdict(plan), "ways": ways,
            "ray_over_subprocess_wall": ways[1]["wall_s"] / ways[0]["wall_s"]}


def table(result: dict) -> str:
    lines = [f"{result['network']}, {result['trials']} trials, {result['train_subset']:,} images, "
             f"{result['max_epochs']} epochs, no pruning, two workers each way:", "",
             "| workers | wall clock | trials/hour | first trial start to last end | "
             "Ray start-up |", "|---|---|---|---|---|"]
    for w in result["ways"]:
        startup = "-" if w["ray_connect_s"] is None else f"{w['ray_connect_s']:.1f} s"
        lines.append(f"| {w['way']} | {w['wall_s']:.1f} s | {w['trials_per_hour']:.0f} | "
                     f"{w['trial_span_s']:.1f} s | {startup} |")
    lines.append(f"\nRay / subprocess wall clock: {result['ray_over_subprocess_wall']:.2f}")
    return "\n".join(lines)
