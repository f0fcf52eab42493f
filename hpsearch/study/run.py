"""A study run: its preflight, then the driver its options name (the dry run, Ray, worker
processes, or this process as the worker)."""

from __future__ import annotations

import time

from hpsearch.study import storage as stores
from hpsearch.study.console import Console
from hpsearch.study.loop import StopFlag
from hpsearch.study.options import StudyOptions
from hpsearch.study.output import quiet_optuna
from hpsearch.study.preflight import check_study_run


def run(opts: StudyOptions, source: str, console: Console) -> int:
    """The study command after parsing: its exit status (0, 2 is raised as UsageError, 130
    when stopped). SOURCE names what gave the storage URL (for messages). Every input is
    checked before anything else; the storage is opened only by a driver that needs it."""
    started = time.monotonic()
    stop = StopFlag()  # taken up by the trial loop; until then a signal ends the run at once
    quiet_optuna()
    # The drivers take the space file as written: a budget puts it at the fidelity it picks.
    raw = check_study_run(opts, source)
    if opts.dry_run:
        from hpsearch.study.drivers import local

        return local.dry_run(opts, raw, console)
    if opts.placement.ray is not None:  # the storage is opened once the cluster is found fit
        from hpsearch.study.drivers import ray_driver

        return ray_driver.run_on_ray(opts, raw, stop, console)
    storage = stores.open_storage(opts.store.url, heartbeat=opts.store.heartbeat)
    if opts.placement.starts_workers:
        from hpsearch.study.drivers import workers

        return workers.run_workers(opts, raw, storage, stop, console)
    from hpsearch.study.drivers import local

    return local.run_worker(opts, raw, storage, stop, started, console)
