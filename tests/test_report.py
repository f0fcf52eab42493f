"""The report (plots, table, summary), the lab-style table, trial artifacts and the study note.
Studies are built in-process (tests/study_builders.py); only the artifact test trains."""

import csv
import io
import re

import optuna
import pytest
from optuna.trial import TrialState, create_trial

import study_builders as build
from conftest import run_cli
from hpsearch.study import artifacts
from hpsearch.study import notes
from hpsearch.results import report
from hpsearch.study import space as spaces
from hpsearch.results import table as tables
from hpsearch.cli import report as report_cli
from hpsearch.cli.common import run_main
from hpsearch.study.output import quiet_optuna

ALL_PLOTS = {"importances", "history", "intermediate", "parallel", "slices", "contour",
             "timeline"}
LAB_ORDER = ["optimizer", "lr", "epochs", "batch size", "workers", "total loss",
             "total accuracy", "run time (s)"]


@pytest.fixture
def url(tmp_path):
    quiet_optuna()
    return f"sqlite:///{tmp_path}/s.db"


def drawn(rep: report.Report) -> set[str]:
    return {p.name for p in rep.plots if not p.skipped}


def skipped(rep: report.Report) -> dict[str, str]:
    return {p.name: p.skipped for p in rep.plots if p.skipped}


def local_scripts(page: str) -> bool:
    """Every <script src> of PAGE is a file beside it: nothing is fetched from a network."""
    return all("/" not in src for src in re.findall(r'<script[^>]*src="([^"]+)"', page))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Some regimes")  # PED-ANOVA on few trials, as in the summary
def test_report_with_several_completed_trials(url, tmp_path):
    study = build.lenet_study(url, "lenet", n_complete=5)
    out = tmp_path / "report"
    rep = report.write(study, out)
    assert drawn(rep) == ALL_PLOTS and not skipped(rep)
    for name in ALL_PLOTS:
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert local_scripts((out / f"{name}.html").read_text())
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # shipped, not fetched
    index = (out / "index.html").read_text()
    assert local_scripts(index) and '<script src="plotly.min.js">' in index
    for name in ALL_PLOTS:
        assert f'id="plot-{name}"' in index and f'src="{name}.png"' in index
    assert 'href="table.csv"' in index and 'href="table.md"' in index
    summary = (out / "summary.md").read_text()
    assert "8 trials: 6 complete, 1 pruned, 1 diverged, 0 failed otherwise" in summary
    assert "2 at chance level" in summary
    assert "Best configuration: trial 1, val accuracy 0.7900: adam, lr 0.003, 3 epochs" in summary
    assert "python -m hpsearch.train lenet --optimizer adam --lr 0.003" in summary
    top = next(iter(optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())))
    assert f"Most important parameter: {top} " in summary
    assert "PedAnovaImportanceEvaluator" in summary
    assert "contour: lr_sgd against batch size" in index.lower()  # the lr most trials set


def test_report_with_one_completed_trial_skips_what_needs_more(url, tmp_path):
    rep = report.write(build.lenet_study(url, "lenet", n_complete=1), tmp_path)
    assert drawn(rep) == {"history", "intermediate", "slices", "timeline"}
    reason = "needs at least 2 completed trials; the study has 1"
    assert skipped(rep) == {"importances": reason, "parallel": reason, "contour": reason}
    assert not (tmp_path / "importances.png").exists()
    index = (tmp_path / "index.html").read_text()
    assert f"Skipped: {reason}." in index
    assert f"Parameter importances: not evaluated: {reason}." in "\n".join(rep.summary)


