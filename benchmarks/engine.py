"""The benchmark behind BENCHMARKS.md: hpsearch's engine against the lab's own training
pipeline, on this machine, in one run (run it as `scripts/bench`).

For each network the same configuration (network, input size, optimizer, lr, batch size,
epochs, the same training and held-out images) is trained twice per repeat, alternately:

- reference: the lab's notebook loop, written faithfully. torchvision's FashionMNIST with
  transforms.ToTensor() (after transforms.Resize when the network wants another size), a
  DataLoader(batch_size, shuffle=True, num_workers=4), a Python loop that moves each batch to
  the device, runs zero_grad / forward / cross-entropy / backward / SGD step and adds loss and
  accuracy to running sums with .item() every step, then accuracy on the held-out images
  through a second DataLoader.
- engine: hpsearch.data.make_splits + hpsearch.train.train, as a study trial runs it.

Both are timed by wall clock from the moment the images are in memory (reading the IDX files
is a one-off cost in both, left out of both) to the end of the last evaluation; examples/s is
training images x epochs / that wall time, so the ratio of the two is the ratio of wall times.
Each side's best (shortest) repeat is reported: on a shared machine the shortest run is the
one least disturbed by other processes. The engine's GFLOP/s counts a training example as
3 forward passes (backward ~ 2x forward) and a held-out one as 1, against this machine's
float32 matmul rate measured in the same run.

A study-level figure follows: a TPE lenet study with the median pruner against one without,
each through `python -m hpsearch.study` on its own SQLite file, as many times as the
networks' repeats, alternately; the fastest of each counts: wall time, best val accuracy,
epochs actually trained.

`--precision-check` instead trains each network in float32 and in bfloat16 autocast on the
same images with the same seeds, the evidence that the engine's "auto" precision (bfloat16
where the hardware multiplies it natively) is as accurate as float32.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from hpsearch import models
from benchmarks import cost_check as bench_cost
from benchmarks import ray_check as bench_ray
from benchmarks import search as bench_search
from hpsearch.engine import data
from benchmarks.options import parse_args
from hpsearch.cli.common import check_writable, run_main
from hpsearch.errors import UsageError
from hpsearch.files import write_atomic
from hpsearch.engine.config import SEED_LIMIT, TrainConfig
from hpsearch.engine.device import pick_device, resolve_precision
from hpsearch.engine.train import train

LAB_WORKERS = 4  # the lab's DataLoader(num_workers=4)
# The study runs here, so that it searches this checkout's studies/lenet.toml whatever the
# caller's working directory holds.
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    model: str
    size: int  # input side in pixels
    train_images: int
    val_images: int
    epochs: int
    target: float | None  # required engine / reference examples-per-second ratio


# Sizes chosen so that the reference takes 10-40 s per repeat on 2 CPU cores; resnet and
# alexnet_small run at 64x64, which a CPU can afford (at their defaults, 96 and 224, an epoch
# takes hours).
FULL_CASES = (
    Case("lenet", 28, 50_000, 10_000, 2, 4.0),
    Case("net28", 28, 20_000, 5_000, 1, 2.5),
    Case("resnet", 64, 3_000, 1_000, 1, 1.5),
    Case("alexnet_small", 64, 3_000, 1_000, 1, None),
)
# A few hundred images, one epoch: every field of the JSON, in seconds (the test suite's mode).
TINY_CASES = tuple(replace(c, train_images=300, val_images=200, epochs=1) for c in FULL_CASES)


@dataclass(frozen=True)
class StudyPlan:
    network: str
    trials: int
    train_subset: int
    val_size: int
    max_epochs: int | None  # None: the space's own epoch range (lenet: 5-20)


# 20,000 training images: on 5,000, most of lenet's SGD trials sit at chance for 6 epochs, the
# median of the intermediate values is chance too, and the median pruner prunes nothing.
# Epochs as the shipped space has them (5-20), as a user's study would run.
FULL_STUDY = StudyPlan("lenet", 20, 20_000, 2_000, None)
TINY_STUDY = StudyPlan("lenet", 2, 300, 200, 1)
STUDY_WALL_TARGET = 0.60  # median-pruned wall / unpruned wall, at most
STUDY_ACC_TOLERANCE = 0.005  # best val accuracies may differ by this much


@dataclass(frozen=True)
class PrecisionCase:
    model: str
    size: int
    train_images: int
    epochs: int
    optimizer: str | None = None  # None: the lab's baseline optimizer and lr
    lr: float | None = None


# The lab's baselines (plus Adam, which the lenet space searches), long enough for the
# accuracies to mean something: about 15 minutes on 2 CPU cores with AMX.
PRECISION_CASES = (
    PrecisionCase("lenet", 28, 50_000, 10),
    PrecisionCase("lenet", 28, 50_000, 5, "adam", 3e-3),
    PrecisionCase("net28", 28, 20_000, 5),
    PrecisionCase("resnet", 64, 5_000, 3),
    PrecisionCase("alexnet_small", 64, 5_000, 3),
)
TINY_PRECISION_CASES = tuple(replace(c, train_images=300, epochs=1) for c in PRECISION_CASES)
PRECISION_SEEDS = (0, 1)


def case_config(case: Case) -> TrainConfig:
    """The lab's baseline optimizer, lr and batch size for the network."""
    base = models.baseline(case.model)
    return TrainConfig(model=case.model, optimizer=base["optimizer"], lr=base["lr"],
                       epochs=case.epochs, batch_size=base["batch_size"], resize=case.size)


