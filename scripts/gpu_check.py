"""The GPU check: one prepared run for a machine with a GPU (under 8 minutes on one GPU).

Prints the device and versions, then runs a short lenet study and a short resnet study with
1 and with 4 trials at a time on the device (--jobs, separate processes), and prints each
study's examples/s per trial and trials per minute.

    scripts/gpu-check                       # on the GPU machine
    scripts/gpu-check --device cpu --tiny   # a quick run anywhere (what the tests do)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
# Per model: the study flags of a short run that still keeps a GPU busy.
FULL = {
    "lenet": ["--train-subset", "20000", "--max-epochs", "3", "--trials", "8"],
    "resnet": ["--train-subset", "20000", "--max-epochs", "2", "--trials", "8"],
}
TINY = {
    "lenet": ["--train-subset", "500", "--val-size", "500", "--max-epochs", "1", "--trials", "2"],
    "resnet": ["--train-subset", "200", "--val-size", "200", "--max-epochs", "1", "--trials", "2",
               "--resize", "32"],
}


def describe(device: str) -> str:
    lines = [f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
             f"optuna {optuna.__version__}, python {sys.version.split()[0]}"]
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("gpu-check: no CUDA device is visible to torch")
        props = torch.cuda.get_device_properties(torch.device(device))
        lines.append(f"device {device}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"compute capability {props.major}.{props.minor}, "
                     f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} visible")
    else:
        lines.append(f"device {device}: {torch.get_num_threads()} CPU threads")
    return "\n".join(lines)


def run_study(model: str, jobs: int, device: str, flags: list[str], url: str) -> dict:
    name = f"{model}-jobs{jobs}"
    cmd = [sys.executable, "-m", "hpsearch.study", model, "--storage", url, "--study-name", name,
           "--device", device, "--jobs", str(jobs), "--pruner", "none", "--quiet", *flags]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    trials = [t for t in optuna.load_study(study_name=name, storage=url).get_trials()
              if t.state == optuna.trial.TrialState.COMPLETE]
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    span = (last - first).total_seconds()
    rates = [t.user_attrs["examples_per_s"] for t in trials]
    return {"model": model, "jobs": jobs, "trials": len(trials), "wall_s": wall,
            "examples_per_s_median": statistics.median(rates),
            "trials_per_minute": 60 * len(trials) / span if span > 0 else float("nan")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a few hundred images, for a smoke test")
    p.add_argument("--models", default="lenet,resnet")
    p.add_argument("--jobs", default="1,4")
    args = p.parse_args()
    print(describe(args.device), flush=True)
    table = TINY if args.tiny else FULL
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/gpu-check.db"
        for model in args.models.split(","):
            for jobs in map(int, args.jobs.split(",")):
                row = run_study(model, jobs, args.device, table[model], url)
                rows.append(row)
                print(f"{model:<7} jobs {jobs}: {row['trials']} trials in {row['wall_s']:.1f} s "
                      f"wall; {row['examples_per_s_median']:,.0f} examples/s per trial (median); "
                      f"{row['trials_per_minute']:.1f} trials/min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
