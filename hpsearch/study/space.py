"""Search spaces: TOML files in studies/, one per network, checked before any trial runs.

A search file names the network and, under [params.NAME], each parameter Optuna samples:

    network = "lenet"
    [fixed]                     # TrainConfig fields every trial shares (optional)
    schedule = "constant"
    [params.optimizer]
    type = "categorical"
    choices = ["sgd", "momentum", "adam"]
    [params.lr_sgd]             # the Optuna parameter's name ...
    field = "lr"                # ... and the training field it sets (default: the name)
    optimizers = ["sgd", "momentum"]   # exists only for these optimizers
    type = "float"
    low = 0.01
    high = 3.0
    log = true

An optional [search] table says how the space is searched unless the command line says
otherwise (the defaults the search benchmark chose for the network):

    [search]
    sampler = "tpe"
    pruner = "epoch-median"
    warmup_epochs = 2           # epochs 1..2 of a trial are never judged by the pruner, at
                                # 50,000 images; at a subset, as many images (search.warmup_at)

A lab file (studies/lab-*.toml) instead holds the lab's baseline and the values it tried for
each factor, one factor at a time:

    network = "lenet"
    [baseline]
    optimizer = "sgd"
    lr = 0.9
    ...
    [vary]
    lr = [0.01, 1.5, 3]

Both become a `Space`: the parameters to suggest, the fixed fields, and (lab files only) the
rows to enqueue.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import optuna

from hpsearch import models
from hpsearch.engine import config
from hpsearch.study import defaults
from hpsearch.errors import UsageError

TUNABLE = ("optimizer", "lr", "momentum", "weight_decay", "epochs", "batch_size", "schedule",
           "workers", "warmup", "label_smoothing", "augment")
FIXABLE = TUNABLE + ("resize", "precision")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices", "optimizers", "field")
TYPES = ("float", "int", "categorical")
INT_FIELDS = ("epochs", "batch_size", "workers", "resize")
# Fields that take one of a few names, and those names.
NAMED_VALUES = {"optimizer": config.OPTIMIZERS, "schedule": config.SCHEDULES,
                "augment": config.AUGMENTS,
                "precision": config.PRECISIONS}
LAB_FACTORS = ("optimizer", "lr", "epochs", "batch_size", "workers")


class SpaceError(UsageError):
    pass


@dataclass(frozen=True)
class Param:
    name: str  # Optuna's parameter name
    field: str  # the TrainConfig field it sets
    distribution: optuna.distributions.BaseDistribution
    optimizers: tuple[str, ...] | None = None  # None: exists for every optimizer


@dataclass(frozen=True)
class SearchDefaults:
    """How a space is searched where the command line does not say: its file's [search]."""
    sampler: str = "tpe"
    pruner: str = "median"
    warmup_epochs: int = 0  # epochs at the start of each trial the pruner never judges


# Lab studies run every row to its last epoch: each row's total loss and accuracy are over all
# of its epochs, as in the lab's table.
LAB_SEARCH = SearchDefaults(pruner="none")


@dataclass(frozen=True)
class Space:
    path: Path
    network: str
    params: tuple[Param, ...]
    fixed: dict = field(default_factory=dict)
    lab_rows: tuple[dict, ...] = ()  # lab files: the configurations to enqueue, baseline first
    lab_labels: tuple[str, ...] = ()  # "baseline", "lr=0.01", ...
    search: SearchDefaults = SearchDefaults()

    @property
    def is_lab(self) -> bool:
        return bool(self.lab_rows)


def suggest(trial: optuna.Trial, space: Space) -> dict:
    """TrainConfig fields for TRIAL: the fixed ones, then each active parameter.

    The optimizer is suggested first, because which other parameters exist depends on it.
    """
    values = dict(space.fixed)
    for p in sorted(space.params, key=lambda p: p.field != "optimizer"):
        optimizer = values.get("optimizer", "sgd")
        if p.optimizers is None or optimizer in p.optimizers:
            values[p.field] = _suggest_one(trial, p.name, p.distribution)
    return values


def _suggest_one(trial: optuna.Trial, name: str, d: optuna.distributions.BaseDistribution):
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
    return trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)


