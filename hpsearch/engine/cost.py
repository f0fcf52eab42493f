"""What a training run costs in seconds on this device, before it runs.

A few real training steps and a few evaluation batches are timed through `train()` itself (same
network, optimizer, precision, memory layout and progress points as a trial), on random images
of the right shape, at two batch sizes and, where its steps are quick, the space's largest. A
step's seconds are then read off the line through the two timed points nearest its batch size;
a run's seconds follow from its epochs, images and batch size. Measuring takes a few seconds
for lenet and net28, tens for ResNet-18 at 96x96 on a 2-core CPU.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from hpsearch.engine import data
from hpsearch.files import write_atomic
from hpsearch.engine.config import TrainConfig
from hpsearch.engine.batches import augmented, draws, eval_batch_size
from hpsearch.engine.train import train

MEASURE_SECONDS = 0.5  # of timed steps per batch size, where a step is quicker than that
EVAL_BATCHES = 3  # timed evaluation batches (one alone carries its first call's overhead)
# Timed epochs after the warm-up one; the fastest counts, as benchmark tools take the best of
# several runs: another process passing through (a second study on the same cores) slows some
# of them, never speeds one up.
REPEATS = 3
DISAGREE = 1.5  # slowest / fastest timed repeat above this: the plan says the timings varied
# Per trial, on top of the training loop: Optuna's bookkeeping, the trial's user attrs and its
# learning-curve artifact (about 0.09 s of matplotlib), per epoch: report + should_prune.
TRIAL_OVERHEAD_S = 0.35
EPOCH_OVERHEAD_S = 0.02


@dataclass(frozen=True)
class StepCost:
    """Measured for one network, input size and precision on one device."""

    network: str
    size: int
    precision: str
    device: str
    batch_sizes: tuple[int, ...]  # those timed, ascending: two, or three (measure)
    step_s: tuple[float, ...]  # seconds per training step at each
    eval_s_per_image: float  # evaluation, per validation image
    setup_s: float  # per run: building the network and optimizer, the first step's warm-up
    spread: float = 1.0  # slowest / fastest of the timed repeats (1: they agreed)
    busy: float = 0.0  # the machine's load average per core when timed (0: idle)
    measured: str = ""  # when (ISO date and time)
    slower_now: float = 1.0  # this run's timing / the kept one's, where the kept one is used
    augment_s_per_image: float = 0.0  # the heaviest augmentation (crop-flip), per image

    def step_seconds(self, batch_size: int) -> float:
        """Seconds per training step: the line through the two timed batch sizes that
        BATCH_SIZE lies between (the nearest two, outside them). A step is not linear in the
        batch: lenet's costs 108 us an image at 64, 89 at 128, 108-146 at 256-512 on a 2-core
        CPU. Below the timed sizes, at least the per-image part alone: a step never gets
        cheaper with more images."""
        i = next((i for i, b in enumerate(self.batch_sizes) if b >= batch_size),
                 len(self.batch_sizes) - 1)
        i = min(max(i, 1), len(self.batch_sizes) - 1)
        (b0, b1), (s0, s1) = self.batch_sizes[i - 1:i + 1], self.step_s[i - 1:i + 1]
        per_image = max((s1 - s0) / (b1 - b0), 0.0) if b1 != b0 else s0 / b0
        line = s0 + per_image * (batch_size - b0)
        return max(line, per_image * batch_size) if i == 1 else line

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> StepCost:
        return cls(**{**doc, "batch_sizes": tuple(doc["batch_sizes"]),
                      "step_s": tuple(doc["step_s"]), "slower_now": 1.0})


def run_seconds(cost: StepCost, epochs: int, n_train: int, n_val: int, batch_size: int,
                augment: str = "none") -> float:
    """Predicted seconds of one trial: setup, then per epoch every training step (with its
    AUGMENTation, priced at the heaviest's) and the evaluation of the validation images, plus
    the study's bookkeeping."""
    steps = math.ceil(n_train / batch_size)
    epoch = steps * cost.step_seconds(batch_size) + n_val * cost.eval_s_per_image
    if augment != "none":
        epoch += n_train * cost.augment_s_per_image
    return TRIAL_OVERHEAD_S + cost.setup_s + epochs * (epoch + EPOCH_OVERHEAD_S)


def random_splits(n_train: int, n_val: int, device: torch.device, seed: int = 0) -> data.Splits:
    """Random uint8 images and labels of Fashion-MNIST's shape: what a step costs does not
    depend on what the images show."""
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> data.Split:
        x = torch.randint(0, 256, (n, 1, data.IMAGE_SIZE, data.IMAGE_SIZE), generator=gen,
                          dtype=torch.uint8)
        y = torch.randint(0, 10, (n,), generator=gen)
        return data.Split(x.to(device), y.to(device))

    return data.Splits(split(n_train), split(n_val))


@dataclass(frozen=True)
class Timing:
    """What one timed run of STEPS steps per epoch measured, each list one entry per timed
    epoch (the warm-up epoch left out)."""

    step_s: list[float]  # seconds per training step
    eval_s_per_image: list[float]
    setup_s: float  # building the network and optimizer, and the warm-up epoch's extra time

    def spread(self) -> float:
        return max(self.step_s) / min(self.step_s)


def _timed_run(cfg: TrainConfig, steps: int, device: torch.device) -> Timing:
    """A warm-up epoch, then REPEATS timed epochs of STEPS steps each. A tiny learning rate
    keeps random labels from blowing the loss up."""
    n_val = EVAL_BATCHES * eval_batch_size(cfg.batch_size, cfg.size, device)
    result = train(replace(cfg, epochs=REPEATS + 1),
                   random_splits(cfg.batch_size * steps, n_val, device), device)
    timed = result.epochs[1:]
    phases = [e.examples / e.examples_per_s for e in timed]
    setup = result.train_seconds - sum(e.seconds for e in result.epochs)
    setup += max(result.epochs[0].seconds - min(e.seconds for e in timed), 0.0)
    return Timing([p / steps for p in phases],
                  [(e.seconds - p) / n_val for e, p in zip(timed, phases)], setup)


def augment_seconds(batch_size: int, device: torch.device) -> float:
    """Seconds per image of the heaviest augmentation (flip and crop) on BATCH_SIZE images,
    the fastest of REPEATS + 1 timings, the device waited for."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch_size, 1, data.IMAGE_SIZE, data.IMAGE_SIZE),
                      generator=gen, dtype=torch.uint8).to(device)
    times = []
    for _ in range(REPEATS + 1):
        t0 = time.perf_counter()
        flips, shifts = draws(batch_size, "crop-flip", gen, device)
        augmented(x, flips, shifts).sum().item()  # .item() waits for the device
        times.append(time.perf_counter() - t0)
    return min(times) / batch_size


# The largest batch a space trains is timed too where a step of it is predicted this quick
# (seconds): on a 2-core CPU lenet's 512 (under a second more to time), not net28's (0.3 s)
# nor resnet's at any input size.
LARGEST_STEP_S = 0.25


def measure(network: str, size: int, precision: str, device: torch.device,
            batch_sizes: tuple[int, ...]) -> StepCost:
    """Time training steps at the first two BATCH_SIZES, at the third (the largest) where its
    step is quick (LARGEST_STEP_S by the line through the first two), and an evaluation
    batch, on DEVICE; of the timed repeats, the fastest counts."""
    busy = busy_now()  # before our own steps count in it
    timed, timings = [], []
    for batch in batch_sizes:
        if len(timed) == 2:
            line = StepCost(network, size, precision, str(device), tuple(timed),
                            tuple(min(t.step_s) for t in timings), 0.0, 0.0)
            if line.step_seconds(batch) > LARGEST_STEP_S:
                break
        cfg = TrainConfig(model=network, optimizer="sgd", lr=1e-6, batch_size=batch,
                          resize=size, precision=precision)
        timing = _timed_run(cfg, 2, device)
        step = min(timing.step_s)
        # Quick steps: time more of them, or noise dominates. Not the largest batch's: its
        # steps are the longest (lenet's 512: 55 ms), and each process of `--jobs N` on a CPU
        # times its own costs (its threads differ), so timing more of them made a 4-job tiny
        # study 13 s slower on 2 cores.
        if step * 3 < MEASURE_SECONDS and len(timed) < 2:
            timing = _timed_run(cfg, math.ceil(MEASURE_SECONDS / step), device)
        timed.append(batch)
        timings.append(timing)
    return StepCost(network, size, precision, str(device), tuple(timed),
                    tuple(min(t.step_s) for t in timings),
                    min(min(t.eval_s_per_image) for t in timings),
                    min(t.setup_s for t in timings), max(t.spread() for t in timings),
                    round(busy, 2), datetime.datetime.now().isoformat(timespec="seconds"),
                    augment_s_per_image=augment_seconds(batch_sizes[1], device))


# --- this machine's costs, kept between runs ------------------------------------------------
# A cost measured while another study trains on the same cores is several times too high (a
# resnet plan beside a lenet study: 6.5x, BENCHMARKS.md), and no repeat within one timing
# escapes a load that lasts. So each cost is kept, per machine, and the cheapest one measured
# is what a plan uses; a study's own finished trials still correct it (budget.calibration).


def machine_key(device: torch.device) -> str:
    """What makes costs comparable: the processor (or GPU), torch's version, the threads."""
    if device.type == "cuda":
        chip = torch.cuda.get_device_name(device)
    else:
        chip = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                     if line.startswith("model name")), platform.processor() or "cpu")
    return f"{chip}|torch {torch.__version__}|{torch.get_num_threads()} threads"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def costs_file() -> Path:
    """$HPSEARCH_COSTS, else costs.json in hpsearch's cache folder (data.cache_dir)."""
    return Path(os.environ.get("HPSEARCH_COSTS") or data.cache_dir() / "costs.json")


