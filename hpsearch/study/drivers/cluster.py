"""A study's workers as tasks on a Ray cluster (--ray ADDRESS). Optuna's storage stays the
brain: every task runs the same worker loop as a local worker (local.run_worker, in the task's
own process), on the same storage, and the claim lock lands the group on the total. Ray only
places the tasks (by CPUs and GPUs, fractions of a GPU with --jobs), retries a task lost with
its node, and carries the dataset from the driver to nodes that lack it.

Counting under Ray is by total, never per worker: a retried task must not run its share
again, so `--trials N` becomes "until the study holds N more finished trials than now".
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpsearch.study import artifacts
from hpsearch.study import storage as stores
from hpsearch.errors import UsageError
from hpsearch.study import options
from hpsearch.study.options import StudyOptions

# Ray's smallest resource unit: a GPU fraction must be a multiple of 0.0001.
RAY_UNIT = 10_000
TASK_RETRIES = 3  # times Ray re-runs a task whose worker process or node died
LOOPBACK = ("127.0.0.1", "localhost")
SHARE_NAME, SHARE_NAMESPACE = "hpsearch-share", "hpsearch"
SHARE_EXPIRY_S = 30.0
HANDED_BACK = -1  # what a task returns when it ended to give its slot to another study
# Read by Ray when it is imported: 0 keeps a Ray instance and its driver on 127.0.0.1 instead
# of this machine's interface address (the name is Ray's; it is not about Windows here).
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class Node:
    ip: str
    cpus: float
    gpus: float
    id: str = ""  # Ray's node id: a node that left and came back is a new one


@dataclass(frozen=True)
class Placement:
    workers: int
    num_cpus: float  # per worker, as Ray reserves it (and torch's threads)
    num_gpus: float  # per worker: 1/K of a GPU, or 0 on CPU nodes

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus else "cpu"

    def phrase(self) -> str:
        where = (f"{self.num_gpus:g} GPU + {self.num_cpus:g} CPU each" if self.num_gpus
                 else f"{self.num_cpus:g} CPU each")
        return f"{self.workers} Ray workers ({where})"


def placement(nodes: list[Node], device: str, jobs: int, threads: int | None,
              max_concurrent: int | None, cap: int | None = None) -> Placement:
    """How many workers the cluster NODES hold and what each reserves. On GPUs (--device cuda,
    or auto on a cluster with any): K = --jobs workers per GPU, each 1/K of one. On CPUs: one
    worker per --threads cores (default 1). MAX_CONCURRENT and CAP (trials left) bound it."""
    gpus = sum(math.floor(n.gpus) for n in nodes)
    on_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if on_gpu:
        if gpus == 0:
            raise UsageError(f"--device {device}: this Ray cluster has no GPU "
                             f"({describe(nodes)}); give --device cpu")
        fraction = math.floor(RAY_UNIT / jobs) / RAY_UNIT  # at most K of them fit in one GPU
        if fraction == 0:
            raise UsageError(f"--jobs {jobs}: Ray cannot give a worker less than "
                             f"{1 / RAY_UNIT:g} of a GPU (at most {RAY_UNIT} jobs per GPU)")
        slots, per = gpus * jobs, Placement(0, threads or 1, fraction)
    else:
        if jobs > 1:
            raise UsageError(f"--jobs {jobs} puts {jobs} workers on each GPU, and this Ray "
                             f"cluster has none ({describe(nodes)}); on CPUs, --threads N "
                             f"gives each worker N cores (default 1)")
        per = Placement(0, threads or 1, 0.0)
        slots = sum(math.floor(n.cpus / per.num_cpus) for n in nodes)
        if slots == 0:
            raise UsageError(f"--threads {per.num_cpus:g}: no node of this Ray cluster has "
                             f"that many CPUs ({describe(nodes)})")
    workers = min(x for x in (slots, max_concurrent, cap) if x is not None)
    return dataclasses.replace(per, workers=max(workers, 1))


def describe(nodes: list[Node]) -> str:
    return ", ".join(f"{n.ip}: {n.cpus:g} CPU, {n.gpus:g} GPU" for n in nodes) or "no nodes"


def check_storage(url: str, address: str, nodes: list[Node]) -> None:
    """SQLite is a file on one machine: a cluster of several nodes needs a server database."""
    if stores.sqlite_file(url) is not None and len(nodes) > 1 and address != "local":
        raise UsageError(f"a SQLite storage ({stores.redact(url)}) is a file on one machine and "
                         f"this Ray cluster has {len(nodes)} nodes; give --storage "
                         f"postgresql://USER:PASSWORD@HOST/DB that every node can reach")


def absolute_sqlite(url: str) -> str:
    """A relative SQLite URL made absolute: Ray tasks do not run in the driver's folder."""
    path = stores.sqlite_file(url)
    if path is None or path.is_absolute():
        return url
    return f"sqlite:///{path.resolve()}"