def load(path: Path) -> Space:
    """Read and check a search or lab file; every problem names the file and the field."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search-space file") from None
    except IsADirectoryError:
        raise SpaceError(f"{path}: is a folder, not a search-space file") from None
    except OSError as err:
        raise SpaceError(f"{path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise SpaceError(f"{path}: not UTF-8 text (byte {err.start}); TOML files are "
                         f"UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise SpaceError(f"{path}: not valid TOML ({err})") from None
    where = str(path)
    _allowed_keys(doc, ("network", "fixed", "params", "baseline", "vary", "about", "search"),
                  where)
    network = doc.get("network")
    if not isinstance(network, str) or network not in models.MODELS:
        raise SpaceError(f"{where}: network: {network!r} is not a network; "
                         f"allowed: {', '.join(models.MODELS)}")
    fixed = _fixed(doc.get("fixed", {}), f"{where}: fixed")
    if "baseline" in doc or "vary" in doc:
        if "params" in doc or "search" in doc:
            raise SpaceError(f"{where}: a lab file has [baseline] and [vary], not [params] or "
                             f"[search]")
        return _lab_space(path, network, fixed, doc)
    params = tuple(_param(name, spec, f"{where}: params.{name}")
                   for name, spec in _table(doc.get("params"), f"{where}: params").items())
    if not params:
        raise SpaceError(f"{where}: params: no parameters; add at least one [params.NAME] table")
    search = _search(doc.get("search", {}), f"{where}: search")
    space = Space(path, network, params, with_default_epochs(network, params, fixed),
                  search=search)
    _check_coverage(space, where)
    return space


def with_default_epochs(network: str, params: tuple[Param, ...], fixed: dict) -> dict:
    """FIXED with TrainConfig's epochs where a trial could get its epochs from nothing (no
    epochs parameter for every optimizer, none fixed): every trial trains a known number of
    epochs, which the plan and the budget count. A parameter that applies overrides it."""
    if "epochs" in fixed or any(p.field == "epochs" and p.optimizers is None for p in params):
        return fixed
    return {**fixed, "epochs": config.TrainConfig(model=network).epochs}


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise SpaceError(f"{where}: expected a table, got {value!r}")
    return value


def _allowed_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpaceError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")


def _check_value(fld: str, value, where: str) -> None:
    """One value of a training field: right type and allowed."""
    named = NAMED_VALUES.get(fld)
    if named is not None and value not in named:
        raise SpaceError(f"{where}: {fld} {value!r} is unknown; allowed: {', '.join(named)}")
    if fld in INT_FIELDS and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                              or (fld != "workers" and value < 1)):
        raise SpaceError(f"{where}: {fld} must be a whole number >= {0 if fld == 'workers' else 1}, "
                         f"got {value!r}")
    if fld in ("warmup", "label_smoothing"):
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not (math.isfinite(value) and 0 <= value < 1)):
            raise SpaceError(f"{where}: {fld} must be a number in [0, 1), got {value!r}")
    if fld in ("lr", "momentum", "weight_decay"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SpaceError(f"{where}: {fld} must be a number, got {value!r}")
        if fld == "lr" and value <= 0:
            raise SpaceError(f"{where}: lr must be > 0, got {value!r}")
        if fld == "momentum" and not 0 <= value < 1:
            raise SpaceError(f"{where}: momentum must be in [0, 1), got {value!r}")
        if fld == "weight_decay" and value < 0:
            raise SpaceError(f"{where}: weight_decay must be >= 0, got {value!r}")


def _search(table, where: str) -> SearchDefaults:
    table = _table(table, where)
    _allowed_keys(table, ("sampler", "pruner", "warmup_epochs"), where)
    for key, allowed in (("sampler", defaults.SAMPLERS), ("pruner", defaults.PRUNERS)):
        if key in table and table[key] not in allowed:
            raise SpaceError(f"{where}.{key}: {table[key]!r} is unknown; "
                             f"allowed: {', '.join(allowed)}")
    warmup = table.get("warmup_epochs", 0)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise SpaceError(f"{where}.warmup_epochs: must be a whole number >= 0, got {warmup!r}")
    return SearchDefaults(**table)


def _fixed(table, where: str) -> dict:
    table = _table(table, where)
    _allowed_keys(table, FIXABLE, where)
    for key, value in table.items():
        _check_value(key, value, f"{where}.{key}")
    return dict(table)


def _param(name: str, spec, where: str) -> Param:
    spec = _table(spec, where)
    _allowed_keys(spec, PARAM_KEYS, where)
    fld = spec.get("field", name)
    if fld not in TUNABLE:
        raise SpaceError(f"{where}: field {fld!r} cannot be searched; allowed: {', '.join(TUNABLE)}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise SpaceError(f"{where}: type {kind!r} is unknown; allowed: {', '.join(TYPES)}")
    optimizers = spec.get("optimizers")
    if optimizers is not None:
        if not isinstance(optimizers, list) or not optimizers:
            raise SpaceError(f"{where}: optimizers must be a non-empty list of optimizer names")
        for o in optimizers:
            _check_value("optimizer", o, f"{where}.optimizers")
        if fld == "optimizer":
            raise SpaceError(f"{where}: the optimizer itself cannot depend on the optimizer")
        optimizers = tuple(optimizers)
    if kind == "categorical":
        return Param(name, fld, _categorical(fld, spec, where), optimizers)
    return Param(name, fld, _range(fld, kind, spec, where), optimizers)


def _categorical(fld: str, spec: dict, where: str) -> optuna.distributions.CategoricalDistribution:
    extra = {"low", "high", "log", "step"} & spec.keys()
    if extra:
        raise SpaceError(f"{where}: a categorical parameter takes choices, not {', '.join(sorted(extra))}")
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: choices must be a non-empty list")
    for c in choices:
        _check_value(fld, c, f"{where}.choices")
    if len(set(choices)) != len(choices):
        raise SpaceError(f"{where}: choices repeat a value: {choices}")
    return optuna.distributions.CategoricalDistribution(choices)


def _range(fld: str, kind: str, spec: dict, where: str):
    if "choices" in spec:
        raise SpaceError(f"{where}: choices need type = \"categorical\"")
    if fld in ("optimizer", "schedule", "augment"):
        raise SpaceError(f"{where}: {fld} takes type = \"categorical\" with choices")
    if kind == "float" and fld in INT_FIELDS:
        raise SpaceError(f"{where}: {fld} is a whole number; use type = \"int\"")
    if kind == "int" and fld not in INT_FIELDS:
        raise SpaceError(f"{where}: {fld} is a real number; use type = \"float\"")
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: a {kind} parameter needs low and high")
    low, high = spec["low"], spec["high"]
    for key, value in (("low", low), ("high", high)):
        _check_value(fld, value, f"{where}.{key}")
    if low > high:
        raise SpaceError(f"{where}: low ({low}) > high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: log scale needs low > 0, got low = {low}")
    step = spec.get("step")
    if step is not None:
        if log:
            raise SpaceError(f"{where}: step and log cannot be combined")
        _check_step(kind, low, high, step, f"{where}.step")
    if kind == "int":
        return optuna.distributions.IntDistribution(low, high, log=log,
                                                    step=1 if step is None else step)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log, step=step)


def _check_step(kind: str, low, high, step, where: str) -> None:
    """A step Optuna takes as given: a whole number >= 1 for an int parameter, a finite
    number > 0 for a float one, that divides high - low (else Optuna moves high down to the
    last multiple, and the space searched is not the one written)."""
    if kind == "int":
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise SpaceError(f"{where}: step must be a whole number >= 1, got {step!r}")
    elif (isinstance(step, bool) or not isinstance(step, (int, float))
          or not (math.isfinite(step) and step > 0)):
        raise SpaceError(f"{where}: step must be a number > 0, got {step!r}")
    # Decimal of the written text, as Optuna checks it: 0.3 - 0.1 is 0.2 here, not 0.19999...
    d_low, d_high, d_step = (Decimal(str(v)) for v in (low, high, step))
    try:
        over = (d_high - d_low) % d_step
    except InvalidOperation:  # the range holds more steps than Decimal's precision counts
        raise SpaceError(f"{where}: step {step} is too small for the range {low} to {high}; "
                         f"use a larger step or none") from None
    if over:
        below = d_high - over
        fits = [int(v) if kind == "int" else float(v) for v in (below, below + d_step)]
        raise SpaceError(f"{where}: step {step} does not divide high - low ({high} - {low}), "
                         f"so Optuna would lower high to {fits[0]}; make high {fits[0]} or "
                         f"{fits[1]}")


def _check_coverage(space: Space, where: str) -> None:
    """Every optimizer the space can pick gets at most one parameter per field."""
    optimizer = next((p for p in space.params if p.field == "optimizer"), None)
    options = (optimizer.distribution.choices if optimizer
               else (space.fixed.get("optimizer", "sgd"),))
    for o in options:
        seen: dict[str, str] = {}
        for p in space.params:
            if p.optimizers is None or o in p.optimizers:
                if p.field in seen:
                    raise SpaceError(f"{where}: params.{seen[p.field]} and params.{p.name} both set "
                                     f"{p.field} for optimizer {o!r}; restrict one with optimizers")
                seen[p.field] = p.name
        if "momentum" in seen and o not in config.MOMENTUM_DEFAULTS:
            raise SpaceError(f"{where}: params.{seen['momentum']}: optimizer {o!r} takes no momentum; "
                             f"give it optimizers = a subset of {list(config.MOMENTUM_DEFAULTS)}")
    if optimizer is None and any(p.optimizers for p in space.params):
        raise SpaceError(f"{where}: parameters restricted by optimizers need a params.optimizer")


def _lab_space(path: Path, network: str, fixed: dict, doc: dict) -> Space:
    where = str(path)
    base = _table(doc.get("baseline"), f"{where}: baseline")
    vary = _table(doc.get("vary", {}), f"{where}: vary")
    _allowed_keys(base, LAB_FACTORS, f"{where}: baseline")
    _allowed_keys(vary, LAB_FACTORS, f"{where}: vary")
    missing = [f for f in LAB_FACTORS if f not in base]
    if missing:
        raise SpaceError(f"{where}: baseline: missing {', '.join(missing)}")
    for key, value in base.items():
        _check_value(key, value, f"{where}: baseline.{key}")
    rows, labels = [dict(base)], ["baseline"]
    for key, values in vary.items():
        if not isinstance(values, list):
            raise SpaceError(f"{where}: vary.{key}: expected a list of values, got {values!r}")
        for value in values:
            _check_value(key, value, f"{where}: vary.{key}")
            rows.append({**base, key: value})
            labels.append(f"{key}={value}")
    choices = {f: sorted({r[f] for r in rows}, key=str) for f in LAB_FACTORS}
    params = tuple(Param(f, f, optuna.distributions.CategoricalDistribution(choices[f]))
                   for f in LAB_FACTORS)
    return Space(path, network, params, fixed, tuple(rows), tuple(labels), LAB_SEARCH)


def highest(d: optuna.distributions.BaseDistribution):
    """The largest value distribution D takes: its range's top, or its largest choice."""
    return max(d.choices) if hasattr(d, "choices") else d.high


