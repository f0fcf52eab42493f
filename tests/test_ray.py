"""Studies on Ray (--ray): the placement rule on faked clusters, the refusals, and a real
single-node Ray on 127.0.0.1 with the real PostgreSQL: exact totals, a worker killed mid-trial,
workers with no dataset of their own, every socket on loopback.

The Ray head is started with an empty HPSEARCH_DATA and HPSEARCH_CACHE, which its tasks
inherit: a task that read the dataset from disk would fail, so every study that finishes here
trained from the driver's arrays.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import PG_URL, ROOT, refused, run_cli, storage_at
from hpsearch.errors import UsageError
from hpsearch.study.drivers import cluster
from hpsearch.study.drivers.cluster import Node, placement
from hpsearch.cli.study import parse

TINY = ["--train-subset", "1000", "--val-size", "1000", "--max-epochs", "2", "--heartbeat", "1",
        "--pruner", "none"]
# On loopback, with a token of this test run's own (Ray's token auth; left to itself, Ray
# would pick up ~/.ray/auth_token, which an earlier `ray.init()` on this machine may have made).
LOOPBACK_ENV = {cluster.RAY_LOOPBACK_ENV: "0", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32)}

# Run on their own, after the rest (make test): a real Ray cluster on 2 cores does not
# survive other tests loading the cores beside it (its raylet was seen to die).
pytestmark = pytest.mark.ray


# --- placement, on faked clusters -----------------------------------------------------------

CPUS = [Node("10.0.0.1", 2, 0), Node("10.0.0.2", 3, 0), Node("10.0.0.3", 1, 0)]
GPUS = [Node("10.0.0.1", 16, 2), Node("10.0.0.2", 8, 1)]


def test_cpu_nodes_hold_one_worker_per_threads_cores():
    assert placement(CPUS, "auto", 1, None, None) == cluster.Placement(6, 1, 0.0)
    assert placement(CPUS, "auto", 1, 2, None) == cluster.Placement(2, 2, 0.0)  # 1 + 1 + 0
    assert placement(CPUS, "cpu", 1, None, 4).workers == 4  # --max-concurrent
    assert placement(CPUS, "cpu", 1, None, None, cap=3).workers == 3  # trials left
    assert placement(GPUS, "cpu", 1, 4, None) == cluster.Placement(6, 4, 0.0)  # GPUs unused


def test_gpu_nodes_hold_jobs_workers_per_gpu_each_with_its_fraction():
    one = placement(GPUS, "auto", 1, None, None)
    assert (one.workers, one.num_gpus, one.device) == (3, 1.0, "cuda")
    three = placement(GPUS, "cuda", 3, 2, None)
    assert (three.workers, three.num_gpus, three.num_cpus) == (9, 0.3333, 2)
    six = placement(GPUS, "auto", 6, None, 10)
    assert six.workers == 10 and six.num_gpus * 6 <= 1  # 0.1666: six fit on one GPU
    assert "0.1666 GPU" in six.phrase()


@pytest.mark.parametrize("nodes,device,jobs,threads,message", [
    (CPUS, "auto", 2, None, "--jobs 2 puts 2 workers on each GPU, and this Ray cluster has none"),
    (CPUS, "cuda", 1, None, "--device cuda: this Ray cluster has no GPU"),
    (GPUS, "auto", 20_000, None, "less than 0.0001 of a GPU (at most 10000 jobs per GPU)"),
    (CPUS, "cpu", 1, 4, "--threads 4: no node of this Ray cluster has that many CPUs"),
])
def test_a_cluster_without_what_is_asked_is_refused(nodes, device, jobs, threads, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        placement(nodes, device, jobs, threads, None)


def test_sqlite_is_refused_on_a_cluster_of_several_nodes_only():
    sqlite = "sqlite:///hpsearch.db"
    with pytest.raises(UsageError, match="a SQLite storage .* this Ray cluster has 3 nodes; "
                                         "give --storage postgresql://"):
        cluster.check_storage(sqlite, "auto", CPUS)
    cluster.check_storage(sqlite, "auto", CPUS[:1])
    cluster.check_storage(sqlite, "local", CPUS)
    cluster.check_storage(PG_URL, "auto", CPUS)
    assert cluster.absolute_sqlite(sqlite) == f"sqlite:///{Path('hpsearch.db').resolve()}"
    assert cluster.absolute_sqlite(PG_URL) == PG_URL


def test_trials_become_a_group_total_so_a_retried_task_does_not_run_its_share_again():
    assert cluster.group_total(5, 4, None) == 9
    assert cluster.group_total(5, 4, 7) == 7
    assert cluster.group_total(5, None, 12) == 12
    assert cluster.group_total(5, None, None) is None


@pytest.mark.parametrize("argv,message", [
    (["lenet", "--ray", "auto", "--devices", "cpu,cpu"], "give --ray or --devices, not both"),
    (["lenet", "--max-concurrent", "2"], "--max-concurrent caps Ray workers; give it with --ray"),
    (["lenet", "--ray", " "], "--ray needs an address"),
    (["lenet", "--ray", "auto", "--device", "cuda:1"],
     "Ray picks each worker's GPU; give --device auto, cpu or cuda"),
    (["lenet", "--ray", "auto", "--max-concurrent", "0"], "--max-concurrent must be > 0"),
])
def test_bad_ray_flags_are_refused(capsys, argv, message):
    assert message in refused(capsys, argv)


def test_ray_options_reach_the_tasks_as_a_total():
    opts = parse(["lenet", "--ray", "auto", "--trials", "8", "--max-concurrent", "2"])
    worker = cluster.worker_options(opts, 1, cluster.Placement(2, 1, 0.0), 14, "sqlite:////x.db")
    place, extent = worker.placement, worker.extent
    assert (place.ray, extent.trials, extent.total_trials, place.device) == (None, None, 14, "cpu")
    assert worker.store.url == "sqlite:////x.db" and worker.tag == "ray1"
    assert not place.starts_workers
    other = cluster.worker_options(opts, 2, cluster.Placement(2, 1, 0.0), 14, "sqlite:////x.db")
    assert worker.search.sampler_seed != other.search.sampler_seed


@pytest.mark.slow
def test_an_unreachable_address_is_one_line_and_writes_nothing(tmp_path):
    closed = free_port()
    db = tmp_path / "s.db"
    started = time.monotonic()
    p = run_cli("hpsearch.study", "lenet", "--ray", f"127.0.0.1:{closed}", "--storage",
                f"sqlite:///{db}", *TINY, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == (f"error: cannot reach a Ray cluster at 127.0.0.1:{closed} "
                                f"(Connection refused); start one with `ray start --head`, or "
                                f"use --ray local")
    assert time.monotonic() - started < 60 and not db.exists()
    p = run_cli("hpsearch.study", "lenet", "--ray", "nowhere", "--storage", f"sqlite:///{db}")
    assert p.returncode == 2 and "--ray 'nowhere' is not an address" in p.stderr


# --- a real Ray on 127.0.0.1 ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, env: dict | None = None, timeout: float = 120):
    ray = Path(sys.executable).with_name("ray")
    return subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **LOOPBACK_ENV, **(env or {})})


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with two CPU slots; its tasks see no dataset on disk."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("HPSEARCH_CI"):
            pytest.fail("Ray is not installed under CI (make test installs the ray extra)")
        pytest.skip("Ray is not installed: pip install -e '.[ray]'")
    empty = tmp_path_factory.mktemp("no-data")
    port = free_port()
    # A short temp dir: Ray's socket paths must fit in 107 bytes.
    temp = Path(f"/tmp/hpr-{uuid.uuid4().hex[:6]}")
    started = ray_cli("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                      f"--ray-client-server-port={free_port()}", "--num-cpus=2", "--num-gpus=0",
                      "--include-dashboard=false", "--disable-usage-stats",
                      f"--temp-dir={temp}",
                      env={"HPSEARCH_DATA": str(empty), "HPSEARCH_CACHE": str(empty)})
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"127.0.0.1:{port}"
    ray_cli("stop", "--force")
    shutil.rmtree(temp, ignore_errors=True)


def ray_study(address: str, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch.study", "lenet", "--ray", address, "--storage",
            PG_URL, "--study-name", name, *TINY, *extra]


def overlapping(trials) -> bool:
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


@pytest.mark.slow
def test_a_study_on_ray_lands_on_its_total_with_two_workers(ray_head, pg_study):
    p = subprocess.run(ray_study(ray_head, pg_study, "--total-trials", "6", "--quiet"), cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, **LOOPBACK_ENV})
    assert p.returncode == 0, p.stdout + p.stderr
    trials = optuna.load_study(study_name=pg_study, storage=storage_at(PG_URL)).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert overlapping(finished)  # two workers ran side by side
    assert all(t.user_attrs["node"] == "127.0.0.1" for t in finished)
    assert "starting 2 Ray workers (1 CPU each) until 6 trials are finished" in p.stdout
    assert p.stdout.count(" on 127.0.0.1\n") == 6
    assert "trials by node: 127.0.0.1 6" in p.stdout
    # The same command again: the total is there, nothing runs.
    again = subprocess.run(ray_study(ray_head, pg_study, "--total-trials", "6", "--quiet"),
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, **LOOPBACK_ENV})
    assert again.returncode == 0 and "nothing left to run" in again.stdout


def task_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_and_the_total_still_lands(ray_head, pg_study):
    proc = subprocess.Popen(ray_study(ray_head, pg_study, "--total-trials", "6", "--quiet",
                                      "--train-subset", "3000", "--max-epochs", "3"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **LOOPBACK_ENV})
    deadline = time.monotonic() + 180
    killed = None
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            study = optuna.load_study(study_name=pg_study, storage=storage_at(PG_URL))
            running = study.get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            running = []
        mid = [t for t in running if t.intermediate_values]  # an epoch done, more to come
        pids = task_pids()
        if mid and pids:
            # Every task: the one running that trial among them (which is which is not known).
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = mid[0].number
        time.sleep(0.5)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, out + err
    assert proc.returncode == 0, out + err
    trials = optuna.load_study(study_name=pg_study, storage=storage_at(PG_URL)).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[killed].state == TrialState.FAIL  # the killed worker's trial


def listening_ports_of(pids: set[int]) -> list[str]:
    """Local addresses on which the processes PIDS listen (ss -ltnp)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if any(f"pid={pid}," in line for pid in pids)]


