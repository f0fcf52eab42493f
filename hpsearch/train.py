"""One training run: a network, a plain config, the data splits -> per-epoch and per-run metrics.

`train` is the whole loop, top to bottom. It knows nothing of Optuna: a study hooks in through
the per-epoch callback, which sees each epoch's record and may return a reason to stop, and
through `should_stop`, polled at progress points, which ends the run as "interrupted".

Command line (one row of the lab's table):

    python -m hpsearch.train lenet --epochs 10 --lr 0.9 --batch-size 256
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch import data, lab, models, options
from hpsearch.config import (CLASSES, MOMENTUM_DEFAULTS, OPTIMIZERS, PRECISIONS, SCHEDULES,
                             TrainConfig, at_chance)
from hpsearch.cli import positive, run_main
from hpsearch.errors import UsageError

# A batch loss above this counts as diverged even while finite (saturated sigmoids keep it
# finite); a network at chance has a loss of ln(10) = 2.3.
DIVERGED_LOSS = 1e3
PROGRESS_POINTS = 5  # progress lines per epoch, as the lab's loop printed


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Refuse values no run can use (or that torch's optimizers would refuse with a traceback),
    naming the field and what is allowed."""
    models.spec(cfg.model)
    if cfg.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {cfg.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {cfg.precision!r}; choose one of: "
                         f"{', '.join(PRECISIONS)}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UsageError(f"lr must be a finite number > 0, got {cfg.lr}")
    if cfg.momentum is not None:
        if cfg.optimizer not in MOMENTUM_DEFAULTS:
            raise UsageError(
                f"optimizer {cfg.optimizer!r} takes no momentum; momentum applies to "
                f"{', '.join(MOMENTUM_DEFAULTS)} ('sgd' is plain SGD, as the lab ran it)"
            )
        if not 0 <= cfg.momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), got {cfg.momentum}")
        # Nesterov's look-ahead is a step along the momentum; torch refuses it without one.
        if cfg.optimizer == "nesterov" and cfg.momentum == 0:
            raise UsageError("optimizer 'nesterov' needs momentum in (0, 1), got 0; "
                             "for no momentum at all use optimizer 'sgd'")
    if not (cfg.weight_decay >= 0 and math.isfinite(cfg.weight_decay)):
        raise UsageError(f"weight decay must be a finite number >= 0, got {cfg.weight_decay}")
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{name.replace('_', ' ')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.workers < 0:
        raise UsageError(f"workers must be >= 0, got {cfg.workers}")
    models.check_size(cfg.model, cfg.size)
    return cfg


def make_optimizer(cfg: TrainConfig, params, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer, in its fused form (one kernel for all parameters) where PyTorch has one for
    DEVICE: same update rule, but Adam's step on the CPU takes ~10 ms instead of ~200 ms for
    ResNet-18's 11M parameters. RMSprop has no fused form; it gets the multi-tensor one."""
    momentum = cfg.momentum if cfg.momentum is not None else MOMENTUM_DEFAULTS.get(cfg.optimizer, 0.0)
    wd = cfg.weight_decay
    fast = True if device.type in ("cpu", "cuda") else None  # None: PyTorch's own choice
    if cfg.optimizer in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(params, lr=cfg.lr, momentum=momentum, weight_decay=wd,
                               nesterov=cfg.optimizer == "nesterov", fused=fast)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=wd, fused=fast)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=wd, fused=fast)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=momentum, weight_decay=wd,
                               foreach=fast)


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


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float  # example-weighted mean over this epoch's batches
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float  # wall, data and evaluation included
    examples_per_s: float  # training examples / seconds of the training phase (no evaluation)
    examples: int  # training examples seen (fewer than the split in an epoch cut by divergence)


