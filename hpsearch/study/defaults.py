"""The study layer's plain names and defaults, importable without Optuna or SQLAlchemy, so
that `hpsearch study --help` and the command line's checks stay quick: the sampler and pruner
names a study and a space file's [search] take, the default storage and its variable, and the
heartbeat that lets a dead worker's trial be retried."""

from __future__ import annotations

SAMPLERS = ("tpe", "random", "grid", "qmc", "cmaes", "gp")
PRUNERS = ("median", "epoch-median", "hyperband", "successive-halving", "none")

DEFAULT_URL = "sqlite:///hpsearch.db"  # embedded, in the working directory
ENV = "HPSEARCH_STORAGE"  # names the storage when --storage does not
HEARTBEAT_SECONDS = 10  # a running trial writes a heartbeat this often ...
GRACE_SECONDS = 30  # ... and counts as dead (then failed and retried) after this long without


def grace_for(heartbeat: int) -> int:
    """Seconds without a heartbeat after which a trial counts as dead (3 missed beats)."""
    return heartbeat * GRACE_SECONDS // HEARTBEAT_SECONDS
