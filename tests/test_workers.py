"""Many workers on one study: PostgreSQL (the real server), SQLite, --devices."""

import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from conftest import PG_URL, ROOT, run_cli, storage_at
from hpsearch.study.storage import TrialClaim

TINY = ["--train-subset", "1000", "--val-size", "1000", "--max-epochs", "2", "--quiet",
        "--heartbeat", "1"]




def worker(url: str, name: str, total: int, seed: int, extra=()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hpsearch.study", "lenet", "--storage", url, "--study-name", name,
           "--total-trials", str(total), "--sampler-seed", str(seed), *TINY, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def trials_of(url: str, name: str):
    return optuna.load_study(study_name=name, storage=storage_at(url)).get_trials()


def create(url: str, name: str, extra=()) -> None:
    """Create the study once, as the first worker (or a --devices parent) would."""
    p = run_cli("hpsearch.study", "lenet", "--storage", url, "--study-name", name, "--trials", "1",
                *TINY, *extra)
    assert p.returncode == 0, p.stderr


def assert_claim_excludes(url: str, study_name: str) -> None:
    """While one TrialClaim is held, a second on the same storage and study waits for it."""
    first, second = TrialClaim(url, study_name), TrialClaim(url, study_name)
    got = threading.Event()

    def take():
        second.acquire()
        got.set()
        second.release()

    first.acquire()
    thread = threading.Thread(target=take)
    thread.start()
    try:
        assert not got.wait(1.0), "the second claim got in while the first was held"
    finally:
        first.release()
    assert got.wait(10), "the second claim never got in after the first was released"
    thread.join()
    first.release()  # a second release is harmless


def test_trial_claim_excludes_on_postgres(pg_study):
    assert_claim_excludes(PG_URL, pg_study)


def test_trial_claim_excludes_on_sqlite(tmp_path):
    assert_claim_excludes(f"sqlite:///{tmp_path}/s.db", "lenet")


@pytest.mark.slow
def test_workers_on_postgres_land_on_exactly_the_total(pg_study):
    create(PG_URL, pg_study)
    procs = [worker(PG_URL, pg_study, total=7, seed=s) for s in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    trials = trials_of(PG_URL, pg_study)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 7 and len(trials) == 7
    assert sorted(t.number for t in trials) == list(range(7))
    assert sum("trial " in o[0] for o in outs) >= 2  # more than one worker did work
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 7  # distinct proposals


@pytest.mark.slow
def test_killed_worker_trial_is_retried_and_total_reached(pg_study):
    # Unpruned trials of 4 epochs; the kill lands once a running trial has reported its first
    # epoch, so 3 of its epochs are still to come.
    slow = ["--train-subset", "3000", "--max-epochs", "4", "--pruner", "none"]
    create(PG_URL, pg_study, slow)
    victim = worker(PG_URL, pg_study, total=6, seed=10, extra=slow)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            t.state == TrialState.RUNNING and t.intermediate_values
            for t in trials_of(PG_URL, pg_study)):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    running = [t.number for t in trials_of(PG_URL, pg_study) if t.state == TrialState.RUNNING]
    assert running, "the kill should have left a trial RUNNING"
    others = [worker(PG_URL, pg_study, total=6, seed=s, extra=slow) for s in (11, 12)]
    outs = [p.communicate(timeout=600) for p in others]
    assert all(p.returncode == 0 for p in others), [o[1][-2000:] for o in outs]
    trials = trials_of(PG_URL, pg_study)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 6
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    killed = trials[running[0]]
    assert killed.state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retried and retried[0].params == killed.params


def test_a_retry_is_queued_as_its_trial_was_not_as_its_dead_run_left_it(tmp_path):
    """A worker killed after its trial had written its end (reason, curve) but not its state:
    the heartbeat's retry keeps the params and the attrs it was queued with, not the dead
    run's node, reason or learning-curve artifact."""
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

    from hpsearch.study import storage as stores

    storage = stores.open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat=1)
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 0.25}, user_attrs={"lab_row": 3, "lab_label": "Adam, lr 0.001"})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("node", "10.0.0.2")
    trial.set_user_attr("reason", "pruned after epoch 1 (val acc 0.7000)")
    curve = tmp_path / "curve.png"
    curve.write_bytes(b"png")
    upload_artifact(artifact_store=FileSystemArtifactStore(tmp_path), file_path=str(curve),
                    study_or_trial=trial)
    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    storage.get_heartbeat_stale_trial_callback()(study, study.trials[0])
    (failed, retry) = study.get_trials()
    assert retry.state == TrialState.WAITING and retry.params == {"x": 0.25}
    assert retry.system_attrs["failed_trial"] == failed.number
    assert retry.user_attrs == {"lab_row": 3, "lab_label": "Adam, lr 0.001"}
    assert len(get_all_artifact_meta(failed, storage=storage)) == 1
    assert get_all_artifact_meta(retry, storage=storage) == []


