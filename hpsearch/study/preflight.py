"""A study run's preflight: every input checked before anything expensive (timed steps, the
data) and before anything is written (a storage file, a study, a cost model). A refusal is a
UsageError naming the input, what is wrong and what is allowed."""

from __future__ import annotations

import dataclasses

from hpsearch.engine import data
from hpsearch.engine.device import check_device, resolve_precision
from hpsearch.study import space as spaces
from hpsearch.study import storage as stores, warm
from hpsearch.study.options import StudyOptions
from hpsearch.study.resume import (at_fidelity, check_resume, read_space, study_setup,
                                   wanted_precision, with_precision)


def check_study_run(opts: StudyOptions, source: str) -> spaces.Space:
    """Check OPTS (the storage named by SOURCE: --storage, $HPSEARCH_STORAGE or the default);
    return the space file as written. Nothing is written, nothing trained."""
    raw = read_space(opts.name, opts.search.space)
    at_fidelity(raw, opts.fidelity)  # the sizes the network takes, the epoch cap
    place = opts.placement
    precision = None
    if place.ray is None:  # on Ray, each worker's device is the cluster's to give
        devices = [check_device(name) for name in place.devices or (place.device,)]
        precision = resolve_precision(devices[0], wanted_precision(raw, opts.fidelity))
    if opts.dry_run:  # the plan alone: no storage is opened, no data loaded
        return raw
    data.check_data_dir(place.data_dir)
    stores.check_storage(opts.store.url, source, create=True, write=True)
    stored = stores.stored_setup(opts.store.url, opts.store.study_name)
    if stored:
        check_resumable(opts, raw, stored, precision)
    if opts.search.warm_start:
        warm.check_sources(opts.store.url, opts.store.study_name, opts.search.warm_start,
                           raw.network)
    return raw


def check_resumable(opts: StudyOptions, raw: spaces.Space, stored: dict,
                    precision: str | None) -> None:
    """The study exists: this run must have its setup. A budget keeps the stored fidelity, so
    the setup is known here, before any step is timed. PRECISION None (Ray: resolved where the
    workers run) is not compared."""
    fid = opts.fidelity
    if opts.extent.budget is not None:
        fid = dataclasses.replace(fid, train_subset=stored.get("train_subset"),
                                  max_epochs=stored.get("max_epochs"),
                                  resize=stored.get("resize"))
    space = at_fidelity(raw, fid)
    space = with_precision(space, precision or stored.get("precision", "auto"))
    check_resume(stored, study_setup(opts.search, fid, space),
                 f"study {opts.store.study_name!r} in {stores.redact(opts.store.url)}")
