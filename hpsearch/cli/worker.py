"""`hpsearch worker NAME ...`: one study worker for a cluster without Ray (a scheduler, an ssh
loop). The storage comes from $HPSEARCH_STORAGE, so every worker of a study runs the same
command line; each draws a sampler seed of its own unless --sampler-seed is given, so workers
do not all propose the same trials. Any `hpsearch study` flag may follow.

    HPSEARCH_STORAGE=postgresql+psycopg2://USER:PASS@HOST:5432/DB hpsearch worker resnet --total-trials 100
"""

from __future__ import annotations

import os
import secrets

from hpsearch.cli import study
from hpsearch.errors import UsageError
from hpsearch.study.defaults import ENV

def main(argv: list[str] | None = None, prog: str = "hpsearch worker") -> int:
    argv = list(argv or [])
    if "-h" in argv or "--help" in argv:
        return study.main(argv, prog)
    if not os.environ.get(ENV) and not any(a == "--storage" or a.startswith("--storage=")
                                                   for a in argv):
        raise UsageError(f"set {ENV} to the storage every worker shares, e.g. "
                         f"postgresql+psycopg2://user:pass@host:5432/db")
    if not any(a == "--sampler-seed" or a.startswith("--sampler-seed=") for a in argv):
        argv = ["--sampler-seed", str(secrets.randbelow(2**24)), *argv]
    return study.main(argv, prog)