def matmul_gflops(n: int, device: torch.device, dtype: torch.dtype = torch.float32,
                  repeats: int = 5) -> float:
    """DEVICE's matmul rate in DTYPE: best of REPEATS [n, n] @ [n, n] products, in GFLOP/s, with
    the same torch thread settings the training runs use."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # the first call pays for thread pool start-up and kernel selection
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def lab_datasets(case: Case, seed: int = 0):
    """The reference's training and held-out sets: torchvision's FashionMNIST with the lab's
    transforms, restricted to exactly the images the engine's split uses."""
    from torchvision import datasets, transforms

    steps = [transforms.Resize(case.size)] if case.size != data.IMAGE_SIZE else []
    transform = transforms.Compose(steps + [transforms.ToTensor()])
    full = datasets.FashionMNIST(str(data.default_root()), train=True, transform=transform)
    train_idx, val_idx = data.stratified_split(full.targets, case.val_images, seed)
    train_idx = data.stratified_subset(train_idx, full.targets, case.train_images, seed)
    subset = torch.utils.data.Subset
    return subset(full, train_idx.tolist()), subset(full, val_idx.tolist())


def reference_run(cfg: TrainConfig, train_set, val_set, device: torch.device) -> dict:
    """The lab's loop (see module doc). Returns wall seconds and the metrics it kept."""
    start = time.perf_counter()
    train_iter = torch.utils.data.DataLoader(train_set, cfg.batch_size, shuffle=True,
                                             num_workers=LAB_WORKERS)
    val_iter = torch.utils.data.DataLoader(val_set, cfg.batch_size, shuffle=False,
                                           num_workers=LAB_WORKERS)
    torch.manual_seed(cfg.seed)
    net = models.init_xavier(models.build(cfg.model, cfg.size)).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    loss = nn.CrossEntropyLoss()
    for _ in range(cfg.epochs):
        net.train()
        loss_sum, correct, seen = 0.0, 0.0, 0
        for X, y in train_iter:
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            y_hat = net(X)
            batch_loss = loss(y_hat, y)
            batch_loss.backward()
            optimizer.step()
            loss_sum += batch_loss.item() * len(y)
            correct += (y_hat.argmax(1) == y).sum().item()
            seen += len(y)
        net.eval()
        val_correct = 0.0
        with torch.no_grad():
            for X, y in val_iter:
                X, y = X.to(device), y.to(device)
                val_correct += (net(X).argmax(1) == y).sum().item()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "train_loss": loss_sum / seen, "train_acc": correct / seen,
            "val_acc": val_correct / len(val_set)}


def engine_run(cfg: TrainConfig, case: Case, arrays: data.FashionMNISTArrays,
               device: torch.device) -> dict:
    """make_splits + train, as a study trial runs them."""
    start = time.perf_counter()
    splits = data.make_splits(arrays, device, val_size=case.val_images, seed=cfg.seed,
                              train_subset=case.train_images)
    result = train(cfg, splits, device)
    wall = time.perf_counter() - start
    last = result.epochs[-1]
    return {"wall_s": wall, "train_loss": last.train_loss, "train_acc": last.train_acc,
            "val_acc": last.val_acc, "status": result.status}


