"""Device policy: which device, which arithmetic on it, the memory layout, and what a run that
ran out of memory gives back. The training loop asks here; it decides none of this itself."""

from __future__ import annotations

import gc

import torch

from hpsearch.errors import UsageError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes cuda, then mps, then cpu; any other name is used as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise UsageError(f"device {name!r} is not usable here ({err}); try auto or cpu") from None
    return device


def check_device(name: str) -> torch.device:
    """The device NAME, checked without allocating on it (a process that only plans or waits
    must not hold a CUDA context on a GPU for the whole study)."""
    if name == "auto":
        return pick_device(name)
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"device {name!r} is not a device name ({err}); try auto, cpu or "
                         f"cuda:0") from None
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        raise UsageError(f"device {name!r} is not usable here: this machine has "
                         f"{torch.cuda.device_count()} CUDA devices; try auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {name!r} is not usable here: no MPS; try auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        return pick_device(name)  # other kinds: tried by allocating, as a run would
    return device


# CPU instruction sets that multiply bfloat16 natively (dot products accumulated in float32):
# Intel's AMX tiles (Sapphire Rapids on) and AVX512-BF16 (Cooper Lake; AMD Zen 4 on).
NATIVE_BF16_CPU = ("amx_bf16", "avx512_bf16")


def cpu_has_native_bf16() -> bool:
    caps = torch.cpu.get_capabilities()
    return any(caps.get(name, False) for name in NATIVE_BF16_CPU)


# CUDA compute capabilities: Ampere (8.0) multiplies bfloat16 on its tensor cores and runs
# float32 matmuls as TF32; Volta (7.0) and Turing (7.5) have float16 tensor cores only.
BF16_CUDA = (8, 0)
FP16_CUDA = (7, 0)
AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}


def resolve_precision(device: torch.device, precision: str) -> str:
    """The arithmetic PRECISION (one of config.PRECISIONS) means on DEVICE: "bfloat16",
    "float16" or "float32". Weights, optimizer state, loss and metrics stay float32 in all.

    "auto": on CUDA, bfloat16 where this GPU multiplies it natively (compute capability 8.0+),
    float16 with loss scaling where it has float16 tensor cores only (7.x), float32 below. On
    a CPU that multiplies bfloat16 natively (NATIVE_BF16_CPU) bfloat16: lenet trains 1.1-1.5x,
    net28 2-3x, resnet and alexnet_small at 64x64 1.6-3x faster than in float32, to the same
    val accuracy within seed-to-seed spread (BENCHMARKS.md, "Precision"). Elsewhere (MPS,
    older CPUs, where bfloat16 is converted, not multiplied) float32.
    Refused: bfloat16 on a CUDA GPU below 8.0 (emulated there) and float16 on the CPU.
    """
    if device.type == "cuda":
        return _cuda_precision(torch.cuda.get_device_capability(device), precision, device)
    if precision == "auto":
        return "bfloat16" if device.type == "cpu" and cpu_has_native_bf16() else "float32"
    if precision == "float16" and device.type == "cpu":
        raise UsageError("precision 'float16' is not for the CPU: CPU autocast in float16 is "
                         "slow or unsupported; use auto, float32 or bfloat16")
    return precision


def _cuda_precision(capability: tuple[int, int], precision: str, device: torch.device) -> str:
    if precision == "auto":
        return ("bfloat16" if capability >= BF16_CUDA else
                "float16" if capability >= FP16_CUDA else "float32")
    if precision == "bfloat16" and capability < BF16_CUDA:
        raise UsageError(
            f"precision 'bfloat16' needs CUDA compute capability {BF16_CUDA[0]}.{BF16_CUDA[1]} "
            f"or newer; {device} has {capability[0]}.{capability[1]}, where bfloat16 is "
            f"emulated; use auto, float16 or float32")
    return precision


def autocast(device: torch.device, name: str):
    """Autocast to NAME (a resolved precision); float32 disables it."""
    dtype = AUTOCAST_DTYPES[name]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def tune_cuda(device: torch.device) -> None:
    """Process-wide CUDA settings for a run on DEVICE. cuDNN benchmarks the convolution
    algorithms for each input shape once (a run's shapes are fixed: the batch, the last short
    batch, the evaluation batch). On 8.0+ float32 matmuls and convolutions use TF32 tensor
    cores (float32 range and accumulation, 10-bit mantissa products), as cuDNN already does
    for convolutions by default."""
    torch.backends.cudnn.benchmark = True
    if torch.cuda.get_device_capability(device) >= BF16_CUDA:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def release_memory(device: torch.device) -> None:
    """Give back what a run that ran out of memory held: its tensors are garbage once the
    references are gone; on CUDA the caching allocator then returns the blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last (NHWC) on the CPU: oneDNN's native layout, in which convolution, pooling
    and ReLU skip layout conversions. Under bfloat16 every network trains faster in it (net28
    1.4x); in float32 net28 1.35x, lenet 1.1x, resnet 0.9x (BENCHMARKS.md). Other devices keep
    NCHW until measured there."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
