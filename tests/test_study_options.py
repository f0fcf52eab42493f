"""The study command's options: parsed once, checked in one place, rendered back for workers."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, refused, run_cli
from hpsearch.study import storage as stores
from hpsearch.errors import UsageError
from hpsearch.cli.study import parse
from hpsearch.study import options
from hpsearch.study.options import Placement, to_argv
from hpsearch.study.drivers.workers import device_env, plan, split_trials


@pytest.mark.parametrize("flag", ["--job", "--trial", "--thread", "--sampler-s", "--total"])
def test_abbreviated_flags_are_refused(capsys, flag):
    assert "unrecognized arguments: " + flag in refused(capsys, ["lenet", flag, "2"])


@pytest.mark.parametrize("argv,message", [
    (["lenet", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["lenet", "--sampler-seed", "-5"], "--sampler-seed must be between 0 and 4294967295"),
    (["lenet", "--seed", str(2**32)], "--seed must be between 0 and 4294967295"),
    (["lenet", "--seed", "1.5"], "--seed must be a whole number, got '1.5'"),
    (["lenet", "--devices", " , "], "--devices needs at least one device"),
    (["lenet", "--devices", "cpu,cpu", "--device", "cpu"], "give --device or --devices"),
    (["lenet", "--two-objectives", "--pruner", "median"], "cannot judge a two-objective study"),
    (["lenet", "--warmup-epochs", "-1"], "--warmup-epochs must be >= 0, got -1"),
    (["lenet", "--warmup-epochs", "two"], "--warmup-epochs must be a whole number, got 'two'"),
])
def test_bad_values_name_the_flag_and_what_is_allowed(capsys, argv, message):
    assert message in refused(capsys, argv)


@pytest.mark.parametrize("argv,message", [
    (["--train-subset", "3"], "--train-subset must be between 10 (one image per class) and 50000"),
    (["--val-size", "3"], "--val-size must be between 10 (one image per class) and 59990, got 3"),
    (["--val-size", "60000"], "--val-size must be between 10"),
    (["--val-size", "59000", "--train-subset", "2000"],
     "--train-subset must be between 10 (one image per class) and 1000 (the training split left "
     "by --val-size 59000), got 2000"),
])
def test_split_sizes_that_cannot_give_every_class_an_image_are_refused(argv, message):
    with pytest.raises(UsageError) as err:
        parse(["lenet", *argv])
    assert str(err.value).startswith(message)


def test_every_option_survives_the_trip_to_a_worker_command_line(monkeypatch):
    url = "postgresql+psycopg2://u:secret@db:5432/s"
    monkeypatch.setenv(stores.ENV, url)
    opts = parse(["net28", "--trials", "7", "--total-trials", "30", "--timeout", "90.5",
                  "--study-name", "n2", "--space", "x.toml", "--sampler", "random",
                  "--pruner", "hyperband", "--warmup-epochs", "2", "--seed", "3", "--sampler-seed", "9",
                  "--device", "cpu", "--threads", "2", "--train-subset", "1000",
                  "--val-size", "500", "--resize", "32", "--precision", "float32",
                  "--max-epochs", "4", "--data-dir", "/d", "--heartbeat", "2", "--quiet",
                  "--tag", "w1 cpu"])
    argv = to_argv(opts)
    assert "secret" not in " ".join(argv)  # the storage travels in the environment
    assert parse(argv) == opts
    for extra in ([], ["--two-objectives", "--pruner", "none"], ["--devices", "cpu,cpu",
                                                                 "--jobs", "3"]):
        opts = parse(["lenet", *extra])
        assert parse(to_argv(opts)) == opts


def test_workers_get_their_own_device_share_seed_and_no_workers_of_their_own(monkeypatch):
    monkeypatch.setenv(stores.ENV, "sqlite:///w.db")
    opts = parse(["lenet", "--devices", "cpu,cpu", "--jobs=2", "--trials", "5", "--seed", "3",
                  "--threads", "1"])
    started = plan(opts, 5, {"PATH": "/bin"})
    workers = [parse(argv) for argv, _ in started]
    assert [w.extent.trials for w in workers] == [2, 1, 1, 1] == split_trials(5, 4)
    assert all(w.placement == Placement(device="cpu", threads=1) for w in workers)
    assert [w.tag for w in workers] == ["w0 cpu", "w1 cpu", "w2 cpu", "w3 cpu"]
    assert len({w.search.sampler_seed for w in workers}) == 4
    assert all(env[stores.ENV] == "sqlite:///w.db" and env["PATH"] == "/bin"
               for _, env in started)
    assert split_trials(None, 2) == [None, None]
    # Fewer trials than workers: the idle ones are not started.
    assert len(plan(options.replace(opts, trials=2), 2, {})) == 2


def test_each_cuda_worker_sees_only_its_own_gpu():
    assert device_env("cuda:1", {}) == ("cuda:0", {"CUDA_VISIBLE_DEVICES": "1"})
    assert device_env("cuda", {"X": "1"}) == ("cuda:0", {"X": "1", "CUDA_VISIBLE_DEVICES": "0"})
    # An index counts within the parent's own visible GPUs, as torch's indices do.
    assert device_env("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6"})[1]["CUDA_VISIBLE_DEVICES"] == "6"
    with pytest.raises(UsageError, match="shows 2 GPUs"):
        device_env("cuda:2", {"CUDA_VISIBLE_DEVICES": "4,6"})
    assert device_env("cpu", {"CUDA_VISIBLE_DEVICES": "1"}) == ("cpu", {"CUDA_VISIBLE_DEVICES": "1"})


def test_redact_hides_passwords():
    assert stores.redact("postgresql+psycopg2://u:s3cret@h:5432/db") == \
        "postgresql+psycopg2://u:***@h:5432/db"
    assert "s3cret" not in stores.redact("postgresql+psycopg2://h/db?password=s3cret")
    assert stores.redact("sqlite:///x.db") == "sqlite:///x.db"
    assert "s3cret" not in stores.redact("::not a url s3cret")


@pytest.mark.slow
@pytest.mark.parametrize("module", ["hpsearch.study", "hpsearch.report", "hpsearch.export",
                                    "hpsearch.dashboard", "hpsearch.train", "hpsearch.confirm",
                                    "hpsearch.worker"])
def test_help_does_not_import_torch(module):
    code = ("import runpy, sys\nsys.argv = ['x', '--help']\n"
            f"try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('torch loaded:', 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "usage: python -m " + module in p.stdout
    assert "torch loaded: False" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["study", "train", "confirm", "export", "report", "models",
                                     "dashboard", "worker", "bench"])
def test_hpsearch_command_help_does_not_import_torch(command):
    code = ("import runpy, sys\n"
            f"sys.argv = ['hpsearch', {command!r}, '--help']\n"
            "try:\n    runpy.run_module('hpsearch', run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('torch loaded:', 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"usage: hpsearch {command}" in p.stdout
    assert "torch loaded: False" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module", ["hpsearch.report", "hpsearch.export", "hpsearch.dashboard"])
def test_read_commands_in_the_wrong_folder_create_no_database(tmp_path, module):
    env = {k: v for k, v in os.environ.items() if k != stores.ENV}
    args = [] if module == "hpsearch.dashboard" else ["lenet"]
    p = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no study storage at hpsearch.db" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_bad_storage_url_is_one_line():
    p = run_cli("hpsearch.study", "lenet", "--storage", "::nonsense s3cret", "--trials", "1")
    assert p.returncode == 2 and "is not a storage URL" in p.stderr
    assert "s3cret" not in p.stderr and "Traceback" not in p.stderr