@dataclass
class RunResult:
    config: TrainConfig
    epochs: list[EpochRecord] = field(default_factory=list)
    # The lab's: example-weighted mean over every batch of every recorded epoch. NaN, as the
    # accuracies, when no epoch was recorded (interrupted or out of memory in the first).
    total_loss: float = math.nan
    total_acc: float = math.nan
    final_val_acc: float = math.nan
    best_val_acc: float = math.nan
    train_seconds: float = 0.0  # wall of the whole run, data and evaluation included
    examples_per_s: float = 0.0  # training examples / seconds spent in training phases
    params: int = 0
    device: str = ""
    status: str = "completed"  # completed | diverged | stopped | interrupted | out_of_memory
    reason: str = ""
    # The trained net; None after running out of memory (its memory is given back).
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        """A dict for json.dumps, without the network: NaN (a diverged run's loss) becomes
        null, as JSON has no NaN."""
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        doc["config"] = asdict(self.config)
        doc["epochs"] = [asdict(e) for e in self.epochs]
        return _finite_or_none(doc)


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def device_batches(split: data.Split, batch_size: int, size: int,
                   gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches as index slices of the device-resident uint8 images; the last batch
    may be short, as with a DataLoader. Yields float [B, 1, size, size] and int64 [B]."""
    order = torch.randperm(len(split), generator=gen).to(split.x.device)
    for start in range(0, len(split), batch_size):
        idx = order[start:start + batch_size]
        # index_select copies whole rows; x[idx] takes the general advanced-indexing path,
        # ~10x slower on the CPU (80 us against 7 us for 256 images).
        yield data.to_input(split.x.index_select(0, idx), size), split.y.index_select(0, idx)


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
        data.LabImages(split, size), batch_size=batch_size, sampler=order.tolist(),
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


@torch.inference_mode()
def evaluate(net: nn.Module, split: data.Split, size: int, batch_size: int,
             device: torch.device, precision: str = "auto") -> tuple[float, float]:
    """(mean loss, accuracy) of NET on SPLIT in PRECISION (as TrainConfig.precision takes it);
    one host read at the end."""
    net.eval()
    sums = torch.zeros(2, device=device)  # [loss sum, correct]
    with autocast(device, resolve_precision(device, precision)):
        for start in range(0, len(split), batch_size):
            x = data.to_input(split.x[start:start + batch_size], size)
            y = split.y[start:start + batch_size]
            logits = net(x)
            sums[0] += F.cross_entropy(logits.float(), y, reduction="sum")
            sums[1] += (logits.argmax(1) == y).sum()
    loss, correct = sums.tolist()
    return loss / len(split), correct / len(split)


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


def progress_steps(n_steps: int) -> set[int]:
    """The 1-based steps after which an epoch prints progress (PROGRESS_POINTS per epoch)."""
    return {max(1, round(k * n_steps / PROGRESS_POINTS)) for k in range(1, PROGRESS_POINTS + 1)}


EpochCallback = Callable[[EpochRecord], "str | None"]


def train(cfg: TrainConfig, splits: data.Splits, device: torch.device,
          on_epoch: EpochCallback | None = None,
          log: Callable[[str], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train cfg.model on splits.train, evaluating on splits.val after each epoch.

    ON_EPOCH sees each EpochRecord and may return a reason to stop (status 'stopped').
    SHOULD_STOP is asked before each epoch and at each progress point (PROGRESS_POINTS per
    epoch, never per step); True ends the run at once as 'interrupted', the epoch under way
    unrecorded. A training loss that is non-finite or above DIVERGED_LOSS ends the run as
    'diverged' at the next progress point. Running out of memory on the device ends it as
    'out_of_memory', with the memory given back. Each returns normally, with the epochs
    recorded so far (maybe none: then the run's losses and accuracies are NaN).
    """
    cfg = check_config(cfg)
    precision = resolve_precision(device, cfg.precision)
    if device.type == "cuda":
        tune_cuda(device)
    result = RunResult(cfg, device=str(device))
    start = time.perf_counter()
    try:
        _run(cfg, splits, device, precision, result, on_epoch or (lambda record: None),
             log or (lambda line: None), should_stop or (lambda: False))
    except torch.OutOfMemoryError:
        result.status = "out_of_memory"
        result.reason = f"out of memory (batch {cfg.batch_size}, size {cfg.size})"
        result.model = None
    if result.status == "out_of_memory":
        # Here, not in the except clause: until the clause ends, the exception's traceback
        # keeps _run's frame, and with it the network, optimizer state and activations.
        release_memory(device)
    result.train_seconds = time.perf_counter() - start
    return summarize(result)


def _run(cfg: TrainConfig, splits: data.Splits, device: torch.device, precision: str,
         result: RunResult, on_epoch: EpochCallback, log: Callable[[str], None],
         should_stop: Callable[[], bool]) -> None:
    """The loop of `train`: appends to RESULT.epochs and sets its status and reason.
    Metrics stay on DEVICE in the hot loop; the host reads them only at progress points."""
    size = cfg.size
    torch.manual_seed(cfg.seed)
    net = models.init_xavier(models.build(cfg.model, size)).to(
        device, memory_format=memory_format(device))
    result.model, result.params = net, models.param_count(net)
    opt = make_optimizer(cfg, net.parameters(), device)
    # float16 needs its loss scaled so that small gradients do not flush to zero; disabled,
    # the scaler passes the loss and the step straight through.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
    n_steps = math.ceil(len(splits.train) / cfg.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * n_steps)
             if cfg.schedule == "cosine" else None)
    gen = torch.Generator().manual_seed(cfg.seed)
    eval_bs = eval_batch_size(cfg.batch_size, size, device)
    step_t = torch.zeros((), dtype=torch.long, device=device)  # the step, counted on the device
    bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite loss's step
    checkpoints = progress_steps(n_steps)

    for epoch in range(1, cfg.epochs + 1):
        if should_stop():
            result.status = result.reason = "interrupted"
            return
        t0 = time.perf_counter()
        net.train()
        sums = torch.zeros(2, device=device)  # [loss sum, correct] over this epoch
        epoch_seen = 0
        batches = (loader_batches(splits.train, cfg.batch_size, size, cfg.workers, gen, device)
                   if cfg.workers else device_batches(splits.train, cfg.batch_size, size, gen))
        for step, (x, y) in enumerate(batches, start=1):
            with autocast(device, precision):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            loss = loss.detach()
            sums[0] += loss * len(y)
            sums[1] += (logits.argmax(1) == y).sum()
            step_t += 1
            blown = ~torch.isfinite(loss) | (loss > DIVERGED_LOSS)
            bad_step = torch.where((bad_step < 0) & blown, step_t, bad_step)
            epoch_seen += len(y)
            if step in checkpoints:
                loss_sum, correct = sums.tolist()
                log(f"epoch {epoch}/{cfg.epochs}  step {step}/{n_steps}  "
                    f"loss {loss_sum / epoch_seen:.4f}  acc {correct / epoch_seen:.3f}")
                if bad_step.item() >= 0:
                    result.status = "diverged"
                    bad_epoch, bad = divmod(int(bad_step.item()) - 1, n_steps)
                    result.reason = (f"training loss non-finite or above {DIVERGED_LOSS:g} at "
                                     f"epoch {bad_epoch + 1}, step {bad + 1} (lr {cfg.lr:g})")
                    break
                if should_stop():
                    result.status = result.reason = "interrupted"
                    return
        loss_sum, correct = sums.tolist()  # also waits for the device to finish the epoch
        phase = time.perf_counter() - t0
        val_loss, val_acc = evaluate(net, splits.val, size, eval_bs, device, precision)
        seconds = time.perf_counter() - t0
        record = EpochRecord(epoch, loss_sum / epoch_seen, correct / epoch_seen, val_loss,
                             val_acc, seconds, epoch_seen / phase, epoch_seen)
        result.epochs.append(record)
        log(f"epoch {epoch}/{cfg.epochs}  val acc {val_acc:.4f}  val loss {val_loss:.4f}  "
            f"({seconds:.1f} s, {record.examples_per_s:,.0f} examples/s)")
        if result.status == "diverged":
            return
        stop = on_epoch(record)
        if stop:
            result.status, result.reason = "stopped", stop
            return


