"""Warm starts (--warm-start): which trials are copied and which configurations queued, that
copies are not counted as runs of the new study, the refusals, and a real study seeded from
another one."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from benchmarks import fuzz
from conftest import run_cli
from hpsearch.engine.config import TrainConfig
from hpsearch.study import budget as budgets, output, warm
from hpsearch.study import space as spaces
from hpsearch.study import storage as stores
from hpsearch.study.resume import fit_config
from study_builders import LENET_DISTRIBUTIONS, add, new_study

# The builders' lenet trials (study_builders.LENET_DISTRIBUTIONS) as a space file: each of
# their parameters fits it as it is.
SPACE = """network = "lenet"
[params.optimizer]
type = "categorical"
choices = ["sgd", "momentum", "adam"]
[params.lr_sgd]
field = "lr"
optimizers = ["sgd", "momentum"]
type = "float"
low = 0.01
high = 3.0
log = true
[params.lr_adam]
field = "lr"
optimizers = ["adam"]
type = "float"
low = 1e-4
high = 3e-2
log = true
[params.batch_size]
type = "categorical"
choices = [64, 128, 256, 512]
[params.epochs]
type = "int"
low = 1
high = 3
"""
SOURCE = [  # kind, params, val acc per epoch
    ("complete", {"optimizer": "adam", "lr_adam": 0.003, "batch_size": 64, "epochs": 3},
     [0.70, 0.76, 0.79]),
    ("complete", {"optimizer": "sgd", "lr_sgd": 0.3, "batch_size": 128, "epochs": 2}, [0.5, 0.61]),
    ("complete", {"optimizer": "momentum", "lr_sgd": 0.05, "batch_size": 64, "epochs": 2},
     [0.62, 0.72]),
    ("complete", {"optimizer": "sgd", "lr_sgd": 2.0, "batch_size": 512, "epochs": 3},
     [0.40, 0.58, 0.66]),
    ("chance", {"optimizer": "sgd", "lr_sgd": 0.01, "batch_size": 512, "epochs": 2}, [0.1, 0.1]),
    ("pruned", {"optimizer": "sgd", "lr_sgd": 0.02, "batch_size": 512, "epochs": 3}, [0.1, 0.11]),
]


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "lenet-small.toml"
    path.write_text(SPACE)
    return spaces.load(path)


def source_study(url: str, name: str = "src") -> optuna.Study:
    study = new_study(url, name)
    for kind, params, acc in SOURCE:
        add(study, kind, params, acc)
    return study


def target(url: str, name: str, **setup) -> tuple[optuna.Study, stores.TrialClaim]:
    study = new_study(url, name)
    if setup:
        study.set_user_attr("setup", {**study.user_attrs["setup"], **setup})
    return study, stores.TrialClaim(url, name)


def test_same_data_copies_every_finished_run_and_queues_no_run_already_known(tmp_path, space):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    src = source_study(url)
    study, claim = target(url, "new")
    doc = warm.apply(study, space, ("src",), stores.open_storage(url), claim)
    copies = [t for t in study.trials if output.COPIED in t.user_attrs]
    finished = [t for t in src.trials if t.state in output.FINISHED]
    assert doc["copied"] == {"src": len(finished)} == {"src": 6}
    assert sorted(t.user_attrs[output.COPIED] for t in copies) == sorted(
        f"src trial {t.number}" for t in finished)
    for c in copies:  # the same run: its value, epochs and state, under this space's names
        orig = src.trials[int(c.user_attrs[output.COPIED].split()[-1])]
        assert (c.state, c.values, c.intermediate_values, c.params) == (
            orig.state, orig.values, orig.intermediate_values, orig.params)
    # Every best is held by a copy: nothing is queued to train it again.
    assert doc["queued"] == []
    assert not study.get_trials(states=(TrialState.WAITING,))
    # Copies are not runs of this study: counts, budget spent and calibration leave them out.
    assert output.finished_here(study.trials) == 0
    assert budgets.calibration(study, lambda cfg: 1.0) == 1.0
    assert study.user_attrs[output.WARM_START] == doc
    assert "**Warm start:** warm start from src (src: 6 finished trials copied)" in \
        optuna_dashboard_note(study)


def optuna_dashboard_note(study: optuna.Study) -> str:
    import optuna_dashboard

    return optuna_dashboard.get_note(study)


def test_other_data_copies_nothing_and_queues_the_best_brought_into_range(tmp_path, space):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    source_study(url)
    study, claim = target(url, "new", train_subset=5000)
    narrow = spaces.cap_epochs(space, 2)  # the best ran 3 epochs: it comes in at 2
    doc = warm.apply(study, narrow, ("src",), stores.open_storage(url), claim)
    assert doc["copied"] == {"src": None}
    assert [q["from"] for q in doc["queued"]] == ["src trial 0 (0.7900)", "src trial 2 (0.7200)",
                                                 "src trial 3 (0.6600)"]
    assert doc["queued"][0]["params"] == {"optimizer": "adam", "lr_adam": 0.003,
                                          "batch_size": 64, "epochs": 2}
    assert doc["queued"][0]["moved"] == ["epochs 3 -> 2"]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        q["params"] for q in doc["queued"]]
    assert all(output.COPIED not in t.user_attrs for t in study.trials)


@pytest.mark.parametrize("epochs", ["type = \"int\"\nlow = 1\nhigh = 10",
                                    "type = \"categorical\"\nchoices = [2, 3, 8]"])
def test_each_sources_best_is_queued_at_the_longest_epochs_and_the_rest_at_their_own(
        tmp_path, epochs):
    path = tmp_path / "lenet-long.toml"
    path.write_text(SPACE.replace('type = "int"\nlow = 1\nhigh = 3', epochs))
    longer = spaces.load(path)
    most = 10 if "int" in epochs else 8
    url = f"sqlite:///{tmp_path / 'w.db'}"
    source_study(url)
    source_study(url, "src2")
    study, claim = target(url, "new", train_subset=5000)
    doc = warm.apply(study, longer, ("src", "src2"), stores.open_storage(url), claim)
    queued = doc["queued"]
    # src's best (trial 0, 3 epochs) at the longest; its 2nd and 3rd as they ran. src2 holds
    # the same runs: only its promoted best would differ, and that one is queued already.
    assert [q["from"] for q in queued] == ["src trial 0 (0.7900)", "src trial 2 (0.7200)",
                                           "src trial 3 (0.6600)"]
    assert [q["params"]["epochs"] for q in queued] == [most, 2, 3]
    assert queued[0]["moved"] == [f"epochs 3 -> {most} {output.PROMOTED}"]
    assert queued[1]["moved"] == queued[2]["moved"] == []
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [q["params"] for q in queued]
    assert output.warm_start_line(doc).endswith(
        "3 of their best configurations queued after the baseline, 1 at the most epochs a "
        "trial trains here")


def test_a_best_copied_as_it_ran_is_queued_again_only_at_the_longest_epochs(tmp_path):
    path = tmp_path / "lenet-long.toml"
    path.write_text(SPACE.replace("high = 3\n", "high = 6\n"))
    url = f"sqlite:///{tmp_path / 'w.db'}"
    source_study(url)
    study, claim = target(url, "new")  # the same data: every finished run is copied
    doc = warm.apply(study, spaces.load(path), ("src",), stores.open_storage(url), claim)
    assert doc["copied"] == {"src": 6}
    assert [(q["from"], q["params"]["epochs"]) for q in doc["queued"]] == [
        ("src trial 0 (0.7900)", 6)]


def test_a_warm_start_is_done_once_and_after_the_baseline(tmp_path, space):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    source_study(url)
    study, claim = target(url, "new", train_subset=5000)
    baseline = {"optimizer": "sgd", "lr_sgd": 0.9, "batch_size": 256, "epochs": 3}
    study.enqueue_trial(baseline, user_attrs={"baseline": "the lab's baseline"})
    storage = stores.open_storage(url)
    first = warm.apply(study, space, ("src",), storage, claim)
    again = warm.apply(study, space, ("src",), storage, claim)
    assert first == again
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert waiting[0].system_attrs["fixed_params"] == baseline
    assert len(waiting) == 1 + len(first["queued"]) == 4


def test_a_copy_of_the_queued_baseline_is_left_out(tmp_path, space):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    src = source_study(url)
    study, claim = target(url, "new")
    queued = dict(src.trials[1].params)  # as if it were this study's baseline
    study.enqueue_trial(queued)
    doc = warm.apply(study, space, ("src",), stores.open_storage(url), claim)
    assert doc["copied"] == {"src": 5}
    assert queued not in [t.params for t in study.trials if t.state != TrialState.WAITING]


def test_a_field_the_space_fixes_otherwise_is_another_run(tmp_path, space):
    """The source searched a cosine schedule; here the schedule is constant: not a copy."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    src = new_study(url, "src")
    params = {"optimizer": "adam", "lr_adam": 0.003, "batch_size": 64, "epochs": 3}
    config = {**TrainConfig(model="lenet", optimizer="adam", lr=0.003, batch_size=64,
                            epochs=3).__dict__, "schedule": "cosine"}
    add(src, "complete", params, [0.7, 0.75, 0.8], LENET_DISTRIBUTIONS, config)
    study, claim = target(url, "new")
    doc = warm.apply(study, space, ("src",), stores.open_storage(url), claim)
    assert doc["copied"] == {"src": 0}
    assert [q["params"] for q in doc["queued"]] == [params]


