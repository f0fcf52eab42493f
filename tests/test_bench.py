"""scripts/bench in its tiny mode: it runs end to end and writes every field of its JSON.
No timing is asserted: the figures depend on the machine and on what else runs on it."""

import json
import os
import re
import subprocess

import pytest

from conftest import ROOT, run_cli

CASE_FIELDS = {"network", "size", "batch_size", "optimizer", "lr", "epochs", "train_images",
               "val_images", "reference", "engine", "speedup", "forward_mflop_per_image",
               "engine_gflops", "engine_fraction_of_matmul", "target_speedup", "target_met"}
RUN_FIELDS = {"wall_s", "walls_s", "examples_per_s", "train_loss", "train_acc", "val_acc"}
STUDY_RUN_FIELDS = {"pruner", "wall_s", "walls_s", "best_val_acc", "best_val_accs",
                    "epochs_trained", "trials", "completed", "pruned", "failed", "command"}


def run_bench(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """scripts/bench ARGS --device cpu, run in TMP_PATH (where --out lands); the process and
    its JSON."""
    out = tmp_path / "bench.json"
    p = subprocess.run([str(ROOT / "scripts" / "bench"), *args, "--out", "bench.json",
                        "--device", "cpu"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "VENV": str(ROOT / ".venv")})
    assert p.returncode == 0, p.stderr
    return p, json.loads(out.read_text())


@pytest.mark.slow
def test_tiny_bench_writes_every_field(tmp_path):
    p, doc = run_bench(tmp_path, "--tiny")

    assert {"date", "command", "mode", "device", "repeats", "machine", "engine_precision",
            "matmul_n", "matmul_gflops", "matmul_bf16_gflops", "cases", "study"} <= doc.keys()
    assert doc["mode"] == "tiny" and doc["device"] == "cpu" and doc["matmul_gflops"] > 0
    assert {"cpu", "cores", "torch_threads", "torch"} <= doc["machine"].keys()

    assert [c["network"] for c in doc["cases"]] == ["lenet", "net28", "resnet", "alexnet_small"]
    for case in doc["cases"]:
        assert CASE_FIELDS <= case.keys(), case["network"]
        for side in ("reference", "engine"):
            run = case[side]
            assert RUN_FIELDS <= run.keys(), (case["network"], side)
            assert run["examples_per_s"] > 0 and 0 <= run["val_acc"] <= 1
        assert case["speedup"] > 0 and case["engine_gflops"] > 0
        assert case["engine"]["status"] == "completed"

    study = doc["study"]
    assert {"median", "none", "wall_ratio", "best_val_acc_gap", "target_met"} <= study.keys()
    for pruner in ("median", "none"):
        run = study[pruner]
        assert STUDY_RUN_FIELDS <= run.keys()
        assert run["trials"] == study["trials"] and run["failed"] == 0
        assert run["epochs_trained"] >= run["trials"]

    # The terminal table: one row per network and per pruner.
    for name in ("lenet", "net28", "resnet", "alexnet_small", "median", "none"):
        assert f"| {name} |" in p.stdout


@pytest.mark.slow
def test_tiny_precision_check_compares_both_precisions(tmp_path):
    p, doc = run_bench(tmp_path, "--tiny", "--precision-check", "--networks", "lenet")
    assert [c["network"] for c in doc["precision_check"]] == ["lenet", "lenet"]  # sgd, adam
    for case in doc["precision_check"]:
        assert {"float32_val_acc", "bfloat16_val_acc", "largest_same_seed_gap",
                "float32_seed_spread", "bfloat16_speedup", "runs"} <= case.keys()
        for run in case["runs"]:
            assert run["float32"]["status"] == run["bfloat16"]["status"] == "completed"
    assert p.stdout.count("| lenet |") == 2


@pytest.mark.slow
def test_unknown_network_is_refused(tmp_path):
    p = subprocess.run([str(ROOT / "scripts" / "bench"), "--networks", "lenet,resnet50"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "VENV": str(ROOT / ".venv")})
    assert p.returncode == 2
    assert "unknown network(s) resnet50" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_tiny_cost_check_compares_predicted_and_measured_seconds(tmp_path):
    p, doc = run_bench(tmp_path, "--tiny", "--cost-check")
    (study,) = doc["cost_check"]
    assert {"network", "trials", "command", "trials_compared", "median_abs_error",
            "worst_abs_error", "target_median", "target_worst", "target_met"} <= study.keys()
    rows = study["trials_compared"]
    assert len(rows) == 3  # unpruned: every trial ran to its end
    for r in rows:
        assert r["predicted_s"] > 0 and r["measured_s"] > 0
        assert r["error"] == (r["predicted_s"] - r["measured_s"]) / r["measured_s"]
    assert study["worst_abs_error"] == max(abs(r["error"]) for r in rows)
    assert "| lenet 3 trials" in p.stdout


@pytest.mark.slow
def test_tiny_search_bench_writes_every_field_and_a_plot(tmp_path):
    p, doc = run_bench(tmp_path, "--tiny", "--search", "--seeds", "2")
    (res,) = doc["search"]
    assert {"network", "trials", "train_subset", "val_size", "max_epochs", "seeds",
            "horizon_s", "runs", "summary"} <= res.keys()
    assert list(res["runs"]) == ["shipped default"]
    for name, runs in res["runs"].items():
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            assert {"command", "curve", "best_val", "trials", "chance_trials", "late_prunes",
                    "costly_prunes", "epochs_trained", "seconds", "test_accuracy", "auc",
                    "auc_gain"} <= r.keys()
            assert r["trials"] == 3 and len(r["curve"]) == 3
            assert [c["trials"] for c in r["curve"]] == [1, 2, 3]
            bests = [c["best_val"] for c in r["curve"]]
            assert bests == sorted(bests) and bests[-1] == r["best_val"]  # best so far
            assert 0.1 <= r["auc"] <= r["best_val"] and 0 <= r["test_accuracy"] <= 1
            assert r["auc_gain"] == 0.0  # the first configuration is the reference
        for key in ("auc", "best_val", "test_accuracy", "chance_trials", "late_prunes",
                    "costly_prunes"):
            s = res["summary"][name][key]
            assert s["mean"] == sum(r[key] for r in runs) / 2 and s["sd"] >= 0
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert "| shipped default |" in p.stdout


def test_the_area_under_the_anytime_curve_rewards_finding_early():
    from benchmarks import search as bench_search

    early = [{"seconds": 10.0, "trials": 1, "best_val": 0.9}]
    late = [{"seconds": 90.0, "trials": 1, "best_val": 0.9}]
    assert bench_search.best_at(early, 5.0) == 0.1 and bench_search.best_at(early, 10.0) == 0.9
    assert bench_search.area(early, 100.0) > bench_search.area(late, 100.0)
    assert abs(bench_search.area(early, 100.0) - (0.1 * 0.1 + 0.9 * 0.9)) < 0.01


def test_a_costly_prune_is_late_in_its_own_epochs_and_near_the_best_completed_before_it():
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    from benchmarks import search as bench_search

    def trial(state, epochs, curve):
        return create_trial(state=state, params={"epochs": epochs},
                            distributions={"epochs": IntDistribution(1, 20)},
                            value=curve[-1] if state == TrialState.COMPLETE else None,
                            intermediate_values=dict(enumerate(curve, start=1)))

    done, pruned = TrialState.COMPLETE, TrialState.PRUNED
    first = trial(done, 10, [0.5] * 9 + [0.90])
    costly = trial(pruned, 10, [0.5] * 7 + [0.895])     # 8 of 10 epochs, 0.005 below 0.90
    early = trial(pruned, 10, [0.5] * 6 + [0.895])      # 7 of 10: not more than 70%
    far = trial(pruned, 10, [0.5] * 7 + [0.88])         # 0.02 below the best
    assert bench_search.costly_prunes([first, costly, early, far]) == 1
    # Judged against what had completed before it: nothing, so no prune is costly yet.
    assert bench_search.costly_prunes([costly, first]) == 0
    # Its own epochs count, not the longest trial's: 4 of 5 is past 70%.
    assert bench_search.costly_prunes([first, trial(pruned, 5, [0.5] * 3 + [0.9])]) == 1


def test_search_at_and_config_pick_a_fidelity_and_configurations_or_say_what_is_allowed():
    from benchmarks import search as bench_search
    from hpsearch.errors import UsageError

    assert bench_search.parse_fidelity("lenet:20:20000:5000:10") == bench_search.Fidelity(
        "lenet", 20, 20_000, 5_000, 10)
    for bad, says in (("lenet:20:20000:5000", "must be NETWORK:TRIALS"),
                      ("lenet:20:2e4:5000:10", "whole numbers"),
                      ("lenet:0:20000:5000:10", ">= 1"),
                      ("lenut:20:20000:5000:10", "unknown model 'lenut'")):
        with pytest.raises(UsageError, match=says):
            bench_search.parse_fidelity(bad)
    named = bench_search.configs("lenet")
    picked = bench_search.pick(named, ["tpe + epoch-median, warm-up 1", "tpe + median"])
    assert list(picked) == ["tpe + epoch-median, warm-up 1", "tpe + median"]
    assert bench_search.pick(named, None) == named
    with pytest.raises(UsageError, match="unknown search configuration.*'tpe'.*choose from"):
        bench_search.pick(named, ["tpe"])


def test_search_space_flag_sends_every_configuration_to_that_file_or_says_what_is_wrong(tmp_path):
    from benchmarks import engine as bench
    from hpsearch.errors import UsageError

    older = tmp_path / "lenet-older.toml"
    older.write_text((ROOT / "hpsearch" / "studies" / "lenet.toml").read_text())
    args = bench.parse_args(["--search", "--search-at", "lenet:4:1000:500:2", "--space",
                             str(older), "--config", "shipped default", "--config",
                             "tpe + median"])
    [(fid, named)] = bench.search_plan(args)
    assert fid.network == "lenet"
    assert named == {"shipped default": ["--space", str(older.resolve())],
                     "tpe + median": ["--sampler", "tpe", "--pruner", "median",
                                      "--warmup-epochs", "0", "--space", str(older.resolve())]}
    for space, says in ((tmp_path / "none.toml", "none.toml: no such search-space file"),
                        (ROOT / "hpsearch" / "studies" / "net28.toml", "searches net28, not lenet")):
        args.space = space
        with pytest.raises(UsageError, match=says):
            bench.search_plan(args)


@pytest.mark.slow
def test_tiny_fuzz_counts_its_cases_and_finds_nothing(tmp_path):
    p, doc = run_bench(tmp_path, "--fuzz", "--tiny")
    argv = doc["fuzz"]["argv"]
    assert set(argv) == {"study", "worker", "train", "confirm", "export", "report", "models",
                         "dashboard"}
    assert sum(t["cases"] for t in argv.values()) == 400 and doc["fuzz"]["spaces"]["cases"] == 200
    assert all(t["failures"] == [] for t in argv.values()), argv
    assert doc["fuzz"]["spaces"]["failures"] == []
    assert "400 command lines, 200 space files: 0 failures" in p.stdout


@pytest.mark.slow
def test_tiny_signal_run_stops_each_command_cleanly(tmp_path):
    p, doc = run_bench(tmp_path, "--signals", "--tiny")
    rows = {r["command"]: r for r in doc["signals"]}
    assert set(rows) == {"study", "export", "confirm"}
    for r in rows.values():
        assert r["runs"] == 2 and len(r["results"]) == 2
        assert r["damaged"] == 0 and r["exit_130"] == r["signalled"], r
        assert r["slowest_exit_s"] <= 5.0, r


def test_the_load_check_reads_the_plan_a_dry_run_prints(tmp_path):
    from benchmarks import load_check

    ran = run_cli("hpsearch.study", "lenet", "--dry-run", "--train-subset", "500",
                  "--val-size", "500", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    per = re.search(f"fastest ({load_check.SPAN}), median ({load_check.SPAN}), "
                    f"slowest ({load_check.SPAN})", ran.stdout)
    assert per is not None, ran.stdout
    assert load_check.seconds("7h08m") == 7 * 3600 + 8 * 60
    assert load_check.seconds("12m40s") == 760 and load_check.seconds("1.5 s") == 1.5
