"""Several worker processes on one storage (--devices, --jobs): each is `python -m
hpsearch.study` with a command line rendered from the parent's options, its own device, thread
count, share of the trials and sampler seed. Optuna's storage coordinates them; the parent
creates the study (so workers never race to create it), queues a lab study's rows, then waits.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import numpy as np
import optuna
import torch

from hpsearch.study import space as spaces
from hpsearch.study import storage as stores
from hpsearch.errors import UsageError
from hpsearch.study import budget as budgets, output
from hpsearch.study.console import Console
from hpsearch.study.loop import StopFlag
from hpsearch.study import options
from hpsearch.study.options import Placement, Store, StudyOptions, to_argv
from hpsearch.study.resume import open_study, trials_for_run, wanted_precision
from hpsearch.engine.device import check_device, resolve_precision


def split_trials(n: int | None, workers: int) -> list[int | None]:
    """N trials shared out among WORKERS as evenly as possible (None: no per-worker count)."""
    if n is None:
        return [None] * workers
    return [n // workers + (i < n % workers) for i in range(workers)]


def device_env(device: str, env: Mapping[str, str]) -> tuple[str, dict]:
    """(device name, environment) for a worker on DEVICE: a CUDA worker sees only its own GPU
    (CUDA_VISIBLE_DEVICES), as cuda:0, so no stray context lands on another GPU. An index
    counts within the parent's own CUDA_VISIBLE_DEVICES, as torch's indices do."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return device, dict(env)
    index = dev.index or 0
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and index >= len(visible):
        raise UsageError(f"{device}: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} shows "
                         f"{len(visible)} GPUs (cuda:0 to cuda:{len(visible) - 1})")
    return "cuda:0", {**env, "CUDA_VISIBLE_DEVICES": visible[index] if visible else str(index)}


def worker_options(opts: StudyOptions, i: int, device: str, threads: int,
                   trials: int | None) -> StudyOptions:
    """Worker I's options: one device, no workers of its own, its share of the trials, a
    sampler seed of its own (mixed, not added, so workers of different runs do not collide)."""
    seed = int(np.random.SeedSequence([opts.search.sampler_seed_or_seed(), i]).generate_state(1)[0])
    return options.replace(opts, devices=(), jobs=1, device=device, threads=threads,
                           trials=trials, sampler_seed=seed, tag=f"w{i} {device}")


def plan(opts: StudyOptions, trials: int | None, env: Mapping[str, str]) -> list[tuple[list[str], dict]]:
    """(argv, environment) of each worker to start: one per device and job, those whose share
    of TRIALS is 0 left out. CPU threads are shared out so that workers x threads <= cores.
    The storage URL travels in the environment, never on a command line."""
    place = opts.placement
    devices = place.devices or (place.device,)
    slots = [d for d in devices for _ in range(place.jobs)]
    threads = threads_per_worker(place, len(slots))
    started = []
    for i, (device, n) in enumerate(zip(slots, split_trials(trials, len(slots)))):
        if n == 0:
            continue
        visible_device, worker_env = device_env(device, env)
        worker = worker_options(opts, i, device, threads, n)
        argv = to_argv(options.replace(worker, device=visible_device))
        started.append((argv, {**worker_env, stores.ENV: opts.store.url}))
    return started


def wait_for(procs: list[subprocess.Popen], stop: StopFlag) -> list[int]:
    """Wait for the workers; the first stop request is passed on to each (they end their
    trial after its next step), a second one too (they stop at once)."""
    passed_on = False
    try:
        while any(p.poll() is None for p in procs):
            if stop() and not passed_on:
                for p in procs:
                    p.send_signal(signal.SIGINT)
                passed_on = True
            time.sleep(0.2)
    except KeyboardInterrupt:  # the second Ctrl-C
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
    return [p.returncode for p in procs]


def threads_per_worker(place: Placement, workers: int) -> int:
    """--threads, else the cores shared out so that workers x threads <= cores."""
    return place.threads or max(1, (os.cpu_count() or 1) // workers)


def run_workers(opts: StudyOptions, raw: spaces.Space, storage, stop: StopFlag,
                console: Console) -> int:
    """Plan and create the study here (measuring the cost on the first device with a
    worker's share of the threads), then start the workers and wait for them."""
    place = opts.placement
    devices = place.devices or (place.device,)
    slots = len(devices) * place.jobs
    first = check_device(devices[0])
    precision = resolve_precision(first, wanted_precision(raw, opts.fidelity))
    torch.set_num_threads(threads_per_worker(place, slots))
    opts, study, prepared = plan_and_create(opts, raw, storage, first, precision, console)
    trials = trials_for_run(opts.extent, study, prepared.space,
                            stores.TrialClaim(opts.store.url, opts.store.study_name))
    if trials == 0:
        console.say(f"study {opts.store.study_name!r}: nothing left to run")
        return 0
    started = plan(opts, trials, os.environ)
    console.say(f"starting {len(started)} workers ({', '.join(devices)} x {place.jobs} jobs, "
                f"{threads_per_worker(place, slots)} threads each) on "
                f"{stores.redact(opts.store.url)}")
    return wait_and_sum_up(opts.store, storage, started, stop, console)


def plan_and_create(opts: StudyOptions, raw: spaces.Space, storage, device: torch.device,
                    precision: str, console: Console
                    ) -> tuple[StudyOptions, optuna.Study, budgets.Prepared]:
    """The parent's part before its workers start: plan on DEVICE, create the study (so
    workers never race to create it), store the cost model, print the plan. The options come
    back with the precision and fidelity (a budget's pick) written out for every worker."""
    prepared = budgets.prepare(raw, opts.fidelity, opts.search, opts.extent, device, precision,
                               budgets.existing_study(opts.store, storage), opts.extent.trials)
    opts = dataclasses.replace(
        opts, fidelity=dataclasses.replace(prepared.fidelity, precision=precision))
    study = open_study(opts.store, opts.search, opts.fidelity, storage, prepared.space,
                       prepared.plan.trials)
    budgets.cost_model(prepared.space, device, study)
    console.say(budgets.plan_text(prepared, device, opts.extent.budget))
    return opts, study, prepared


def wait_and_sum_up(where: Store, storage, started: list, stop: StopFlag,
                    console: Console) -> int:
    # Each worker in a process group of its own: a Ctrl-C in the terminal reaches only this
    # process, which passes it on once (a second would stop the workers mid-trial).
    procs = [subprocess.Popen([sys.executable, "-m", "hpsearch.study", *argv], env=env,
                              process_group=0) for argv, env in started]
    with stop.installed():
        codes = wait_for(procs, stop)
    if stop():
        console.warn("\n" + output.interrupted_line(where.url))
        return 130
    study = optuna.load_study(study_name=where.study_name, storage=storage)
    console.say("\n" + output.summary(study, where.url))
    failed = [c for c in codes if c != 0]
    return failed[0] if failed else 0
