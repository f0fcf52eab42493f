"""Confirm a study's winner: re-train its best configurations over fresh seeds, set them
against the lab's baseline, and touch the test images only for the winner (and the baseline).

    python -m hpsearch.confirm lenet --top 3 --seeds 3
    python -m hpsearch.confirm lenet --full          # on the whole training split

A study ranks trials by one run each; the best of many noisy runs is biased upward (the
winner's curse). Here each of the K best configurations (by the search's val accuracy) trains
S times with new seeds (initialisation and batch order; the validation split stays the
study's), and the winner is the best mean val accuracy. Two configurations are TIED when the
difference of their means is within two standard errors of that difference (Welch:
2 * sqrt(s1^2/n1 + s2^2/n2)), i.e. not told apart at about 95%.

Each seed run is stored as it finishes, as a trial of the companion study NAME-confirm (a
trial is written atomically, shows in optuna-dashboard, and a killed confirmation run again
skips what is stored); the summary goes into the study's user attr `confirmation`, which
export, report and the dashboard note read.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from hpsearch import models
from hpsearch.study import notes, output
from hpsearch.study.setup import StudySetup
from hpsearch.engine.config import SEED_LIMIT, TrainConfig
from hpsearch.errors import UsageError
from hpsearch.units import fmt_seconds

ATTR = "confirmation"  # the study's user attr with the summary
SEED_SALT = 0xC0F1  # mixed into the study's seed, so confirmation seeds are new ones


@dataclass(frozen=True)
class Candidate:
    key: str  # "trial 7" or "baseline"
    config: TrainConfig  # its seed is replaced per run
    search_value: float | None  # the search's val accuracy (None for the baseline)
    trial: int | None = None


@dataclass(frozen=True)
class Stats:
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for one run
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values))

    def to_json(self) -> dict:
        return asdict(self)


def fresh_seeds(study_seed: int, n: int) -> list[int]:
    """N seeds, distinct from each other and from the study's own."""
    seeds: list[int] = []
    state = np.random.SeedSequence([study_seed, SEED_SALT]).generate_state(4 * n + 4)
    for s in (int(x) % SEED_LIMIT for x in state):
        if s != study_seed and s not in seeds:
            seeds.append(s)
        if len(seeds) == n:
            return seeds
    raise AssertionError("SeedSequence gave too few distinct seeds")


def tied(a: Stats, b: Stats) -> bool:
    """Whether A and B cannot be told apart: |mean difference| within two standard errors."""
    se = math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)
    return abs(a.mean - b.mean) <= 2 * se


def top_candidates(study: optuna.Study, k: int) -> list[Candidate]:
    """The K best completed trials by val accuracy, one per distinct configuration."""
    return [Candidate(f"trial {t.number}", TrainConfig(**t.user_attrs["config"]), t.values[0],
                      t.number)
            for t in output.best_configs(study, k)]


def baseline_candidate(network: str, like: TrainConfig, max_epochs: int | None) -> Candidate:
    """The lab's baseline at the study's fidelity: LIKE's input size and precision, the
    study's epoch cap."""
    base = models.baseline(network)
    epochs = base["epochs"] if max_epochs is None else min(base["epochs"], max_epochs)
    cfg = TrainConfig(model=network, optimizer=base["optimizer"], lr=base["lr"],
                      epochs=epochs, batch_size=base["batch_size"], resize=like.resize,
                      precision=like.precision)
    return Candidate("baseline", cfg, None)


# One run: (config, evaluate on the test images too?) -> (val accuracy, test accuracy or None)
RunOne = Callable[[TrainConfig, bool], tuple[float, "float | None"]]


def stored_runs(companion: optuna.Study) -> dict[tuple[str, int, str], optuna.trial.FrozenTrial]:
    """(candidate key, seed, role) -> the stored run."""
    return {(t.user_attrs["candidate"], t.user_attrs["seed"], t.user_attrs["role"]): t
            for t in companion.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}


