"""Warm starts: a new study seeded from finished studies of the same network in the same
storage (`--warm-start STUDY[,STUDY...]`), applied once, when the study is new.

Two things carry over, each only where it is sound:

- **Copies.** A source trial is copied into the new study (user attr `copied_from`, its value,
  its per-epoch values and curves) only when it is the very run the new study would make of
  those parameters: the same data (training images, validation images, input size, split and
  training seed), the same arithmetic and objectives, and parameters that every one fit this
  space without being moved. TPE then starts from what they found instead of random start-up
  trials, and the median pruner has its three finished trials at once. A copy is not a run of
  this study: --total-trials, the budget's spent seconds and its calibration leave it out.
- **Queued bests.** Each source's best completed configurations, brought into this space's
  ranges as the lab's baseline is (a 3-epoch trial of a 2-minute study becomes 5 epochs in a
  5-20 range), are queued right after the baseline, unless a copy already holds that run. A
  2-minute and a 10-minute --budget study usually pick different fidelities, and then only
  these carry over: a value measured on other data would mislead the sampler. The median
  pruners leave them out of their median (pruners.SampledOnly): the top of another study is
  not a sample of this one.
- **The best, promoted.** Each source's very best is queued first, and at the most epochs
  this space lets a trial train, not its own: as successive halving promotes its top rung, a
  short study's winner is worth its longest run here. (A 10-minute lenet study's best trials
  trained 19-20 epochs; queued at the 5-6 of the 2-minute study they came from, the warm
  study reached the cold one's best on 1 seed of 3. Promoted, it reaches 0.88 val 1.2-3x
  sooner than a cold study, though not yet the cold study's best sooner: BENCHMARKS.md.)

What was done is stored in the study (user attr `warm_start`), shown in the plan, the report
and the dashboard note."""

from __future__ import annotations

from dataclasses import asdict

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.engine.config import TrainConfig, at_chance
from hpsearch.errors import UsageError
from hpsearch.study import notes, space as spaces
from hpsearch.study import storage as stores
from hpsearch.study.output import (COPIED, FINISHED, PROMOTED, WARM_START as ATTR,
                                   warm_start_line)
from hpsearch.study.resume import fit_config
from hpsearch.study.setup import StudySetup

TOP = 3  # best configurations queued from each source study
# What must be equal for a source trial to be the run this study would make: the data, the
# arithmetic, what is optimised. (The epoch cap is not among them: a 5-epoch trial is the same
# run under a cap of 10 as under 20; its epochs must only fit this space.)
SAME_RUN = ("train_subset", "val_size", "resize", "seed", "precision", "objectives")
# Attrs that say what a trial was in its own study, not in this one.
NOT_COPIED = ("baseline", "lab_row", "lab_label", "warm_start", "node", "predicted_s")


def check_sources(url: str, study_name: str, sources: tuple[str, ...], network: str) -> None:
    """Preflight (reads only): each source is another study in this storage, made by hpsearch
    for NETWORK, with a completed trial; and a study that exists already was warm-started
    from these same sources, or not at all (a warm start seeds a new study)."""
    for name in sources:
        if name == study_name:
            raise UsageError(f"--warm-start {name}: a study cannot warm-start from itself; "
                             f"name finished studies of {network} in the same storage")
        source = stores.stored_study(url, name)
        if source is None:
            raise UsageError(f"--warm-start {name}: no study {name!r} in "
                             f"{stores.redact(url)}; name finished studies of {network} there "
                             f"(optuna studies --storage URL lists them)")
        made_for = StudySetup.of(source).network
        if made_for is None:
            raise UsageError(f"--warm-start {name}: study {name!r} was not made by hpsearch "
                             f"(it stores no setup); name a study of {network} that was")
        if made_for != network:
            raise UsageError(f"--warm-start {name}: study {name!r} searched {made_for}, not "
                             f"{network}; warm starts come from studies of the same network")
        if not best_trials(source, 1):
            raise UsageError(f"--warm-start {name}: study {name!r} has no completed trial "
                             f"above chance to start from")
    existing = stores.stored_study(url, study_name)
    if existing is None or not existing.get_trials(deepcopy=False):
        return
    done = existing.user_attrs.get(ATTR)
    before = tuple(done["sources"]) if done else ()
    if before == sources:
        return
    how = (f"was warm-started from {', '.join(before)}: give --warm-start {','.join(before)}"
           if before else "was not warm-started: leave --warm-start out")
    raise UsageError(f"--warm-start seeds a new study; {study_name!r} exists with "
                     f"{len(existing.trials)} trials and {how} to continue it, or give a new "
                     f"--study-name")


