"""Generated bad input (Hypothesis): for every command, command lines drawn from its own flags
with extreme, wrong-typed, unicode and path values; and search-space files, edited shipped ones
with broken TOML and bytes that are not UTF-8. Each must end in exit 0 or 2 (or reach its
work, which is replaced by a sentinel: nothing trains), never a traceback, and a refusal
writes nothing. A fixed, derandomised number of cases here; `scripts/bench --fuzz` runs
thousands (benchmarks/fuzz.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks import fuzz

CASES = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                        HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = fuzz.make_folder(tmp_path_factory.mktemp("fuzz"))
    yield root
    fuzz.release_folder(root)


@pytest.mark.parametrize("command", fuzz.COMMANDS)
def test_generated_command_lines_end_in_0_or_2_and_a_refusal_writes_nothing(folder, command):
    @CASES
    @given(argv=fuzz.argv_for(command))
    def case(argv):
        outcome, problem = fuzz.run_case(command, argv, folder)
        assert problem is None, f"hpsearch {command} {argv}: {problem}"

    case()


@CASES
@given(content=fuzz.space_bytes())
def test_generated_space_files_load_and_work_or_are_refused_in_one_line(content):
    outcome, problem = fuzz.check_space(content)
    assert problem is None, f"{content!r}: {problem}"


def test_the_fuzz_can_fail(folder, monkeypatch):
    """The properties catch what they are for: a traceback, a refusal in several lines, a
    refused run that wrote; and tell apart a run that reached its work."""
    from hpsearch.cli import models as models_cli
    from hpsearch.errors import UsageError

    assert fuzz.run_case("models", ["lenet", "--resize", "28"], folder) == (0, None)
    assert fuzz.run_case("study", ["lenet", "--dry-run"], folder) == ("work", None)
    assert fuzz.run_case("study", ["nosuch"], folder)[0] == 2

    def raises(kind):
        def main(argv=None, prog=""):
            raise kind
        return main

    monkeypatch.setattr(models_cli, "main", raises(ValueError("x")))
    assert fuzz.run_case("models", [], folder) == ("traceback", "ValueError: x")
    monkeypatch.setattr(models_cli, "main", raises(UsageError("two\nlines")))
    assert "not one line" not in (fuzz.run_case("models", [], folder)[1] or "")  # escaped

    def writes(argv=None, prog=""):
        (folder / "left-behind").write_text("x")
        raise UsageError("refused, after writing")

    monkeypatch.setattr(models_cli, "main", writes)
    outcome, problem = fuzz.run_case("models", [], folder)
    (folder / "left-behind").unlink()
    assert outcome == 2 and "a refused run wrote" in problem and "left-behind" in problem
    assert fuzz.check_space(b'network = "lenet"\n[params.lr]\ntype = "float"\nlow = 0.1\n'
                            b'high = 1.0\n') == ("loaded", None)
    assert fuzz.check_space(b"network = 3\n") == ("refused", None)
