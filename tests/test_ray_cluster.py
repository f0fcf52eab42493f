"""Studies on a real Ray cluster of separate hosts, built on this machine from network
namespaces (tests/netcluster.py): a head host with the cluster's own PostgreSQL, worker hosts
on addresses of their own, and a laptop host with no Ray that only submits jobs.

    head     10.213.0.1   PostgreSQL, Ray head (1 CPU, the jobs' dashboard), the driver
    w1       10.213.0.2   Ray worker node (1 CPU), killed mid-trial
    w2       10.213.0.3   Ray worker node (1 CPU), joins mid-study
    laptop   10.213.0.4   `ray job submit` only

Every Ray process sees an empty HPSEARCH_DATA and HPSEARCH_CACHE, as in test_ray.py: a trial
that finished on a node trained from the driver's arrays, carried by Ray's object store.
Ray's health check on the head is shortened (1 s a check, 3 missed), so a killed host is
marked dead in seconds rather than Ray's default half a minute; nothing else is changed.
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import netcluster
from conftest import ROOT, storage_at

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = ["--train-subset", "3000", "--val-size", "1000", "--max-epochs", "3", "--heartbeat", "1",
        "--pruner", "none", "--quiet"]
# Trials of the spread-over-hosts study: enough that w2, joining early, starts its worker
# (a Ray worker process, torch imported, the arrays fetched: about 10 s on 2 busy cores) and
# runs trials before the study ends (at 14, once in 5 runs it did not).
SPREAD = 20
HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
          "RAY_health_check_failure_threshold": "3"}


@pytest.fixture(scope="module")
def net():
    """The cluster: head and w1 running Ray, w2 and laptop on the network only."""
    problem = netcluster.missing_capability()
    if problem:
        if os.environ.get("HPSEARCH_CI"):
            pytest.fail(f"cannot build the namespace cluster under CI: {problem}")
        pytest.skip(f"cannot build the namespace cluster: {problem}")
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("HPSEARCH_CI"):
            pytest.fail("Ray is not installed under CI (make test installs the ray extra)")
        pytest.skip("Ray is not installed: pip install -e '.[ray]'")
    # Not under pytest's folder, which is closed to other users (PostgreSQL runs as postgres).
    root = Path(tempfile.mkdtemp(prefix="hpn-"))
    empty = root / "empty"
    empty.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    cluster = netcluster.NetCluster(root, env)
    try:
        head, w1 = cluster.add_host("head"), cluster.add_host("w1")
        cluster.add_host("w2"), cluster.add_host("laptop")
        cluster.url, cluster.local_url = cluster.start_postgres(head)
        no_data = {"HPSEARCH_DATA": str(empty), "HPSEARCH_CACHE": str(empty)}
        cluster.no_data = no_data
        cluster.address = cluster.start_head(head, 1, env={**no_data, **HEALTH},
                                             dashboard=True)
        cluster.join(w1, head, 1, env=no_data)
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


def driver(net, name: str, *extra: str, storage: str | None = None, env: dict | None = None):
    """A study's driver on the head host (where the dataset is), as a process."""
    head = net.hosts["head"]
    argv = head.argv(sys.executable, "-m", "hpsearch.study", "lenet", "--ray", net.address,
                     "--storage", storage or net.url, "--study-name", name, *TINY, *extra)
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **net.env, **(env or {})})


def trials_of(net, name: str) -> list:
    try:
        return optuna.load_study(study_name=name, storage=storage_at(net.local_url)).get_trials()
    except KeyError:  # not created yet
        return []


def finished(trials) -> list:
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def running(trials) -> list:
    return [t for t in trials if t.state == TrialState.RUNNING]


# --- one study: spread over nodes, a node lost mid-trial, a node joining -------------------------

