import json
import shlex
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
from hypothesis import given, strategies as st
from optuna.trial import TrialState

from conftest import ROOT, run_cli
from hpsearch.study import space as spaces
from hpsearch.engine.config import CHANCE, MIN_SPLIT, TRAIN_IMAGES
from hpsearch.study.objective import Objective
from hpsearch.cli.study import parse
from hpsearch.study.output import quiet_optuna
from hpsearch.study.search import WARMUP_IMAGES, choices, make_pruner, warmup_at

FULL = WARMUP_IMAGES  # the default split's training images

# A study sized for tests: 1,000 training images, 1,000 validation images, 2 epochs.
SMALL = ["--train-subset", "1000", "--val-size", "1000", "--max-epochs", "2", "--quiet"]


# lenet.toml's [search]: its 1-epoch warm-up at 50,000 images is 50 epochs at SMALL's 1,000.
SHIPPED_LENET_SEARCH = {"sampler": "tpe", "pruner": "median", "warmup_epochs": 50}


def states(url: str, name: str) -> list[str]:
    study = optuna.load_study(study_name=name, storage=url)
    return [t.state.name for t in study.get_trials()]


@pytest.mark.slow
def test_study_runs_n_trials_and_stores_them(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "3", "--storage", url, *SMALL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\ntrial ") == 3 and "best trial" in p.stdout and url in p.stdout
    study = optuna.load_study(study_name="lenet", storage=url)
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    t = trials[0]
    for attr in ("train_loss", "train_acc", "val_acc", "seconds", "total_loss", "total_acc",
                 "train_seconds", "examples_per_s", "device", "params", "status", "reason",
                 "config"):
        assert attr in t.user_attrs, attr
    assert len(t.user_attrs["val_acc"]) == t.user_attrs["epochs_run"] == len(t.intermediate_values)
    assert t.user_attrs["params"] == 61_706 and t.params["epochs"] <= 2
    # The shipped defaults (studies/lenet.toml's [search], chosen by scripts/bench --search).
    assert study.user_attrs["search"] == SHIPPED_LENET_SEARCH
    # The same command again continues the same study.
    p = run_cli("hpsearch.study", "lenet", "--trials", "2", "--storage", url, *SMALL)
    assert p.returncode == 0, p.stderr
    assert "3 finished trials so far" in p.stdout
    assert len(states(url, "lenet")) == 5


def small_splits_for(arrays, n=1000):
    from hpsearch.engine import data
    return data.make_splits(arrays, torch.device("cpu"), val_size=1000, seed=0,
                            train_subset=n)


@pytest.mark.slow
def test_pruner_prunes_a_hopeless_trial(arrays, tmp_path):
    quiet_optuna()
    space = spaces.cap_epochs(spaces.load(ROOT / "hpsearch" / "studies" / "lenet.toml"), 4)
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", 4),
                                storage=f"sqlite:///{tmp_path}/p.db")
    for _ in range(3):  # three good trials set the median ...
        study.enqueue_trial({"optimizer": "adam", "lr_adam": 0.01, "batch_size": 64, "epochs": 2})
    # ... then plain SGD with a tiny step leaves LeNet's sigmoids at chance.
    study.enqueue_trial({"optimizer": "sgd", "lr_sgd": 0.01, "batch_size_sgd": 256, "epochs": 4})
    study.optimize(Objective(space, small_splits_for(arrays), torch.device("cpu")), n_trials=4)
    trials = study.get_trials()
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 3
    last = trials[3]
    assert last.state == TrialState.PRUNED
    assert last.user_attrs["status"] == "stopped"
    # Stopped as soon as its best val accuracy fell below the good trials' median (on 1,000
    # images those sit at chance after epoch 1 too, so ties can carry it to epoch 2).
    run = last.user_attrs["epochs_run"]
    assert run < 4 and last.user_attrs["reason"].startswith(f"pruned after epoch {run} ")


