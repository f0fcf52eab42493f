"""The registry of networks: name -> ModelSpec (builder, default input size, the lab's
baseline, the sizes a budget may pick).

    from hpsearch.models import build, MODELS
    net = build("lenet")           # at the default input size
    net = build("resnet", size=32)  # any size the layers accept; others raise UsageError
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hpsearch.errors import UsageError
from hpsearch.models import alexnet, lenet, net28, resnet, vgg
from hpsearch.models.common import ModelSpec

# Adding a network: a file here with its builder and SPEC, and one entry below.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (lenet.SPEC, alexnet.SPEC, vgg.SPEC, resnet.SPEC, alexnet.SMALL_SPEC, net28.SPEC)
}


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


@cache  # a shape-only forward costs ~60 ms; every trial checks its size twice
def _accepts(name: str, size: int) -> bool:
    try:
        _shape_check(name, size)
    except (RuntimeError, ValueError):
        return False
    return True


def _shape_check(name: str, size: int) -> None:
    with torch.device("meta"):
        net = MODELS[name].builder(size)
        out = net(torch.empty(2, 1, size, size))
    if tuple(out.shape) != (2, 10):
        raise RuntimeError(f"output shape {tuple(out.shape)}")


@cache
def min_size(name: str) -> int:
    """Smallest input side the network accepts (sizes above it are accepted too)."""
    return next(s for s in range(1, MODELS[name].default_size + 1) if _accepts(name, s))


def baseline(name: str) -> dict:
    """The lab's baseline run of network NAME (a copy: optimizer, lr, epochs, batch size,
    workers)."""
    return dict(spec(name).baseline)


# The largest input side taken: Fashion-MNIST's images are 28x28, so 512 already upsamples them
# 18x; far beyond it a network's flatten layer alone outgrows memory (lenet at 60,000 would
# hold 4e11 weights).
MAX_SIZE = 512


def check_size(name: str, size: int) -> None:
    spec(name)
    if size > MAX_SIZE:
        raise UsageError(f"{name} at {size}x{size}: input sides above {MAX_SIZE} are not "
                         f"taken (the images are 28x28); use a size from {min_size(name)} "
                         f"to {MAX_SIZE} (default {MODELS[name].default_size})")
    if size < 1 or not _accepts(name, size):
        raise UsageError(
            f"{name} cannot take {size}x{size} inputs: its layers shrink that to nothing. "
            f"Use a size of at least {min_size(name)} (default {MODELS[name].default_size})."
        )


def build(name: str, size: int | None = None) -> nn.Module:
    """A fresh network NAME for SIZE x SIZE inputs (default: the network's own size)."""
    size = spec(name).default_size if size is None else size
    check_size(name, size)
    return MODELS[name].builder(size)


def init_xavier(net: nn.Module) -> nn.Module:
    """Xavier-uniform weights for every conv and linear layer, as the lab's loop did."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
    return net


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def forward_flops(name: str, size: int) -> int:
    """Floating-point operations of one forward pass on one image (a multiply-add counts 2).
    In eval mode: batch norm in training mode refuses a 1-image batch with 1x1 maps."""
    with torch.device("meta"):
        net = MODELS[name].builder(size).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            net(torch.empty(1, 1, size, size))
    return counter.get_total_flops()


def layer_shapes(net: nn.Module, size: int) -> list[tuple[str, tuple[int, ...]]]:
    """(layer class name, output shape) for each top-level layer, on one SIZE x SIZE image."""
    x = torch.empty(1, 1, size, size, device="meta")
    net = net.to("meta")
    rows = []
    for layer in net:
        x = layer(x)
        rows.append((type(layer).__name__, tuple(x.shape)))
    return rows
