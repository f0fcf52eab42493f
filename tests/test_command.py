"""The `hpsearch` command itself, and the refusals its subcommands make before any work: one
line, exit 2, and nothing written by the refused run."""

from __future__ import annotations

import pytest

from conftest import run_cli
from hpsearch.cli import COMMANDS, main


def test_help_lists_every_command_and_an_unknown_one_is_one_line(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert main([]) == 2  # no command: the usage, and a failure
    assert main(["bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hpsearch: error: unknown command 'bogus'; choose one of: "
                   + ", ".join(COMMANDS) + " (see hpsearch --help)"]


def one_line_refusal(p, message: str) -> None:
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_export_to_a_missing_folder_is_refused_before_the_study_is_read(tmp_path):
    url = f"sqlite:///{tmp_path}/nothing-here.db"
    p = run_cli("hpsearch.export", "lenet", "--storage", url, "--out",
                str(tmp_path / "missing" / "best.json"))
    one_line_refusal(p, f"--out {tmp_path}/missing/best.json: no such folder {tmp_path}/missing")
    assert list(tmp_path.iterdir()) == []  # no storage file, no folder, no JSON


@pytest.mark.parametrize("where,message", [("folder", "is a folder; give a file name"),
                                           ("missing", "no such folder")])
def test_train_json_that_cannot_be_written_is_refused_before_training(tmp_path, where, message):
    target = tmp_path if where == "folder" else tmp_path / "missing" / "run.json"
    p = run_cli("hpsearch.train", "lenet", "--epochs", "1", "--json", str(target))
    one_line_refusal(p, message)
    assert "epoch" not in p.stdout  # nothing trained
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_takes_no_new_file_is_refused():
    # /proc takes no new file, even from root (who writes into any read-only folder).
    one_line_refusal(run_cli("hpsearch.train", "lenet", "--json", "/proc/run.json"),
                     "--json /proc/run.json: cannot write in /proc")


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_dashboard_port_outside_0_to_65535_is_refused(tmp_path, port):
    p = run_cli("hpsearch.dashboard", "--storage", f"sqlite:///{tmp_path}/s.db", "--port", port,
                cwd=tmp_path)
    one_line_refusal(p, "--port must be")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["--resize", "64"], "--resize needs a network NAME"),
    (["--resize", "0", "lenet"], "--resize must be > 0, got 0"),
    (["nosuch"], "unknown model 'nosuch'; choose one of: lenet, alexnet"),
    (["lenet", "--resize", "3"], "lenet cannot take 3x3 inputs"),
])
def test_models_refusals_are_one_line(argv, message):
    one_line_refusal(run_cli("hpsearch.models", *argv), message)
