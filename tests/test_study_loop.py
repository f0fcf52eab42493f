"""The trial loop in-process, with a stub objective: counts, the claim, the total shared by
workers, WAITING retries, stopping; lab rows; the stored setup a resume must keep."""

import signal
import threading

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from conftest import ROOT
from hpsearch.study import space as spaces
from hpsearch.study import storage as stores
from hpsearch.errors import UsageError
from hpsearch.study.loop import Limits, StopFlag, room_for_a_trial, run_trials
from hpsearch.cli.study import parse
from hpsearch.study.output import quiet_optuna
from hpsearch.study.resume import (at_fidelity, check_resume, enqueue_lab_rows, lab_rows_done,
                                   read_space, space_digest, study_setup, trials_for_run,
                                   with_precision)


class StubObjective:
    """Suggests x, returns it; records how many trials it ran and whether the claim was free."""

    def __init__(self, claim=None, stop_after=None, flag=None):
        self.calls, self.claim, self.stop_after, self.flag = 0, claim, stop_after, flag

    def __call__(self, trial):
        self.calls += 1
        if self.claim is not None:  # the loop lets go of the claim once the trial is RUNNING
            assert self.claim._file is None
        if self.stop_after is not None and self.calls >= self.stop_after:
            self.flag.signum = signal.SIGINT
        return trial.suggest_float("x", 0, 1)


def new_study(tmp_path, name="s"):
    quiet_optuna()
    url = f"sqlite:///{tmp_path}/loop.db"
    study = optuna.create_study(study_name=name, storage=stores.open_storage(url),
                                direction="maximize")
    return study, url


def run(study, objective, limits, url, stop=lambda: False):
    return run_trials(study, objective, limits, grace=1,
                      claim=stores.TrialClaim(url, study.study_name),
                      report=lambda s, t: None, stop=stop)


def add(study, state, x=0.5):
    study.add_trial(create_trial(state=state, params={"x": x},
                                 distributions={"x": FloatDistribution(0, 1)},
                                 value=x if state == TrialState.COMPLETE else None))


def counts(study):
    return [t.state.name for t in study.get_trials()]


def test_runs_exactly_the_trials_asked(tmp_path):
    study, url = new_study(tmp_path)
    objective = StubObjective(claim=stores.TrialClaim(url, "s"))
    assert run(study, objective, Limits(3, None, None), url) is False
    assert objective.calls == 3 and counts(study) == ["COMPLETE"] * 3


def test_stops_at_the_study_total_counting_earlier_trials(tmp_path):
    study, url = new_study(tmp_path)
    for _ in range(2):
        add(study, TrialState.COMPLETE)
    add(study, TrialState.PRUNED)
    add(study, TrialState.FAIL)  # does not count
    objective = StubObjective()
    run(study, objective, Limits(None, 5, None), url)
    assert objective.calls == 2
    assert sum(s in ("COMPLETE", "PRUNED") for s in counts(study)) == 5


def test_a_waiting_retry_does_not_make_room_while_running_trials_fill_the_total(tmp_path):
    study, _ = new_study(tmp_path)
    add(study, TrialState.COMPLETE)
    add(study, TrialState.RUNNING)
    study.enqueue_trial({"x": 0.1})  # a WAITING retry
    assert room_for_a_trial(study, 2) is None  # 1 finished + 1 running fill it: wait
    assert room_for_a_trial(study, 3) is True
    add(study, TrialState.COMPLETE)
    assert room_for_a_trial(study, 2) is False


def test_a_waiting_trial_runs_first_when_there_is_room(tmp_path):
    study, url = new_study(tmp_path)
    study.enqueue_trial({"x": 0.25})
    run(study, StubObjective(), Limits(1, None, None), url)
    assert study.trials[0].params == {"x": 0.25} and study.trials[0].state == TrialState.COMPLETE


