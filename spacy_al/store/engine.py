"""How the store reaches its database: URLs, engines and transactions.

A URL is an SQLite file path, ``":memory:"`` or any SQLAlchemy URL. SQLite
connections get a busy timeout, the WAL journal and foreign keys, and writers take
the write lock when they begin (``BEGIN IMMEDIATE``), so no transaction has to
upgrade a read lock. :func:`is_conflict` says which database errors are a lost
race that a retry of the whole transaction can win.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from spacy_al.answers import json_default
from spacy_al.errors import Errors

DEFAULT_DB = "spacy_al.db"
DB_ENV_VAR = "SPACY_AL_DB"
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 5
RETRY_WAIT = 0.05  # seconds; a retry waits up to this times the attempt number
# A writer waiting for SQLite's write lock tries again after this long, then half
# as long again each time up to LOCK_POLL_MAX (seconds; see _begin_immediate).
LOCK_POLL_FIRST = 0.0002
LOCK_POLL_MAX = 0.002
# SQLSTATEs of a transaction that lost a race: serialization failure, deadlock.
_CONFLICT_STATES = ("40001", "40P01")
# A connection's execution option marking a write transaction (see _on_sqlite_begin).
WRITE_OPTION = "spacy_al_write"
# ... and one marking a write that needn't survive a power loss (see _begin_immediate).
LIGHT_OPTION = "spacy_al_light"


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, allow_nan=False)


def default_db() -> str:
    """The database to use when none is given: ``$SPACY_AL_DB`` or ``spacy_al.db``."""
    return os.environ.get(DB_ENV_VAR) or DEFAULT_DB


def to_url(url: str | Path) -> URL:
    text = str(url)
    if text == ":memory:":
        return URL.create("sqlite")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        return make_url(text)
    except ArgumentError as e:
        raise ValueError(Errors.E101.format(url=text, err=e)) from e


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (see _on_sqlite_begin), so disable the driver's own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the database to the WAL journal (once per file; it stays so).

    The switch needs the database to itself and SQLite doesn't wait for it (the
    busy timeout doesn't apply): two servers opening a new file together would
    see "database is locked". So it waits here, up to the busy timeout.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(RETRY_WAIT)


def _on_sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front, so a transaction never has to upgrade a
    # read lock (which fails at once in WAL mode instead of waiting).
    options = conn.get_execution_options()
    if options.get(WRITE_OPTION, False):
        _begin_immediate(conn, durable=not options.get(LIGHT_OPTION, False))
    else:
        conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Connection, *, durable: bool) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock by polling it every
    ``LOCK_POLL_FIRST`` to ``LOCK_POLL_MAX`` seconds, up to the busy timeout.

    A ``durable`` transaction's commit syncs the log to disk (``synchronous =
    FULL``); any other's doesn't (``NORMAL``: it survives the process, and the
    next durable commit syncs it too, but a power loss may take it back). The
    setting can't change inside a transaction, so it is made here.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then
    100 ms between tries: a writer that finds the lock taken for a moment wakes
    long after it is free (it waited 79 ms after 7 tries, 431 ms after 13), and
    the writer's request waits with it. Polling wakes within a millisecond or
    two of the lock's release.
    """
    driver = conn.connection.driver_connection
    driver.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    driver.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        wait = LOCK_POLL_FIRST
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or time.monotonic() > deadline:
                    break
            time.sleep(wait)
            wait = min(wait * 1.5, LOCK_POLL_MAX)
        # Once more through SQLAlchemy, so the error is raised as any other.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        # The transaction's statements, and other transactions, wait as before.
        driver.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def create_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": dumps}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False}
        if is_memory(url):
            kwargs["poolclass"] = StaticPool
        elif url.database and not url.database.startswith("file:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as e:
        shown = url.render_as_string(hide_password=True)
        raise ValueError(Errors.E101.format(url=shown, err=e)) from e
    if sqlite:
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def is_conflict(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return state in _CONFLICT_STATES
