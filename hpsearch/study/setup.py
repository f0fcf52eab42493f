"""A study's setup as the other layers read it back: one typed object instead of `.get()` calls
with defaults spread over confirm, export and report. The study writes it once when it is
created (resume.study_setup) and a resume must match it (resume.check_resume)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna

from hpsearch.engine.config import DEFAULT_VAL_SIZE

ATTR = "setup"  # the study's user attr


@dataclass(frozen=True)
class StudySetup:
    """What makes a study's trials comparable. A field the stored setup lacks (a study made
    by an older hpsearch, or by hand) takes the default a study run uses for it."""

    network: str | None = None
    space: str | None = None  # the space file's name
    space_digest: str | None = None
    seed: int = 0  # of the split and of training
    train_subset: int | None = None  # None: the whole training split
    val_size: int = DEFAULT_VAL_SIZE
    resize: int | None = None  # None: the network's own input size
    max_epochs: int | None = None
    precision: str | None = None  # what ran: bfloat16, float16 or float32
    objectives: str = "accuracy"  # or "accuracy,time"

    @classmethod
    def from_json(cls, doc: dict | None) -> StudySetup:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (doc or {}).items() if k in known})

    @classmethod
    def of(cls, study: optuna.Study) -> StudySetup:
        return cls.from_json(study.user_attrs.get(ATTR))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