def best_trials(study: optuna.Study, n: int) -> list[FrozenTrial]:
    """STUDY's N best completed trials above chance, best first (by val accuracy, the first
    objective), its own runs and copies alike."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and not at_chance(t.values[0]) and "config" in t.user_attrs]
    return sorted(done, key=lambda t: -t.values[0])[:n]


def config_of(t: FrozenTrial, network: str) -> dict:
    """The TrainConfig fields trial T ran with (fields newer than its hpsearch at default)."""
    return {**asdict(TrainConfig(model=network)), **t.user_attrs["config"]}


def as_copy(t: FrozenTrial, space: spaces.Space, source: str) -> FrozenTrial | None:
    """Trial T of study SOURCE as a finished trial of this study, or None when these
    parameters would make another run here (a value moved into range, a field fixed
    otherwise). The caller has checked that the data and arithmetic are the same."""
    config = config_of(t, space.network)
    params, moved = fit_config(space, config)
    if moved:
        return None
    here = TrainConfig(model=space.network, seed=config["seed"],
                       **spaces.suggest(optuna.trial.FixedTrial(params), space))
    if asdict(here) != config:
        return None
    attrs = {k: v for k, v in t.user_attrs.items() if k not in NOT_COPIED}
    return optuna.trial.create_trial(
        state=t.state, values=t.values if t.state == TrialState.COMPLETE else None,
        params=params, distributions={p.name: p.distribution for p in space.params
                                      if p.name in params},
        intermediate_values=dict(t.intermediate_values),
        user_attrs={**attrs, COPIED: f"{source} trial {t.number}"})


def at_longest(space: spaces.Space, params: dict, moved: list[str],
               ran: int) -> tuple[dict, list[str]]:
    """PARAMS (fit_config's, of a trial that RAN that many epochs) with their epochs at the
    most SPACE lets a trial train, and MOVED saying so; as they are where the space searches
    no epochs or they are there already."""
    epochs = next((p for p in space.params if p.field == "epochs" and p.name in params), None)
    if epochs is None:
        return params, moved
    most = spaces.highest(epochs.distribution)
    if params[epochs.name] == most:
        return params, moved
    kept = [m for m in moved if not m.startswith("epochs ")]
    return {**params, epochs.name: most}, kept + [f"epochs {ran} -> {most} {PROMOTED}"]


def apply(study: optuna.Study, space: spaces.Space, sources: tuple[str, ...], storage,
          claim: stores.TrialClaim) -> dict | None:
    """Warm-start STUDY (new, its baseline queued) from SOURCES, once: under CLAIM, so
    workers starting together do it once; a study that has it already keeps it. Returns
    what was done (the ATTR doc), None without sources."""
    if not sources:
        return None
    with claim.held():
        if ATTR in study.user_attrs:
            return study.user_attrs[ATTR]
        setup = StudySetup.of(study).to_json()
        pending = [t.system_attrs.get("fixed_params") for t in
                   study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        held = []  # the parameters of every copy so far: those runs are known here
        doc = {"sources": list(sources), "copied": {}, "queued": []}
        for name in sources:
            source = optuna.load_study(study_name=name, storage=storage)
            same = all(StudySetup.of(source).to_json()[k] == setup[k] for k in SAME_RUN)
            # A copy of a run already queued here (the baseline) would be trained twice.
            copies = [] if not same else [
                c for c in (as_copy(t, space, name) for t in
                            source.get_trials(deepcopy=False, states=FINISHED)
                            if "config" in t.user_attrs and COPIED not in t.user_attrs)
                if c is not None and c.params not in pending + held]
            study.add_trials(copies)
            doc["copied"][name] = len(copies) if same else None
            held += [c.params for c in copies]
            for rank, t in enumerate(best_trials(source, TOP)):
                config = config_of(t, space.network)
                params, moved = fit_config(space, config)
                if rank == 0:
                    params, moved = at_longest(space, params, moved, config["epochs"])
                if params in held or params in pending:
                    continue
                pending.append(params)
                label = f"{name} trial {t.number} ({t.values[0]:.4f})"
                study.enqueue_trial(params, user_attrs={ATTR: label})
                doc["queued"].append({"from": label, "params": params, "moved": moved})
        study.set_user_attr(ATTR, doc)
    notes.add_warm_start(study, warm_start_line(doc))
    return doc
