"""scripts/bench --knobs: what each training knob a space may search (schedule, warm-up, label
smoothing, augmentation) does to one good configuration of a network, at a budgeted study's
fidelity, over training seeds. A knob earns a place in a shipped space only if it moves the
final val accuracy (a study's objective) by more than the spread over seeds.

Every variant trains the same split (seed 0) with training seeds 0..S-1, so gains are paired by
seed: the variant's final val accuracy minus the base's, seed by seed."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch

from hpsearch.engine import data
from hpsearch.engine.config import TrainConfig
from hpsearch.engine.train import train


@dataclass(frozen=True)
class KnobCase:
    """One network's base configuration, the fidelity it trains at and the variants tried."""

    base: TrainConfig
    train_subset: int | None
    val_size: int
    variants: tuple[tuple[str, dict], ...]

    @property
    def model(self) -> str:
        return self.base.model


# The variants: each knob alone, then the decaying schedule with the other knobs added.
VARIANTS = (
    ("base (constant lr)", {}),
    ("linear decay", {"schedule": "linear"}),
    ("cosine", {"schedule": "cosine"}),
    ("one-cycle", {"schedule": "one-cycle"}),
    ("linear + warm-up 0.05", {"schedule": "linear", "warmup": 0.05}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
    ("flip", {"augment": "flip"}),
    ("crop-flip", {"augment": "crop-flip"}),
    ("linear + smoothing 0.1", {"schedule": "linear", "label_smoothing": 0.1}),
    ("linear + flip", {"schedule": "linear", "augment": "flip"}),
    ("linear + crop-flip", {"schedule": "linear", "augment": "crop-flip"}),
)
# net28 (ReLU, 3.2M parameters) over-fits Fashion-MNIST within a few epochs, so what it is
# shown: the schedules, smoothing and augmentation alone and together (fewer, as its runs are
# longer).
NET28_VARIANTS = VARIANTS[:2] + (
    ("one-cycle", {"schedule": "one-cycle"}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
    ("flip", {"augment": "flip"}),
    ("crop-flip", {"augment": "crop-flip"}),
    ("linear + crop-flip", {"schedule": "linear", "augment": "crop-flip"}),
    ("linear + crop-flip + smoothing 0.1", {"schedule": "linear", "augment": "crop-flip",
                                            "label_smoothing": 0.1}),
)
# resnet's space already decays (cosine), so its base is the 1-hour study's winner as found
# (cosine), and what it is shown are the knobs that space lacks.
RESNET_VARIANTS = (
    ("base (cosine)", {}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
    ("flip", {"augment": "flip"}),
)
# Good configurations found by earlier studies (BENCHMARKS.md), at the fidelity the budgeted
# study of each picked on a 2-core CPU: lenet --budget 10m and net28 --budget 20m both chose
# all 50,000 training images.
CASES = (
    KnobCase(TrainConfig(model="lenet", optimizer="adam", lr=0.005, batch_size=64,
                                  epochs=15), None, 10_000, VARIANTS),
    KnobCase(TrainConfig(model="net28", optimizer="adam", lr=0.001, batch_size=128,
                                  epochs=8), None, 10_000, NET28_VARIANTS),
    # resnet --budget 1h: the winner of session 18's study (momentum SGD, cosine), at the
    # fidelity the budget picks on a CPU with AVX512-BF16 and no AMX (all 50,000 images at
    # 32x32, 3 epochs; with AMX it picks 10,000 at 96x96, where an epoch took 3 minutes without).
    KnobCase(TrainConfig(model="resnet", optimizer="momentum", lr=0.0335, momentum=0.869,
                         weight_decay=1.8e-4, schedule="cosine", batch_size=64, epochs=3,
                         resize=32), None, 10_000, RESNET_VARIANTS),
)
TINY = (KnobCase(TrainConfig(model="lenet", optimizer="adam", lr=0.005, batch_size=64,
                             epochs=1), 500, 200, VARIANTS[:3]),)


def run_case(case: KnobCase, seeds: int, arrays: data.FashionMNISTArrays,
             device: torch.device, say) -> dict:
    network = case.model
    splits = data.make_splits(arrays, device, val_size=case.val_size, seed=0,
                              train_subset=case.train_subset)
    rows = []
    for label, change in case.variants:
        finals, seconds = [], []
        for seed in range(seeds):
            cfg = dataclasses.replace(case.base, seed=seed, **change)
            result = train(cfg, splits, device)
            finals.append(result.final_val_acc)
            seconds.append(result.train_seconds)
            say(f"knobs {network} {label} seed {seed}: final val {result.final_val_acc:.4f} "
                f"({result.train_seconds:.1f} s)")
        rows.append({"variant": label, "change": change, "final_val": finals,
                     "seconds": seconds})
    return {"network": network, "base": dataclasses.asdict(case.base),
            "train_subset": case.train_subset, "val_size": case.val_size, "seeds": seeds,
            "rows": paired(rows)}


def paired(rows: list[dict]) -> list[dict]:
    """ROWS (the base first) with each variant's mean, its gain over the base paired by seed,
    whether that gain is beyond its spread, and its time against the base's."""
    base = rows[0]["final_val"]
    for row in rows:
        gains = [v - b for v, b in zip(row["final_val"], base)]
        row["mean"], row["sd"] = _mean_sd(row["final_val"])
        row["gain"], row["gain_sd"] = _mean_sd(gains)
        row["time_ratio"] = statistics.fmean(row["seconds"]) / statistics.fmean(rows[0]["seconds"])
        # Beyond the spread: the paired gain's mean is more than its own sd away from zero.
        row["beyond_spread"] = abs(row["gain"]) > row["gain_sd"] > 0
    return rows


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        b = r["base"]
        lines += [f"{r['network']}: {b['optimizer']} lr {b['lr']:g}, batch {b['batch_size']}, "
                  f"{b['epochs']} epochs, {r['train_subset'] or 'all'} train / {r['val_size']} "
                  f"val images, training seeds 0-{r['seeds'] - 1}", "",
                  "| variant | final val (mean ± sd) | paired gain | beyond the spread | time |",
                  "|---|---|---|---|---|"]
        for row in r["rows"]:
            lines.append(f"| {row['variant']} | {row['mean']:.4f} ± {row['sd']:.4f} | "
                         f"{row['gain']:+.4f} ± {row['gain_sd']:.4f} | "
                         f"{'yes' if row['beyond_spread'] else 'no'} | "
                         f"{row['time_ratio']:.2f}x |")
        lines.append("")
    return "\n".join(lines)
