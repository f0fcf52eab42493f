"""A study run's options as one frozen `StudyOptions`, made once by the command line
(hpsearch/cli/study.py) and never changed afterwards. A worker's command line is rendered from
the options (`to_argv`), so what a worker runs is what the parent parsed, whatever order the
user typed.

No torch here: `hpsearch study --help` answers without importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hpsearch.engine.config import DEFAULT_VAL_SIZE
from hpsearch.study.defaults import HEARTBEAT_SECONDS


DEFAULT_TRIALS = 10  # trials of one invocation when neither --trials nor --total-trials is given


@dataclass(frozen=True)
class StudyOptions:
    name: str  # network or lab study (the search-space file's stem)
    study_name: str
    storage: str  # the resolved SQLAlchemy URL; print it only through storage.redact
    trials: int | None = None  # trials of this invocation (None: see DEFAULT_TRIALS)
    total_trials: int | None = None  # stop once the study holds this many finished trials
    timeout: float | None = None  # seconds after which no trial starts
    budget: float | None = None  # wall-clock seconds for the whole study, every worker together
    dry_run: bool = False  # print the plan, touch no storage, run nothing
    confirm: bool = False  # after the search, confirm its winner over fresh seeds
    space: Path | None = None  # --space FILE; None: studies/NAME.toml
    sampler: str | None = None  # None: the space file's [search] (search.choices)
    pruner: str | None = None  # None: likewise
    warmup_epochs: int | None = None  # None: likewise
    two_objectives: bool = False
    seed: int = 0
    sampler_seed: int | None = None  # None: seed
    device: str = "auto"
    devices: tuple[str, ...] = ()  # one worker process per entry (times jobs)
    jobs: int = 1
    threads: int | None = None
    ray: str | None = None  # a Ray cluster's address (auto, HOST:PORT, ray://HOST:PORT, local)
    max_concurrent: int | None = None  # Ray workers at once (None: what the cluster holds)
    train_subset: int | None = None
    val_size: int = DEFAULT_VAL_SIZE
    resize: int | None = None
    precision: str | None = None  # None: the space's, else auto
    max_epochs: int | None = None
    data_dir: Path | None = None
    heartbeat: int = HEARTBEAT_SECONDS
    quiet: bool = False
    tag: str | None = None  # a worker's label on its lines, set by the parent

    @property
    def starts_workers(self) -> bool:
        return bool(self.devices) or self.jobs > 1 or self.ray is not None

    def sampler_seed_or_seed(self) -> int:
        return self.seed if self.sampler_seed is None else self.sampler_seed


# Field -> flag, for rendering a worker's command line. Fields not here are not flags (name is
# positional; storage travels in the environment, so no password shows in a process list).
FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(StudyOptions)
         if f.name not in ("name", "storage")}


def to_argv(opts: StudyOptions) -> list[str]:
    """The command line (after `python -m hpsearch.study`) that parses back to OPTS, storage
    aside: every field that differs from its default, written out in full."""
    defaults = StudyOptions(name=opts.name, study_name=opts.name, storage=opts.storage)
    argv = [opts.name]
    for name, flag in FLAGS.items():
        value = getattr(opts, name)
        if value == getattr(defaults, name):
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
