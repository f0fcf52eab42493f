"""Shared fixtures: generated IDX files, the real dataset (small subsets), subprocess helpers."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def idx_bytes(kind: str, n: int, seed: int = 0, size: int = 28) -> bytes:
    """An IDX file of N random images (size x size) or labels (a repeating 0..9)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "images":
        header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, size, size))
        body = torch.randint(0, 256, (n * size * size,), generator=gen, dtype=torch.uint8)
    else:
        header = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
        body = torch.arange(n, dtype=torch.uint8) % 10
    return header + body.numpy().tobytes()


def write_idx_set(folder: Path, n_train: int = 200, n_test: int = 50, packed: bool = True) -> dict:
    """The four Fashion-MNIST file names with generated contents; returns their md5 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, kind, n in (("train-images-idx3-ubyte", "images", n_train),
                          ("train-labels-idx1-ubyte", "labels", n_train),
                          ("t10k-images-idx3-ubyte", "images", n_test),
                          ("t10k-labels-idx1-ubyte", "labels", n_test)):
        raw = idx_bytes(kind, n)
        sums[name] = hashlib.md5(raw).hexdigest()
        if packed:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return sums


@pytest.fixture(scope="session")
def arrays():
    """The real Fashion-MNIST, loaded once per test session."""
    from hpsearch import data

    return data.load()


@pytest.fixture(scope="session")
def small_splits(arrays):
    """3,000 real training images and 1,000 validation images on the CPU."""
    from hpsearch import data

    return data.make_splits(arrays, torch.device("cpu"), seed=0, train_subset=3000,
                            val_subset=1000)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m ARGS...` with this interpreter; output captured as text."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