def run_missing(companion: optuna.Study, cand: Candidate, seeds: list[int], role: str,
                run_one: RunOne, say: Callable[[str], None]) -> list[optuna.trial.FrozenTrial]:
    """CAND's run for each seed, trained now where none is stored (ROLE 'val': val accuracy;
    'test': also the test images, for the winner and the baseline)."""
    out = []
    for seed in seeds:
        held = stored_runs(companion).get((cand.key, seed, role))
        if held is None:
            cfg = replace(cand.config, seed=seed)
            val, test = run_one(cfg, role == "test")
            attrs = {"candidate": cand.key, "seed": seed, "role": role, "config": asdict(cfg),
                     "source_trial": cand.trial, "test_acc": test}
            companion.add_trial(create_trial(state=TrialState.COMPLETE, value=val,
                                             user_attrs=attrs))
            held = stored_runs(companion)[(cand.key, seed, role)]
            say(f"{cand.key} seed {seed}: val acc {val:.4f}"
                + ("" if test is None else f", test acc {test:.4f}"))
        out.append(held)
    return out


def summary(cands: list[Candidate], val_runs: dict, test_runs: dict, seeds: list[int],
            fidelity: str, note: str | None) -> dict:
    """The confirmation block: per configuration the val accuracy's mean, std and n; the
    winner; ties; the winner's and the baseline's test accuracy; the improvement."""
    val = {c.key: Stats.of([t.value for t in val_runs[c.key]]) for c in cands}
    ranked = sorted((c for c in cands if c.key != "baseline"), key=lambda c: -val[c.key].mean)
    winner = ranked[0]
    test = {k: Stats.of([t.user_attrs["test_acc"] for t in runs]) for k, runs in test_runs.items()}
    w, b = test[winner.key], test["baseline"]
    gain = w.mean - b.mean
    gain_se = math.sqrt(w.std ** 2 / w.n + b.std ** 2 / b.n)
    return {
        "seeds": seeds, "fidelity": fidelity, "note": note,
        "tie_rule": "tied when |difference of mean val accuracy| <= 2 standard errors of the "
                    "difference (Welch)",
        "configurations": [{"key": c.key, "trial": c.trial, "search_value": c.search_value,
                            "config": asdict(replace(c.config, seed=0)),
                            "val_accuracy": val[c.key].to_json()} for c in cands],
        "winner": {"key": winner.key, "trial": winner.trial,
                   "config": asdict(replace(winner.config, seed=0))},
        "tied_with_winner": [c.key for c in ranked[1:] if tied(val[winner.key], val[c.key])],
        "test_accuracy": {"winner": w.to_json(), "baseline": b.to_json()},
        "improvement_over_baseline": {"points": 100 * gain, "plus_minus": 100 * 2 * gain_se},
        "sentence": sentence(winner, w, b, gain, gain_se),
    }


def sentence(winner: Candidate, w: Stats, b: Stats, gain: float, se: float) -> str:
    verb = "beats" if gain > 2 * se else ("trails" if gain < -2 * se else "is level with")
    return (f"The best configuration ({winner.key}) {verb} the lab's baseline by "
            f"{100 * gain:+.2f} ± {100 * 2 * se:.2f} points of test accuracy "
            f"({100 * w.mean:.2f}% against {100 * b.mean:.2f}%, mean of {w.n} seeds each).")


def study_fidelity(setup: StudySetup, full: bool) -> tuple[int | None, str]:
    """(train subset, words) of the runs: the study's, or the whole training split."""
    if full or setup.train_subset is None:
        return None, "the whole training split" + (" (--full)" if full else "")
    return setup.train_subset, f"the study's fidelity ({setup.train_subset} training images)"