def test_two_loops_on_one_storage_land_on_the_total(tmp_path):
    study, url = new_study(tmp_path)
    studies = [optuna.load_study(study_name="s", storage=stores.open_storage(url))
               for _ in range(2)]
    threads = [threading.Thread(target=run, args=(s, StubObjective(), Limits(None, 9, None), url))
               for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counts(study) == ["COMPLETE"] * 9


def test_a_stop_request_ends_the_loop_between_trials(tmp_path):
    study, url = new_study(tmp_path)
    flag = StopFlag()
    objective = StubObjective(stop_after=2, flag=flag)
    assert run(study, objective, Limits(10, None, None), url, stop=flag) is True
    assert objective.calls == 2 and counts(study) == ["COMPLETE"] * 2


def test_a_hand_back_ends_the_loop_between_trials_without_waiting_for_others(tmp_path):
    study, url = new_study(tmp_path)
    add(study, TrialState.RUNNING)  # another worker's trial: the loop must not wait for it
    objective, asked = StubObjective(), []
    ended = run_trials(study, objective, Limits(10, None, None), grace=30,
                       claim=stores.TrialClaim(url, "s"), report=lambda s, t: None,
                       stop=lambda: False, hand_back=lambda: asked.append(1) or len(asked) > 2)
    assert ended is False and objective.calls == 2 and len(asked) == 3
    assert counts(study) == ["RUNNING", "COMPLETE", "COMPLETE"]


def test_stop_flag_first_signal_asks_second_stops_at_once():
    flag = StopFlag()
    assert not flag()
    flag._handle(signal.SIGTERM, None)
    assert flag() and flag.signum == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        flag._handle(signal.SIGINT, None)


def space_of(opts):
    """The space file OPTS name, at their fidelity (as a study run puts it)."""
    return at_fidelity(read_space(opts.name, opts.search.space), opts.fidelity)


def lab_opts(tmp_path):
    return parse(["lab-lenet", "--storage", f"sqlite:///{tmp_path}/lab.db", "--max-epochs", "1"])


def test_lab_rows_are_queued_once_even_by_workers_starting_together(tmp_path):
    opts = lab_opts(tmp_path)
    space = with_precision(space_of(opts), "float32")
    study, url = new_study(tmp_path, "lab-lenet")
    barrier = threading.Barrier(4)

    def enqueue():
        barrier.wait()
        enqueue_lab_rows(optuna.load_study(study_name="lab-lenet", storage=url), space,
                         stores.TrialClaim(url, "lab-lenet"))

    threads = [threading.Thread(target=enqueue) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = [t.user_attrs["lab_row"] for t in study.get_trials()]
    assert sorted(rows) == list(range(len(space.lab_rows)))


def test_a_diverged_lab_row_is_done_an_interrupted_one_is_not(tmp_path):
    opts = lab_opts(tmp_path)
    space = with_precision(space_of(opts), "float32")
    study, url = new_study(tmp_path, "lab-lenet")
    claim = stores.TrialClaim(url, "lab-lenet")
    assert trials_for_run(opts.extent, study, space, claim) == 10
    for status in ("diverged", "interrupted"):  # rows 0 and 1 run, and end so
        trial = study.ask()  # takes the next queued row
        trial.set_user_attr("status", status)
        study.tell(trial, state=TrialState.FAIL)
    done = lab_rows_done(study)
    assert 0 in done and 1 not in done and set(range(2, 10)) <= done  # 2-9 still queued
    assert trials_for_run(opts.extent, study, space, claim) == 9  # row 1 queued again, row 0 not
    assert trials_for_run(opts.extent, study, space, claim) == 9  # and only once


def test_the_stored_setup_holds_the_space_content_and_the_precision_that_ran(tmp_path):
    lenet = ROOT / "hpsearch" / "studies" / "lenet.toml"
    edited = tmp_path / "lenet.toml"
    text = lenet.read_text()
    edited.write_text(text.replace("high = 1.5", "high = 2.0", 1))  # lr_sgd's upper end
    assert edited.read_text() != text
    opts = parse(["lenet", "--storage", "sqlite:///x.db"])
    space = with_precision(space_of(opts), "bfloat16")
    def setup_of(space):
        return study_setup(opts.search, opts.fidelity, space)

    setup = setup_of(space)
    assert setup["precision"] == "bfloat16"
    other = with_precision(space_of(parse(["lenet", "--space", str(edited)])), "bfloat16")
    assert space_digest(other) != space_digest(space)
    with pytest.raises(UsageError, match="the search space's content: stored '[0-9a-f]+', now"):
        check_resume(setup, setup_of(other), "study 'lenet'")
    with pytest.raises(UsageError, match="precision: stored 'bfloat16', now 'float32'"):
        check_resume(setup, setup_of(with_precision(space, "float32")), "study")
    check_resume(setup, setup_of(with_precision(space_of(opts), "bfloat16")), "s")


def test_max_epochs_caps_a_space_without_an_epochs_parameter(tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text('network = "lenet"\n[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n')
    space = space_of(parse(["lenet", "--space", str(bare), "--max-epochs", "3"]))
    assert space.fixed["epochs"] == 3
    assert spaces.suggest(optuna.create_study().ask(), space)["epochs"] == 3
