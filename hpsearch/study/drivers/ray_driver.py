"""The driver of a study on Ray (--ray ADDRESS): connect, plan and create the study here, put
the dataset into Ray's object store once, start one task per worker slot (cluster.run_task),
print a line per finished trial with the node that ran it, pass Ctrl-C on as a cancel."""

from __future__ import annotations

import dataclasses
import time
import uuid

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
from hpsearch.study.loop import Limits, StopFlag, budget_spent
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
    extent = opts.extent
    trials = trials_for_run(extent, study, prepared.space,
                            stores.TrialClaim(opts.store.url, opts.store.study_name))
    finished = output.finished_here(study.get_trials(deepcopy=False))
    total = cluster.group_total(finished, trials, extent.total_trials)
    if total is not None and total <= finished:
        console.say(f"study {opts.store.study_name!r}: nothing left to run")
        return 0
    limits = Limits(None, total, extent.timeout,
                    budgets.deadline(extent.budget, study, started,
                                     plans.confirm_seconds(extent.confirm, prepared.plan)),
                    prepared.plan.per_trial[0])
    fleet = Fleet(ray, opts, raw, study, limits, started, console)
    fleet.begin(nodes)
    progress = output.Progress("", started, limits, prepared.plan, fleet.target(nodes))
    with stop.installed():
        codes = watch(fleet, study, stop, progress, console)
    return sum_up(opts.store.url, study, codes, stop, progress, console)