@pytest.fixture(scope="module")
def lost_and_joined(net):
    """A study of SPREAD trials over head and w1, artifacts in a folder every host sees. Once
    w1 has a trial, w2 joins; once w2 has a trial and w1 is running one past its first
    epoch, w1 is killed (every process of the host). What happened is kept for the tests
    below."""
    folder = net.root / "artifacts"
    proc = driver(net, "spread", "--total-trials", str(SPREAD), "--train-subset", "5000",
                  env={"HPSEARCH_ARTIFACTS": str(folder)})
    w1, w2, seen = net.hosts["w1"], net.hosts["w2"], {}
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and "killed" not in seen:
        trials = trials_of(net, "spread")
        on_w1 = [t for t in trials if t.user_attrs.get("node") == w1.ip]
        on_w2 = [t for t in trials if t.user_attrs.get("node") == w2.ip]
        mid = [t for t in running(on_w1) if t.intermediate_values]
        if "joined" not in seen and on_w1:
            net.join(w2, net.hosts["head"], 1, env=net.no_data)
            seen["joined"] = time.monotonic()
        elif on_w2 and mid:
            net.kill_host(w1)
            seen["killed"], seen["killed_wall"] = mid[0].number, time.time()
        time.sleep(0.3)
    out, err = proc.communicate(timeout=300)
    seen.update(code=proc.returncode, out=out, err=err, trials=trials_of(net, "spread"),
                folder=folder)
    return seen


def test_a_study_spread_over_hosts_lands_on_its_total(net, lost_and_joined):
    seen = lost_and_joined
    assert seen["code"] == 0, seen["out"] + seen["err"]
    trials = seen["trials"]
    assert len(finished(trials)) == SPREAD and not running(trials)
    nodes = {t.user_attrs["node"] for t in finished(trials)}
    head, w1, w2 = (net.hosts[h].ip for h in ("head", "w1", "w2"))
    assert {head, w1} <= nodes  # w1 trained on the driver's arrays: it has no dataset
    assert f"starting 2 Ray workers (1 CPU each) until {SPREAD} trials are finished" in seen["out"]
    counts = re.search(r"trials by node: (.*)", seen["out"]).group(1)
    assert f"{head} " in counts and f"{w1} " in counts
    # The same command again: the total is there, nothing runs.
    again = driver(net, "spread", "--total-trials", str(SPREAD), "--train-subset", "5000",
                   env={"HPSEARCH_ARTIFACTS": str(seen["folder"])})
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing left to run" in out, out + err


