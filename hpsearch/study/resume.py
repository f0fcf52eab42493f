"""Open a study: its search space, the setup that makes its trials comparable (stored with the
study and checked when it is resumed), and the lab's rows queued once."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
import hashlib
import json
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from hpsearch import models
from hpsearch.study import notes
from hpsearch.study import space as spaces
from hpsearch.study import storage as stores
from hpsearch.engine.config import MOMENTUM_DEFAULTS, TrainConfig
from hpsearch.errors import UsageError
from hpsearch.study.options import DEFAULT_TRIALS, Extent, Fidelity, Search, Store
from hpsearch.study.search import choices, make_pruner, make_sampler, max_epochs_of

# The search spaces hpsearch ships (package data); a studies/ folder in the working directory
# overrides them, file by file.
SHIPPED = Path(__file__).resolve().parent.parent / "studies"
TWO_OBJECTIVES = ("maximize", "minimize")  # val accuracy, training seconds
# Trial statuses that end a lab row for good: re-running the row would end the same way.
FINAL_FAILURES = ("diverged", "out_of_memory")


def find_space_file(name: str, given: Path | None) -> Path:
    """--space, else studies/NAME.toml in the working directory, else the one shipped."""
    if given is not None:
        return given
    for folder in (Path("studies"), SHIPPED):
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    known = sorted({p.stem for folder in (Path("studies"), SHIPPED)
                    for p in folder.glob("*.toml")})
    raise UsageError(f"no search space for {name!r} (looked for studies/{name}.toml); "
                     f"known: {', '.join(known)}; or pass --space FILE")


def read_space(name: str, given: Path | None) -> spaces.Space:
    """The space file of NAME (or GIVEN) as written; a bad file stops here."""
    return spaces.load(find_space_file(name, given))


def at_fidelity(space: spaces.Space, fid: Fidelity) -> spaces.Space:
    """SPACE as the file gives it, with FID's fixed fields (resize, precision) and epoch cap
    applied; a size the network cannot take stops here."""
    given = {k: v for k, v in (("resize", fid.resize), ("precision", fid.precision))
             if v is not None}
    if given:
        space = dataclasses.replace(space, fixed={**space.fixed, **given})
    models.check_size(space.network, space.fixed.get("resize") or
                      models.spec(space.network).default_size)
    if fid.max_epochs is not None:
        space = spaces.cap_epochs(space, fid.max_epochs)
    return space


def wanted_precision(space: spaces.Space, fid: Fidelity) -> str:
    """The precision asked for (--precision, else the space's), before the device resolves it."""
    return fid.precision or space.fixed.get("precision", "auto")


def with_precision(space: spaces.Space, precision: str) -> spaces.Space:
    """SPACE with every trial's precision fixed to what runs (bfloat16, float16 or float32),
    so a study never mixes arithmetics and its trials' configs say what ran."""
    return dataclasses.replace(space, fixed={**space.fixed, "precision": precision})


def space_digest(space: spaces.Space) -> str:
    """A short hash of the parsed space: what is searched, what is fixed, the lab's rows.
    An edited file, or other --resize/--max-epochs/--precision, gives another digest."""
    doc = {"network": space.network, "fixed": space.fixed,
           "params": [[p.name, p.field, optuna.distributions.distribution_to_json(
               p.distribution), p.optimizers] for p in space.params],
           "lab_rows": space.lab_rows, "lab_labels": space.lab_labels}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_setup(search: Search, fid: Fidelity, space: spaces.Space) -> dict:
    """What makes trials of one study comparable; stored with the study, checked on resume."""
    return {"network": space.network, "space": space.path.name,
            "space_digest": space_digest(space), "seed": search.seed,
            "train_subset": fid.train_subset, "val_size": fid.val_size,
            "resize": space.fixed.get("resize"), "max_epochs": fid.max_epochs,
            "precision": space.fixed["precision"],
            "objectives": "accuracy,time" if search.two_objectives else "accuracy"}


def check_resume(stored: dict, setup: dict, where: str) -> None:
    """Refuse to add trials to a study that ran under another setup, naming what differs."""
    if stored == setup:
        return
    diff = []
    for key in setup:
        if stored.get(key) == setup[key]:
            continue
        what = "the search space's content" if key == "space_digest" else key
        diff.append(f"{what}: stored {stored.get(key)!r}, now {setup[key]!r}")
    raise UsageError(f"{where} was run with other settings ({'; '.join(diff)}); use the "
                     f"same options and space file, or a new --study-name")


def open_study(where: Store, search: Search, fid: Fidelity, storage, space: spaces.Space,
               planned: int | None = None) -> optuna.Study:
    """Create the study WHERE names, or resume it under the same setup, with a sampler seeded
    for this run and sized for PLANNED trials (None: unknown). SPACE is at FID
    (at_fidelity), its precision resolved (with_precision)."""
    setup = study_setup(search, fid, space)
    directions = list(TWO_OBJECTIVES) if search.two_objectives else ["maximize"]
    used = choices(search, space, fid.train_images())
    pruner = make_pruner(used.pruner, max_epochs_of(space), used.warmup_epochs)
    study = optuna.create_study(study_name=where.study_name, storage=storage,
                                load_if_exists=True, pruner=pruner, directions=directions)
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", setup)
        study.set_metric_names(["val_accuracy", "train_seconds"][:len(directions)])
    else:
        check_resume(stored, setup, f"study {where.study_name!r} in {stores.redact(where.url)}")
    # Mix the trials already there into the seed: a resumed study (or a worker joining late)
    # must not replay the random start-up proposals of an earlier run, while a fresh study
    # stays reproducible. SeedSequence mixes, so (seed, n) pairs do not collide as seed + n would.
    seq = np.random.SeedSequence([search.sampler_seed_or_seed(), len(study.trials)])
    study.sampler = make_sampler(used.sampler, int(seq.generate_state(1)[0]), space, planned)
    # What this run searches with, for the reader (and the dashboard); written only when it
    # changed, so workers joining the study do not all write it at once.
    if study.user_attrs.get("search") != asdict(used):
        study.set_user_attr("search", asdict(used))
    notes.add_study_note(study, space)  # what it searches, shown by optuna-dashboard
    return study


def lab_rows_done(study: optuna.Study) -> set[int]:
    """Lab rows with a finished, running or queued trial, or one that failed for good
    (diverged, out of memory); a row cut short by Ctrl-C or a dead worker is not done."""
    done = set()
    for t in study.get_trials(deepcopy=False):
        failed_for_good = (t.state == TrialState.FAIL
                           and t.user_attrs.get("status") in FINAL_FAILURES)
        if t.state != TrialState.FAIL or failed_for_good:
            done.add(t.user_attrs.get("lab_row"))
    return done


def enqueue_lab_rows(study: optuna.Study, space: spaces.Space, claim: stores.TrialClaim) -> int:
    """Queue each lab row not done yet; return how many rows are queued (left to run). Under
    CLAIM, so workers starting together cannot queue a row twice."""
    with claim.held():
        done = lab_rows_done(study)
        for i, (row, label) in enumerate(zip(space.lab_rows, space.lab_labels)):
            if i not in done:
                study.enqueue_trial(row, user_attrs={"lab_row": i, "lab_label": label})
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def trials_for_run(extent: Extent, study: optuna.Study, space: spaces.Space,
                   claim: stores.TrialClaim) -> int | None:
    """This run's trial count: --trials; for a lab study the rows left (queued here); else
    DEFAULT_TRIALS, unless a --total-trials or a --budget bounds the run (None: no count)."""
    if space.is_lab:
        pending = enqueue_lab_rows(study, space, claim)
        return extent.trials if extent.trials is not None else pending
    if extent.trials is None and extent.total_trials is None and extent.budget is None:
        return DEFAULT_TRIALS
    return extent.trials


def baseline_params(space: spaces.Space) -> tuple[dict, list[str]]:
    """The lab's baseline for SPACE's network as SPACE's parameters, each brought into its
    range (a log-scaled weight decay cannot be 0, an epoch cap may be below 10), and what was
    moved to get there."""
    return fit_config(space, {**asdict(TrainConfig(model=space.network)),
                              **models.baseline(space.network)})


def fit_config(space: spaces.Space, config: dict) -> tuple[dict, list[str]]:
    """CONFIG (TrainConfig's fields) as SPACE's parameters, each brought to the nearest value
    its distribution takes, and what was moved to get there. The optimizer comes first: it
    decides which other parameters exist."""
    params, moved = {}, []
    optimizer = config["optimizer"]
    for p in sorted(space.params, key=lambda p: p.field != "optimizer"):
        if p.optimizers is not None and optimizer not in p.optimizers:
            continue
        want = config.get(p.field)
        if want is None:  # momentum None: the optimizer's default (0 for none at all)
            want = MOMENTUM_DEFAULTS.get(optimizer, 0.0) if p.field == "momentum" else 0.0
        got = nearest(p.distribution, want)
        params[p.name] = got
        if p.field == "optimizer":
            optimizer = got
        if got != want:
            moved.append(f"{p.field} {want} -> {got}")
    return params, moved


def nearest(d: optuna.distributions.BaseDistribution, value):
    """VALUE, or the closest value distribution D can take."""
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        if value in d.choices:
            return value
        numeric = [c for c in d.choices if isinstance(c, (int, float))]
        if isinstance(value, (int, float)) and numeric:
            return min(numeric, key=lambda c: abs(c - value))
        return d.choices[0]
    return type(d.low)(min(max(value, d.low), d.high))


def enqueue_baseline(study: optuna.Study, space: spaces.Space, claim: stores.TrialClaim) -> None:
    """Trial 0 of a new network study is the lab's baseline, so every study says how far it
    got beyond the lab (marked `baseline` in its user attrs, the table and the dashboard)."""
    if space.is_lab or not models.spec(space.network).baseline:
        return
    with claim.held():
        if study.get_trials(deepcopy=False):
            return
        params, moved = baseline_params(space)
        label = "the lab's baseline" + (f" ({', '.join(moved)} to fit the space)" if moved
                                        else "")
        study.enqueue_trial(params, user_attrs={"baseline": label})