def test_fit_config_follows_the_optimizer_and_its_defaults(space):
    net28 = spaces.load(warm_space_path("net28"))
    params, moved = fit_config(net28, {**TrainConfig(model="lenet").__dict__,
                                       "optimizer": "momentum", "lr": 0.1, "momentum": None,
                                       "epochs": 30})
    assert params["momentum"] == 0.9 and "momentum" not in " ".join(moved)
    assert params["epochs"] == 10 and "epochs 30 -> 10" in moved
    # An optimizer this space lacks: its first choice, with that optimizer's parameters.
    params, moved = fit_config(space, {**TrainConfig(model="lenet").__dict__,
                                       "optimizer": "rmsprop", "lr": 0.001})
    assert params["optimizer"] == "sgd" and "lr_sgd" in params and "lr_adam" not in params


def warm_space_path(network: str):
    from hpsearch.study.resume import SHIPPED

    return SHIPPED / f"{network}.toml"


@pytest.fixture
def folder(tmp_path):
    """made.db of the fuzz (study 'made': lenet, two trials) plus a net28 study, a lenet
    study at chance, another good lenet study and one hpsearch did not make."""
    root = fuzz.make_folder(tmp_path / "f")
    url = f"sqlite:///{root / 'made.db'}"
    other = new_study(url, "other-net", network="net28")
    add(other, "complete", {"optimizer": "adam", "lr_adam": 0.003, "batch_size": 64,
                            "epochs": 1}, [0.7])
    empty = new_study(url, "empty")
    add(empty, "chance", {"optimizer": "sgd", "lr_sgd": 0.01, "batch_size": 512, "epochs": 1},
        [0.1])
    good = new_study(url, "good")
    add(good, "complete", {"optimizer": "sgd", "lr_sgd": 0.9, "batch_size": 256, "epochs": 1},
        [0.6])
    foreign = optuna.create_study(study_name="foreign", storage=url)
    foreign.add_trial(optuna.trial.create_trial(value=0.5))  # no setup: not made by hpsearch
    stores.open_storage(url).engine.dispose()
    yield root
    fuzz.release_folder(root)