class PruneAlways(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_the_last_epoch_is_never_pruned(arrays):
    """Stopping after the last epoch saves nothing; the trial completes with its value."""
    quiet_optuna()
    splits = small_splits_for(arrays, 500)
    trials = []
    for epochs in (1, 2):
        space = spaces.cap_epochs(spaces.load(ROOT / "hpsearch" / "studies" / "lenet.toml"), epochs)
        study = optuna.create_study(direction="maximize", pruner=PruneAlways())
        study.enqueue_trial({"optimizer": "adam", "lr_adam": 0.01, "batch_size": 512,
                             "epochs": epochs})
        study.optimize(Objective(space, splits, torch.device("cpu")), n_trials=1)
        trials += study.get_trials()
    one, two = trials
    assert one.state == TrialState.COMPLETE and list(one.intermediate_values) == [1]
    assert two.state == TrialState.PRUNED and two.user_attrs["epochs_run"] == 1


def test_the_search_is_the_command_lines_else_the_space_files():
    """Lab studies run every epoch unless told otherwise; a flag beats the file's [search]."""
    lab = spaces.load(ROOT / "hpsearch" / "studies" / "lab-lenet.toml")
    assert choices(parse(["lab-lenet"]).search, lab, FULL).pruner == "none"
    assert choices(parse(["lab-lenet", "--pruner", "median"]).search, lab,
                   FULL).pruner == "median"
    lenet = spaces.load(ROOT / "hpsearch" / "studies" / "lenet.toml")
    assert choices(parse(["lenet"]).search, lenet, FULL) == lenet.search
    given = choices(parse(["lenet", "--sampler", "random", "--pruner", "hyperband",
                           "--warmup-epochs", "0"]).search, lenet, 2_000)
    assert given == spaces.SearchDefaults("random", "hyperband", 0)
    assert choices(parse(["lenet", "--two-objectives"]).search, lenet, FULL).pruner == "none"
    # The file's warm-up is counted in images seen; --warmup-epochs N is N epochs.
    assert choices(parse(["lenet"]).search, lenet, 20_000).warmup_epochs == 3
    assert choices(parse(["lenet", "--warmup-epochs", "1"]).search, lenet,
                   20_000).warmup_epochs == 1


@given(epochs=st.integers(0, 50), images=st.integers(MIN_SPLIT, TRAIN_IMAGES - MIN_SPLIT))
def test_a_warm_up_in_epochs_covers_the_images_of_the_full_split_and_no_more(epochs, images):
    warm = warmup_at(epochs, images)
    assert warm * images >= epochs * WARMUP_IMAGES
    assert warm == 0 or (warm - 1) * images < epochs * WARMUP_IMAGES


def test_divergence_reaches_the_sampler_as_chance_and_the_study_goes_on(arrays):
    """A diverged trial is COMPLETE at chance accuracy, so that TPE learns to avoid what blew
    up (it ignores FAIL trials); it keeps its status and reason."""
    quiet_optuna()
    base = spaces.cap_epochs(spaces.load(ROOT / "hpsearch" / "studies" / "net28.toml"), 1)
    sized = tuple(p for p in base.params if p.field in ("batch_size", "epochs"))
    study = optuna.create_study(direction="maximize")
    objective = Objective(spaces.Space(base.path, "net28", sized, {"optimizer": "sgd", "lr": 1e6}),
                          small_splits_for(arrays), torch.device("cpu"))
    study.optimize(objective, n_trials=1)  # no exception escapes
    objective.space = spaces.Space(base.path, "net28", sized, {"optimizer": "adam", "lr": 1e-3})
    study.optimize(objective, n_trials=1)
    first, second = study.get_trials()
    assert first.state == TrialState.COMPLETE and first.value == CHANCE
    assert first.user_attrs["status"] == "diverged" and "epoch 1, step" in first.user_attrs["reason"]
    assert second.state == TrialState.COMPLETE and second.value > 0.3
    from hpsearch.results import table
    assert table.state(first) == "DIVERGED"


def test_out_of_memory_reaches_the_sampler_as_chance(arrays, monkeypatch):
    from hpsearch.study import objective as objectives
    from hpsearch.engine.train import RunResult

    def oom(cfg, splits, device, **kw):
        return RunResult(cfg, status="out_of_memory",
                         reason=f"out of memory (batch {cfg.batch_size}, size {cfg.size})")

    monkeypatch.setattr(objectives, "train", oom)
    quiet_optuna()
    space = spaces.cap_epochs(spaces.load(ROOT / "hpsearch" / "studies" / "lenet.toml"), 1)
    study = optuna.create_study(direction="maximize")
    study.optimize(objectives.Objective(space, small_splits_for(arrays, 100),
                                        torch.device("cpu")), n_trials=2)
    assert [t.value for t in study.trials] == [CHANCE, CHANCE]
    assert study.trials[0].user_attrs["reason"].startswith("out of memory (batch ")
    from hpsearch.results import table
    assert table.state(study.trials[0]) == "OUT OF MEMORY"


BAD_SPACES = [
    ('network = "lenet"\n[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\nhi = 2\n',
     "params.lr: unknown key 'hi'; allowed: type, low, high"),
    ('network = "lenet"\n[params.lr]\ntype = "float"\nlow = 1.0\nhigh = 0.1\n',
     "params.lr: low (1.0) > high (0.1)"),
    ('network = "lenet"\n[params.weight_decay]\ntype = "float"\nlow = 0.0\nhigh = 0.1\nlog = true\n',
     "params.weight_decay: log scale needs low > 0"),
    ('network = "lenet"\n[params.batch_size]\ntype = "categorical"\nchoices = [64, "big"]\n',
     "params.batch_size.choices: batch_size must be a whole number >= 1, got 'big'"),
    ('network = "lenet"\n[params.optimizer]\ntype = "categorical"\nchoices = ["sgd", "lion"]\n',
     "optimizer 'lion' is unknown; allowed: sgd, momentum"),
    ('network = "lenet5"\n[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n',
     "network: 'lenet5' is not a network; allowed: lenet"),
    ('network = "lenet"\n[params.momentum]\ntype = "float"\nlow = 0.1\nhigh = 0.9\n',
     "optimizer 'sgd' takes no momentum"),
    ('network = "lenet"\n[params.lr\n', "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_SPACES)
def test_bad_space_is_refused_in_process(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(spaces.SpaceError, match=str(path)) as err:
        spaces.load(path)
    assert message in str(err.value)


def test_bad_space_file_exits_2_before_any_trial_and_leaves_storage_intact(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url, *SMALL)
    assert p.returncode == 0, p.stderr
    before = (tmp_path / "s.db").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_SPACES[1][0])
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url, "--space", str(bad),
                *SMALL)
    assert p.returncode == 2
    assert str(bad) in p.stderr and "low (1.0) > high (0.1)" in p.stderr
    assert "Traceback" not in p.stderr and "trial" not in p.stdout
    assert (tmp_path / "s.db").read_bytes() == before


@pytest.mark.slow
def test_resumed_study_must_keep_its_settings(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    assert run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url,
                   *SMALL).returncode == 0
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url,
                "--train-subset", "2000", "--val-size", "1000", "--max-epochs", "2")
    assert p.returncode == 2 and "train_subset: stored 1000, now 2000" in p.stderr
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url, *SMALL,
                "--resize", "32")
    assert p.returncode == 2 and "resize: stored None, now 32" in p.stderr
    assert "the search space's content" in p.stderr  # the fixed size is part of the space


