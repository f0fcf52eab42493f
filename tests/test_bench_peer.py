"""The benchmarks of issue 25: FLAML as a peer tuner (its domains, a short real run on hpsearch's
training function), the anytime curve that times a warm start, and the knob benchmark."""

from __future__ import annotations

import datetime
import random
import types

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from benchmarks import knobs, peer
from benchmarks.engine import make_peer_plan
from benchmarks.options import parse_args
from hpsearch.errors import UsageError
from hpsearch.study import space as spaces
from hpsearch.study.output import COPIED
from hpsearch.study.resume import SHIPPED


def test_flaml_domains_take_exactly_the_values_the_space_allows():
    pytest.importorskip("flaml")
    space = spaces.load(SHIPPED / "net28.toml")
    domains = peer.flaml_domains(space)
    assert set(domains) == {p.name for p in space.params}
    rng = random.Random(0)
    for p in space.params:
        drawn = [domains[p.name].sample(random_state=rng.randint(0, 10**6)) for _ in range(300)]
        d = p.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            assert set(drawn) == set(d.choices), p.name
        else:
            assert all(d.low <= v <= d.high for v in drawn), p.name
            if isinstance(d, optuna.distributions.IntDistribution):  # both ends reached
                assert {d.low, d.high} <= set(drawn), p.name


def test_the_anytime_curve_counts_from_the_first_trial_and_copies_at_zero():
    trials = []
    t0 = datetime.datetime(2026, 1, 1)
    for seconds, value, copied in [(0, 0.5, True), (30, 0.4, False), (70, 0.8, False),
                                   (100, 0.7, False), (120, None, False)]:
        t = create_trial(state=TrialState.COMPLETE if value is not None else TrialState.PRUNED,
                         value=value, params={}, distributions={},
                         user_attrs={COPIED: "x trial 1"} if copied else {})
        if not copied:
            t.datetime_start = t0 + datetime.timedelta(seconds=max(seconds - 30, 0))
            t.datetime_complete = t0 + datetime.timedelta(seconds=seconds)
        trials.append(t)

    curve = peer.anytime(types.SimpleNamespace(trials=trials))
    assert curve == [(0.0, 0.5), (30.0, 0.5), (70.0, 0.8), (100.0, 0.8)]
    assert peer.time_to(curve, 0.8) == 70.0 and peer.time_to(curve, 0.5) == 0.0
    assert peer.time_to(curve, 0.81) is None


@pytest.mark.slow
def test_flaml_tunes_on_hpsearch_training_and_its_winner_is_confirmed(arrays):
    pytest.importorskip("flaml")
    plan = peer.PeerPlan("net28", 6.0, 1, confirm_seeds=2, train_subset=1000, val_size=300)
    said = []
    got = peer.run_flaml(plan, 0, arrays, torch.device("cpu"), said.append)
    assert got["trials"] and all(t["sample_size"] <= 1000 for t in got["trials"])
    assert got["best_val"] == max(t["val"] for t in got["trials"])
    assert got["best_config"]["model"] == "net28" and got["best_config"]["seed"] == 0
    confirmed = peer.confirm_config(got["best_config"], plan, 0, said.append)
    assert len(confirmed["runs"]) == 2 and len({r["seed"] for r in confirmed["runs"]}) == 2
    assert all(0.0 <= r["test"] <= 1.0 for r in confirmed["runs"])
    table = peer.table({"network": "net28", "budget_s": 6.0, "peer": "flaml",
                        "warm_check": False,
                        "seeds": [{"seed": 0, "cold_best_val": 0.5, "cold_confirmed": confirmed,
                                   "flaml": got, "flaml_confirmed": confirmed}]})
    assert f"| 0 | 0.5000 | {confirmed['test_mean']:.4f}" in table


def test_peer_plan_takes_one_known_network_and_needs_flaml():
    plan = make_peer_plan(parse_args(["--warm-check", "--networks", "net28", "--seeds", "2"]))
    assert (plan.network, plan.budget, plan.seeds, plan.first_seed) == ("net28", 1200.0, 2, 0)
    plan = make_peer_plan(parse_args(["--peer", "flaml", "--first-seed", "1", "--seeds", "2"]))
    assert (plan.first_seed, plan.seeds) == (1, 2)
    with pytest.raises(UsageError, match="runs past the last seed, 4294967295"):
        make_peer_plan(parse_args(["--warm-check", "--first-seed", "4294967294", "--seeds", "3"]))
    plan = make_peer_plan(parse_args(["--warm-check", "--budget", "5m"]))
    assert (plan.network, plan.budget) == ("lenet", 300.0)
    for networks in ("resnet", "lenet,net28"):
        with pytest.raises(UsageError, match="one network in --networks: lenet or net28"):
            make_peer_plan(parse_args(["--warm-check", "--networks", networks]))


def test_knob_gains_are_paired_by_seed_against_the_base():
    rows = knobs.paired([
        {"variant": "base", "final_val": [0.80, 0.90, 0.85], "seconds": [1.0, 1.0, 1.0]},
        {"variant": "up", "final_val": [0.82, 0.93, 0.86], "seconds": [2.0, 2.0, 2.0]},
        {"variant": "noise", "final_val": [0.85, 0.85, 0.85], "seconds": [1.0, 1.0, 1.0]}])
    base, up, noise = rows
    assert (base["gain"], base["beyond_spread"], base["time_ratio"]) == (0.0, False, 1.0)
    # +0.02, +0.03, +0.01: unpaired the spread over seeds (0.05) would hide it.
    assert up["gain"] == pytest.approx(0.02) and up["gain_sd"] == pytest.approx(0.01)
    assert up["beyond_spread"] and up["time_ratio"] == 2.0
    assert noise["gain"] == pytest.approx(0.0) and not noise["beyond_spread"]
    assert "| up | 0.8700 ± 0.0557 | +0.0200 ± 0.0100 | yes | 2.00x |" in knobs.table(
        [{"network": "lenet", "base": knobs.TINY[0].base.__dict__, "train_subset": 500,
          "val_size": 200, "seeds": 3, "rows": rows}])


@pytest.mark.parametrize("first", ["-1", "x", "4294967294"])
def test_a_bad_first_seed_is_one_line_exit_2_and_writes_nothing(first, tmp_path, capsys):
    from benchmarks.engine import main
    from hpsearch.cli.common import run_main

    out = tmp_path / "peer.json"
    argv = ["--warm-check", "--first-seed", first, "--seeds", "3", "--out", str(out)]
    try:
        code = run_main(lambda: main(argv))  # as scripts/bench runs it
    except SystemExit as exc:  # argparse refuses a value that is no seed at all
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "--first-seed" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