class Fleet:
    """The study's Ray tasks. It keeps as many in flight as the cluster's live nodes hold
    (cluster.placement), bounded by the trials left and the study's share of a cluster that
    other studies use too (cluster.Share), and tells the user when a node is lost or joins."""

    def __init__(self, ray, opts: StudyOptions, raw: spaces.Space, study: optuna.Study,
                 limits: Limits, started: float, console: Console):
        self.ray, self.opts, self.raw, self.study = ray, opts, raw, study
        self.limits, self.started, self.console = limits, started, console
        self.url = cluster.absolute_sqlite(opts.store.url)
        self.key = f"{opts.store.study_name}/{uuid.uuid4().hex[:8]}"
        self.tasks: dict = {}  # ObjectRef -> task index
        self.codes: list[int] = []
        self.nodes: dict[str, cluster.Node] = {}
        self.told: set[int] = set()  # trials a lost-node line has named
        self.lost: dict = {}  # node id -> (Node, when it was found gone), not yet told
        self.grace = stores.grace_for(opts.store.heartbeat)
        self.next_index, self.checked, self.handed = 0, 0.0, False

    def begin(self, nodes: list[cluster.Node]) -> None:
        env = cluster.artifact_env(self.url, nodes, self.console.warn)
        # Put once: every task on every node reads the same verified arrays from the object
        # store, so only this machine needs Fashion-MNIST.
        self.arrays = self.ray.put(data.load(self.opts.placement.data_dir
                                             or data.env_data_dir()))
        self.share = cluster.open_share(self.ray)
        self.env = {"env_vars": env} if env else None
        self.nodes = {n.id: n for n in nodes}
        want = self.target(nodes)
        until = (f"until {self.limits.total} trials are finished" if self.limits.total is not None
                 else "until the budget ends" if self.limits.deadline is not None
                 else "until the timeout")
        self.console.say(f"starting {dataclasses.replace(self.placement(nodes), workers=want).phrase()}"
                         f" {until}, on {stores.redact(self.opts.store.url)}")
        self.top_up(nodes, want)

    def placement(self, nodes: list[cluster.Node], cap: int | None = None) -> cluster.Placement:
        want = self.opts.placement
        return cluster.placement(nodes, want.device, want.jobs, want.threads,
                                 want.max_concurrent, cap)

    def work_left(self) -> int:
        """Trials still to start (a large number when only a budget or timeout ends it), 0
        once the study's end is reached."""
        limits = self.limits
        if limits.timeout is not None and time.monotonic() - self.started >= limits.timeout:
            return 0
        if budget_spent(limits, 0):
            return 0
        if limits.total is None:
            return cluster.RAY_UNIT
        return max(0, limits.total - output.finished_here(self.study.get_trials(deepcopy=False)))

    def target(self, nodes: list[cluster.Node]) -> int:
        left = self.work_left()
        return self.placement(nodes, left).workers if left else 0

    def top_up(self, nodes: list[cluster.Node], want: int) -> None:
        place = self.placement(nodes)
        try:
            share = self.ray.get(self.share.beat.remote(
                self.key, place.workers, want, list(self.tasks.values())), timeout=30)
        except self.ray.exceptions.RayError:  # no share to ask (being restarted): no cap
            share = want
        timeout = (None if self.limits.timeout is None else
                   max(1.0, self.limits.timeout - (time.monotonic() - self.started)))
        task = self.ray.remote(cluster.run_task).options(
            num_cpus=place.num_cpus, num_gpus=place.num_gpus,
            max_retries=cluster.TASK_RETRIES, runtime_env=self.env)
        while len(self.tasks) < min(want, share):
            i, self.next_index = self.next_index, self.next_index + 1
            ref = task.remote(cluster.worker_options(self.opts, i, place, self.limits.total,
                                                     self.url, timeout),
                              self.raw, self.arrays, self.console, self.share, self.key, i)
            self.tasks[ref] = i

    def check(self, stopping: bool) -> None:
        """Every few seconds: nodes lost and joined, said in a line each; tasks started
        where there is room and work."""
        if time.monotonic() - self.checked < CHECK_EVERY_S:
            return
        self.checked = time.monotonic()
        nodes = cluster.alive_nodes(self.ray)
        now = {n.id: n for n in nodes}
        self.lost |= {i: (n, time.monotonic()) for i, n in self.nodes.items() if i not in now}
        self.tell_lost()
        for new in [n for i, n in now.items() if i not in self.nodes]:
            self.console.say(f"ray: node {new.ip} joined ({new.cpus:g} CPU, {new.gpus:g} GPU)")
        self.nodes = now
        if not stopping:
            self.top_up(nodes, self.target(nodes))

    def tell_lost(self, final: bool = False) -> None:
        """A line for each lost node once its trials are failed and queued again (their
        heartbeat stops GRACE seconds after the node; this asks Optuna to look), or once
        twice that has passed, or at the study's end (FINAL)."""
        if not self.lost:
            return
        optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        for i, (node, since) in list(self.lost.items()):
            lost = [t for t in cluster.lost_trials(node, trials) if t.number not in self.told]
            if (not final and any(t.state.name == "RUNNING" for t in lost)
                    and time.monotonic() - since < 2 * self.grace):
                continue
            self.told |= {t.number for t in lost}
            self.console.warn(cluster.lost_line(node, lost, trials))
            del self.lost[i]

    def ended(self, ready: list) -> None:
        for ref in ready:
            self.tasks.pop(ref)
            code = outcome(self.ray, ref, self.console)
            self.handed = code == cluster.HANDED_BACK
            self.codes.append(0 if self.handed else code)

    def go_on(self) -> bool:
        """With no task left: whether to start again (the last one handed its slot back on a
        share that has since grown, and work is left) and did."""
        if self.handed:
            nodes = cluster.alive_nodes(self.ray)
            self.top_up(nodes, self.target(nodes))
        return bool(self.tasks)

    def leave(self) -> None:
        try:
            self.ray.get(self.share.leave.remote(self.key), timeout=10)
        except Exception:  # the cluster is gone: its Share drops us by the expiry anyway
            pass


CHECK_EVERY_S = 2.0


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


def watch(fleet: Fleet, study: optuna.Study, stop: StopFlag, progress: output.Progress,
          console: Console) -> list[int]:
    """Wait for the tasks, printing each newly finished trial and starting tasks where nodes
    join or slots free up. The first stop request cancels them gently (each ends its running
    trial after its next step), a second one kills them (their trials are failed by the
    heartbeat and retried by a later run)."""
    ray = fleet.ray
    seen = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    cancelled = False
    try:
        while fleet.tasks or (not cancelled and fleet.go_on()):
            ready, _ = ray.wait(list(fleet.tasks), num_returns=len(fleet.tasks), timeout=1.0)
            fleet.ended(ready)
            say_new(study, seen, progress, console)
            if stop() and not cancelled:
                for ref in fleet.tasks:
                    ray.cancel(ref)
                cancelled = True
            fleet.check(stopping=cancelled)
    except KeyboardInterrupt:
        for ref in fleet.tasks:
            ray.cancel(ref, force=True)
        fleet.codes.append(130)
    finally:
        fleet.leave()
    fleet.tell_lost(final=True)
    say_new(study, seen, progress, console)
    return fleet.codes


def say_new(study: optuna.Study, seen: set[int], progress: output.Progress,
            console: Console) -> None:
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if t.number not in seen and output.COPIED not in t.user_attrs:  # a warm start's copy
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
