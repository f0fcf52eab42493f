"""optuna-dashboard on a study storage, serving the trials' artifacts (their learning curves).

    python -m hpsearch.dashboard                      # hpsearch.db here, http://127.0.0.1:8080/
    python -m hpsearch.dashboard --storage sqlite:///runs/x.db --port 9000
    scripts/dashboard ...                             # the same

The artifact folder follows from the storage as the study's does (hpsearch/artifacts.py), so the
dashboard shows what the trials uploaded. `--port 0` takes a free port; the first line printed
names the address either way.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

import optuna
import optuna_dashboard

from hpsearch import artifacts, options, storage as stores
from hpsearch.cli import run_main
from hpsearch.errors import UsageError

DEFAULT_PORT = 8080


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """The browser fetches many API routes at once; one thread each, as optuna-dashboard's
    own command line serves them."""

    daemon_threads = True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser("python -m hpsearch.dashboard",
                       "Serve optuna-dashboard on a study storage, with the trials' artifacts.")
    options.add_storage(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"default {DEFAULT_PORT}; 0 takes a free one")
    p.add_argument("--artifacts", type=Path, metavar="DIR",
                   help=f"artifact folder (default: ${artifacts.ENV}, else NAME-artifacts/ "
                        "beside a SQLite NAME.db)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The storage's heartbeat options are experimental in Optuna: no warning on every start.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = stores.resolve_url(args.storage)
    stores.require_existing(url)
    storage = stores.open_storage(url)
    store = artifacts.open_store(url, args.artifacts)
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    try:
        server = make_server(args.host, args.port, app, server_class=ThreadedWSGIServer)
    except OSError as err:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({err.strerror}); "
                         "choose another --port") from None
    where = artifacts.artifact_dir(url, args.artifacts)
    print(f"optuna-dashboard on http://{args.host}:{server.server_port}/ for {stores.redact(url)}; "
          f"artifacts: "
          f"{where.absolute() if where else f'none (set ${artifacts.ENV})'}; Ctrl-C stops it",
          flush=True)
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