@pytest.mark.parametrize("argv, message", [
    (["lenet", "--warm-start", "lenet"], "a study cannot warm-start from itself"),
    (["lenet", "--warm-start", "nosuch"], "no study 'nosuch' in sqlite:///made.db"),
    (["lenet", "--warm-start", "other-net"], "study 'other-net' searched net28, not lenet"),
    (["lenet", "--warm-start", "empty"], "has no completed trial above chance"),
    (["lenet", "--warm-start", "good,foreign"], "study 'foreign' was not made by hpsearch"),
    (["lenet", "--warm-start", "made,lenet"], "a study cannot warm-start from itself"),
    (["lab-lenet", "--warm-start", "made"], "lab-lenet runs the lab's rows"),
    (["lenet", "--warm-start", " , "], "--warm-start needs study names"),
])
def test_refusals_are_one_line_and_write_nothing(folder, argv, message):
    before = fuzz.snapshot(folder)
    ran = run_cli("hpsearch.study", *argv, "--storage", "sqlite:///made.db", cwd=folder,
                  env=fuzz.CLEAN_ENV)
    assert ran.returncode == 2, ran.stderr
    assert message in ran.stderr and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert fuzz.snapshot(folder) == before


def test_a_study_that_exists_keeps_its_warm_start(folder):
    """Seeding is for a new study: an existing one runs on with the same sources only."""
    url = f"sqlite:///{folder / 'made.db'}"
    study = new_study(url, "seeded")
    study.set_user_attr(output.WARM_START, {"sources": ["made"], "copied": {}, "queued": []})
    add(study, "complete", {"optimizer": "adam", "lr_adam": 0.003, "batch_size": 64,
                            "epochs": 1}, [0.7])
    warm.check_sources(url, "seeded", ("made",), "lenet")  # the same: it continues
    for sources, told in ((("good",), "was warm-started from made: give --warm-start made"),
                          (("made", "good"), "--warm-start made to continue it")):
        with pytest.raises(Exception, match=told):
            warm.check_sources(url, "seeded", sources, "lenet")
    with pytest.raises(Exception, match="was not warm-started: leave --warm-start out"):
        warm.check_sources(url, "other-net", ("made",), "lenet")


