"""The driver of a study on Ray (--ray ADDRESS): connect, plan and create the study here, put
the dataset into Ray's object store once, start one task per worker slot (cluster.run_task),
print a line per finished trial with the node that ran it, pass Ctrl-C on as a cancel."""

from __future__ import annotations

import time

import optuna
import torch

from hpsearch.engine import data
from hpsearch.study import space as spaces
from hpsearch.study import storage as stores
from hpsearch.study import budget as budgets, output, plan as plans
from hpsearch.study.drivers import cluster
from hpsearch.study.drivers import workers
from hpsearch.study.console import Console
from hpsearch.signals import interrupt_on_signals
from hpsearch.study.loop import Limits, StopFlag
from hpsearch.study.options import StudyOptions
from hpsearch.study.output import FINISHED
from hpsearch.study.resume import trials_for_run, wanted_precision
from hpsearch.engine.device import resolve_precision


def run_on_ray(opts: StudyOptions, raw: spaces.Space, stop: StopFlag,
               console: Console) -> int:
    """Nothing is written to the storage before the cluster is reached and found fit."""
    started, where, want = time.monotonic(), opts.store, opts.placement
    ray = cluster.import_ray(want.ray)
    cluster.connect(ray, want.ray)
    interrupt_on_signals()  # ray.init put its own handlers on SIGINT and SIGTERM
    try:
        nodes = cluster.alive_nodes(ray)
        console.say(f"ray: connected to {want.ray} in {time.monotonic() - started:.1f} s: "
                    f"{len(nodes)} nodes ({cluster.describe(nodes)})")
        cluster.check_storage(where.url, want.ray, nodes)
        place = cluster.placement(nodes, want.device, want.jobs, want.threads,
                                  want.max_concurrent)
        storage = stores.open_storage(where.url, heartbeat=where.heartbeat)
        return drive(ray, opts, raw, storage, stop, nodes, place, started, console)
    finally:
        ray.shutdown()


def drive(ray, opts: StudyOptions, raw: spaces.Space, storage, stop: StopFlag,
          nodes: list[cluster.Node], place: cluster.Placement, started: float,
          console: Console) -> int:
    precision = worker_precision(ray, place, wanted_precision(raw, opts.fidelity))
    # The plan is made on this machine's CPU at a worker's thread count; on GPU workers it
    # overstates the cost (the cost model of each GPU worker is measured and stored by it).
    device = torch.device("cpu")
    torch.set_num_threads(max(1, int(place.num_cpus)))
    opts, study, prepared = workers.plan_and_create(opts, raw, storage, device, precision,
                                                    console)
    extent, want = opts.extent, opts.placement
    trials = trials_for_run(extent, study, prepared.space,
                            stores.TrialClaim(opts.store.url, opts.store.study_name))
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    total = cluster.group_total(finished, trials, extent.total_trials)
    if total is not None and total <= finished:
        console.say(f"study {opts.store.study_name!r}: nothing left to run")
        return 0
    place = cluster.placement(nodes, want.device, want.jobs, want.threads,
                              want.max_concurrent, None if total is None else total - finished)
    refs = start_tasks(ray, opts, raw, place, total, nodes, console)
    limits = Limits(None, total, extent.timeout,
                    budgets.deadline(extent.budget, study, started,
                                     plans.confirm_seconds(extent.confirm, prepared.plan)))
    progress = output.Progress("", started, limits, prepared.plan, place.workers)
    with stop.installed():
        codes = watch(ray, refs, study, stop, progress, console)
    return sum_up(opts.store.url, study, codes, stop, progress, console)


def worker_precision(ray, place: cluster.Placement, wanted: str) -> str:
    """The precision every worker runs, resolved where they run: on this CPU for CPU
    workers, by a short task on a GPU worker's share for GPU workers."""
    if not place.num_gpus:
        return resolve_precision(torch.device("cpu"), wanted)
    probe = ray.remote(resolve_on_gpu).options(num_gpus=place.num_gpus,
                                                num_cpus=place.num_cpus)
    return ray.get(probe.remote(wanted))


def resolve_on_gpu(wanted: str) -> str:
    return resolve_precision(torch.device("cuda"), wanted)


def start_tasks(ray, opts: StudyOptions, raw: spaces.Space, place: cluster.Placement,
                total: int | None, nodes: list[cluster.Node], console: Console) -> list:
    url = cluster.absolute_sqlite(opts.store.url)
    env = cluster.artifact_env(url, nodes, console.warn)
    # Put once: every task on every node reads the same verified arrays from the object
    # store, so only this machine needs Fashion-MNIST.
    arrays = ray.put(data.load(opts.placement.data_dir or data.env_data_dir()))
    task = ray.remote(cluster.run_task).options(
        num_cpus=place.num_cpus, num_gpus=place.num_gpus, max_retries=cluster.TASK_RETRIES,
        runtime_env={"env_vars": env} if env else None)
    refs = [task.remote(cluster.worker_options(opts, i, place, total, url), raw, arrays,
                        console)
            for i in range(place.workers)]
    until = f"until {total} trials are finished" if total is not None else "until the budget ends"
    console.say(f"starting {place.phrase()} {until}, on {stores.redact(opts.store.url)}")
    return refs


def watch(ray, refs: list, study: optuna.Study, stop: StopFlag, progress: output.Progress,
          console: Console) -> list:
    """Wait for the tasks, printing each newly finished trial. The first stop request
    cancels them gently (each ends its running trial after its next step), a second
    one kills them (their trials are failed by the heartbeat and retried by a later run)."""
    seen = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    pending, cancelled = list(refs), False
    try:
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            say_new(study, seen, progress, console)
            if stop() and not cancelled:
                for ref in pending:
                    ray.cancel(ref)
                cancelled = True
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
    say_new(study, seen, progress, console)
    return [outcome(ray, ref, console) for ref in refs]


def say_new(study: optuna.Study, seen: set[int], progress: output.Progress,
            console: Console) -> None:
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if t.number not in seen:
            seen.add(t.number)
            console.say(f"{progress.line(study, t)}  on {t.user_attrs.get('node', '?')}")


def outcome(ray, ref, console: Console) -> int:
    """A task's exit status; a task that failed (after Ray's retries) or was killed is told in
    one line."""
    try:
        return ray.get(ref, timeout=30)
    except ray.exceptions.TaskCancelledError:
        return 130
    except ray.exceptions.RayError as err:
        cause = getattr(err, "cause", None) or err
        console.warn(f"error: a Ray worker failed: {str(cause).strip().splitlines()[-1]}")
        return 1


def sum_up(url: str, study: optuna.Study, codes: list[int], stop: StopFlag,
           progress: output.Progress, console: Console) -> int:
    if stop():
        console.warn("\n" + output.interrupted_line(url))
        return 130
    console.say(f"\n{progress.elapsed()}; " + output.summary(study, url))
    by_node = cluster.node_counts(study.get_trials(deepcopy=False, states=FINISHED))
    console.say("trials by node: " + ", ".join(f"{node} {n}"
                                               for node, n in sorted(by_node.items())))
    failed = [c for c in codes if c != 0]
    return failed[0] if failed else 0
