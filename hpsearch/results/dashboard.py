"""optuna-dashboard on a study storage, serving the trials' artifacts (their learning curves).

The artifact folder follows from the storage as the study's does (study/artifacts.py), so the
dashboard shows what the trials uploaded. Port 0 takes a free port.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

import optuna
import optuna_dashboard

from hpsearch.errors import UsageError
from hpsearch.study import artifacts, storage as stores


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """The browser fetches many API routes at once; one thread each, as optuna-dashboard's
    own command line serves them."""

    daemon_threads = True


def make(url: str, host: str, port: int, artifact_dir: Path | None) -> WSGIServer:
    """optuna-dashboard's WSGI app on the storage at URL (which must exist: check_storage) with
    its artifact store, in a threaded server bound to HOST:PORT (0: a free port), not yet
    serving."""
    # The storage's heartbeat options are experimental in Optuna: no warning on every start.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = stores.open_storage(url)
    store = artifacts.open_store(url, artifact_dir)
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    try:
        return make_server(host, port, app, server_class=ThreadedWSGIServer)
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror}); "
                         "choose another --port") from None