def bench_case(case: Case, arrays, device: torch.device, repeats: int, matmul: float,
               say) -> dict:
    cfg = case_config(case)
    train_set, val_set = lab_datasets(case, cfg.seed)
    say(f"{case.model} at {case.size}: {case.train_images} train / {case.val_images} held-out "
        f"images, {case.epochs} epoch(s), batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}")
    runs: dict[str, list[dict]] = {"reference": [], "engine": []}
    for i in range(repeats):  # alternately, so that a busy spell on the machine hits both
        runs["reference"].append(reference_run(cfg, train_set, val_set, device))
        runs["engine"].append(engine_run(cfg, case, arrays, device))
        say(f"  repeat {i + 1}: reference {runs['reference'][-1]['wall_s']:.1f} s, "
            f"engine {runs['engine'][-1]['wall_s']:.1f} s")
    examples = case.train_images * case.epochs
    out = {"network": case.model, "size": case.size, "batch_size": cfg.batch_size,
           "optimizer": cfg.optimizer, "lr": cfg.lr, "epochs": case.epochs,
           "train_images": case.train_images, "val_images": case.val_images}
    for side, rs in runs.items():
        best = min(rs, key=lambda r: r["wall_s"])
        out[side] = {**best, "examples_per_s": examples / best["wall_s"],
                     "walls_s": [r["wall_s"] for r in rs]}
    out["speedup"] = out["engine"]["examples_per_s"] / out["reference"]["examples_per_s"]
    flops = models.forward_flops(case.model, case.size)
    work = flops * case.epochs * (3 * case.train_images + case.val_images)
    out["forward_mflop_per_image"] = flops / 1e6
    out["engine_gflops"] = work / out["engine"]["wall_s"] / 1e9
    out["engine_fraction_of_matmul"] = out["engine_gflops"] / matmul
    out["target_speedup"] = case.target
    out["target_met"] = None if case.target is None else out["speedup"] >= case.target
    return out


def epochs_phrase(max_epochs: int | None) -> str:
    return "the space's epochs" if max_epochs is None else f"at most {max_epochs} epochs"


def study_run(plan: StudyPlan, pruner: str, db: Path, device: str) -> dict:
    """One fresh study through the study command, stored in the new SQLite file DB; its figures
    read back from the storage."""
    import optuna

    url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "hpsearch.study", plan.network, "--trials", str(plan.trials),
           "--pruner", pruner, "--sampler", "tpe", "--seed", "0", "--storage", url,
           "--train-subset", str(plan.train_subset), "--val-size", str(plan.val_size),
           "--device", device, "--quiet"]
    if plan.max_epochs is not None:
        cmd += ["--max-epochs", str(plan.max_epochs)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=plan.network, storage=url)
    states = [t.state for t in study.trials]
    done = optuna.trial.TrialState.COMPLETE
    return {"pruner": pruner, "wall_s": wall,
            "best_val_acc": study.best_value if done in states else None,
            "epochs_trained": sum(len(t.intermediate_values) for t in study.trials),
            "trials": len(study.trials),
            "completed": states.count(done),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL),
            "command": shlex.join(cmd)}


def bench_study(plan: StudyPlan, device: str, repeats: int, say) -> dict:
    """Each study REPEATS times, alternating pruned and unpruned; each side's fastest run counts
    (same seed, so the same trials: the runs differ only in how much the machine was
    disturbed)."""
    say(f"study: {plan.network}, {plan.trials} trials, TPE seed 0, {plan.train_subset} train / "
        f"{plan.val_size} val images, {epochs_phrase(plan.max_epochs)}")
    runs = {"median": [], "none": []}
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as tmp:
        for i in range(repeats):
            for pruner in runs:
                runs[pruner].append(study_run(plan, pruner, Path(tmp) / f"{pruner}-{i}.db",
                                              device))
                say(f"  {pruner}: {runs[pruner][-1]['wall_s']:.1f} s")
    best = {}
    for pruner, tries in runs.items():
        best[pruner] = min(tries, key=lambda r: r["wall_s"])
        best[pruner]["walls_s"] = [r["wall_s"] for r in tries]
        best[pruner]["best_val_accs"] = [r["best_val_acc"] for r in tries]
    median, none = best["median"], best["none"]
    gap = (None if None in (median["best_val_acc"], none["best_val_acc"])
           else none["best_val_acc"] - median["best_val_acc"])
    wall_ratio = median["wall_s"] / none["wall_s"]
    return {**asdict(plan), "median": median, "none": none, "wall_ratio": wall_ratio,
            "best_val_acc_gap": gap, "target_wall_ratio": STUDY_WALL_TARGET,
            "target_acc_tolerance": STUDY_ACC_TOLERANCE,
            "target_met": gap is not None and gap <= STUDY_ACC_TOLERANCE
            and wall_ratio <= STUDY_WALL_TARGET}