@pytest.mark.slow
def test_sqlite_with_several_writers(tmp_path):
    url = f"sqlite:///{tmp_path}/many.db"
    create(url, "many")
    procs = [worker(url, "many", total=7, seed=s) for s in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert not any("database is locked" in o[1] for o in outs)
    trials = trials_of(url, "many")
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in trials)


@pytest.mark.slow
def test_devices_spawns_one_worker_per_device(tmp_path):
    url = f"sqlite:///{tmp_path}/d.db"
    p = run_cli("hpsearch.study", "lenet", "--storage", url, "--devices", "cpu,cpu",
                "--trials", "4", *TINY, process=True)  # the workers write to its stdout
    assert p.returncode == 0, p.stderr
    threads = max(1, (os.cpu_count() or 1) // 2)  # the cores shared out between the two
    assert f"starting 2 workers (cpu, cpu x 1 jobs, {threads} threads each)" in p.stdout
    assert "[w0 cpu] trial" in p.stdout and "[w1 cpu] trial" in p.stdout
    assert len(trials_of(url, "lenet")) == 4


@pytest.mark.slow
def test_postgres_url_without_driver_is_refused():
    p = run_cli("hpsearch.study", "lenet", "--storage", "postgresql://postgres@127.0.0.1/test",
                "--trials", "1")
    assert p.returncode == 2 and "postgresql+psycopg2://" in p.stderr


@pytest.mark.slow
def test_worker_script_needs_the_storage_variable():
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    p = subprocess.run([str(ROOT / "scripts" / "worker"), "lenet"], env=env,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "HPSEARCH_STORAGE" in p.stderr


@pytest.mark.slow
def test_gpu_check_script_runs_in_tiny_mode_on_the_cpu():
    p = subprocess.run([str(ROOT / "scripts" / "gpu-check"), "--device", "cpu", "--tiny",
                        "--models", "lenet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "torch 2.14.1" in p.stdout and "device cpu" in p.stdout
    assert "lenet   jobs 1: 2 trials" in p.stdout and "lenet   jobs 4: 2 trials" in p.stdout
    assert p.stdout.count("trials/min") == 2


@pytest.mark.slow
def test_a_password_in_the_storage_url_is_never_printed_or_written(pg_study, tmp_path):
    # The local server trusts 127.0.0.1, so it takes any password: a real URL with a secret.
    url = PG_URL.replace("postgres@", "postgres:s3cret-pw@")
    assert "s3cret-pw" in url
    outputs = []
    for args in (["hpsearch.study", "lenet", "--study-name", pg_study, "--trials", "1", *TINY],
                 ["hpsearch.export", pg_study, "--no-test", "--out", str(tmp_path / "b.json")],
                 ["hpsearch.report", pg_study, "--out", str(tmp_path / "report")],
                 ["hpsearch.study", "lenet", "--study-name", pg_study, "--trials", "1",
                  "--seed", "5", *TINY]):  # refused: another seed; the message names the storage
        p = run_cli(*args, "--storage", url)
        outputs.append(p.stdout + p.stderr)
    assert "postgres:***@127.0.0.1" in outputs[0] and "postgres:***@127.0.0.1" in outputs[3]
    assert "seed: stored 0, now 5" in outputs[3]
    written = [f.read_text(errors="replace") for f in tmp_path.rglob("*")
               if f.is_file() and f.suffix in (".json", ".md", ".html", ".csv")]
    assert written and not [o for o in outputs + written if "s3cret-pw" in o]
