"""What every network file declares beside its builder (a ModelSpec), and the shape helper
they share."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


def flat_features(features: nn.Module, size: int) -> int:
    """Width of FEATURES' flattened output for one 1-channel SIZE x SIZE image.

    Runs a shape-only forward on the meta device, so no memory or compute is spent; layers that
    cannot take SIZE raise RuntimeError here, which the registry turns into a clear message.
    """
    probe = copy.deepcopy(features).to("meta")
    out = probe(torch.empty(1, 1, size, size, device="meta"))
    if out.numel() == 0:
        raise RuntimeError(f"no features left at input size {size}")
    return out.shape[1]


@dataclass(frozen=True)
class ModelSpec:
    """A network and the facts a study needs about it."""

    name: str
    builder: Callable[[int], nn.Module]  # input side in pixels -> a fresh network
    default_size: int  # pixels per side of the (square, 1-channel) input
    about: str
    # The lab's baseline run: optimizer, lr, epochs, batch size, DataLoader workers (0:
    # hpsearch's device-resident batches). Plain SGD or Adam, constant learning rate.
    baseline: dict = field(default_factory=dict)
    # Input sides a --budget may train at, largest first; () keeps the default size. Smaller
    # sides buy more trials where a network's cost grows with the image (AlexNet at 224 takes
    # hours per epoch on a CPU); 28x28 networks have none.
    budget_sizes: tuple[int, ...] = ()
