"""scripts/bench --search: search configurations (sampler + pruner) compared over several
study seeds at one fixed, stated fidelity. Each run is a real study through the study command
on a fresh SQLite file, then an export (the best configuration retrained at the same fidelity
and evaluated once on the test images). Per run: the anytime curve (best val accuracy of a
completed trial against seconds since the study's first trial, and against trials), trials
at chance, late prunes (after more than half their epochs), costly prunes (after more than 70%
of their epochs, within 0.01 of the best so far), epochs trained, test accuracy.
Per configuration: mean and spread over the seeds, including the area under the anytime
curve (best val accuracy averaged over a common horizon), and a plot with one band each."""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.cost_check import CHECKOUT
from benchmarks.options import FIDELITY_FORM
from hpsearch.engine.config import CHANCE, at_chance
from hpsearch.errors import UsageError


@dataclass(frozen=True)
class Fidelity:
    network: str
    trials: int
    train_subset: int
    val_size: int
    max_epochs: int


# Epochs the pruner leaves alone in the warm-up configurations: LeNet's sigmoids sit near chance
# for their first epoch even at good settings (plain SGD at lr 0.8-1.2 and batch 256: 9 runs of
# 9 at 0.100 after epoch 1, most above it after epoch 2; BENCHMARKS.md, session 7), which is
# the warm-up its space file ships; net28's ReLUs say much after one epoch.
WARMUP = {"lenet": 1, "net28": 1}

# A costly prune: pruned after more than this share of its epochs, within COSTLY_GAP of the
# best val accuracy completed before it (most of its cost spent, and it was nearly the best).
COSTLY_SHARE = 0.7
COSTLY_GAP = 0.01


def configs(network: str) -> dict[str, list[str]]:
    """Name -> study flags. Every flag is spelled out, so a result does not change meaning
    when the shipped defaults change; "tpe + median" was the default before this benchmark."""
    w = str(WARMUP.get(network, 1))

    def cfg(sampler: str, pruner: str, warmup: str = "0") -> list[str]:
        return ["--sampler", sampler, "--pruner", pruner, "--warmup-epochs", warmup]

    # "shipped default" alone names no flags: it runs what the space file's [search] says, so
    # its meaning follows the shipped file (or --space's).
    return {"tpe + median": cfg("tpe", "median"),
            "random + median": cfg("random", "median"),
            "tpe + hyperband": cfg("tpe", "hyperband"),
            "gp + median": cfg("gp", "median"),
            f"tpe + median, warm-up {w}": cfg("tpe", "median", w),
            f"tpe + epoch-median, warm-up {w}": cfg("tpe", "epoch-median", w),
            "shipped default": []}




def parse_fidelity(text: str) -> Fidelity:
    """A fidelity from FIDELITY_FORM (scripts/bench --search-at): trials per study, training
    images, validation images, epoch cap."""
    from hpsearch import models

    network, *numbers = text.split(":")
    if len(numbers) != 4:
        raise UsageError(f"--search-at must be {FIDELITY_FORM}; got {text!r}")
    models.spec(network)
    try:
        values = [int(n) for n in numbers]
    except ValueError:
        raise UsageError(f"--search-at takes whole numbers after the network "
                         f"({FIDELITY_FORM}); got {text!r}") from None
    if min(values) < 1:
        raise UsageError(f"--search-at numbers must be >= 1 ({FIDELITY_FORM}); got {text!r}")
    return Fidelity(network, *values)


def with_space(named: dict[str, list[str]], space: Path | None,
               network: str) -> dict[str, list[str]]:
    """NAMED with every study searching SPACE (a space file for NETWORK) instead of the
    shipped studies/NETWORK.toml; NAMED itself when SPACE is None."""
    from hpsearch.study import space as spaces

    if space is None:
        return named
    if (found := spaces.load(space).network) != network:
        raise UsageError(f"--space {space} searches {found}, not {network}")
    return {name: [*flags, "--space", str(space.resolve())] for name, flags in named.items()}


def pick(named: dict[str, list[str]], wanted: list[str] | None) -> dict[str, list[str]]:
    """The configurations named in WANTED, in its order (None: all of NAMED)."""
    if not wanted:
        return named
    if unknown := [w for w in wanted if w not in named]:
        raise UsageError(f"unknown search configuration(s) {', '.join(map(repr, unknown))}; "
                         f"choose from: {', '.join(map(repr, named))}")
    return {w: named[w] for w in wanted}


# The tiny mode runs what a plain study uses (no flags): every field written, in about a minute.
TINY_CONFIGS = {"shipped default": []}
FULL = (Fidelity("lenet", 20, 10_000, 5_000, 8), Fidelity("net28", 12, 5_000, 5_000, 4))
TINY = (Fidelity("net28", 3, 300, 300, 1),)


def run_once(fid: Fidelity, flags: list[str], seed: int, say) -> dict:
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/search.db"
        common = ["--storage", url, "--train-subset", str(fid.train_subset)]
        study = [sys.executable, "-m", "hpsearch.study", fid.network, "--trials", str(fid.trials),
                 "--seed", str(seed), "--val-size", str(fid.val_size), "--max-epochs",
                 str(fid.max_epochs), "--quiet", *common, *flags]
        say(f"search bench: {shlex.join(study[1:])}")
        run(study)
        export = [sys.executable, "-m", "hpsearch.export", fid.network, "--out",
                  f"{tmp}/best.json", "--quiet", *common]
        run(export)
        exported = json.loads(Path(tmp, "best.json").read_text())
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        trials = optuna.load_study(study_name=fid.network, storage=url).get_trials()
    return {"seed": seed, "command": shlex.join(study), **run_figures(trials),
            "test_accuracy": exported["test"]["test_accuracy"]}


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")