def precision_case(case: PrecisionCase, arrays, device: torch.device, val_images: int,
                   say) -> dict:
    """CASE trained in float32 and in bfloat16 autocast, on the same images, for each seed."""
    base = models.baseline(case.model)
    cfg = TrainConfig(model=case.model, optimizer=case.optimizer or base["optimizer"],
                      lr=case.lr or base["lr"], epochs=case.epochs,
                      batch_size=base["batch_size"], resize=case.size)
    splits = data.make_splits(arrays, device, val_size=val_images, seed=0,
                              train_subset=case.train_images)
    runs = []
    for seed in PRECISION_SEEDS:
        row = {"seed": seed}
        for precision in ("float32", "bfloat16"):
            r = train(replace(cfg, seed=seed, precision=precision), splits, device)
            row[precision] = {"final_val_acc": r.final_val_acc, "total_loss": r.total_loss,
                              "train_seconds": r.train_seconds, "status": r.status}
            say(f"{case.model} at {case.size}, {cfg.optimizer} lr {cfg.lr:g}, seed {seed}, "
                f"{precision}: val acc {r.final_val_acc:.4f} ({r.train_seconds:.1f} s)")
        runs.append(row)

    def accs(precision: str) -> list[float]:
        return [r[precision]["final_val_acc"] for r in runs]

    def seconds(precision: str) -> float:
        return sum(r[precision]["train_seconds"] for r in runs)

    return {"network": case.model, "size": case.size, "optimizer": cfg.optimizer, "lr": cfg.lr,
            "batch_size": cfg.batch_size, "epochs": case.epochs,
            "train_images": case.train_images, "val_images": val_images, "runs": runs,
            "float32_val_acc": statistics.fmean(accs("float32")),
            "bfloat16_val_acc": statistics.fmean(accs("bfloat16")),
            "largest_same_seed_gap": max(abs(a - b) for a, b in
                                         zip(accs("float32"), accs("bfloat16"))),
            "float32_seed_spread": max(accs("float32")) - min(accs("float32")),
            "bfloat16_speedup": seconds("float32") / seconds("bfloat16")}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def header(doc: dict) -> list[str]:
    m = doc["machine"]
    return [f"hpsearch bench, {doc['date']}, {doc['mode']} mode, device {doc['device']}",
            f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
            f"({m['torch_threads']} threads)",
            f"command: {doc['command']}"]