@pytest.mark.slow
def test_a_real_study_starts_from_another_and_counts_only_its_own_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    fid = ["--train-subset", "1000", "--val-size", "500", "--max-epochs", "1", "--quiet",
           "--storage", url]
    first = run_cli("hpsearch.study", "net28", "--study-name", "a", "--trials", "3", *fid)
    assert first.returncode == 0, first.stderr
    ran = run_cli("hpsearch.study", "net28", "--study-name", "b", "--warm-start", "a",
                  "--total-trials", "2", *fid)
    assert ran.returncode == 0, ran.stderr
    storage = stores.open_storage(url)
    a, b = (optuna.load_study(study_name=n, storage=storage) for n in "ab")
    copies = [t for t in b.trials if output.COPIED in t.user_attrs]
    own = [t for t in b.trials if output.COPIED not in t.user_attrs
           and t.state in output.FINISHED]
    # a's baseline runs again as b's trial 0; a's other two trials are copied, not re-run.
    assert len(copies) == 2 and len(own) == 2
    assert b.trials[0].user_attrs.get("baseline") and b.trials[0].params == a.trials[0].params
    assert {t.params["optimizer"] for t in copies} == {t.params["optimizer"]
                                                       for t in a.trials[1:]}
    assert "warm start from a (a: 2 finished trials copied)" in ran.stdout
    assert "warm start from a:" in ran.stdout  # the plan's line
    # The same command again continues the study; the warm start is not done twice.
    again = run_cli("hpsearch.study", "net28", "--study-name", "b", "--warm-start", "a",
                    "--total-trials", "3", *fid)
    assert again.returncode == 0, again.stderr
    b = optuna.load_study(study_name="b", storage=storage)
    assert sum(output.COPIED in t.user_attrs for t in b.trials) == 2
    assert output.finished_here(b.trials) == 3
