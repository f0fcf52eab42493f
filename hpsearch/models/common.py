"""Shape helpers shared by the network definitions."""

import copy

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