def artifact_env(url: str, nodes: list[Node], warn) -> dict[str, str]:
    """HPSEARCH_ARTIFACTS for the tasks: the driver's folder when every node sees it (one node,
    or a folder the user named); else none, with one WARN line, and learning curves skipped."""
    if os.environ.get(artifacts.ENV):
        return {artifacts.ENV: str(Path(os.environ[artifacts.ENV]).resolve())}
    folder = artifacts.artifact_dir(url)
    if folder is not None and len(nodes) == 1:
        return {artifacts.ENV: str(folder.resolve())}
    if len(nodes) > 1 or folder is None:
        warn(f"warning: no learning-curve artifacts: set {artifacts.ENV} to a folder every "
             f"node sees to keep them (the report does not need them)")
    return {}


def probe(address: str, timeout: float = 3.0) -> None:
    """Fail in seconds, with one line, where ray.init would retry for minutes."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r} is not an address: give auto, HOST:PORT, "
                         f"ray://HOST:10001 or local")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                         f"`ray start --head`, or use --ray local") from None


def import_ray(address: str):
    """Ray, imported with loopback kept for a cluster on this machine."""
    host = address.removeprefix("ray://").rpartition(":")[0]
    if address == "local" or host in LOOPBACK:
        os.environ.setdefault(RAY_LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[ray]'") from None
    return ray


def connect(ray, address: str) -> None:
    probe(address)
    kwargs = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address == "local":
        kwargs |= dict(include_dashboard=False)
    if os.environ.get(RAY_LOOPBACK_ENV) == "0" and not address.startswith("ray://"):
        kwargs |= dict(_node_ip_address="127.0.0.1")
    import ray._private.worker as ray_worker

    quiet_ray_errors(ray_worker, logging.getLogger("ray").info)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        reason = str(err).splitlines()[0].split(". ")[0].rstrip(".")
        raise UsageError(f"cannot connect to a Ray cluster at {address} ({reason}); start "
                         f"one with `ray start --head` or name it in RAY_ADDRESS, or use "
                         f"--ray local") from None


def alive_nodes(ray) -> list[Node]:
    return [Node(n["NodeManagerAddress"], n["Resources"].get("CPU", 0.0),
                 n["Resources"].get("GPU", 0.0), n["NodeID"])
            for n in ray.nodes() if n["Alive"]]


def quiet_ray_errors(worker_module, sink) -> None:
    """Ray's driver prints the cluster's error messages (a task to be retried, a node marked
    dead) raw on the terminal, colour codes included, from a thread of its own
    (ray._private.worker.listen_error_messages, whatever log_to_driver says). They go to SINK
    instead (Ray's logger, at a level the user does not see); hpsearch says one line of its
    own for what matters (a node lost, its trial re-run), and Ray keeps them in its logs."""
    shown = worker_module.print_to_stdstream

    def routed(data, ignore_prefix):
        if data.get("pid") == "raylet":
            for line in data.get("lines", ()):
                sink(line)
        else:
            shown(data, ignore_prefix)

    worker_module.print_to_stdstream = routed


def lost_trials(node: Node, trials) -> list:
    """The trials that were running on NODE when it was lost: still RUNNING, or failed by
    their heartbeat: re-run (hpsearch's own failures never are), or a FAIL with no reason of
    hpsearch's (its retries spent). A trial killed while writing its end has a reason."""
    again = {t.system_attrs.get("failed_trial") for t in trials}
    return [t for t in trials if t.user_attrs.get("node") == node.ip
            and (t.state.name == "RUNNING"
                 or (t.state.name == "FAIL"
                     and (t.number in again or not t.user_attrs.get("reason"))))]


def lost_line(node: Node, lost, trials) -> str:
    """One line for a node Ray marked dead: its trials LOST and the trials that re-run them
    (the heartbeat fails a lost trial and Optuna queues it again, see storage.open_storage)."""
    again = {t.system_attrs.get("failed_trial"): t.number for t in trials
             if t.system_attrs.get("failed_trial") is not None}
    said = [f"trial {t.number} " + (f"re-run as trial {again[t.number]}" if t.number in again
                                    else "not re-run (its retries are spent)")
            for t in lost]
    return (f"ray: node {node.ip} was lost; " + ("; ".join(said) if said else "no trial was on it")
            + "; its work goes to the other nodes")


def fair_shares(slots: int, wants: dict[str, int]) -> dict[str, int]:
    """Worker slots for each study sharing a cluster of SLOTS: an even split, where a study
    that wants fewer than its even part leaves the rest to the others (water-filling);
    every study gets at least one, so none waits for another to end."""
    shares, left = {}, slots
    waiting = sorted(wants, key=lambda k: (wants[k], k))
    while waiting:
        key = waiting.pop(0)
        shares[key] = max(1, min(wants[key], left // (len(waiting) + 1)))
        left = max(0, left - shares[key])
    return shares


class Share:
    """The hpsearch studies on one Ray cluster and their worker slots: one detached actor per
    cluster (SHARE_NAME). Ray alone does not share a cluster between two drivers: a slot freed
    by one study's task went to the other driver's queued task every time (measured here), so
    a study started second would wait for the first to end. Each driver beats every few
    seconds with the slots it sees, the workers it wants and the tasks it has, and is told its
    share; a task asks between trials whether it is beyond its study's share, and if so ends
    there, handing its slot back (no trial is cut short). A driver silent for SHARE_EXPIRY_S
    (killed) drops out."""

    def __init__(self):
        self.studies: dict[str, tuple[float, int, int, list[int]]] = {}

    def beat(self, key: str, slots: int, wants: int, tasks: list[int]) -> int:
        now = time.monotonic()
        self.studies[key] = (now, slots, wants, sorted(tasks))
        self.studies = {k: v for k, v in self.studies.items() if now - v[0] <= SHARE_EXPIRY_S}
        return self.share(key)

    def share(self, key: str) -> int:
        slots = max(v[1] for v in self.studies.values())
        return fair_shares(slots, {k: v[2] for k, v in self.studies.items()})[key]

    def hand_back(self, key: str, task: int) -> bool:
        if key not in self.studies:
            return False
        return task not in self.studies[key][3][:self.share(key)]

    def leave(self, key: str) -> None:
        self.studies.pop(key, None)

    def count(self) -> int:
        return len(self.studies)


def open_share(ray):
    """The cluster's Share actor, made by the first driver that asks, on the head node (a
    worker node may go; the head is the cluster). Ray restarts it if it dies anyway; its
    state is rebuilt by the drivers' next beats."""
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(Share)
    return actor.options(name=SHARE_NAME, namespace=SHARE_NAMESPACE, lifetime="detached",
                         get_if_exists=True,
                         resources={"node:__internal_head__": 0.001}).remote()


def worker_options(opts: StudyOptions, i: int, place: Placement, total: int | None,
                   url: str, timeout: float | None = None) -> StudyOptions:
    """Task I's options: one device, no workers of its own, the group's total (never a count
    of its own), a sampler seed of its own, and TIMEOUT: what is left of the study's when the
    task starts (a task started late must not get the whole of it)."""
    seed = int(np.random.SeedSequence([opts.search.sampler_seed_or_seed(), i]).generate_state(1)[0])
    return options.replace(
        opts, url=url, ray=None, max_concurrent=None, devices=(), jobs=1,
        device=place.device, threads=math.ceil(place.num_cpus), trials=None, total_trials=total,
        sampler_seed=seed, tag=f"ray{i}", quiet=True, timeout=timeout)


def node_counts(trials) -> Counter:
    return Counter(t.user_attrs.get("node", "?") for t in trials)


def group_total(finished: int, trials: int | None, total: int | None) -> int | None:
    """The finished trials the group stops at: this run's count on top of what the study
    holds, or --total-trials, whichever comes first (None: a budget or timeout ends it)."""
    counts = [n for n in (None if trials is None else finished + trials, total) if n is not None]
    return min(counts) if counts else None


def run_task(opts: StudyOptions, raw, arrays, console, share=None, key: str = "",
             index: int = 0) -> int:
    """One Ray task: the local worker loop, in this process, on the driver's arrays. Between
    trials it asks the cluster's SHARE whether task INDEX of study KEY is beyond its study's
    share, and ends there if so. Ray's cancel arrives as SIGINT: in the trial
    loop, the stop flag turns it into the end of the running trial at its next step, as
    Ctrl-C does for a local study; before it, Ray's own handler cancels the task. The loop
    gives Ray its handlers back when it ends."""
    import ray

    from hpsearch.study.loop import StopFlag
    from hpsearch.study.drivers.local import run_worker

    storage = stores.open_storage(opts.store.url, heartbeat=opts.store.heartbeat)
    handed = []

    def hand_back() -> bool:
        try:
            if share is not None and ray.get(share.hand_back.remote(key, index), timeout=30):
                handed.append(True)
        except ray.exceptions.RayError:  # no share to ask: keep the slot
            pass
        return bool(handed)

    code = run_worker(opts, raw, storage, StopFlag(), time.monotonic(), console, arrays=arrays,
                      node=ray.util.get_node_ip_address(), hand_back=hand_back)
    return HANDED_BACK if handed and code == 0 else code
