"""The GPU check: one prepared run for a machine with a GPU (under 8 minutes on one GPU,
scripts/setup included).

Prints the versions, each visible GPU with its compute capability and the precision "auto"
resolves to there; trains each model once per precision (float32, float16 with loss
scaling, bfloat16), printing the precisions the device refuses and, for the others, the
last epoch's examples/s and the val accuracy; then runs a short study per model with 1 and
with 4 trials at a time on the device (--jobs, separate processes), and prints each study's
examples/s per trial and trials per minute.

    scripts/gpu-check                       # on the GPU machine
    scripts/gpu-check --device cpu --tiny   # a quick run anywhere (what the tests do)
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
import torchvision

from hpsearch import models
from hpsearch.engine import data
from hpsearch.engine.config import TrainConfig
from hpsearch.errors import UsageError
from hpsearch.engine.device import BF16_CUDA, resolve_precision
from hpsearch.engine.train import train

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
# The precision runs: 2 epochs (the second's examples/s is past cuDNN's autotuning) on this
# many training and validation images, at the input size of the model's study.
PRECISION_IMAGES = {"full": (10_000, 2_000), "tiny": (200, 200)}
# Their optimizer and lr: BENCHMARKS.md's precision table's, where lenet learns in 2 epochs.
PRECISION_OPTIMIZER = {"lenet": ("adam", 0.003), "resnet": ("sgd", 0.05)}
CONCRETE = ("float32", "float16", "bfloat16")


def describe(device: str) -> str:
    lines = [f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
             f"optuna {optuna.__version__}, python {sys.version.split()[0]}"]
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("gpu-check: no CUDA device is visible to torch")
        lines.append(f"device {device}: CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()}, {torch.cuda.device_count()} visible")
        # The precision is decided per GPU: a host may mix generations.
        for i in range(torch.cuda.device_count()):
            gpu = torch.device("cuda", i)
            props = torch.cuda.get_device_properties(gpu)
            tf32 = ", float32 matmuls in TF32" if (props.major, props.minor) >= BF16_CUDA else ""
            lines.append(f"{gpu}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                         f"compute capability {props.major}.{props.minor}; precision auto = "
                         f"{resolve_precision(gpu, 'auto')}{tf32}")
    else:
        lines.append(f"device {device}: {torch.get_num_threads()} CPU threads; precision auto = "
                     f"{resolve_precision(torch.device(device), 'auto')}")
    return "\n".join(lines)


def precision_runs(model: str, device: torch.device, splits: data.Splits,
                   resize: int | None) -> None:
    """Train MODEL for 2 epochs once in each precision DEVICE accepts."""
    optimizer, lr = PRECISION_OPTIMIZER[model]
    for name in CONCRETE:
        try:
            resolve_precision(device, name)
        except UsageError as err:
            print(f"{model:<7} {name:<8}: refused ({err})", flush=True)
            continue
        cfg = TrainConfig(model, optimizer=optimizer, lr=lr, epochs=2,
                          batch_size=models.baseline(model)["batch_size"], resize=resize,
                          precision=name)
        r = train(cfg, splits, device)
        rate = r.epochs[-1].examples_per_s if r.epochs else math.nan
        print(f"{model:<7} {name:<8}: {rate:,.0f} examples/s (last epoch), val acc "
              f"{r.final_val_acc:.4f}, {r.status}" + (f" ({r.reason})" if r.reason else ""),
              flush=True)


def resize_flag(flags: list[str]) -> int | None:
    """The --resize among a study's FLAGS (None: the network's own size)."""
    return int(flags[flags.index("--resize") + 1]) if "--resize" in flags else None


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
    device = torch.device(args.device)
    n_train, n_val = PRECISION_IMAGES["tiny" if args.tiny else "full"]
    splits = data.make_splits(data.load(data.env_data_dir()), device, val_size=n_val,
                              train_subset=n_train)
    for model in args.models.split(","):
        precision_runs(model, device, splits, resize_flag(table[model]))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/gpu-check.db"
        for model in args.models.split(","):
            for jobs in map(int, args.jobs.split(",")):
                row = run_study(model, jobs, args.device, table[model], url)
                print(f"{model:<7} jobs {jobs}: {row['trials']} trials in {row['wall_s']:.1f} s "
                      f"wall; {row['examples_per_s_median']:,.0f} examples/s per trial (median); "
                      f"{row['trials_per_minute']:.1f} trials/min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