def run_figures(trials) -> dict:
    """The anytime curve and the counts of one study's trials."""
    from optuna.trial import TrialState

    from hpsearch.study.pruners import epoch_budget

    done = sorted((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
                  key=lambda t: t.datetime_complete)
    start = min(t.datetime_start for t in done)
    curve, best = [], CHANCE
    for i, t in enumerate(done, start=1):
        if t.state == TrialState.COMPLETE:
            best = max(best, t.value)
        curve.append({"seconds": (t.datetime_complete - start).total_seconds(), "trials": i,
                      "best_val": best})
    return {"curve": curve, "best_val": best, "trials": len(done),
            "chance_trials": sum(at_chance(t.user_attrs.get("best_val_acc", CHANCE))
                                 for t in done),
            "late_prunes": sum(t.state == TrialState.PRUNED and
                               t.user_attrs.get("epochs_run", 0) > (epoch_budget(t) or 0) / 2
                               for t in done),
            "costly_prunes": costly_prunes(done),
            "epochs_trained": sum(t.user_attrs.get("epochs_run", 0) for t in done),
            "seconds": curve[-1]["seconds"] if curve else 0.0}


def costly_prunes(done) -> int:
    """Trials of DONE (completed and pruned, in the order they ended) pruned after more than
    COSTLY_SHARE of their epochs with a best val accuracy within COSTLY_GAP of the best
    completed trial before them."""
    from optuna.trial import TrialState

    from hpsearch.study.pruners import epoch_budget

    count, best = 0, None
    for t in done:
        if t.state == TrialState.COMPLETE:
            best = t.value if best is None else max(best, t.value)
            continue
        budget, reached = epoch_budget(t), max(t.intermediate_values.values(), default=None)
        count += (best is not None and budget is not None and reached is not None
                  and len(t.intermediate_values) > COSTLY_SHARE * budget
                  and reached >= best - COSTLY_GAP)
    return count


def best_at(curve: list[dict], seconds: float) -> float:
    """Best val accuracy found by SECONDS (chance before the first trial ends)."""
    best = CHANCE
    for point in curve:
        if point["seconds"] > seconds:
            break
        best = point["best_val"]
    return best


def area(curve: list[dict], horizon: float, points: int = 200) -> float:
    """Mean best val accuracy over [0, HORIZON] seconds: the area under the anytime curve,
    divided by the horizon, so runs that find a good trial early score higher."""
    return statistics.fmean(best_at(curve, horizon * (i + 0.5) / points) for i in range(points))


def spread(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None}
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def compare(fid: Fidelity, seeds: int, say, configs: dict) -> dict:
    runs = {}
    for name, flags in configs.items():
        runs[name] = []
        for seed in range(seeds):
            r = run_once(fid, flags, seed, say)
            say(f"  {name}, seed {seed}: best val {r['best_val']:.4f}, test "
                f"{r['test_accuracy']:.4f}, {r['chance_trials']} at chance, "
                f"{r['late_prunes']} late prunes ({r['costly_prunes']} costly), "
                f"{r['epochs_trained']} epochs, "
                f"{r['seconds']:.0f} s")
            runs[name].append(r)
    return {**asdict(fid), "seeds": seeds, **summarise(runs)}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Each run's area under its anytime curve over the common horizon (the longest run), and
    each configuration's mean and spread."""
    horizon = max(r["seconds"] for rs in runs.values() for r in rs)
    for rs in runs.values():
        for r in rs:
            r["auc"] = area(r["curve"], horizon)
    # Paired by seed against the first configuration: a seed fixes the split, the training
    # seed and the baseline trial, so the per-seed difference has less noise than either area.
    first = list(runs.values())[0]
    summary = {}
    for name, rs in runs.items():
        for r, ref in zip(rs, first):
            r["auc_gain"] = r["auc"] - ref["auc"]
        summary[name] = {key: spread([r[key] for r in rs]) for key in
                         ("auc", "auc_gain", "best_val", "test_accuracy", "chance_trials",
                          "late_prunes", "costly_prunes", "epochs_trained", "seconds")}
    return {"horizon_s": horizon, "runs": runs, "summary": summary}


def table(results: list[dict]) -> str:
    lines = []
    for res in results:
        lines += [f"{res['network']}: {res['trials']} trials, {res['train_subset']:,} train / "
                  f"{res['val_size']:,} val images, <= {res['max_epochs']} epochs, "
                  f"{res['seeds']} study seeds; mean ± sd", "",
                  "| configuration | area under anytime curve | gain, paired by seed | "
                  "best val | test acc | chance trials | late prunes | costly prunes | "
                  "epochs trained | seconds |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in res["summary"].items():
            cells = [fmt(s[k], d) for k, d in (("auc", 4), ("auc_gain", 4), ("best_val", 4),
                                               ("test_accuracy", 4), ("chance_trials", 1),
                                               ("late_prunes", 1), ("costly_prunes", 1),
                                               ("epochs_trained", 0),
                                               ("seconds", 0))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def fmt(s: dict, digits: int) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def plot(results: list[dict], path: Path) -> None:
    """Best val accuracy against seconds, mean ± sd over the seeds, one band per
    configuration, one panel per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        grid = [res["horizon_s"] * i / 100 for i in range(101)]
        for name, rs in res["runs"].items():
            at = [[best_at(r["curve"], x) for r in rs] for x in grid]
            mean = [statistics.fmean(v) for v in at]
            sd = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in at]
            ax.plot(grid, mean, label=name)
            ax.fill_between(grid, [m - s for m, s in zip(mean, sd)],
                            [m + s for m, s in zip(mean, sd)], alpha=0.2)
        ax.set(title=f"{res['network']} ({res['seeds']} seeds)", xlabel="seconds",
               ylabel="best val accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