def cap_epochs(space: Space, max_epochs: int) -> Space:
    """The same space with no trial training more than MAX_EPOCHS epochs (to size a study
    for a CPU). Ranges and choices are clipped, so the stored params say what was trained.
    Where a trial can get its epochs from no parameter (none for epochs, or one only for some
    optimizers) and none are fixed, TrainConfig's default is fixed, capped: parameters that
    apply override fixed fields (suggest)."""
    params = []
    for p in space.params:
        d = p.distribution
        if p.field == "epochs":
            if isinstance(d, optuna.distributions.IntDistribution):
                low = min(d.low, max_epochs)
                # The last value on the step's grid within the cap (step is 1 with log).
                high = low + (min(d.high, max_epochs) - low) // d.step * d.step
                d = optuna.distributions.IntDistribution(low, high, log=d.log, step=d.step)
            else:
                d = optuna.distributions.CategoricalDistribution(
                    sorted({min(c, max_epochs) for c in d.choices}))
        params.append(Param(p.name, p.field, d, p.optimizers))
    fixed = dict(space.fixed)
    if "epochs" in fixed or not any(p.field == "epochs" and p.optimizers is None
                                    for p in space.params):
        default = config.TrainConfig(model=space.network).epochs
        fixed["epochs"] = min(fixed.get("epochs", default), max_epochs)
    rows = tuple({**r, "epochs": min(r["epochs"], max_epochs)} for r in space.lab_rows)
    return replace(space, params=tuple(params), fixed=fixed, lab_rows=rows)
