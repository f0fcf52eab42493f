"""The preflight: every input is checked before data is loaded, steps are timed or anything is
written, and a refusal is one line naming the input, what is wrong and what is allowed, leaving
the working folder and the storage byte for byte as they were. Also: signals from the first
instruction, and the space that has no epochs parameter."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import optuna
import pytest

from benchmarks import fuzz
from conftest import ROOT, run_cli

TINY = ["--train-subset", "500", "--val-size", "500", "--max-epochs", "1", "--trials", "1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """made.db (study 'made', a lenet setup), readonly.db (immutable where chattr works),
    notadb.db, space files good and bad: see benchmarks/fuzz.make_folder."""
    root = fuzz.make_folder(tmp_path_factory.mktemp("preflight"))
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / 'foreign.db'}")
    foreign = optuna.create_study(study_name="foreign", storage=storage)
    foreign.add_trial(optuna.trial.create_trial(value=0.5))  # no setup: not made by hpsearch
    storage.engine.dispose()
    yield root
    fuzz.release_folder(root)


REFUSED = [
    (["study", "lenet", "--storage", "sqlite://"], {},
     "--storage 'sqlite://': an in-memory SQLite database is gone when the run ends"),
    (["study", "lenet", "--storage", "sqlite:///x.db?mode=memory"], {}, "in-memory"),
    (["study", "lenet", "--device", "cuda:3"], {}, "device 'cuda:3' is not usable here"),
    (["study", "lenet", "--devices", "cpu,cuda:7"], {}, "device 'cuda:7' is not usable here"),
    (["study", "lenet", "--device", "cpu", "--precision", "float16"], {},
     "precision 'float16' is not for the CPU"),
    (["study", "lenet"], {"HPSEARCH_STORAGE": "garbage"},
     "$HPSEARCH_STORAGE '***' is not a storage URL"),
    (["study", "lenet", "--storage", "mysql+pymysql://root@127.0.0.1/x"], {},
     "pip install pymysql"),
    (["study", "lenet", "--storage", "postgresql://u@127.0.0.1/x"], {},
     "names no driver; write postgresql+psycopg2://"),
    (["study", "lenet", "--storage", "postgresql+psycopg2://u:s3cret@127.0.0.1:1/x"], {},
     "cannot reach --storage 'postgresql+psycopg2://u:***@127.0.0.1:1/x'"),
    (["study", "lenet", "--storage", "sqlite:///missing/x.db"], {}, "no such folder missing"),
    (["study", "lenet", "--storage", "sqlite:///folder"], {}, "folder is a folder"),
    (["study", "lenet", "--storage", "sqlite:///notadb.db"], {}, "is not a SQLite database"),
    (["study", "lenet", "--storage", "sqlite:///file:made.db?mode=ro&uri=true"], {},
     "opens the database read-only (mode=ro)"),
    (["study", "lenet", "--storage", ""], {}, "--storage needs a URL"),
    (["study", "lenet", "--space", "latin1.toml"], {}, "latin1.toml: not UTF-8 text"),
    (["study", "lenet", "--space", "folder"], {}, "folder: is a folder"),
    (["study", "lenet", "--data-dir", "missing"], {}, "--data-dir missing: no such folder"),
    (["study", "lenet", "--resize", "4000"], {}, "input sides above 512 are not taken"),
    (["study", "lenet", "--threads", "99999999999"], {}, "--threads must be at most 1,024"),
    (["study", "lenet", "--timeout", "inf"], {}, "--timeout must be a finite number > 0"),
    # A study that exists under another setup: refused before a cost model is written to it.
    (["study", "net28", "--study-name", "made", "--storage", "sqlite:///made.db"], {},
     "study 'made' in sqlite:///made.db was run with other settings (network: stored 'lenet'"),
    (["study", "lenet", "--study-name", "foreign", "--storage", "sqlite:///foreign.db"], {},
     "was not made by hpsearch"),
    (["confirm", "made", "--storage", "sqlite:///made.db", "--data-dir", "missing"], {},
     "--data-dir missing: no such folder"),
    (["confirm", "made", "--storage", "sqlite:///made.db", "--device", "cuda:5"], {},
     "device 'cuda:5' is not usable here"),
    (["confirm", "made"], {}, "no study storage at hpsearch.db"),
    (["export", "made", "--storage", "sqlite:///made.db", "--out", "a" * 300], {},
     "File name too long"),
    (["export", "made", "--storage", "sqlite:///made.db", "--data-dir", "folder"], {},
     "--data-dir folder: missing train-images-idx3-ubyte"),
    (["report", "made", "--storage", "sqlite:///made.db", "--out", "notadb.db/r"], {},
     "notadb.db is a file, not a folder"),
    (["dashboard", "--storage", "sqlite:///nothere.db"], {}, "no study storage at nothere.db"),
    (["train", "lenet", "--json", "missing/x.json"], {}, "no such folder missing"),
    (["models", "LeNet", "--resize", "7"], {}, "unknown model 'LeNet'"),
]


@pytest.mark.parametrize("argv, env, says", REFUSED, ids=[" ".join(a)[:60] for a, _, _ in REFUSED])
def test_a_refused_run_says_why_in_one_line_and_writes_nothing(folder, argv, env, says):
    before = fuzz.snapshot(folder)
    ran = run_cli(f"hpsearch.{argv[0]}", *argv[1:], *(TINY if argv[0] == "study" else []),
                  cwd=folder, env={**fuzz.CLEAN_ENV, **env})
    assert ran.returncode == 2, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], ran.stderr
    assert fuzz.snapshot(folder) == before


def test_a_read_only_storage_is_refused_before_anything_runs(folder):
    """As root, only an immutable file (chattr +i) is read-only; where the file system has no
    such flag the case cannot be made."""
    import os

    if os.access(folder / "readonly.db", os.W_OK):
        pytest.skip("chattr +i is not available here: no read-only file to try")
    before = fuzz.snapshot(folder)
    for argv in (["study", "lenet", *TINY], ["confirm", "made"]):
        ran = run_cli(f"hpsearch.{argv[0]}", *argv[1:], "--storage", "sqlite:///readonly.db",
                      cwd=folder, env=fuzz.CLEAN_ENV)
        assert ran.returncode == 2 and "readonly.db is read-only" in ran.stderr, ran.stderr
    assert fuzz.snapshot(folder) == before


def test_a_space_without_an_epochs_parameter_plans_with_the_default_epochs(tmp_path):
    space = tmp_path / "bare.toml"
    space.write_text('network = "lenet"\n[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n')
    ran = run_cli("hpsearch.study", "lenet", "--space", str(space), "--dry-run",
                  "--train-subset", "500", "--val-size", "500", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "500 train / 500 val images at 28x28, 10 epochs" in ran.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_planning_ends_the_run_at_once(tmp_path, sig):
    """Before the trial loop takes the signals over, one ends the command at once: exit 130,
    one line (a dry run used to ignore SIGTERM and print its whole plan)."""
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "study", "resnet", "--dry-run"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**fuzz.CLEAN_ENV, "PATH": "/usr/bin:/bin",
                                            "PYTHONPATH": str(ROOT),
                                            # no timing kept: the plan times resnet's steps
                                            "HPSEARCH_COSTS": str(tmp_path / "costs.json")})
    time.sleep(4)  # in the middle of importing torch or of timing resnet's steps
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert "dry run:" not in out


def test_a_signal_whose_interrupt_was_lost_is_raised_again(small_splits):
    """A KeyboardInterrupt raised where Python ignores it (a finalizer) is not the end of it:
    the next training step raises it again, and a trial loop starting after it stops at once."""
    import torch

    from hpsearch import signals
    from hpsearch.engine.config import TrainConfig
    from hpsearch.engine.train import train
    from hpsearch.study.loop import StopFlag

    saved = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    try:
        signals.interrupt_on_signals()
        assert signals.received() is None and signals.stop_requested() is False
        with pytest.raises(KeyboardInterrupt):
            signals._interrupt(signal.SIGTERM, None)  # caught and dropped, as a finalizer would
        assert signals.received() == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(model="lenet", epochs=1, batch_size=64), small_splits,
                  torch.device("cpu"))
        flag = StopFlag()
        with flag.installed():
            assert flag() and flag.signum == signal.SIGTERM
        signals.interrupt_on_signals()  # a new command starts with none
        assert signals.received() is None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
