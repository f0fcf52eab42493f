"""Optuna storage: which URL, with what settings, and a clear error when a study is absent."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from hpsearch.errors import UsageError
from hpsearch.study.defaults import (DEFAULT_URL, ENV, HEARTBEAT_SECONDS,  # noqa: F401 (re-exported)
                                     grace_for, resolve_url)

MAX_RETRY = 2  # times a trial of a dead worker is re-run with the same parameters


def redact(url: str) -> str:
    """URL as it may be printed or stored in a report: any password shown as ***."""
    try:
        parsed = sqlalchemy.engine.make_url(url)  # not parse_url: that reports through here
        # libpq also takes the password as a query parameter
        hidden = {k: "***" for k in parsed.query if k.lower() in ("password", "passwd")}
        return parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show only its scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def parse_url(url: str) -> sqlalchemy.engine.URL:
    try:
        return sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(f"{redact(url)!r} is not a storage URL; write e.g. "
                         f"{DEFAULT_URL} or postgresql+psycopg2://USER@HOST:5432/DB") from None


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database or a server."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS) -> RDBStorage:
    """An RDB storage whose heartbeat lets a later run (or another worker) fail and retry the
    trial of a process that was killed mid-trial, through Optuna's own mechanism."""
    password = parse_url(url).password
    if url.startswith("postgresql://"):
        raise UsageError(
            f"storage URL {redact(url)!r} names no driver; write postgresql+psycopg2://... "
            "(install the driver with: pip install 'hpsearch[postgres]')")
    engine_kwargs = {}
    if url.startswith("sqlite"):
        # Wait for a lock rather than failing at once when two processes write together.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=grace_for(heartbeat),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    except ImportError as err:
        raise UsageError(f"storage {redact(url)!r} needs a driver that is not installed ({err}); "
                         "for PostgreSQL: pip install 'hpsearch[postgres]'") from None
    except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot open"
        first = str(err).splitlines()[0]
        if password:  # a driver's message may quote the connection string
            first = first.replace(password, "***")
        raise UsageError(f"cannot open storage {redact(url)!r}: {type(err).__name__}: "
                         f"{first}") from None


def load_study(name: str, storage: RDBStorage) -> optuna.Study:
    """An existing study; a missing one lists those that exist."""
    names = optuna.get_all_study_names(storage)
    if name not in names:
        listing = ", ".join(sorted(names)) if names else "none"
        raise UsageError(f"no study named {name!r} in {redact(storage.url)}; studies there: "
                         f"{listing}")
    return optuna.load_study(study_name=name, storage=storage)


def load_study_at(name: str, url: str | None) -> tuple[optuna.Study, str]:
    """(study NAME, the resolved URL) from --storage URL or its defaults; see load_study."""
    url = resolve_url(url)
    require_existing(url)
    return load_study(name, open_storage(url)), url


def require_existing(url: str) -> None:
    """Refuse a SQLite file that is not there: opening it would create an empty one (a report
    or export run in the wrong folder would leave an empty hpsearch.db behind)."""
    db = sqlite_file(url)
    if db is not None and not db.is_file():
        raise UsageError(f"no study storage at {db} ({redact(url)}); run a study first, or name the "
                         f"storage with --storage or ${ENV}")


class TrialClaim:
    """Makes "count the study's trials, then start one" atomic among the workers of one storage,
    so that --total-trials lands on exactly its number: acquire, count, and release once the new
    trial is RUNNING in the storage, where the next worker's count sees it.

    PostgreSQL: a session advisory lock keyed by the study name. SQLite: an exclusive flock on
    a file in the temp folder named after the database's path (SQLite's workers share one
    machine; the database file itself must not be opened here, as closing any descriptor of it
    drops SQLite's own POSIX locks). Other storages: no lock; workers starting at the same
    moment may then overshoot the total by the trials they start together.
    """

    def __init__(self, url: str, study_name: str):
        parsed = parse_url(url)
        self._key = {"k": f"hpsearch:{study_name}"}  # hashed to the advisory lock's number
        self._engine = None
        self._conn = None
        self._file = None
        self._lock_path = None
        db = sqlite_file(url)
        if parsed.get_backend_name() == "postgresql":
            self._engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool)
        elif db is not None:
            digest = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16]
            self._lock_path = Path(tempfile.gettempdir()) / f"hpsearch-claim-{digest}.lock"

    def acquire(self) -> None:
        if self._engine is not None:
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(hashtext(:k))"),
                               self._key)
        elif self._lock_path is not None:
            self._file = open(self._lock_path, "a")
            fcntl.flock(self._file, fcntl.LOCK_EX)

    @contextlib.contextmanager
    def held(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        """Idempotent: called when the trial starts and again when it ends."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(hashtext(:k))"), self._key)
            conn.close()
        if self._file is not None:
            f, self._file = self._file, None
            f.close()  # drops the flock
