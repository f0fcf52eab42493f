"""scripts/bench --cost-check: how well the cost model predicts trial seconds. Real studies run
through the study command (no pruning, so every trial runs to its end); for each trial, the
seconds the cost model predicted before it started against the seconds it took (Optuna's span
from start to end, which is what a budget spends)."""

from __future__ import annotations

import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from hpsearch.results.table import prediction_errors

MEDIAN_TARGET = 0.15  # median absolute error, as a share of the measured seconds
WORST_TARGET = 0.40
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CostStudy:
    network: str
    trials: int
    train_subset: int
    val_size: int
    max_epochs: int


FULL = (CostStudy("lenet", 20, 10_000, 10_000, 5), CostStudy("net28", 10, 10_000, 10_000, 4))
TINY = (CostStudy("lenet", 3, 500, 500, 1),)


def check(plan: CostStudy, device: str, say) -> dict:
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cost.db"
        cmd = [sys.executable, "-m", "hpsearch.study", plan.network, "--trials",
               str(plan.trials), "--pruner", "none", "--seed", "0", "--storage", url,
               "--train-subset", str(plan.train_subset), "--val-size", str(plan.val_size),
               "--max-epochs", str(plan.max_epochs), "--device", device, "--quiet"]
        say(f"cost check: {shlex.join(cmd[1:])}")
        proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        rows = prediction_errors(optuna.load_study(study_name=plan.network,
                                                   storage=url).trials)
    size = [abs(r["error"]) for r in rows]
    median, worst = statistics.median(size), max(size)
    return {**asdict(plan), "command": shlex.join(cmd), "trials_compared": rows,
            "median_abs_error": median, "worst_abs_error": worst,
            "target_median": MEDIAN_TARGET, "target_worst": WORST_TARGET,
            "target_met": median <= MEDIAN_TARGET and worst <= WORST_TARGET}


def table(results: list[dict]) -> str:
    lines = ["| study | trials compared | median abs error | worst | target (15% / 40%) |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['network']} {r['trials']} trials, {r['train_subset']:,} images, "
                     f"<= {r['max_epochs']} epochs | {len(r['trials_compared'])} | "
                     f"{r['median_abs_error']:.1%} | {r['worst_abs_error']:.1%} | "
                     f"{'met' if r['target_met'] else 'MISSED'} |")
    return "\n".join(lines)