def precision_table(doc: dict) -> str:
    lines = header(doc) + [
        "", f"float32 against bfloat16 autocast, same images and seeds "
            f"({', '.join(map(str, PRECISION_SEEDS))}); val acc after the last epoch, "
            f"mean over seeds", "",
        "| network | size | optimizer, lr | images x epochs | float32 val acc "
        "| bfloat16 val acc | largest same-seed gap | float32 seed spread | bfloat16 speedup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["precision_check"]:
        lines.append(
            f"| {c['network']} | {c['size']} | {c['optimizer']} {c['lr']:g} | "
            f"{c['train_images']:,} x {c['epochs']} | {c['float32_val_acc']:.4f} | "
            f"{c['bfloat16_val_acc']:.4f} | {c['largest_same_seed_gap']:.4f} | "
            f"{c['float32_seed_spread']:.4f} | {c['bfloat16_speedup']:.2f}x |")
    return "\n".join(lines)


def table(doc: dict) -> str:
    """The terminal table (also what BENCHMARKS.md records)."""
    lines = header(doc) + [
        f"engine precision: {doc['engine_precision']}; matmul: float32 "
        f"{doc['matmul_gflops']:.0f} GFLOP/s, bfloat16 {doc['matmul_bf16_gflops']:.0f} GFLOP/s "
        f"({doc['matmul_n']}x{doc['matmul_n']}, best of 5)",
        "",
        "| network | size | batch | images x epochs | reference ex/s | engine ex/s | speedup "
        "| target | engine GFLOP/s | of f32 matmul |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["cases"]:
        target = ("-" if c["target_speedup"] is None else
                  f"{c['target_speedup']:g}x {'met' if c['target_met'] else 'MISSED'}")
        lines.append(
            f"| {c['network']} | {c['size']} | {c['batch_size']} | "
            f"{c['train_images']:,} x {c['epochs']} | {c['reference']['examples_per_s']:,.0f} | "
            f"{c['engine']['examples_per_s']:,.0f} | {c['speedup']:.2f}x | {target} | "
            f"{c['engine_gflops']:.1f} | {c['engine_fraction_of_matmul']:.0%} |")
    s = doc.get("study")
    if s:
        lines += ["", f"study: {s['network']}, {s['trials']} trials, TPE seed 0, "
                      f"{s['train_subset']:,} train / {s['val_size']:,} val images, "
                      f"{epochs_phrase(s['max_epochs'])}", "",
                  "| pruner | wall s | best val acc | epochs trained | complete / pruned / failed |",
                  "|---|---|---|---|---|"]
        for key in ("median", "none"):
            r = s[key]
            best = "-" if r["best_val_acc"] is None else f"{r['best_val_acc']:.4f}"
            lines.append(f"| {key} | {r['wall_s']:.1f} | {best} | {r['epochs_trained']} | "
                         f"{r['completed']} / {r['pruned']} / {r['failed']} |")
        gap = "-" if s["best_val_acc_gap"] is None else f"{s['best_val_acc_gap']:+.4f}"
        lines += ["", f"median / none wall: {s['wall_ratio']:.2f} (target <= "
                      f"{s['target_wall_ratio']:g}); best val acc, none - median: {gap} "
                      f"(target <= {s['target_acc_tolerance']:g}): "
                      f"{'met' if s['target_met'] else 'MISSED'}"]
    return "\n".join(lines)


def chosen(cases: tuple, names: str | None) -> tuple:
    """The cases of the networks named in NAMES (comma-separated; None: all)."""
    if not names:
        return cases
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.model for c in cases}
    if unknown := [n for n in wanted if n not in known]:
        raise UsageError(f"unknown network(s) {', '.join(unknown)}; "
                         f"choose from: {', '.join(sorted(known))}")
    return tuple(c for c in cases if c.model in wanted)


def search_plan(args: argparse.Namespace) -> list[tuple]:
    """--search's (fidelity, {name: study flags}) pairs, checked before anything runs."""
    if args.search_at:
        fids = (bench_search.parse_fidelity(args.search_at),)
    else:
        fids = bench_search.TINY if args.tiny else bench_search.FULL
        fids = tuple(f for f in fids if not args.networks or f.network in args.networks.split(","))
    return [(f, bench_search.with_space(
                bench_search.pick(bench_search.TINY_CONFIGS if args.tiny
                                  else bench_search.configs(f.network), args.config),
                args.space, f.network))
            for f in fids]


def knob_plan(args: argparse.Namespace) -> tuple:
    """--knobs' cases (networks checked before anything runs)."""
    from benchmarks import knobs

    return chosen(knobs.TINY if args.tiny else knobs.CASES, args.networks)


PEER_BUDGETS = {"lenet": 600.0, "net28": 1200.0}  # the budgets, seconds per arm


def make_peer_plan(args: argparse.Namespace):
    """--peer/--warm-check's plan: one network (lenet or net28), checked before anything runs."""
    from benchmarks import peer

    if args.peer and importlib.util.find_spec("flaml") is None:
        raise UsageError("--peer flaml needs FLAML: pip install '.[bench]'")
    if args.tiny:
        return peer.TINY
    names = [n.strip() for n in (args.networks or "lenet").split(",") if n.strip()]
    if len(names) != 1 or names[0] not in PEER_BUDGETS:
        raise UsageError(f"--peer and --warm-check take one network in --networks: "
                         f"{' or '.join(PEER_BUDGETS)}, got {args.networks!r}")
    if args.first_seed + args.seeds > SEED_LIMIT:
        raise UsageError(f"--first-seed {args.first_seed} with --seeds {args.seeds} runs past the "
                         f"last seed, {SEED_LIMIT - 1}")
    return peer.PeerPlan(names[0], args.budget or PEER_BUDGETS[names[0]], args.seeds,
                         first_seed=args.first_seed)


def main(argv: list[str] | None = None, prog: str = "scripts/bench") -> int:
    args = parse_args(argv, prog)
    check_writable(args.out, "--out")  # before the run, not after it
    if args.precision_check:
        cases = chosen(TINY_PRECISION_CASES if args.tiny else PRECISION_CASES, args.networks)
    else:
        cases = chosen(TINY_CASES if args.tiny else FULL_CASES, args.networks)
    searches = search_plan(args) if args.search else []
    knob_cases = knob_plan(args) if args.knobs else ()
    peer_plan = make_peer_plan(args) if args.peer or args.warm_check else None
    device = pick_device(args.device)
    # The lab ran 4 workers whatever the core count; torch warns about that on small machines.
    warnings.filterwarnings("ignore", message="This DataLoader will create")

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    arrays = data.load(data.env_data_dir())
    doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "command": shlex.join(["scripts/bench", *(sys.argv[1:] if argv is None else argv)]),
           "mode": "tiny" if args.tiny else "full", "device": str(device),
           "machine": machine()}
    if args.fuzz:
        from benchmarks import fuzz

        doc["fuzz"] = fuzz.run(400 if args.tiny else 10_000, 200 if args.tiny else 5_000, say)
        report = fuzz.table(doc["fuzz"])
    elif args.load_check:
        from benchmarks import load_check

        doc["load_check"] = load_check.check("lenet" if args.tiny else "resnet", say)
        report = load_check.table(doc["load_check"])
    elif args.signals:
        from benchmarks import signals

        doc["signals"] = signals.check(2 if args.tiny else 20, say, warm_span=not args.tiny)
        report = signals.table(doc["signals"])
    elif args.peer or args.warm_check:
        from benchmarks import peer

        doc["peer"] = peer.run(peer_plan, args.peer == "flaml", args.warm_check, args.out, doc,
                               say)
        report = peer.table(doc["peer"])
    elif args.knobs:
        from benchmarks import knobs

        doc["knobs"] = [knobs.run_case(case, 2 if args.tiny else args.seeds, arrays, device, say)
                        for case in knob_cases]
        report = knobs.table(doc["knobs"])
    elif args.search:
        doc["search"] = [bench_search.compare(f, args.seeds, say, named)
                         for f, named in searches]
        bench_search.plot(doc["search"], args.out.with_suffix(".png"))
        report = bench_search.table(doc["search"])
    elif args.ray_check:
        doc["ray_check"] = bench_ray.check(bench_ray.TINY if args.tiny else bench_ray.FULL, say)
        report = bench_ray.table(doc["ray_check"])
    elif args.cost_check:
        doc["cost_check"] = [bench_cost.check(plan, str(device), say)
                             for plan in (bench_cost.TINY if args.tiny else bench_cost.FULL)]
        report = bench_cost.table(doc["cost_check"])
    elif args.precision_check:
        val_images = 200 if args.tiny else 10_000
        doc["precision_check"] = [precision_case(c, arrays, device, val_images, say)
                                  for c in cases]
        report = precision_table(doc)
    else:
        doc["repeats"] = args.repeats or (1 if args.tiny else 2)
        doc["engine_precision"] = resolve_precision(device, "auto")
        doc["matmul_n"] = 512 if args.tiny else 2048
        doc["matmul_gflops"] = matmul_gflops(doc["matmul_n"], device)
        doc["matmul_bf16_gflops"] = matmul_gflops(doc["matmul_n"], device, torch.bfloat16)
        say(f"matmul: float32 {doc['matmul_gflops']:.0f} GFLOP/s, "
            f"bfloat16 {doc['matmul_bf16_gflops']:.0f} GFLOP/s")
        doc["cases"] = [] if args.study_only else [
            bench_case(c, arrays, device, doc["repeats"], doc["matmul_gflops"], say) for c in cases]
        doc["study"] = (None if args.no_study else
                        bench_study(TINY_STUDY if args.tiny else FULL_STUDY, str(device),
                                    doc["repeats"], say))
        report = table(doc)
    write_atomic(args.out, json.dumps(doc, indent=2) + "\n")
    print(report)
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(lambda: main(sys.argv[1:])))
