"""Where a run's batches come from, chosen once before the loop: index slices of the
device-resident images (hpsearch's path: no Python per image, no host round trip), or the
lab's DataLoader with per-image PIL transforms in worker processes (only to reproduce the lab's
worker-count experiment)."""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from hpsearch.engine import data
from hpsearch.engine.config import CROP_PAD

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]  # float [B, 1, size, size], int64 [B]


def batch_source(split: data.Split, batch_size: int, size: int, workers: int, seed: int,
                 device: torch.device, augment: str = "none") -> Callable[[], Batches]:
    """A function that gives one epoch's shuffled batches each time it is called: through a
    DataLoader with WORKERS processes when WORKERS > 0, else device slices, AUGMENTed (one of
    config.AUGMENTS; device slices only). Both draw the same order from one generator seeded
    with SEED."""
    gen = torch.Generator().manual_seed(seed)
    if workers:
        return lambda: loader_batches(split, batch_size, size, workers, gen, device)
    return lambda: device_batches(split, batch_size, size, gen, augment)


def device_batches(split: data.Split, batch_size: int, size: int, gen: torch.Generator,
                   augment: str = "none") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches as index slices of the device-resident uint8 images; the last batch
    may be short, as with a DataLoader. Yields float [B, 1, size, size] and int64 [B].
    AUGMENT's random draws for the whole epoch come from GEN at once, after the order, and
    go to the device in one copy: none per step."""
    device = split.x.device
    order = torch.randperm(len(split), generator=gen).to(device)
    flips, shifts = draws(len(split), augment, gen, device)
    for start in range(0, len(split), batch_size):
        idx = order[start:start + batch_size]
        # index_select copies whole rows; x[idx] takes the general advanced-indexing path,
        # ~10x slower on the CPU (80 us against 7 us for 256 images).
        x = split.x.index_select(0, idx)
        if augment != "none":
            x = augmented(x, None if flips is None else flips.index_select(0, idx),
                          None if shifts is None else shifts.index_select(0, idx))
        yield data.to_input(x, size), split.y.index_select(0, idx)


def draws(n: int, augment: str, gen: torch.Generator, device: torch.device):
    """(flips bool [N] or None, shifts int64 [N, 2] in [0, 2 * CROP_PAD] or None): one epoch's
    random choices for N images under AUGMENT."""
    flips = shifts = None
    if "flip" in augment:
        flips = (torch.rand(n, generator=gen) < 0.5).to(device)
    if "crop" in augment:
        shifts = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=gen).to(device)
    return flips, shifts


def augmented(x: torch.Tensor, flips: torch.Tensor | None,
              shifts: torch.Tensor | None) -> torch.Tensor:
    """uint8 [B, 1, H, W] flipped left-right where FLIPS [B], and cropped back to H x W from
    the image zero-padded by CROP_PAD at offsets SHIFTS [B, 2] (row, column): one batched
    gather, on X's device."""
    if flips is not None:
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    if shifts is not None:
        b, _, h, w = x.shape
        padded = F.pad(x, (CROP_PAD,) * 4)  # [B, 1, H + 2P, W + 2P], zeros (the background)
        rows = (shifts[:, :1] + torch.arange(h, device=x.device)).view(b, h, 1)
        cols = (shifts[:, 1:] + torch.arange(w, device=x.device)).view(b, 1, w)
        picks = torch.arange(b, device=x.device).view(b, 1, 1)
        x = padded[:, 0][picks, rows, cols].unsqueeze(1)
    return x


def loader_batches(split: data.Split, batch_size: int, size: int, workers: int,
                   gen: torch.Generator, device: torch.device):
    """The lab's pipeline: per-image PIL resize + ToTensor in DataLoader worker processes,
    in device_batches' order. (shuffle=True with generator=GEN would not give that order: each
    pass of a DataLoader draws its workers' base seed from GEN before the sampler's randperm.
    The base seed comes from a generator of its own: the transforms draw no random numbers,
    and a draw from torch's global generator would change dropout's masks.)
    Pinned host batches on CUDA, so the copies to the device overlap the step."""
    order = torch.randperm(len(split), generator=gen)
    loader = torch.utils.data.DataLoader(
        LabImages(split, size), batch_size=batch_size, sampler=order.tolist(),
        num_workers=workers, generator=torch.Generator().manual_seed(0),
        pin_memory=device.type == "cuda", persistent_workers=False,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def eval_batch_size(batch_size: int, size: int, device: torch.device | None = None) -> int:
    """Evaluation keeps no activations for backward, so an accelerator takes batches of about
    2M input pixels (fewer, fuller kernel launches). A CPU (DEVICE None or cpu) wants about
    256K: bigger batches push activations out of cache (net28 evaluates 11,500 images/s in
    batches of 256 28x28 images, 5,700/s in batches of 2,674)."""
    pixels = 1 << 18 if device is None or device.type == "cpu" else 1 << 21
    return max(batch_size, min(4096, pixels // (size * size)))


class LabImages(torch.utils.data.Dataset):
    """Per-image PIL resize + ToTensor, as the lab's torchvision transforms did; only for the
    DataLoader path that reproduces the lab's worker-count experiment."""

    def __init__(self, split: data.Split, size: int):
        from torchvision import transforms

        self.x, self.y = split.x.cpu(), split.y.cpu()
        steps = [transforms.ToPILImage()]
        if size != data.IMAGE_SIZE:
            steps.append(transforms.Resize(size))
        self.transform = transforms.Compose(steps + [transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[i]), self.y[i]
