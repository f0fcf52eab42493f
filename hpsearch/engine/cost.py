"""What a training run costs in seconds on this device, before it runs.

A few real training steps and a few evaluation batches are timed through `train()` itself (same
network, optimizer, precision, memory layout and progress points as a trial), on random images
of the right shape, at two batch sizes. A step's seconds are then a fixed part plus a part per
image, fitted through those two points; a run's seconds follow from its epochs, images and
batch size. Measuring takes about a second for lenet and net28, ten for ResNet-18 at 96x96 on a
2-core CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch

from hpsearch.engine import data
from hpsearch.engine.config import TrainConfig
from hpsearch.engine.batches import eval_batch_size
from hpsearch.engine.train import train

MEASURE_SECONDS = 0.5  # of timed steps per batch size, where a step is quicker than that
EVAL_BATCHES = 3  # timed evaluation batches (one alone carries its first call's overhead)
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
    batch_sizes: tuple[int, int]  # the two measured
    step_s: tuple[float, float]  # seconds per training step at each
    eval_s_per_image: float  # evaluation, per validation image
    setup_s: float  # per run: building the network and optimizer, the first step's warm-up

    def step_seconds(self, batch_size: int) -> float:
        """Seconds per training step: the line through the two measured points (at least the
        per-image part alone: a step never gets cheaper with more images)."""
        (b0, b1), (s0, s1) = self.batch_sizes, self.step_s
        per_image = max((s1 - s0) / (b1 - b0), 0.0) if b1 != b0 else s0 / b0
        fixed = max(s0 - per_image * b0, 0.0)
        return fixed + per_image * batch_size

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> StepCost:
        return cls(**{**doc, "batch_sizes": tuple(doc["batch_sizes"]),
                      "step_s": tuple(doc["step_s"])})


def run_seconds(cost: StepCost, epochs: int, n_train: int, n_val: int, batch_size: int) -> float:
    """Predicted seconds of one trial: setup, then per epoch every training step and the
    evaluation of the validation images, plus the study's bookkeeping."""
    steps = math.ceil(n_train / batch_size)
    epoch = steps * cost.step_seconds(batch_size) + n_val * cost.eval_s_per_image
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


def _timed_run(cfg: TrainConfig, steps: int, epochs: int, device: torch.device):
    """(seconds per step, eval seconds per image, setup seconds) of the last of EPOCHS epochs
    of STEPS steps each. A tiny learning rate keeps random labels from blowing the loss up."""
    n_val = EVAL_BATCHES * eval_batch_size(cfg.batch_size, cfg.size, device)
    result = train(replace(cfg, epochs=epochs), random_splits(cfg.batch_size * steps, n_val,
                                                              device), device)
    last = result.epochs[-1]
    phase = last.examples / last.examples_per_s
    setup = result.train_seconds - sum(e.seconds for e in result.epochs)
    if epochs > 1:  # the first epoch's extra time is warm-up every run pays once
        setup += max(result.epochs[0].seconds - last.seconds, 0.0)
    return phase / steps, (last.seconds - phase) / n_val, setup


def measure(network: str, size: int, precision: str, device: torch.device,
            batch_sizes: tuple[int, int]) -> StepCost:
    """Time training steps at both BATCH_SIZES and an evaluation batch on DEVICE."""
    step_s, evals, setups = [], [], []
    for batch in batch_sizes:
        cfg = TrainConfig(model=network, optimizer="sgd", lr=1e-6, batch_size=batch,
                          resize=size, precision=precision)
        step, per_image, setup = _timed_run(cfg, 2, 2, device)  # warm-up, then 2 timed steps
        if step * 3 < MEASURE_SECONDS:  # quick steps: time more of them, or noise dominates
            step, per_image, _ = _timed_run(cfg, math.ceil(MEASURE_SECONDS / step), 1, device)
        step_s.append(step)
        evals.append(per_image)
        setups.append(setup)
    return StepCost(network, size, precision, str(device), tuple(batch_sizes), tuple(step_s),
                    min(evals), min(setups))
