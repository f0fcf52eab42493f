"""Browser tests: Playwright driving Debian's chromium through the dashboard and the report.

Without /usr/bin/chromium (or the playwright package) they skip, except under CI
(HPSEARCH_CI=1, set by .ci/run), where they fail. They take no screenshots."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import optuna
import pytest

import study_builders as build
from conftest import ROOT
from hpsearch.results import report
from hpsearch.study.output import quiet_optuna

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STUDY = "browser-lenet"

pytestmark = pytest.mark.slow  # a real browser against real servers


def missing(reason: str):
    if os.environ.get("HPSEARCH_CI") == "1":
        pytest.fail(f"{reason} (HPSEARCH_CI=1: browser tests must run; see scripts/setup --test)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install 'hpsearch[dev]')")
    if not CHROMIUM.is_file():
        missing(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page that records console errors, uncaught exceptions and failed requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(20_000)  # a failure need not wait Playwright's 30 s
    pg.problems = []
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    # A fetch cut short by the next navigation is aborted, not failed.
    pg.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED"
          and pg.problems.append(f"request failed: {r.url} ({r.failure})"))
    yield pg
    context.close()


def first_line(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    """The first stdout line of PROC, waiting at most TIMEOUT seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        raise AssertionError(f"the dashboard did not start: {log.read_text()}")
    return line


def wait_until_answering(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urlopen(url + "api/studies", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def dashboard(browser, tmp_path_factory, arrays):
    """`python -m hpsearch.dashboard` on a study of two really trained trials, on a free port
    of 127.0.0.1; yields its base URL and the study; the server is killed afterwards. (It asks
    for the browser first, so that without one nothing is trained before the skip.)"""
    quiet_optuna()
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder}/studies.db"
    study = build.trained_study(url, STUDY, arrays)
    log = folder / "dashboard.log"  # its request log: a pipe nobody reads could fill and block
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpsearch.dashboard", "--storage", url, "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = first_line(proc, log, timeout=60)
        base = line.split(" on ", 1)[1].split()[0]  # "optuna-dashboard on http://...:PORT/ for"
        assert base.startswith("http://127.0.0.1:") and str(folder / "studies-artifacts") in line
        wait_until_answering(base)
        yield base, study
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_dashboard_lists_the_study_and_its_trials(dashboard, page):
    base, study = dashboard
    page.goto(base + "dashboard/")
    page.get_by_text(STUDY, exact=False).first.click()
    page.wait_for_url(f"**/dashboard/studies/{study._study_id}")
    page.goto(f"{base}dashboard/studies/{study._study_id}/trials")
    page.get_by_text(f"{len(build.TRAINED)} Trials").wait_for()
    assert page.locator("text=/^Trial \\d+$/").count() == len(build.TRAINED)  # the list
    page.goto(f"{base}dashboard/studies/{study._study_id}/note")
    page.get_by_text("Searched:").wait_for()
    assert page.get_by_text("only with adam").count() >= 1
    assert not page.problems, page.problems


def test_trial_page_shows_its_learning_curve(dashboard, page):
    base, study = dashboard
    trial = study.trials[1]
    (meta,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    page.goto(f"{base}dashboard/studies/{study._study_id}/trials?numbers={trial.number}")
    page.get_by_text(f"Trial {trial.number} (trial_id=").wait_for()
    loaded = "sel => { const i = document.querySelector(sel); return i && i.naturalWidth > 100 }"
    page.wait_for_function(loaded, arg=f"img[src*='{meta.artifact_id}']")  # shown, and a PNG
    assert not page.problems, page.problems


def test_report_index_loads_offline_with_every_plot(tmp_path, page):
    quiet_optuna()
    study = build.lenet_study(f"sqlite:///{tmp_path}/s.db", "lenet", n_complete=5)
    rep = report.write(study, tmp_path / "report")
    drawn = [p.name for p in rep.plots if not p.skipped]
    page.context.route("http*://**", lambda route: route.abort())  # offline: nothing fetched
    page.goto((tmp_path / "report" / "index.html").as_uri())  # returns once images loaded
    for name in drawn:
        page.locator(f"#plot-{name} .main-svg").first.wait_for()
    assert page.locator(".js-plotly-plot").count() == len(drawn) == 7
    images = page.locator("img")
    assert images.count() == len(drawn)
    assert images.evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth > 100)")
    assert page.locator("tr.flagged").count() == 3  # chance, pruned, diverged
    assert not page.problems, page.problems
