"""Optuna storage: which URL, with what settings, and a clear error when a study is absent."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from hpsearch.errors import UsageError
from hpsearch.files import try_write
from hpsearch.study.defaults import (DEFAULT_URL, ENV, HEARTBEAT_SECONDS,  # noqa: F401 (re-exported)
                                     grace_for)

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


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# What to install for a server's driver, by SQLAlchemy backend name.
DRIVERS = {"postgresql": "pip install 'hpsearch[postgres]' and write postgresql+psycopg2://...",
           "mysql": "pip install pymysql and write mysql+pymysql://...",
           "mariadb": "pip install pymysql and write mysql+pymysql://..."}
CONNECT_SECONDS = 10  # how long the preflight waits for a database server to answer


def check_storage(url: str, source: str, *, create: bool, write: bool) -> None:
    """Refuse, writing nothing, a storage this run cannot use: not a URL, in memory (gone when
    the run ends), a SQLite file that is missing (unless CREATE), not a database, or read-only
    or in a folder that takes no new file (when WRITE), a server whose driver is missing or that
    does not answer. SOURCE names where the URL came from (--storage, $HPSEARCH_STORAGE, the
    default), for the message."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(f"{source} {redact(url)!r} is not a storage URL; write e.g. "
                         f"{DEFAULT_URL} or postgresql+psycopg2://USER@HOST:5432/DB") from None
    named = f"{source} {redact(url)!r}"
    if parsed.get_backend_name() == "sqlite":
        try:
            check_sqlite(parsed, named, create=create, write=write)
        except OSError as err:  # a name too long, a loop of links: the system says what
            raise UsageError(f"{named}: {err.strerror}") from None
    else:
        check_server(parsed, url, named)


def check_sqlite(parsed: sqlalchemy.engine.URL, named: str, *, create: bool, write: bool) -> None:
    database, mode = parsed.database or "", str(parsed.query.get("mode", ""))
    if str(parsed.query.get("uri", "")).lower() == "true" and database.startswith("file:"):
        database = database[len("file:"):]  # SQLite's URI filename, its options in the query
    if database in ("", ":memory:") or mode == "memory":
        raise UsageError(f"{named}: an in-memory SQLite database is gone when the run ends; "
                         f"name a file, e.g. {DEFAULT_URL}")
    if write and mode == "ro":
        raise UsageError(f"{named} opens the database read-only (mode=ro), and this command "
                         f"writes to it; leave mode=ro out")
    path = Path(database)
    if path.is_dir():
        raise UsageError(f"{named}: {path} is a folder; name a database file in it")
    if not path.exists():
        if not create:
            raise UsageError(f"no study storage at {path} ({named}); run a study first, or "
                             f"name the storage with --storage or ${ENV}")
        _check_folder(path.parent, named)
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as err:
        raise UsageError(f"{named}: cannot read {path} ({err.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(f"{named}: {path} is not a SQLite database; name another file")
    if write:
        if not os.access(path, os.W_OK):
            raise UsageError(f"{named}: {path} is read-only; make it writable or name another "
                             f"file")
        _check_folder(path.parent, named)  # SQLite writes its journal beside the file


def _check_folder(folder: Path, named: str) -> None:
    """FOLDER exists and takes a new file (tried, by creating and removing one)."""
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{named}: no such folder {folder}; create it first")
    try:
        try_write(folder)
    except OSError as err:
        raise UsageError(f"{named}: cannot write in {folder} ({err.strerror}); SQLite needs "
                         f"to write its journal there") from None


def check_server(parsed: sqlalchemy.engine.URL, url: str, named: str) -> None:
    """The server's driver is installed and the server answers (a connection, opened and
    closed: nothing is written)."""
    backend = parsed.get_backend_name()
    install = DRIVERS.get(backend, f"install the Python driver for {backend}")
    if url.startswith("postgresql://"):
        raise UsageError(f"{named} names no driver; write postgresql+psycopg2://... "
                         f"(install the driver with: pip install 'hpsearch[postgres]')")
    try:
        parsed.get_dialect().import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(f"{named}: SQLAlchemy knows no database {parsed.drivername!r}; use "
                         f"sqlite:///FILE.db or postgresql+psycopg2://...") from None
    except ImportError as err:
        raise UsageError(f"{named} needs a driver that is not installed ({err}); "
                         f"{install}") from None
    timeout = {"postgresql": {"connect_timeout": CONNECT_SECONDS},
               "mysql": {"connect_timeout": CONNECT_SECONDS}}.get(backend, {})
    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args=timeout)
        with engine.connect():
            pass
    except Exception as err:  # drivers raise many kinds; all mean "cannot reach it"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if parsed.password:  # a driver's message may quote the connection string
            first = first.replace(parsed.password, "***")
        raise UsageError(f"cannot reach {named}: {first}") from None


def stored_study(url: str, study_name: str) -> optuna.Study | None:
    """Study STUDY_NAME in the storage at URL, or None when the storage holds no such study;
    read without writing (an Optuna storage opened on a database without its tables would
    create them)."""
    db = sqlite_file(url)
    if db is not None and (not db.is_file() or db.stat().st_size == 0):
        return None
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        if "studies" not in sqlalchemy.inspect(engine).get_table_names():
            return None
    finally:
        engine.dispose()
    storage = open_storage(url)
    if study_name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=study_name, storage=storage)


def stored_setup(url: str, study_name: str) -> dict | None:
    """The stored setup of study STUDY_NAME (its "setup" user attr; {} when it has none and no
    trials either: a run stopped right after creating it), or None when the storage holds no
    such study; read without writing. A study with trials but no setup was not made by
    hpsearch."""
    study = stored_study(url, study_name)
    if study is None:
        return None
    if "setup" not in study.user_attrs and study.get_trials(deepcopy=False):
        raise UsageError(f"study {study_name!r} in {redact(url)} was not made by hpsearch (it "
                         f"stores no setup); give a new --study-name")
    return study.user_attrs.get("setup", {})


# The user attrs a trial is queued with (resume.py: a lab row, the baseline; warm.py: a warm
# start's pick). A retry keeps these; the rest was written by the failed run.
QUEUED_ATTRS = ("lab_row", "lab_label", "baseline", "warm_start")
# The system attrs Optuna's artifact API keeps a trial's files under (optuna.artifacts._upload).
ARTIFACT_PREFIX = "artifacts:"


class RetryAsQueued(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial its heartbeat failed, queued as the trial was: its params and
    QUEUED_ATTRS. Optuna's own copies every attr, so the retry of a trial killed while writing
    its end showed the dead run's node, reason and learning curve as its own (two curve
    artifacts once it had drawn its own)."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in QUEUED_ATTRS}
        trial.system_attrs = {k: v for k, v in trial.system_attrs.items()
                              if not k.startswith(ARTIFACT_PREFIX)}
        super().__call__(study, trial)


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
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
            grace_period=grace_for(heartbeat),
            heartbeat_stale_trial_callback=RetryAsQueued(max_retry=MAX_RETRY),
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


def load_study_at(name: str, url: str, source: str, write: bool) -> optuna.Study:
    """Study NAME in the storage at URL (named by SOURCE), which must exist: opening a SQLite
    file that is not there would create an empty one (a report or export run in the wrong
    folder would leave an empty hpsearch.db behind). WRITE: the command writes to it."""
    check_storage(url, source, create=False, write=write)
    return load_study(name, open_storage(url))


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