def ray_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray|gcs_server|raylet"], capture_output=True, text=True)
    return {int(pid) for pid in out.stdout.split()}


@pytest.mark.slow
def test_ctrl_c_cancels_the_tasks_keeps_finished_trials_and_all_listens_on_loopback(
        ray_head, pg_study):
    proc = subprocess.Popen(ray_study(ray_head, pg_study, "--total-trials", "40", "--quiet",
                                      "--train-subset", "3000", "--max-epochs", "3"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **LOOPBACK_ENV})
    deadline = time.monotonic() + 180
    ports = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            trials = optuna.load_study(study_name=pg_study, storage=storage_at(PG_URL)).get_trials()
        except KeyError:
            trials = []
        states = [t.state for t in trials]
        if TrialState.COMPLETE in states and TrialState.RUNNING in states:
            # Driver, head and the workers running trials: every listening socket.
            ports = listening_ports_of(ray_pids() | {proc.pid})
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.5)
    out, err = proc.communicate(timeout=180)
    assert ports, out + err
    assert all(p.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for p in ports), ports
    assert proc.returncode == 130, out + err
    assert "interrupted:" in err and "run the same command to continue" in err
    trials = optuna.load_study(study_name=pg_study, storage=storage_at(PG_URL)).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 1 <= len(finished) < 40
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped and all(t.user_attrs.get("reason") == "interrupted" for t in stopped)
