"""`hpsearch dashboard`: optuna-dashboard on the study storage, serving the trials' artifacts."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpsearch.cli import common

DEFAULT_PORT = 8080


def build_parser(prog: str) -> argparse.ArgumentParser:
    from hpsearch.study.artifacts import ENV

    p = common.parser(prog, "Serve optuna-dashboard on a study storage, with the trials' "
                            "artifacts.")
    common.add_storage(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=common.whole("--port", 65536), default=DEFAULT_PORT,
                   help=f"default {DEFAULT_PORT}; 0 takes a free one")
    p.add_argument("--artifacts", type=Path, metavar="DIR",
                   help=f"artifact folder (default: ${ENV}, else NAME-artifacts/ beside a "
                        "SQLite NAME.db)")
    return p


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "hpsearch dashboard") -> int:
    args = parse_args(argv, prog)
    from hpsearch.results import dashboard
    from hpsearch.study import artifacts, storage as stores

    url, source = common.storage_url(args.storage)
    stores.check_storage(url, source, create=False, write=False)
    server = dashboard.make(url, args.host, args.port, args.artifacts)
    where = artifacts.artifact_dir(url, args.artifacts)
    shown = where.absolute() if where else f"none (set ${artifacts.ENV})"
    print(f"optuna-dashboard on http://{args.host}:{server.server_port}/ for "
          f"{stores.redact(url)}; artifacts: {shown}; Ctrl-C stops it", flush=True)
    with server:
        server.serve_forever()
    return 0
