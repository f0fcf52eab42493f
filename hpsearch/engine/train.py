"""One training run: a network, a plain config, the data splits -> per-epoch and per-run metrics.

`train` is the whole run, top to bottom. It knows nothing of Optuna: a study hooks in through
the per-epoch callback, which sees each epoch's record and may return a reason to stop, and
through `should_stop`, polled after every step, which ends the run as "interrupted".
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch import models
from hpsearch.engine import data
from hpsearch.engine.batches import Batches, batch_source, eval_batch_size
from hpsearch.engine.config import (AUGMENTS, CLASSES, MOMENTUM_DEFAULTS, OPTIMIZERS,
                                    PRECISIONS, SCHEDULES, TrainConfig, at_chance)
from hpsearch.engine.device import (autocast, memory_format, release_memory, resolve_precision,
                                    tune_cuda)
from hpsearch import signals
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
    if cfg.augment not in AUGMENTS:
        raise UsageError(f"unknown augment {cfg.augment!r}; choose one of: {', '.join(AUGMENTS)}")
    if cfg.augment != "none" and cfg.workers:
        raise UsageError(f"augment {cfg.augment!r} works on the device's batches; workers "
                         f"{cfg.workers} feeds the lab's DataLoader, which has none (give "
                         f"workers 0)")
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
    for name in ("warmup", "label_smoothing"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise UsageError(f"{name.replace('_', ' ')} must be in [0, 1), got {value}")
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


EpochCallback = Callable[[EpochRecord], "str | None"]


@dataclass(frozen=True)
class Hooks:
    """How a caller watches and steers a run (each may be left out)."""

    on_epoch: EpochCallback = lambda record: None  # a reason to stop, or None to go on
    log: Callable[[str], None] = lambda line: None  # progress lines
    # True: end now, as "interrupted". By default a signal that came (its KeyboardInterrupt
    # perhaps lost in a finalizer) is raised again after the current step.
    should_stop: Callable[[], bool] = signals.stop_requested


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


def progress_steps(n_steps: int) -> set[int]:
    """The 1-based steps after which an epoch prints progress (PROGRESS_POINTS per epoch)."""
    return {max(1, round(k * n_steps / PROGRESS_POINTS)) for k in range(1, PROGRESS_POINTS + 1)}


def train(cfg: TrainConfig, splits: data.Splits, device: torch.device,
          on_epoch: EpochCallback | None = None,
          log: Callable[[str], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train cfg.model on splits.train, evaluating on splits.val after each epoch.

    ON_EPOCH sees each EpochRecord and may return a reason to stop (status 'stopped').
    SHOULD_STOP is asked before each epoch and after each step (it must be a cheap flag, no
    device sync); True ends the run at once as 'interrupted', the epoch under way
    unrecorded. A training loss that is non-finite or above DIVERGED_LOSS ends the run as
    'diverged' at the next progress point. Running out of memory on the device ends it as
    'out_of_memory', with the memory given back. Each returns normally, with the epochs
    recorded so far (maybe none: then the run's losses and accuracies are NaN).
    """
    cfg = check_config(cfg)
    given = {"on_epoch": on_epoch, "log": log, "should_stop": should_stop}
    hooks = Hooks(**{name: hook for name, hook in given.items() if hook is not None})
    precision = resolve_precision(device, cfg.precision)
    if device.type == "cuda":
        tune_cuda(device)
    result = RunResult(cfg, device=str(device))
    start = time.perf_counter()
    try:
        run_epochs(cfg, splits, device, precision, result, hooks)
    except torch.OutOfMemoryError:
        result.status = "out_of_memory"
        result.reason = f"out of memory (batch {cfg.batch_size}, size {cfg.size})"
        result.model = None
    if result.status == "out_of_memory":
        # Here, not in the except clause: until the clause ends, the exception's traceback
        # keeps run_epochs' frame, and with it the network, optimizer state and activations.
        release_memory(device)
    result.train_seconds = time.perf_counter() - start
    return summarize(result)


def run_epochs(cfg: TrainConfig, splits: data.Splits, device: torch.device, precision: str,
               result: RunResult, hooks: Hooks) -> None:
    """The loop of `train`: appends to RESULT.epochs and sets its status and reason."""
    size = cfg.size
    torch.manual_seed(cfg.seed)
    n_steps = math.ceil(len(splits.train) / cfg.batch_size)
    learner = Learner(cfg, device, precision, n_steps)
    result.model, result.params = learner.net, models.param_count(learner.net)
    batches = batch_source(splits.train, cfg.batch_size, size, cfg.workers, cfg.seed, device,
                           cfg.augment)
    eval_bs = eval_batch_size(cfg.batch_size, size, device)
    for epoch in range(1, cfg.epochs + 1):
        if hooks.should_stop():
            result.status = result.reason = "interrupted"
            return
        t0 = time.perf_counter()
        sums, seen, outcome = learner.epoch(batches(), epoch, hooks)
        if outcome == "interrupted":
            result.status = result.reason = outcome
            return
        loss_sum, correct = sums.tolist()  # also waits for the device to finish the epoch
        phase = time.perf_counter() - t0
        val_loss, val_acc = evaluate(learner.net, splits.val, size, eval_bs, device, precision)
        seconds = time.perf_counter() - t0
        record = EpochRecord(epoch, loss_sum / seen, correct / seen, val_loss, val_acc,
                             seconds, seen / phase, seen)
        result.epochs.append(record)
        hooks.log(f"epoch {epoch}/{cfg.epochs}  val acc {val_acc:.4f}  val loss {val_loss:.4f}  "
                  f"({seconds:.1f} s, {record.examples_per_s:,.0f} examples/s)")
        if outcome == "diverged":
            result.status, result.reason = outcome, learner.divergence(cfg.lr)
            return
        stop = hooks.on_epoch(record)
        if stop:
            result.status, result.reason = "stopped", stop
            return