def summarize(result: RunResult) -> RunResult:
    """RESULT with the run's figures computed from its epoch records (left NaN without any),
    and a completed run that learned nothing flagged in its reason."""
    done = result.epochs
    if not done:
        return result
    seen = sum(e.examples for e in done)
    result.total_loss = sum(e.train_loss * e.examples for e in done) / seen
    result.total_acc = sum(e.train_acc * e.examples for e in done) / seen
    result.final_val_acc = done[-1].val_acc
    result.best_val_acc = max(e.val_acc for e in done)
    result.examples_per_s = seen / sum(e.examples / e.examples_per_s for e in done)
    if result.status == "completed" and at_chance(result.best_val_acc):
        result.reason = (f"stuck at chance accuracy: best val acc {result.best_val_acc:.3f} "
                         f"with {CLASSES} classes")
    return result


def summary_line(r: RunResult) -> str:
    line = (f"{r.config.model}: total loss {r.total_loss:.4f}, total acc {r.total_acc:.4f}, "
            f"val acc {r.final_val_acc:.4f}, {r.train_seconds:.1f} s, "
            f"{r.examples_per_s:,.0f} examples/s, {r.status}")
    return line + (f" ({r.reason})" if r.reason else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(
        "python -m hpsearch.train",
        "Train one network once on Fashion-MNIST (one row of the lab's table). "
        "Unset hyperparameters default to the lab's baseline for that network.",
    )
    p.add_argument("model", choices=list(models.MODELS), metavar="MODEL",
                   help=f"one of: {', '.join(models.MODELS)}")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the lab's (sgd)")
    p.add_argument("--lr", type=positive(float, "--lr"), help="learning rate (> 0)")
    p.add_argument("--momentum", type=float, help=f"for {', '.join(MOMENTUM_DEFAULTS)} only")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=SCHEDULES, default="constant")
    p.add_argument("--epochs", type=positive(int, "--epochs"))
    p.add_argument("--batch-size", type=positive(int, "--batch-size"))
    workers = options.whole("--workers", note=" (0: batches from the device, no DataLoader)")
    p.add_argument("--workers", type=workers, default=0,
                   help="DataLoader worker processes; 0 (default) keeps the data on the device")
    p.add_argument("--resize", type=positive(int, "--resize"), metavar="N",
                   help="input side in pixels (default: the network's own)")
    options.add_seed(p, help="seeds the split, the initial weights and the batch order")
    options.add_device(p)
    options.add_precision(p, "auto")
    options.add_data(p)
    p.add_argument("--json", type=Path, metavar="FILE", help="write the whole result here")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = lab.baseline(args.model)
    given = {"optimizer": args.optimizer, "lr": args.lr, "epochs": args.epochs,
             "batch_size": args.batch_size}
    chosen = {k: v if v is not None else base[k] for k, v in given.items()}
    return check_config(TrainConfig(
        model=args.model, momentum=args.momentum, weight_decay=args.weight_decay,
        schedule=args.schedule, resize=args.resize, seed=args.seed, workers=args.workers,
        precision=args.precision,
        **chosen))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options.check_split(args.val_size, args.train_subset)
    cfg = config_from_args(args)
    device = pick_device(args.device)
    precision = resolve_precision(device, cfg.precision)
    arrays = data.load(args.data_dir or data.env_data_dir())
    splits = data.make_splits(arrays, device, val_size=args.val_size, seed=args.seed,
                              train_subset=args.train_subset)
    print(f"{cfg.model} at {cfg.size}x{cfg.size} on {device} ({precision}): "
          f"{cfg.optimizer} lr {cfg.lr:g}, "
          f"{cfg.epochs} epochs, batch {cfg.batch_size}; {len(splits.train)} train / "
          f"{len(splits.val)} val images from {arrays.source}", flush=True)
    result = train(cfg, splits, device, log=lambda line: print(line, flush=True))
    print(summary_line(result))
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
