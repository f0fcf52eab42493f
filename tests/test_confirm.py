"""hpsearch.confirm: the top K re-trained over fresh seeds against the lab's baseline, the test
images touched only for the winner and the baseline; stored run by run and resumable."""

import math
import statistics

import optuna
import pytest

import study_builders as build
from conftest import run_cli
from hpsearch.results import confirm as C
from hpsearch.study.storage import open_storage


class FakeRuns:
    """A RunOne whose val accuracy depends on the config's lr (and a little on the seed);
    records every call; raises after KILL_AFTER calls (a killed process)."""

    def __init__(self, kill_after=None):
        self.calls, self.kill_after = [], kill_after

    def __call__(self, cfg, with_test):
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise KeyboardInterrupt
        self.calls.append((cfg.lr, cfg.seed, with_test))
        val = {0.003: 0.80, 0.05: 0.78, 0.9: 0.70, 0.3: 0.60}.get(cfg.lr, 0.5) + (cfg.seed % 7) / 1000
        return val, (val - 0.01 if with_test else None)


@pytest.fixture
def study(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    return build.lenet_study(url, "lenet", 5), url


def test_the_top_k_by_val_accuracy_are_confirmed_with_fresh_distinct_seeds(study):
    study, url = study
    cands = C.top_candidates(study, 3)
    # SEVERAL's completed val accuracies: adam 0.79, momentum 0.72, sgd 0.9 0.68, ...
    assert [c.key for c in cands] == ["trial 1", "trial 4", "trial 0"]
    assert [c.config.lr for c in cands] == [0.003, 0.05, 0.9]
    seeds = C.fresh_seeds(0, 5)
    assert len(set(seeds)) == 5 and 0 not in seeds and seeds == C.fresh_seeds(0, 5)
    runs = FakeRuns()
    block = C.confirm(study, open_storage(url), 3, 3, False, runs, lambda line: None)
    assert {s for _, s, _ in runs.calls} == set(C.fresh_seeds(0, 3))
    # Val runs: 3 configurations + the baseline (with test) x 3 seeds; then the winner's tests.
    assert len(runs.calls) == 3 * 3 + 3 + 3
    tested = [lr for lr, _, t in runs.calls if t]
    assert tested.count(0.003) == 3 and tested.count(0.9) == 3  # the winner; the baseline (lr 0.9)
    assert set(tested) == {0.003, 0.9}  # never the others
    assert block["winner"]["key"] == "trial 1"


def test_mean_std_ties_and_the_sentence_are_as_stated(study):
    study, url = study
    block = C.confirm(study, open_storage(url), 2, 3, False, FakeRuns(), lambda line: None)
    seeds = C.fresh_seeds(0, 3)
    want = [0.80 + (s % 7) / 1000 for s in seeds]
    first = block["configurations"][0]["val_accuracy"]
    assert first["mean"] == pytest.approx(statistics.fmean(want))
    assert first["std"] == pytest.approx(statistics.stdev(want)) and first["n"] == 3
    a, b = C.Stats(0.80, 0.01, 3), C.Stats(0.79, 0.01, 3)
    assert C.tied(a, b)  # 0.01 apart, 2 SE = 0.0163
    assert not C.tied(a, C.Stats(0.75, 0.01, 3))
    assert block["tied_with_winner"] == []  # 0.80 against 0.78: the fake's spread is tiny
    gain = block["improvement_over_baseline"]["points"]
    assert gain == pytest.approx(100 * (0.80 - 0.70), abs=1.0)
    assert block["sentence"].startswith("The best configuration (trial 1) beats the lab's "
                                        "baseline by +")
    assert study.user_attrs[C.ATTR]["winner"]["key"] == "trial 1"


def test_a_killed_confirmation_finishes_without_repeating_a_run(study):
    study, url = study
    with pytest.raises(KeyboardInterrupt):
        C.confirm(study, open_storage(url), 3, 2, False, FakeRuns(kill_after=5), lambda l: None)
    companion = optuna.load_study(study_name="lenet-confirm", storage=url)
    assert len(companion.trials) == 5
    rerun = FakeRuns()
    C.confirm(study, open_storage(url), 3, 2, False, rerun, lambda line: None)
    assert len(rerun.calls) == (3 + 2) * 2 - 5  # only what was not stored
    assert len(optuna.load_study(study_name="lenet-confirm", storage=url).trials) == 10


def test_fewer_completed_configurations_than_k_confirms_those_and_says_so(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    study = build.lenet_study(url, "lenet", 2)
    said = []
    block = C.confirm(study, open_storage(url), 3, 1, False, FakeRuns(), said.append)
    assert "fewer than --top 3" in block["note"] and said[0] == block["note"]
    assert len(block["configurations"]) == 3  # two configurations and the baseline


def test_bad_input_exits_2_with_one_line(study, tmp_path):
    study, url = study
    lab_url = f"sqlite:///{tmp_path}/lab.db"
    build.lab_study(lab_url, "alexnet")
    cases = [(["nosuch", "--storage", url], "no study named 'nosuch'"),
             (["lenet", "--storage", url, "--top", "0"], "--top must be > 0"),
             (["lenet", "--storage", url, "--seeds", "-1"], "--seeds must be > 0"),
             (["lab-alexnet", "--storage", lab_url, "--full"], "--full does not apply"),
             (["lenet", "--storage", url, "--seed", "3"], "unrecognized arguments: --seed")]
    for args, message in cases:
        p = run_cli("hpsearch.confirm", *args)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.slow
def test_confirm_trains_for_real_on_a_small_study(tmp_path, arrays):
    url = f"sqlite:///{tmp_path}/real.db"
    p = run_cli("hpsearch.study", "lenet", "--trials", "2", "--storage", url, "--train-subset",
                "500", "--val-size", "500", "--max-epochs", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    p = run_cli("hpsearch.confirm", "lenet", "--storage", url, "--top", "1", "--seeds", "2",
                "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("confirming 1 configurations and the lab's baseline over 2 "
                               "seeds, then the winner on the test images: 6 runs, ~")
    study = optuna.load_study(study_name="lenet", storage=url)
    block = study.user_attrs[C.ATTR]
    assert block["test_accuracy"]["winner"]["n"] == 2
    assert all(0 <= c["val_accuracy"]["mean"] <= 1 for c in block["configurations"])
    assert "points of test accuracy" in p.stdout
    runs = optuna.load_study(study_name="lenet-confirm", storage=url).trials
    assert sorted(t.user_attrs["role"] for t in runs) == ["test"] * 4 + ["val"] * 2
    assert not math.isnan(block["improvement_over_baseline"]["points"])


@pytest.mark.slow
def test_export_report_and_note_carry_the_confirmation(study, tmp_path):
    import json

    import optuna_dashboard

    study, url = study
    # Make the confirmed winner differ from the search's best: trial 4's lr confirms best.
    class Favour4(FakeRuns):
        def __call__(self, cfg, with_test):
            val, test = super().__call__(cfg, with_test)
            return (val + 0.1 if cfg.lr == 0.05 else val), test

    block = C.confirm(study, open_storage(url), 3, 2, False, Favour4(), lambda line: None)
    assert block["winner"]["key"] == "trial 4" and study.best_trial.number == 1
    out = tmp_path / "best.json"
    p = run_cli("hpsearch.export", "lenet", "--storage", url, "--out", str(out), "--no-test")
    assert p.returncode == 0, p.stderr
    assert "exporting the confirmed winner, trial 4" in p.stdout
    doc = json.loads(out.read_text())
    assert doc["best_trial"] == 4 and doc["confirmation"]["winner"]["key"] == "trial 4"
    assert doc["confirmation"]["test_accuracy"]["winner"]["n"] == 2
    assert "improvement_over_baseline" in doc["confirmation"]
    report = tmp_path / "report"
    p = run_cli("hpsearch.report", "lenet", "--storage", url, "--out", str(report))
    assert p.returncode == 0, p.stderr
    index = (report / "index.html").read_text()
    assert 'id="confirmation"' in index and block["sentence"].split(" (")[0] in index
    assert (report / "confirmation.png").stat().st_size > 1000
    assert block["sentence"] in (report / "summary.md").read_text()
    assert block["sentence"] in optuna_dashboard.get_note(study)