def confirm(study: optuna.Study, storage, top: int, seeds: int, full: bool, run_one: RunOne,
            say: Callable[[str], None]) -> dict:
    """Run (or finish) STUDY's confirmation and store its summary in the study; returns it."""
    setup = StudySetup.of(study)
    cands = top_candidates(study, top)
    if not cands:
        raise UsageError(f"study {study.study_name!r} has no completed trial to confirm")
    note = None if len(cands) == top else (f"the study has {len(cands)} completed "
                                           f"configurations, fewer than --top {top}; "
                                           f"confirming those")
    if note:
        say(note)
    base = baseline_candidate(setup.network or cands[0].config.model, cands[0].config,
                              setup.max_epochs)
    chosen = fresh_seeds(setup.seed, seeds)
    name = f"{study.study_name}-confirm" + ("-full" if full else "")
    companion = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    direction="maximize")
    val_runs = {c.key: run_missing(companion, c, chosen, "val", run_one, say) for c in cands}
    val_runs["baseline"] = run_missing(companion, base, chosen, "test", run_one, say)
    winner = max(cands, key=lambda c: statistics.fmean(t.value for t in val_runs[c.key]))
    test_runs = {winner.key: run_missing(companion, winner, chosen, "test", run_one, say),
                 "baseline": val_runs["baseline"]}
    block = summary(cands + [base], val_runs, test_runs, chosen,
                    study_fidelity(setup, full)[1], note)
    block["companion_study"] = name
    study.set_user_attr(ATTR, block)
    notes.add_confirmation(study, block["sentence"])
    return block


def trainer(setup: StudySetup, full: bool, device_name: str, data_dir, log) -> RunOne:
    """The real RunOne: train on the study's split (the whole training split with FULL),
    evaluate on the test images only when asked. Data loads on the first run."""
    from hpsearch.engine import data
    from hpsearch.engine.config import CHANCE
    from hpsearch.engine.batches import eval_batch_size
    from hpsearch.engine.device import pick_device
    from hpsearch.engine.train import evaluate, train

    device = pick_device(device_name)
    loaded: dict = {}

    def run_one(cfg: TrainConfig, with_test: bool) -> tuple[float, float | None]:
        if not loaded:
            arrays = data.load(data_dir or data.env_data_dir())
            loaded["splits"] = data.make_splits(
                arrays, device, val_size=setup.val_size,
                seed=setup.seed, train_subset=study_fidelity(setup, full)[0])
            loaded["arrays"] = arrays
        result = train(cfg, loaded["splits"], device, log=log)
        val = result.final_val_acc if math.isfinite(result.final_val_acc) else CHANCE
        if not with_test or result.model is None:
            return val, (CHANCE if with_test else None)
        if "test" not in loaded:  # built once, and only once a test run is asked for
            loaded["test"] = data.test_split(loaded["arrays"], device)
        _, test = evaluate(result.model, loaded["test"], cfg.size,
                           eval_batch_size(cfg.batch_size, cfg.size, device), device,
                           cfg.precision)
        return val, test

    return run_one


def cost_line(study: optuna.Study, top: int, seeds: int, full: bool) -> str:
    """What confirming costs: the runs, and their seconds where the study stored a cost model."""
    from hpsearch.engine import cost as costs
    from hpsearch.engine.config import TRAIN_IMAGES
    from hpsearch.study.plan import confirm_total

    setup = StudySetup.of(study)
    cands = top_candidates(study, top)
    runs = (len(cands) + 2) * seeds
    words = (f"confirming {len(cands)} configurations and the lab's baseline over {seeds} "
             f"seeds, then the winner on the test images: {runs} runs")
    models = list(study.user_attrs.get("cost_models", {}).values())
    if not models or not cands:
        return words
    cost = costs.StepCost.from_json(models[0])
    val_size = setup.val_size
    n_train = study_fidelity(setup, full)[0] or TRAIN_IMAGES - val_size
    each = [costs.run_seconds(cost, c.config.epochs, n_train, val_size, c.config.batch_size,
                              c.config.augment)
            for c in cands]
    return words + f", ~{fmt_seconds(confirm_total(each, seeds))} predicted"


def report_lines(block: dict) -> list[str]:
    lines = []
    for c in block["configurations"]:
        v = c["val_accuracy"]
        search = "" if c["search_value"] is None else f", search {c['search_value']:.4f}"
        lines.append(f"  {c['key']:<10} val acc {v['mean']:.4f} ± {v['std']:.4f} "
                     f"(n {v['n']}{search})")
    tie = ", ".join(block["tied_with_winner"]) or "none"
    lines.append(f"winner: {block['winner']['key']}; tied with it: {tie}")
    return lines + [block["sentence"]]