def test_report_command_with_no_completed_trial(url, tmp_path, capsys):
    build.lenet_study(url, "lenet", n_complete=0)  # one pruned, one diverged trial
    build.new_study(url, "empty")
    out = tmp_path / "r"
    p = run_cli("hpsearch.report", "lenet", "--storage", url, "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "skipped history: needs at least 1 completed trial; the study has 0" in p.stdout
    assert "plots (intermediate, timeline)" in p.stdout  # a pruned trial has its curve
    summary = (out / "summary.md").read_text()
    assert "Best configuration: none yet (no completed trial)." in summary
    assert "0 complete, 1 pruned, 1 diverged" in summary
    # The same command in-process (a new interpreter costs seconds): a study with no trial.
    assert report_cli.main(["empty", "--storage", url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 plots (none)" in printed and "skipped timeline: no trial has started" in printed
    assert "<script" not in (out / "index.html").read_text()
    assert not (out / "intermediate.png").exists()  # the earlier report's plot is gone
    assert run_main(lambda: report_cli.main(["nosuch", "--storage", url])) == 2
    assert "studies there: empty, lenet" in capsys.readouterr().err


@pytest.mark.slow
def test_two_objective_report_draws_the_pareto_front(url, tmp_path):
    study = build.new_study(url, "two", directions=("maximize", "minimize"))
    for i, (kind, params, acc) in enumerate(build.SEVERAL[:5]):
        study.add_trial(create_trial(
            params=params, distributions={k: build.LENET_DISTRIBUTIONS[k] for k in params},
            values=[acc[-1], 10.0 + i],
            user_attrs=build.run_attrs(build.lenet_config(params), acc)))
    rep = report.write(study, tmp_path)
    assert "pareto" in drawn(rep) and (tmp_path / "pareto.png").exists()
    assert skipped(rep) == {"intermediate": "a two-objective study reports no per-epoch values "
                                            "(Optuna cannot prune it)"}
    assert "the most accurate of the" in "\n".join(rep.summary)


def test_table_marks_pruned_diverged_failed_and_chance_trials(url):
    study = build.lenet_study(url, "lenet", n_complete=5)
    study.add_trial(create_trial(state=TrialState.FAIL))  # e.g. a killed worker's trial
    table = tables.build(study.get_trials())
    states = [r["state"] for r in table.rows]
    assert states == ["complete"] * 5 + ["CHANCE LEVEL", "PRUNED, CHANCE LEVEL", "DIVERGED",
                                         "FAILED"]
    assert table.flagged == [False] * 5 + [True] * 4
    assert table.columns == ["trial", "optimizer", "lr", "epochs", "batch size", "total loss",
                             "total accuracy", "val accuracy", "run time (s)", "state", "note"]
    md = table.markdown().splitlines()
    assert "| **CHANCE LEVEL** |" in md[7] and "stuck at chance accuracy" in md[7]
    assert "| **DIVERGED** |" in md[9] and "| - |" in md[9]  # its total loss is no number
    assert "| complete |" in md[2] and "**" not in md[2]
    rows = list(csv.DictReader(io.StringIO(table.csv())))
    assert rows[7]["state"] == "DIVERGED" and rows[7]["total loss"] == ""
    assert rows[6]["note"] == "pruned after epoch 2" and float(rows[1]["lr"]) == 0.003


def test_table_shows_momentum_and_workers_only_where_used(url):
    study = build.new_study(url, "m")
    params = {"optimizer": "momentum", "lr_sgd": 0.1, "batch_size": 64, "epochs": 1}
    config = {**build.lenet_config(params), "momentum": 0.9, "workers": 4}
    build.add(study, "complete", params, [0.7], config=config)
    assert tables.build(study.get_trials()).columns[:7] == [
        "trial", "optimizer", "lr", "momentum", "epochs", "batch size", "workers"]


@pytest.mark.parametrize("network,workers", [("alexnet", True), ("lenet", False)])
def test_lab_table_keeps_the_labs_columns_and_rows(url, network, workers):
    study = build.lab_study(url, network)  # rows added in reverse order
    table = tables.build(study.get_trials())
    lab = LAB_ORDER if workers else [c for c in LAB_ORDER if c != "workers"]
    assert table.columns == lab + ["val accuracy", "state", "change", "trial", "note"]
    space = spaces.load(build.ROOT / "hpsearch" / "studies" / f"lab-{network}.toml")
    assert [r["change"] for r in table.rows] == list(space.lab_labels)  # baseline first
    assert [(r["optimizer"], r["lr"], r["epochs"], r["batch size"]) for r in table.rows] == [
        (r["optimizer"], r["lr"], r["epochs"], r["batch_size"]) for r in space.lab_rows]
    if network == "alexnet":
        assert table.rows[3]["change"] == "lr=0.5" and table.rows[3]["state"] == "DIVERGED"
    md = table.markdown().splitlines()
    assert md[0] == "| " + " | ".join(table.columns) + " |" and "| baseline |" in md[2]


def test_lab_table_shows_the_finished_run_of_a_retried_row(url):
    study = build.lab_study(url, "lenet")
    # Row 0 once more: a run killed before it stored anything (FAIL), then its retry.
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"lab_row": 0}))
    rows = tables.build(study.get_trials()).rows
    assert len(rows) == 10 and rows[0]["change"] == "baseline" and rows[0]["state"] == "complete"


def test_artifact_folder_follows_the_storage(tmp_path, monkeypatch):
    monkeypatch.delenv(artifacts.ENV, raising=False)
    assert str(artifacts.artifact_dir("sqlite:///hpsearch.db")) == "hpsearch-artifacts"
    assert (artifacts.artifact_dir(f"sqlite:///{tmp_path}/runs/x.db")
            == tmp_path / "runs" / "x-artifacts")
    assert artifacts.artifact_dir("postgresql+psycopg2://u@h/db") is None
    assert artifacts.artifact_dir("sqlite:///x.db", tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv(artifacts.ENV, str(tmp_path / "env"))
    assert artifacts.artifact_dir("postgresql+psycopg2://u@h/db") == tmp_path / "env"


def test_each_trial_uploads_its_learning_curve(tmp_path, arrays):
    quiet_optuna()
    url = f"sqlite:///{tmp_path}/s.db"
    study = build.trained_study(url, "lenet", arrays)
    folder = tmp_path / "s-artifacts"
    for trial in study.get_trials():
        (meta,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert meta.filename == f"learning-curve-trial-{trial.number}.png"
        assert meta.mimetype == "image/png"
        assert (folder / meta.artifact_id).read_bytes()[:4] == b"\x89PNG"


def test_study_note_says_what_it_searches_and_keeps_a_users_edit():
    import optuna_dashboard
    space = spaces.cap_epochs(spaces.load(build.ROOT / "hpsearch" / "studies" / "lenet.toml"), 2)
    study = optuna.create_study(study_name="lenet", direction="maximize")
    notes.add_study_note(study, space)
    note = optuna_dashboard.get_note(study)
    assert "**lenet** on Fashion-MNIST from `lenet.toml`: maximise validation accuracy" in note
    assert "- `lr_adam` (sets lr): 0.001 to 0.01 (log scale), only with adam" in note
    assert "- `epochs`: 2" in note
    optuna_dashboard.save_note(study, "my own words")
    notes.add_study_note(study, space)
    assert optuna_dashboard.get_note(study) == "my own words"
    lab = spaces.load(build.ROOT / "hpsearch" / "studies" / "lab-vgg.toml")
    lab_study = optuna.create_study(study_name="lab-vgg", direction="maximize")
    notes.add_study_note(lab_study, lab)
    assert "- workers=8" in optuna_dashboard.get_note(lab_study)
