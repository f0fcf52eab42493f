"""scripts/bench --peer flaml and --warm-check: hpsearch's budgeted study against FLAML's tuner
at the same budget, and a warm-started study against a cold one, over study seeds.

For each seed S, in one SQLite file of its own:

- **cold**: `python -m hpsearch.study NET --budget B --seed S` (a fresh study, as a user runs it).
- **FLAML** (--peer flaml): `flaml.tune.run` with the same time budget, its cost-frugal search
  (CFO) and the training-set size as its resource (`sample_size`, FLAML's own scheduler), over
  the same space file turned into FLAML's domain objects; the objective is hpsearch's own
  `train()` on the same split (seed S), returning the final val accuracy, as a study trial does.
  FLAML's space is flat: a parameter that exists only for some optimizers is drawn always and
  ignored by the others (as hpsearch's space file reads it).
- **warm** (--warm-check): `NET --budget 2m --seed S`, then `NET --budget B --seed S
  --warm-start` from it; the time the warm study takes to reach the cold study's best val,
  against the time the cold one took (both counted from their first trial's start).

Both winners (the cold study's best trial, FLAML's best config) are then confirmed the same way,
the confirmation's protocol for one candidate: retrained on the whole training split with 3
fresh seeds (hpsearch.results.confirm.fresh_seeds), val and test accuracy of each. The JSON is
written after every seed, so a run cut short keeps what it finished."""

from __future__ import annotations

import datetime
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna

from hpsearch.engine.config import CHANCE, TRAIN_IMAGES, TrainConfig
from hpsearch.files import write_atomic
from hpsearch.study import space as spaces
from hpsearch.study.output import COPIED, FINISHED
from hpsearch.study.resume import read_space

CHECKOUT = Path(__file__).resolve().parent.parent
MIN_SAMPLE = 5_000  # FLAML's smallest training-set size


@dataclass(frozen=True)
class PeerPlan:
    network: str
    budget: float  # seconds, each arm
    seeds: int  # how many study seeds, first_seed onwards
    confirm_seeds: int = 3
    warm_from: float = 120.0  # seconds of the study a warm start starts from
    fixed: tuple[str, ...] = ()  # hpsearch study flags fixing the fidelity (tiny runs)
    train_subset: int | None = None  # the whole split, else this many images (tiny runs)
    val_size: int = 10_000
    first_seed: int = 0


TINY = PeerPlan("net28", 45.0, 1, confirm_seeds=1, warm_from=40.0,
                fixed=("--train-subset", "1000", "--val-size", "300", "--max-epochs", "1"),
                train_subset=1000, val_size=300)


def study_command(plan: PeerPlan, name: str, budget: float, seed: int, url: str,
                  warm_start: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "hpsearch.study", plan.network, "--budget", f"{budget:g}s",
           "--seed", str(seed), "--storage", url, "--study-name", name, "--quiet", *plan.fixed]
    return cmd + (["--warm-start", warm_start] if warm_start else [])


def run_study(cmd: list[str], say) -> float:
    """Run a study command; its wall seconds."""
    say("peer: " + " ".join(cmd[3:]))
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return time.perf_counter() - start


def anytime(study: optuna.Study) -> list[tuple[float, float]]:
    """(seconds since the study's first trial started, best val so far) at each completed
    trial this study ran (copies are known at second 0)."""
    own = [t for t in study.trials if t.state in FINISHED and COPIED not in t.user_attrs]
    if not own:
        return []
    t0 = min(t.datetime_start for t in own)
    points = [(0.0, t.value) for t in study.trials
              if COPIED in t.user_attrs and t.value is not None]
    points += [((t.datetime_complete - t0).total_seconds(), t.value) for t in own
               if t.value is not None]
    best, curve = -math.inf, []
    for at, value in sorted(points):
        best = max(best, value)
        curve.append((at, best))
    return curve


def time_to(curve: list[tuple[float, float]], value: float) -> float | None:
    return next((at for at, best in curve if best >= value), None)


