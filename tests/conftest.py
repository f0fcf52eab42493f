"""Shared fixtures: generated IDX files, the real dataset (small subsets), subprocess helpers."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import torch

from benchmarks.inprocess import in_process

ROOT = Path(__file__).resolve().parent.parent

# The cost models this machine kept (engine.cost) go to a file of this test run's, not the
# user's cache: a test's plan must not read a cost that another run measured.
os.environ["HPSEARCH_COSTS"] = os.path.join(tempfile.mkdtemp(prefix="hpsearch-costs-"),
                                            "costs.json")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two pytest workers share the cores (make test): one torch thread each, in this process
    # and in the commands its tests start, rather than each oversubscribing every core.
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def idx_bytes(kind: str, n: int, seed: int = 0, size: int = 28) -> bytes:
    """An IDX file of N random images (size x size) or labels (a repeating 0..9)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "images":
        header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, size, size))
        body = torch.randint(0, 256, (n * size * size,), generator=gen, dtype=torch.uint8)
    else:
        header = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
        body = torch.arange(n, dtype=torch.uint8) % 10
    return header + body.numpy().tobytes()


def write_idx_set(folder: Path, n_train: int = 200, n_test: int = 50, packed: bool = True) -> dict:
    """The four Fashion-MNIST file names with generated contents; returns their md5 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, kind, n in (("train-images-idx3-ubyte", "images", n_train),
                          ("train-labels-idx1-ubyte", "labels", n_train),
                          ("t10k-images-idx3-ubyte", "images", n_test),
                          ("t10k-labels-idx1-ubyte", "labels", n_test)):
        raw = idx_bytes(kind, n)
        sums[name] = hashlib.md5(raw).hexdigest()
        if packed:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return sums


@pytest.fixture(scope="session")
def arrays():
    """The real Fashion-MNIST, loaded once per test session."""
    from hpsearch.engine import data

    return data.load()


@pytest.fixture(scope="session")
def small_splits(arrays):
    """3,000 real training images and 1,000 validation images on the CPU."""
    from hpsearch.engine import data

    return data.make_splits(arrays, torch.device("cpu"), seed=0, train_subset=3000,
                            val_subset=1000)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600, process: bool = False):
    """`python -m ARGS...` (ARGS[0] an hpsearch command module, e.g. hpsearch.study): in this
    process, output captured, unless PROCESS asks for a new interpreter (a test about the
    process itself: signals, terminals, imports, Ray). In-process saves each call the 3-5 s a
    new interpreter spends importing torch and Optuna; what the command changes in this
    process (environment, folder, signal handlers, torch threads, gc freeze) is put back."""
    name = args[0].removeprefix("hpsearch.")
    from hpsearch.cli import COMMANDS

    if process or name not in COMMANDS:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
    return in_process(name, list(args[1:]), cwd or ROOT, env or {})


PG_URL = os.environ.get("HPSEARCH_TEST_POSTGRES",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _postgres_answers() -> str | None:
    import sqlalchemy
    try:
        with sqlalchemy.create_engine(PG_URL).connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0]}"
    return None


@functools.cache
def storage_at(url: str):
    """One storage (one connection pool) per URL for the whole test process: a test that polls
    a study with a new storage each time would open a connection each time, and PostgreSQL
    refuses clients beyond its 100."""
    import optuna

    return optuna.storages.RDBStorage(url)


@pytest.fixture
def pg_study():
    """A fresh study name on the PostgreSQL server; the study is deleted afterwards."""
    problem = _postgres_answers()
    if problem:
        if os.environ.get("HPSEARCH_CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} does not answer under CI: {problem}")
        pytest.skip(f"no PostgreSQL at {PG_URL} ({problem}); set HPSEARCH_TEST_POSTGRES")
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        import optuna

        optuna.delete_study(study_name=name, storage=PG_URL)
    except KeyError:
        pass


def refused(capsys, argv: list[str]) -> str:
    """The one error line argparse prints for ARGV (it exits 2)."""
    with pytest.raises(SystemExit) as err:
        from hpsearch.cli.study import parse

        parse(argv)
    assert err.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]
