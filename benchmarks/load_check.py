"""A plan made beside another study (scripts/bench --load-check): `hpsearch study NETWORK
--dry-run` on a quiet machine, then again while another study trains on the same cores, then
quiet again; each plan's fastest, median and slowest trial and its total are read off its
lines. The target: the loaded plan within 1.5 times of the quiet one."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpsearch.units import parse_duration

TARGET = 1.5
BUSY = ["study", "lenet", "--trials", "1000", "--max-epochs", "20", "--quiet"]


def plan_of(network: str, cwd: Path) -> dict:
    p = subprocess.run([sys.executable, "-m", "hpsearch", "study", network, "--trials", "40",
                        "--dry-run"], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"the dry run failed: {p.stderr.strip()[-300:]}")
    per = re.search(f"fastest ({SPAN}), median ({SPAN}), slowest ({SPAN})", p.stdout)
    total = re.search(f"in all: ~({SPAN}) unpruned", p.stdout)
    if per is None or total is None:
        raise RuntimeError(f"no plan in the dry run's output: {p.stdout[-300:]}")
    return {"fastest_s": seconds(per[1]), "median_s": seconds(per[2]),
            "slowest_s": seconds(per[3]), "total_s": seconds(total[1]),
            "varied": any(w in p.stdout for w in ("varied", "slower now", "was busy")),
            "lines": p.stdout.strip().splitlines()}


SPAN = r"\d+(?:\.\d+)? s|\d+h\d+m|\d+m\d+s"  # as hpsearch.units.fmt_seconds writes them


def seconds(text: str) -> float:
    return parse_duration(text.replace(" ", ""), "a plan's duration")


def check(network: str, say) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        quiet = plan_of(network, cwd)
        say(f"load check: quiet plan {quiet['median_s']:.0f} s median")
        busy = subprocess.Popen([sys.executable, "-m", "hpsearch", *BUSY, "--storage",
                                 f"sqlite:///{cwd / 'busy.db'}"], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(20)  # past its own set-up: training
            loaded = plan_of(network, cwd)
        finally:
            busy.terminate()
            busy.wait(60)
        say(f"load check: loaded plan {loaded['median_s']:.0f} s median")
        after = plan_of(network, cwd)
    ratio = {k: loaded[k] / min(quiet[k], after[k])
             for k in ("fastest_s", "median_s", "slowest_s", "total_s")}
    return {"network": network, "quiet": quiet, "loaded": loaded, "quiet_after": after,
            "ratio": ratio, "target": TARGET, "met": max(ratio.values()) <= TARGET}


def table(doc: dict) -> str:
    rows = ["| plan | fastest | median | slowest | in all | said the timing was disturbed |",
            "|---|---|---|---|---|---|"]
    for name in ("quiet", "loaded", "quiet_after"):
        p = doc[name]
        rows.append(f"| {name.replace('_', ' ')} | {p['fastest_s']:.0f} s | "
                    f"{p['median_s']:.0f} s | {p['slowest_s']:.0f} s | {p['total_s']:.0f} s | "
                    f"{'yes' if p['varied'] else 'no'} |")
    worst = max(doc["ratio"].values())
    rows += ["", f"loaded / quiet: at most {worst:.2f}x (target <= {doc['target']}): "
                 f"{'met' if doc['met'] else 'MISSED'}"]
    return "\n".join(rows)