def flaml_domains(space: spaces.Space) -> dict:
    from flaml import tune

    out = {}
    for p in space.params:
        d = p.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out[p.name] = tune.choice(list(d.choices))
        elif isinstance(d, optuna.distributions.IntDistribution):
            out[p.name] = (tune.lograndint if d.log else tune.randint)(d.low, d.high + 1)
        else:
            out[p.name] = (tune.loguniform if d.log else tune.uniform)(d.low, d.high)
    return out


def run_flaml(plan: PeerPlan, seed: int, arrays, device, say) -> dict:
    """FLAML's tune.run on the space file, hpsearch's train() as its objective."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flaml.automl is not installed: not used here
        from flaml import tune
    from hpsearch.engine import data
    from hpsearch.engine.train import train

    space = read_space(plan.network, None)
    full = TRAIN_IMAGES - plan.val_size  # the whole training split
    most = plan.train_subset or full
    splits: dict[int, object] = {}
    trials: list[dict] = []
    start = time.perf_counter()

    def evaluate(config: dict) -> dict:
        n = min(int(config.get("sample_size", most)), most)
        if n not in splits:
            splits[n] = data.make_splits(arrays, device, val_size=plan.val_size, seed=seed,
                                         train_subset=None if n >= full else n)
        params = {k: v for k, v in config.items() if k != "sample_size"}
        cfg = TrainConfig(model=space.network, seed=seed,
                          **spaces.suggest(optuna.trial.FixedTrial(params), space))
        result = train(cfg, splits[n], device)
        val = result.final_val_acc if math.isfinite(result.final_val_acc) else CHANCE
        trials.append({"at": time.perf_counter() - start, "sample_size": n, "val": val,
                       "params": params})
        return {"val_acc": val, "sample_size": n}

    epochs = next(p.distribution for p in space.params if p.field == "epochs")
    analysis = tune.run(evaluate, config=flaml_domains(space), metric="val_acc", mode="max",
                        time_budget_s=plan.budget, num_samples=-1, search_alg="CFO",
                        low_cost_partial_config={"epochs": epochs.low},
                        resource_attr="sample_size", min_resource=min(MIN_SAMPLE, most),
                        max_resource=most, scheduler="flaml", verbose=0)
    best = {k: v for k, v in analysis.best_config.items() if k != "sample_size"}
    say(f"peer: FLAML ran {len(trials)} trials in {time.perf_counter() - start:.0f} s")
    return {"seconds": time.perf_counter() - start, "trials": trials, "best_params": best,
            "best_val": max(t["val"] for t in trials) if trials else None,
            "best_config": TrainConfig(model=space.network, seed=seed, **spaces.suggest(
                optuna.trial.FixedTrial(best), space)).__dict__}


def confirm_config(config: dict, plan: PeerPlan, seed: int, say) -> dict:
    """CONFIG retrained with fresh seeds on the whole training split (the study's split seed):
    val and test accuracy of each."""
    from hpsearch.results.confirm import fresh_seeds, trainer
    from hpsearch.study.setup import StudySetup

    setup = StudySetup(network=plan.network, seed=seed, val_size=plan.val_size,
                       train_subset=plan.train_subset)
    run_one = trainer(setup, plan.train_subset is None, "auto", None, None)
    runs = []
    for s in fresh_seeds(seed, plan.confirm_seeds):
        val, test = run_one(TrainConfig(**{**config, "seed": s}), True)
        runs.append({"seed": s, "val": val, "test": test})
        say(f"peer: confirm seed {s}: val {val:.4f}, test {test:.4f}")
    return {"config": config, "runs": runs, **stats([r["test"] for r in runs], "test"),
            **stats([r["val"] for r in runs], "val")}


def stats(values: list[float], name: str) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {f"{name}_mean": statistics.fmean(values), f"{name}_sd": sd}


def run_seed(plan: PeerPlan, seed: int, folder: Path, peer: bool, warm: bool, arrays, device,
             say) -> dict:
    url = f"sqlite:///{folder / f'seed{seed}.db'}"
    storage = optuna.storages.RDBStorage(url)
    out: dict = {"seed": seed}
    out["cold_wall"] = run_study(study_command(plan, "cold", plan.budget, seed, url), say)
    cold = optuna.load_study(study_name="cold", storage=storage)
    curve = anytime(cold)
    out["cold_curve"] = curve
    out["cold_best_val"] = cold.best_value
    out["cold_time_to_best"] = time_to(curve, cold.best_value)
    if warm:
        out["first_wall"] = run_study(study_command(plan, "first", plan.warm_from, seed, url),
                                      say)
        out["warm_wall"] = run_study(study_command(plan, "warm", plan.budget, seed, url,
                                                   warm_start="first"), say)
        study = optuna.load_study(study_name="warm", storage=storage)
        out["warm_curve"] = anytime(study)
        out["warm_best_val"] = study.best_value
        out["warm_time_to_cold_best"] = time_to(out["warm_curve"], cold.best_value)
        out["warm_start"] = study.user_attrs.get("warm_start")
    if peer:
        out["cold_confirmed"] = confirm_config(cold.best_trial.user_attrs["config"], plan,
                                               seed, say)
        out["flaml"] = run_flaml(plan, seed, arrays, device, say)
        out["flaml_confirmed"] = confirm_config(out["flaml"]["best_config"], plan, seed, say)
    return out


def run(plan: PeerPlan, peer: bool, warm: bool, out_path: Path, doc: dict, say) -> dict:
    """Every seed of PLAN; DOC (with the results so far) written to OUT_PATH after each."""
    from hpsearch.engine import data
    from hpsearch.engine.device import pick_device

    arrays = data.load(data.env_data_dir()) if peer else None
    device = pick_device("auto")
    doc["peer"] = {"network": plan.network, "budget_s": plan.budget, "peer": "flaml" if peer
                   else None, "warm_check": warm, "seeds": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(plan.first_seed, plan.first_seed + plan.seeds):
            doc["peer"]["seeds"].append(run_seed(plan, seed, Path(tmp), peer, warm, arrays,
                                                 device, say))
            doc["peer"]["written"] = datetime.datetime.now().isoformat(timespec="seconds")
            write_atomic(out_path, json.dumps(doc, indent=2, default=str) + "\n")
    return doc["peer"]


def table(result: dict) -> str:
    """Markdown: per seed, each arm's best val, confirmed test, and the warm start's times."""
    lines = [f"{result['network']}, budget {result['budget_s']:g} s per arm", ""]
    seeds = result["seeds"]
    if result["peer"]:
        lines += ["| seed | hpsearch best val | hpsearch confirmed test | FLAML trials | FLAML "
                  "best val | FLAML confirmed test |", "|---|---|---|---|---|---|"]
        for s in seeds:
            h, f = s["cold_confirmed"], s["flaml_confirmed"]
            lines.append(f"| {s['seed']} | {s['cold_best_val']:.4f} | {h['test_mean']:.4f} ± "
                         f"{h['test_sd']:.4f} | {len(s['flaml']['trials'])} | "
                         f"{s['flaml']['best_val']:.4f} | {f['test_mean']:.4f} ± "
                         f"{f['test_sd']:.4f} |")
        both = [(s["cold_confirmed"]["test_mean"], s["flaml_confirmed"]["test_mean"])
                for s in seeds]
        lines += ["", "over seeds: hpsearch " + fmt_stats([h for h, _ in both]) + ", FLAML "
                  + fmt_stats([f for _, f in both]), ""]
    if result["warm_check"]:
        lines += ["| seed | cold best val | cold reached it at | warm best val | warm reached "
                  "it at | ratio |", "|---|---|---|---|---|---|"]
        for s in seeds:
            warm_at, cold_at = s["warm_time_to_cold_best"], s["cold_time_to_best"]
            ratio = "never" if warm_at is None else f"{warm_at / max(cold_at, 1e-9):.2f}"
            lines.append(f"| {s['seed']} | {s['cold_best_val']:.4f} | {cold_at:.0f} s | "
                         f"{s['warm_best_val']:.4f} | "
                         f"{'-' if warm_at is None else f'{warm_at:.0f} s'} | {ratio} |")
    return "\n".join(lines)


def fmt_stats(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f} (n {len(values)})"

