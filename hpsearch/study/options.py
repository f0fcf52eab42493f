"""A study run's options, made once by the command line (hpsearch/cli/study.py) and never
changed afterwards: small frozen objects, each what one layer takes.

    Store      where the study lives (URL, study name, heartbeat)
    Extent     how much to run: trials, a total, a timeout, a budget, --confirm after it
    Search     what is searched and how: the space file, sampler, pruner, objectives, seeds,
               the studies a new one starts from
    Fidelity   what every trial trains on, as the user fixed it (a budget fills in the rest)
    Placement  where trials run: device(s), worker processes, threads, Ray, the data folder

A worker's command line is rendered from the options (`to_argv`), so what a worker runs is what
the parent parsed, whatever order the user typed.

No torch here: `hpsearch study --help` answers without importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from hpsearch.engine.config import DEFAULT_VAL_SIZE, TRAIN_IMAGES
from hpsearch.study.defaults import HEARTBEAT_SECONDS


DEFAULT_TRIALS = 10  # trials of one invocation when neither --trials nor --total-trials is given


@dataclass(frozen=True)
class Store:
    url: str  # the resolved SQLAlchemy URL; print it only through storage.redact
    study_name: str
    heartbeat: int = HEARTBEAT_SECONDS  # seconds between a running trial's heartbeats


@dataclass(frozen=True)
class Extent:
    trials: int | None = None  # trials of this invocation (None: see DEFAULT_TRIALS)
    total_trials: int | None = None  # stop once the study holds this many finished trials
    timeout: float | None = None  # seconds after which no trial starts
    budget: float | None = None  # wall-clock seconds for the whole study, every worker together
    confirm: bool = False  # after the search, confirm its winner over fresh seeds


@dataclass(frozen=True)
class Search:
    space: Path | None = None  # --space FILE; None: studies/NAME.toml
    sampler: str | None = None  # None: the space file's [search] (search.choices)
    pruner: str | None = None  # None: likewise
    warmup_epochs: int | None = None  # None: likewise
    two_objectives: bool = False
    seed: int = 0  # seeds the split and training
    sampler_seed: int | None = None  # None: seed
    warm_start: tuple[str, ...] = ()  # finished studies a new study starts from (study/warm.py)

    def sampler_seed_or_seed(self) -> int:
        return self.seed if self.sampler_seed is None else self.sampler_seed


@dataclass(frozen=True)
class Fidelity:
    train_subset: int | None = None  # None: the whole training split
    val_size: int = DEFAULT_VAL_SIZE
    resize: int | None = None  # None: the space's, else the network's own size
    max_epochs: int | None = None  # None: the space's epoch range as it is
    precision: str | None = None  # None: the space's, else auto

    def train_images(self) -> int:
        """The images each trial trains on: the subset, at most what the split leaves."""
        most = TRAIN_IMAGES - self.val_size
        return min(self.train_subset or most, most)


@dataclass(frozen=True)
class Placement:
    device: str = "auto"
    devices: tuple[str, ...] = ()  # one worker process per entry (times jobs)
    jobs: int = 1
    threads: int | None = None
    ray: str | None = None  # a Ray cluster's address (auto, HOST:PORT, ray://HOST:PORT, local)
    max_concurrent: int | None = None  # Ray workers at once (None: what the cluster holds)
    data_dir: Path | None = None  # None: $HPSEARCH_DATA, else Debian's folder

    @property
    def starts_workers(self) -> bool:
        return bool(self.devices) or self.jobs > 1 or self.ray is not None


@dataclass(frozen=True)
class StudyOptions:
    name: str  # network or lab study (the search-space file's stem)
    store: Store
    extent: Extent = field(default_factory=Extent)
    search: Search = field(default_factory=Search)
    fidelity: Fidelity = field(default_factory=Fidelity)
    placement: Placement = field(default_factory=Placement)
    dry_run: bool = False  # print the plan, touch no storage, run nothing
    quiet: bool = False  # no per-epoch lines
    tag: str | None = None  # a worker's label on its lines, set by the parent


_CLASSES = {"store": Store, "extent": Extent, "search": Search, "fidelity": Fidelity,
            "placement": Placement}
# Field -> the part that holds it (None: StudyOptions itself), for every field of every part.
OWNER = {**{f.name: part for part, cls in _CLASSES.items() for f in dataclasses.fields(cls)},
         "dry_run": None, "quiet": None, "tag": None}
# Field -> flag, for rendering a worker's command line. Fields not here are not flags (name is
# positional; the URL travels in the environment, so no password shows in a process list).
FLAGS = {name: "--" + name.replace("_", "-") for name in OWNER if name != "url"}


def from_fields(name: str, values: dict) -> StudyOptions:
    """StudyOptions from flat VALUES (field -> value, as the parser gives them), each put in
    the part that holds it; a field missing from VALUES keeps its default."""
    parts = {part: cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)
                          if f.name in values})
             for part, cls in _CLASSES.items()}
    top = {k: values[k] for k in ("dry_run", "quiet", "tag") if k in values}
    return StudyOptions(name=name, **parts, **top)


def replace(opts: StudyOptions, **changes) -> StudyOptions:
    """OPTS with the named fields (flat names, as in from_fields) changed in their parts."""
    by_part: dict[str | None, dict] = {}
    for key, value in changes.items():
        if key not in OWNER:
            raise TypeError(f"StudyOptions has no field {key!r}")
        by_part.setdefault(OWNER[key], {})[key] = value
    new = {part: dataclasses.replace(getattr(opts, part), **fields)
           for part, fields in by_part.items() if part is not None}
    return dataclasses.replace(opts, **new, **by_part.get(None, {}))


def flat(opts: StudyOptions) -> dict:
    """Every field of OPTS by its flat name (the inverse of from_fields)."""
    values = {k: getattr(opts, k) for k in ("dry_run", "quiet", "tag")}
    for part in _CLASSES:
        values.update(dataclasses.asdict(getattr(opts, part)))
    return values


def to_argv(opts: StudyOptions) -> list[str]:
    """The command line (after `python -m hpsearch.study`) that parses back to OPTS, the URL
    aside: every field that differs from its default, written out in full."""
    values = flat(opts)
    defaults = flat(StudyOptions(name=opts.name, store=Store(url="", study_name=opts.name)))
    argv = [opts.name]
    for name, flag in FLAGS.items():
        value = values[name]
        if value == defaults[name]:
            continue
        if isinstance(value, bool):
            argv.append(flag)
        elif isinstance(value, tuple):
            argv += [flag, ",".join(value)]
        elif name == "budget":
            argv += [flag, f"{value!r}s"]
        else:
            argv += [flag, str(value)]
    return argv
