"""hpsearch as a user gets it: a wheel built from this checkout, installed into a fresh virtual
environment (which borrows this one's packages for the pinned torch, so nothing is
downloaded), run from an empty folder through its one `hpsearch` command."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

# One wheel for the module, on one xdist worker.
pytestmark = pytest.mark.xdist_group("package")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh venv with hpsearch installed from its wheel."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools keeps its work in the source's build/, which two builds at
    # once (or a stale one) would share.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.db", "reports"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(base / "dist"), str(source)], check=True,
                   capture_output=True, timeout=300)
    wheel, = (base / "dist").glob("hpsearch-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This environment's packages (torch, optuna, ...) behind the new one's own: a path in a
    # .pth file, whose own .pth files (this checkout's editable install) are not run.
    packages, = Path(venv).glob("lib/python*/site-packages")
    (packages / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return venv / "bin"


def run_in(folder: Path, bin_dir: Path, *args: str, timeout: float = 300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HPSEARCH_STORAGE")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_the_wheel_ships_the_spaces_and_no_benchmarks(installed):
    wheel, = (installed.parent.parent / "dist").glob("hpsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hpsearch/studies/lenet.toml" in names and "hpsearch/studies/lab-vgg.toml" in names
    assert not [n for n in names if n.startswith("benchmarks/") or "/bench_" in n]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hpsearch = hpsearch.cli:console" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_the_installed_command_runs_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    where = run_in(empty, installed, str(installed / "python"), "-c",
                   "import hpsearch; print(hpsearch.__file__)")
    assert str(installed.parent) in where.stdout  # the wheel's copy, not this checkout's
    usage = run_in(empty, installed, "hpsearch", "--help")
    assert usage.returncode == 0
    for command in ("study", "train", "confirm", "export", "report", "models", "dashboard",
                    "worker", "bench"):
        assert f"  {command} " in usage.stdout
    models = run_in(empty, installed, "hpsearch", "models")
    assert models.returncode == 0 and "61,706" in models.stdout  # lenet's parameters
    plan = run_in(empty, installed, "hpsearch", "study", "lenet", "--trials", "2", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "dry run: nothing stored" in plan.stdout
    study = run_in(empty, installed, "hpsearch", "study", "lenet", "--trials", "1", "--quiet",
                   "--train-subset", "500", "--val-size", "500", "--max-epochs", "1",
                   "--pruner", "none")
    assert study.returncode == 0, study.stderr
    assert "trial   0 COMPLETE" in study.stdout
    # The space shipped in the installed package, found from a folder with no studies/.
    assert f"{installed.parent}/lib/" in study.stdout and "hpsearch/studies/lenet.toml" in study.stdout
    assert (empty / "hpsearch.db").is_file()
    bench = run_in(empty, installed, "hpsearch", "bench", "--tiny")
    assert bench.returncode == 2 and "source checkout" in bench.stderr
    assert len(bench.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_studies_folder_in_the_working_directory_overrides_the_shipped_space(installed,
                                                                                tmp_path):
    (tmp_path / "studies").mkdir()
    shipped = (ROOT / "hpsearch" / "studies" / "lenet.toml").read_text()
    (tmp_path / "studies" / "lenet.toml").write_text(shipped.replace("[params.optimizer]",
                                                                     "[params.nonsense]", 1))
    p = run_in(tmp_path, installed, "hpsearch", "study", "lenet", "--dry-run")
    assert p.returncode == 2
    assert "studies/lenet.toml: params.nonsense" in p.stderr