def test_a_lost_host_is_one_line_and_its_trial_is_run_again(net, lost_and_joined):
    seen = lost_and_joined
    assert "killed" in seen, seen["out"] + seen["err"]
    trials, lost = seen["trials"], seen["killed"]
    assert trials[lost].state == TrialState.FAIL
    again = [t for t in trials if t.system_attrs.get("failed_trial") == lost]
    assert len(again) == 1 and again[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert again[0].user_attrs["node"] != net.hosts["w1"].ip
    w1 = net.hosts["w1"].ip
    lines = [line for line in seen["err"].splitlines() if line.startswith(f"ray: node {w1}")]
    assert lines == [f"ray: node {w1} was lost; trial {lost} re-run as trial {again[0].number}; "
                     f"its work goes to the other nodes"], seen["err"]
    # Ray's own warnings stay in Ray's logs, off the user's terminal.
    for text in (seen["out"], seen["err"]):
        assert "(raylet)" not in text and "\x1b[" not in text
    rerun_s = again[0].datetime_start.timestamp() - seen["killed_wall"]
    print(f"lost trial {lost} re-run as trial {again[0].number} {rerun_s:.1f} s after the kill")


def test_a_host_that_joins_mid_study_gets_trials_without_a_restart(net, lost_and_joined):
    seen = lost_and_joined
    w2 = net.hosts["w2"].ip
    assert f"ray: node {w2} joined (1 CPU, 0 GPU)" in seen["out"], seen["out"] + seen["err"]
    assert [t for t in finished(seen["trials"]) if t.user_attrs["node"] == w2]


def test_learning_curves_from_every_host_are_served_by_the_dashboard(net, lost_and_joined):
    from hpsearch.results import dashboard

    study = optuna.load_study(study_name="spread", storage=storage_at(net.local_url))
    server = dashboard.make(net.local_url, "127.0.0.1", 0, lost_and_joined["folder"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hosts = set()
        for trial in finished(study.get_trials()):
            (meta,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
            url = (f"http://127.0.0.1:{server.server_port}/artifacts/{study._study_id}/"
                   f"{trial._trial_id}/{meta.artifact_id}")
            with urllib.request.urlopen(url, timeout=10) as page:
                assert page.read(8) == b"\x89PNG\r\n\x1a\n"
            hosts.add(trial.user_attrs["node"])
        assert len(hosts) >= 2
    finally:
        server.shutdown()


def test_sqlite_is_refused_on_a_cluster_of_several_hosts_before_anything_is_written(net):
    db = net.root / "refused.db"
    proc = driver(net, "sqlite", "--total-trials", "2", storage=f"sqlite:///{db}")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert err.strip().splitlines()[-1].startswith(f"error: a SQLite storage (sqlite:///{db}) "
                                                   f"is a file on one machine and this Ray "
                                                   f"cluster has ")
    assert not db.exists()


# --- studies as Ray jobs, submitted from a host without Ray ---------------------------------------

def job_cli(net, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    laptop = net.hosts["laptop"]
    ray = str(Path(sys.executable).with_name("ray"))
    address = f"http://{net.hosts['head'].ip}:{netcluster.DASHBOARD_PORT}"
    return subprocess.run(laptop.argv(ray, "job", args[0], "--address", address, *args[1:]),
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **net.env})


def submit(net, job: str, total: int, *extra: str) -> None:
    data_dir = os.environ.get("HPSEARCH_DATA") or "/usr/share/datasets/fashion-mnist"
    entry = ["hpsearch", "study", "lenet", "--ray", "auto", "--storage", net.url,
             "--study-name", job, "--total-trials", str(total), "--data-dir", data_dir, *TINY,
             *extra]
    p = job_cli(net, "submit", "--no-wait", "--submission-id", job, "--", *entry)
    assert p.returncode == 0, p.stdout + p.stderr


def job_status(net, job: str) -> str:
    """SUCCEEDED, FAILED, STOPPED, RUNNING, PENDING, or what `ray job status` said."""
    p = job_cli(net, "status", job)
    said = p.stdout + p.stderr
    found = re.search(r"Job '[^']+' (succeeded|failed|was stopped|is currently ([A-Z]+))", said)
    if found is None:
        return said
    return found.group(2) or {"succeeded": "SUCCEEDED", "failed": "FAILED",
                              "was stopped": "STOPPED"}[found.group(1)]


@pytest.fixture(scope="module")
def jobs(net, lost_and_joined):
    """Two studies submitted at once as Ray jobs from the laptop, which then goes away (each
    `ray job submit --no-wait` has returned). The long one (trials of about 3 epochs x 3 s) is
    stopped with `ray job stop` once both have made progress, just after one of its trials
    began (so the stop, which takes a few seconds to arrive, lands mid-trial); the short one
    runs to its total."""
    submit(net, "job-long", 40, "--train-subset", "20000")
    submit(net, "job-short", 6)
    seen = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        long, short = trials_of(net, "job-long"), trials_of(net, "job-short")
        if finished(long) and finished(short) and "both" not in seen:
            seen["both"] = (len(finished(long)), len(finished(short)))
        just_begun = [t for t in running(long) if not t.intermediate_values]
        if "both" in seen and just_begun and "stopped" not in seen:
            p = job_cli(net, "stop", "job-long")
            seen["stopped"], seen["cut"] = p.returncode, just_begun[0].number
        if "stopped" in seen and job_status(net, "job-short") in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(1)
    time.sleep(3)  # the stopped study's tasks write their last trial's end
    seen["long"], seen["short"] = trials_of(net, "job-long"), trials_of(net, "job-short")
    seen["long_status"], seen["short_status"] = (job_status(net, "job-long"),
                                                 job_status(net, "job-short"))
    seen["logs"] = job_cli(net, "logs", "job-short").stdout
    return seen


def test_a_study_submitted_as_a_job_reaches_its_total_with_the_submitter_gone(net, jobs):
    assert jobs["short_status"] == "SUCCEEDED", jobs
    assert len(finished(jobs["short"])) == 6 and not running(jobs["short"])
    assert "trial   0 COMPLETE" in jobs["logs"] and "trials by node:" in jobs["logs"]


def test_two_jobs_share_the_cluster_and_both_make_progress(net, jobs):
    assert "both" in jobs, jobs
    assert all(n >= 1 for n in jobs["both"])


def test_ray_job_stop_ends_a_study_as_ctrl_c_does(net, jobs):
    assert jobs.get("stopped") == 0 and jobs["long_status"] == "STOPPED", jobs
    long = jobs["long"]
    assert 1 <= len(finished(long)) < 40 and not running(long)
    assert long[jobs["cut"]].state == TrialState.FAIL
    stopped = [t for t in long if t.state == TrialState.FAIL]
    assert all(t.user_attrs.get("reason") == "interrupted" for t in stopped)
