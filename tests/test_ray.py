"""Studies on Ray (--ray): the placement rule and the cluster's share on faked clusters, the
refusals, and a real single-node Ray on 127.0.0.1 with the real PostgreSQL: Ctrl-C, workers
with no dataset of their own, every socket on loopback. Exact totals over several hosts, a
host lost, a host joining and Ray jobs are in test_ray_cluster.py.

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


# --- sharing a cluster between studies, and what a lost node is told as --------------------

def test_fair_shares_split_evenly_and_pass_on_what_a_study_does_not_want():
    assert cluster.fair_shares(4, {"a": 10, "b": 10}) == {"a": 2, "b": 2}
    assert cluster.fair_shares(5, {"a": 10, "b": 10}) == {"a": 2, "b": 3}
    assert cluster.fair_shares(6, {"a": 1, "b": 10, "c": 10}) == {"a": 1, "b": 2, "c": 3}
    assert cluster.fair_shares(2, {"a": 5, "b": 5, "c": 5}) == {"a": 1, "b": 1, "c": 1}
    assert cluster.fair_shares(8, {"a": 8}) == {"a": 8}


def test_a_study_beyond_its_share_hands_back_its_highest_tasks_and_a_silent_one_drops_out(
        monkeypatch):
    share, clock = cluster.Share(), [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: clock[0])
    assert share.beat("a", 4, 4, [0, 1, 2, 3]) == 4  # alone: the whole cluster
    assert share.beat("b", 4, 4, []) == 2
    assert [share.hand_back("a", i) for i in range(4)] == [False, False, True, True]
    clock[0] += cluster.SHARE_EXPIRY_S + 1  # a's driver was killed: it stops beating
    assert share.beat("b", 4, 4, [0, 1]) == 4 and share.count() == 1
    assert not share.hand_back("a", 3)  # a study the share no longer knows keeps its slot
    share.leave("b")
    assert share.count() == 0


def test_a_lost_node_is_told_with_its_trials_and_their_re_runs():
    from optuna.trial import create_trial

    def trial(number, state, node, reason=None, failed=None):
        t = create_trial(state=state, user_attrs={"node": node, "reason": reason},
                         system_attrs={} if failed is None else {"failed_trial": failed},
                         **({"value": 0.5} if state == TrialState.COMPLETE else {}))
        t.number = number
        return t

    node = Node("10.0.0.2", 1, 0, "n2")
    trials = [trial(0, TrialState.COMPLETE, "10.0.0.2"), trial(1, TrialState.FAIL, "10.0.0.2"),
              trial(2, TrialState.FAIL, "10.0.0.2", reason="interrupted"),
              trial(3, TrialState.RUNNING, "10.0.0.1"),
              trial(4, TrialState.WAITING, None, failed=1),
              # Killed after writing its end (a reason) but not its state: failed and re-run
              # by the heartbeat all the same.
              trial(5, TrialState.FAIL, "10.0.0.2", reason="pruned after epoch 1"),
              trial(6, TrialState.WAITING, None, failed=5)]
    lost = cluster.lost_trials(node, trials)
    assert [t.number for t in lost] == [1, 5]
    assert cluster.lost_line(node, lost, trials) == (
        "ray: node 10.0.0.2 was lost; trial 1 re-run as trial 4; trial 5 re-run as trial 6; "
        "its work goes to the other nodes")
    assert "no trial was on it" in cluster.lost_line(node, [], trials)


def test_ray_s_raw_cluster_errors_go_to_a_sink_and_other_output_still_shows():
    class Worker:
        def __init__(self):
            self.shown = []
            self.print_to_stdstream = lambda data, ignore_prefix: self.shown.append(data)

    worker, sink = Worker(), []
    cluster.quiet_ray_errors(worker, sink.append)
    worker.print_to_stdstream({"pid": "raylet", "lines": ["\x1b[33mnode dead\x1b[0m"]}, False)
    worker.print_to_stdstream({"pid": 42, "lines": ["a task's print"]}, False)
    assert sink == ["\x1b[33mnode dead\x1b[0m"]
    assert worker.shown == [{"pid": 42, "lines": ["a task's print"]}]


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