ONE_CYCLE_RISE = 0.3  # share of a one-cycle run spent rising to the full lr


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """The share of the configured lr at STEP (0-based) of TOTAL steps: SCHEDULE's, times a
    linear rise from 0 over the first WARMUP steps. Cosine, linear and one-cycle reach zero
    at the run's last step, as budgeted training wants (a run's lr spent by its end)."""
    t = min(step / max(total, 1), 1.0)
    if schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * t))
    elif schedule == "linear":
        f = 1.0 - t
    elif schedule == "one-cycle":
        f = (t / ONE_CYCLE_RISE if t < ONE_CYCLE_RISE
             else 0.5 * (1.0 + math.cos(math.pi * (t - ONE_CYCLE_RISE) / (1 - ONE_CYCLE_RISE))))
    else:
        f = 1.0
    return f * min(1.0, (step + 1) / warmup) if warmup else f


class Learner:
    """The network, its optimizer, loss scaler and schedule, and one epoch of steps. Metrics
    stay on the device in the hot loop; the host reads them only at progress points."""

    def __init__(self, cfg: TrainConfig, device: torch.device, precision: str, n_steps: int):
        self.cfg, self.device, self.precision, self.n_steps = cfg, device, precision, n_steps
        self.net = models.init_xavier(models.build(cfg.model, cfg.size)).to(
            device, memory_format=memory_format(device))
        self.opt = make_optimizer(cfg, self.net.parameters(), device)
        # float16 needs its loss scaled so that small gradients do not flush to zero;
        # disabled, the scaler passes the loss and the step straight through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
        total, warm = cfg.epochs * n_steps, round(cfg.warmup * cfg.epochs * n_steps)
        self.sched = (None if cfg.schedule == "constant" and not warm else
                      torch.optim.lr_scheduler.LambdaLR(
                          self.opt, lambda t: lr_factor(cfg.schedule, t, total, warm)))
        self.step_t = torch.zeros((), dtype=torch.long, device=device)  # steps, on the device
        # The first step whose loss was non-finite or above DIVERGED_LOSS (-1: none yet).
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.checkpoints = progress_steps(n_steps)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on batch X [B, 1, S, S], Y [B]: (loss, logits), on the device."""
        with autocast(self.device, self.precision):
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y,
                                   label_smoothing=self.cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.sched is not None:
            self.sched.step()
        loss = loss.detach()
        self.step_t += 1
        blown = ~torch.isfinite(loss) | (loss > DIVERGED_LOSS)
        self.bad_step = torch.where((self.bad_step < 0) & blown, self.step_t, self.bad_step)
        return loss, logits

    def epoch(self, batches: Batches, epoch: int, hooks: Hooks):
        """Train on BATCHES: ([loss sum, correct] on the device, examples seen, outcome), where
        the outcome is None, "diverged" (found at a progress point) or "interrupted"."""
        self.net.train()
        sums = torch.zeros(2, device=self.device)
        seen = 0
        for step, (x, y) in enumerate(batches, start=1):
            loss, logits = self.step(x, y)
            sums[0] += loss * len(y)
            sums[1] += (logits.argmax(1) == y).sum()
            seen += len(y)
            if hooks.should_stop():  # a Python flag: no device sync, so asked every step
                return sums, seen, "interrupted"
            if step in self.checkpoints:
                loss_sum, correct = sums.tolist()
                hooks.log(f"epoch {epoch}/{self.cfg.epochs}  step {step}/{self.n_steps}  "
                          f"loss {loss_sum / seen:.4f}  acc {correct / seen:.3f}")
                if self.bad_step.item() >= 0:
                    return sums, seen, "diverged"
        return sums, seen, None

    def divergence(self, lr: float) -> str:
        """Where the loss first blew up, as a trial's reason."""
        epoch, step = divmod(int(self.bad_step.item()) - 1, self.n_steps)
        return (f"training loss non-finite or above {DIVERGED_LOSS:g} at epoch {epoch + 1}, "
                f"step {step + 1} (lr {lr:g})")


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