@pytest.mark.slow
def test_precision_reaches_every_trial_and_is_refused_when_unknown(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url, *SMALL,
                "--precision", "float32")
    assert p.returncode == 0, p.stderr
    study = optuna.load_study(study_name="lenet", storage=url)
    assert study.user_attrs["setup"]["precision"] == "float32"
    assert study.trials[0].user_attrs["config"]["precision"] == "float32"
    p = run_cli("hpsearch.study", "lenet", "--trials", "1", "--storage", url, *SMALL,
                "--precision", "bfloat16")
    assert p.returncode == 2 and "precision: stored 'float32', now 'bfloat16'" in p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('network = "lenet"\n[fixed]\nprecision = "fp8"\n')
    with pytest.raises(spaces.SpaceError, match="precision 'fp8' is unknown; allowed: auto"):
        spaces.load(bad)


@pytest.mark.slow
def test_sigkill_loses_nothing_and_the_same_command_finishes(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cmd = [sys.executable, "-m", "hpsearch.study", "lenet", "--total-trials", "5", "--storage",
           url, "--heartbeat", "1", "--train-subset", "3000", "--val-size", "1000",
           "--max-epochs", "3", "--pruner", "none", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The kill lands mid-trial: once two trials are complete and a third has reported an epoch.
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)
        try:
            trials = optuna.load_study(study_name="lenet", storage=url).get_trials()
        except Exception:  # the study is not created yet
            continue
        if (sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and
                any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials)):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = states(url, "lenet")
    assert killed.count("COMPLETE") >= 2
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    final = optuna.load_study(study_name="lenet", storage=url).get_trials()
    finished = [t for t in final if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5
    assert "RUNNING" not in [t.state.name for t in final]
    # Every trial finished before the kill is still there, unchanged.
    for number, state in enumerate(killed):
        if state == "COMPLETE":
            assert final[number].state == TrialState.COMPLETE
    # The killed trial was failed through its stale heartbeat and retried with its parameters.
    n = killed.index("RUNNING")
    assert final[n].state == TrialState.FAIL
    retried = [t for t in final if t.system_attrs.get("failed_trial") == n]
    assert retried and retried[0].params == final[n].params


def sigint_study(url: str, epochs: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hpsearch.study", "lenet", "--trials", "50", "--storage", url,
           "--train-subset", "3000", "--val-size", "1000", "--max-epochs", str(epochs),
           "--pruner", "none", "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_sigint_between_trials_exits_cleanly_and_keeps_finished_trials(tmp_path):
    """The SIGINT lands just after a trial line, while Optuna collects garbage after the
    trial: a KeyboardInterrupt raised there used to be swallowed, and the study ran on."""
    url = f"sqlite:///{tmp_path}/s.db"
    proc = sigint_study(url, 3)
    for line in proc.stdout:
        if line.startswith("trial "):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1].startswith("interrupted: ")
    assert "run the same command to continue" in err and "Traceback" not in err
    assert states(url, "lenet").count("COMPLETE") >= 1


@pytest.mark.slow
def test_sigint_mid_trial_ends_that_trial_at_its_next_progress_point(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    proc = sigint_study(url, 20)
    deadline = time.time() + 120
    while time.time() < deadline:  # a trial that has reported an epoch, with 19 to go
        time.sleep(0.05)
        try:
            trials = optuna.load_study(study_name="lenet", storage=url).get_trials()
        except Exception:
            continue
        if any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = optuna.load_study(study_name="lenet", storage=url).get_trials()[-1]
    assert last.state == TrialState.FAIL
    assert last.user_attrs["status"] == "interrupted" and last.user_attrs["epochs_run"] < 20
    assert "[interrupted]" in out


LAB = {  # the lab's: baseline (optimizer, lr, epochs, batch size, workers), then the variations
    "lenet": (("sgd", 0.9, 10, 256, 0), {"optimizer": ["adam"], "lr": [0.01, 1.5, 3],
                                         "epochs": [20, 100, 150], "batch_size": [128, 512]}),
    "alexnet": (("sgd", 0.01, 10, 128, 4), {"optimizer": ["adam"], "lr": [0.001, 0.5],
                                            "epochs": [5, 20], "batch_size": [64, 256],
                                            "workers": [8]}),
    "vgg": (("sgd", 0.05, 10, 128, 4), {"optimizer": ["adam"], "lr": [0.5, 0.001],
                                        "epochs": [5, 20], "batch_size": [64, 256],
                                        "workers": [8]}),
    "resnet": (("sgd", 0.05, 10, 256, 0), {"optimizer": ["adam"], "lr": [0.001, 0.5],
                                           "epochs": [5, 20], "batch_size": [128, 512]}),
}
FACTORS = ("optimizer", "lr", "epochs", "batch_size", "workers")


@pytest.mark.parametrize("network", list(LAB))
def test_lab_files_hold_exactly_the_labs_configurations(network):
    from hpsearch import models
    space = spaces.load(ROOT / "hpsearch" / "studies" / f"lab-{network}.toml")
    base = dict(zip(FACTORS, LAB[network][0]))
    expected = [base] + [{**base, k: v} for k, vs in LAB[network][1].items() for v in vs]
    assert space.network == network
    assert list(space.lab_rows) == expected
    assert space.lab_labels[0] == "baseline"
    assert models.baseline(network) == base  # the train command's defaults agree


@pytest.mark.slow
def test_lab_study_runs_every_row_once(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    args = ["hpsearch.study", "lab-lenet", "--storage", url, "--train-subset", "500",
            "--val-size", "500", "--max-epochs", "1", "--quiet"]
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    trials = optuna.load_study(study_name="lab-lenet", storage=url).get_trials()
    assert [t.user_attrs["lab_row"] for t in trials] == list(range(10))
    assert trials[1].params["optimizer"] == "adam" and trials[1].user_attrs["lab_label"] == "optimizer=adam"
    p = run_cli(*args)  # nothing left to run
    assert p.returncode == 0 and len(states(url, "lab-lenet")) == 10


@pytest.mark.slow
def test_export_json(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    assert run_cli("hpsearch.study", "lenet", "--trials", "2", "--storage", url,
                   *SMALL).returncode == 0
    out = tmp_path / "best.json"
    p = run_cli("hpsearch.export", "lenet", "--storage", url, "--out", str(out),
                "--train-subset", "1000", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["study"] == "lenet" and doc["network"] == "lenet"
    assert doc["directions"] == ["maximize"]
    study = optuna.load_study(study_name="lenet", storage=url)
    assert doc["best_value"] == study.best_value and doc["params"] == study.best_params
    assert doc["user_attrs"]["total_acc"] == study.best_trial.user_attrs["total_acc"]
    assert 0 < doc["test"]["test_accuracy"] <= 1
    assert "10000 Fashion-MNIST test images" in doc["test"]["evaluated_on"]
    # The command, parsed back by hpsearch.train, trains exactly the best trial's config.
    from dataclasses import asdict
    from hpsearch.cli import train
    argv = shlex.split(doc["command"])
    assert argv[:3] == ["python", "-m", "hpsearch.train"]
    args = train.parse_args(argv[3:])
    assert asdict(train.config_from_args(args)) == study.best_trial.user_attrs["config"]
    assert (args.train_subset, args.val_size) == (1000, 1000)
    assert set(doc["versions"]) == {"torch", "torchvision", "optuna"}
    p = run_cli("hpsearch.export", "nosuch", "--storage", url)
    assert p.returncode == 2 and "studies there: lenet" in p.stderr


@pytest.mark.slow
def test_two_objectives_export_a_pareto_front(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "3", "--two-objectives", "--storage", url,
                *SMALL)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "best.json"
    p = run_cli("hpsearch.export", "lenet", "--storage", url, "--out", str(out), "--no-test")
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["directions"] == ["maximize", "minimize"]
    assert doc["pareto_front"] and all(len(t["values"]) == 2 for t in doc["pareto_front"])