def cached_costs(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again


QUIETER = 0.25  # load average per core by which a machine must be quieter now to time again


def kept(file: Path, key: str, load: float) -> StepCost | None:
    """The cost FILE keeps under KEY, unless there is none or the machine is quieter now
    (load average per core LOAD, busy_now()) than when it was timed, so that timing again may find
    it cheaper. The kept cost is the cheapest this machine measured, which a plan uses
    whatever a new timing says; timing again cost ~10 s of every study (11 of a tiny net28
    study's 22 s, 12 of the main job's 2 minutes) to change at most a note."""
    cost = _held(cached_costs(file), key)
    return None if cost is None or load < cost.busy - QUIETER else cost


def _held(held: dict, key: str) -> StepCost | None:
    """HELD's cost under KEY; None when there is none or it does not read as one (written by
    another version of hpsearch, or by hand): a cache missed, timed again and overwritten."""
    try:
        return StepCost.from_json(held[key])
    except (KeyError, TypeError, ValueError):
        return None


def busy_now() -> float:
    """This machine's load average per core (1 minute)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def remember(file: Path, key: str, cost: StepCost) -> StepCost:
    """COST kept in FILE under KEY unless a cheaper one is there; returns the cheaper (with
    how much slower COST was, when that is the kept one)."""
    held = cached_costs(file)
    old = _held(held, key)
    if old is not None:
        # Compared at the two batch sizes always timed (the largest is timed only where quick,
        # which a noisy timing can put either side of the line).
        kept_s, now_s = sum(old.step_s[:2]), sum(cost.step_s[:2])
        if kept_s <= now_s:
            return replace(old, slower_now=now_s / kept_s)
    held[key] = cost.to_json()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(file, json.dumps(held, indent=1))  # two writers lose an entry, no more
    except OSError:
        pass  # a cache that cannot be written is a cache missed, not an error
    return cost
