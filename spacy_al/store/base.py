"""The store's connection: opening a database, transactions, retries, datasets' ids.

:class:`StoreBase` is what the parts of :class:`~spacy_al.store.Store` share:
one engine, one transaction at a time on an in-memory database, write
transactions retried when they lose a race, and finding a dataset's id (taking
the dataset's writer lock in a write transaction).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from spacy_al.answers import unstorable_text
from spacy_al.errors import Errors
from spacy_al.store.engine import (
    DEFAULT_DB,
    LIGHT_OPTION,
    RETRY_WAIT,
    WRITE_ATTEMPTS,
    WRITE_OPTION,
    create_engine,
    is_conflict,
    is_memory,
    to_url,
)
from spacy_al.store.migrate import migrate
from spacy_al.store.schema import datasets_table, metadata

T = TypeVar("T")


#: The PostgreSQL advisory lock that creating and upgrading the tables take.
SCHEMA_LOCK = 0x5A_A1_5C_4E_3A  # any fixed 64-bit number spacy_al alone uses


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StoreBase:
    """An open answer database and the transactions on it, safe to share
    between threads; :class:`~spacy_al.store.Store` adds what it stores.

    ``url`` is an SQLite file path (parent folders are created), ``":memory:"``, or
    any SQLAlchemy URL (``sqlite:///answers.db``,
    ``postgresql+psycopg://user@host/dbname``). Tables are created if missing, and
    tables made by earlier versions upgraded (:func:`~spacy_al.store.migrate.migrate`).
    """

    def __init__(self, url: str | Path = DEFAULT_DB) -> None:
        self._url = to_url(url)
        self.url = self._url.render_as_string(hide_password=True)
        self._engine = create_engine(self._url)
        # One shared in-memory connection: transactions take turns.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if is_memory(self._url) else nullcontext()
        )
        try:
            with self._transaction(write=True) as conn:
                if conn.dialect.name == "postgresql":
                    # Servers starting together would race to create the tables
                    # (CREATE TABLE isn't safe to run twice at once): one at a
                    # time, the next then finds them made.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
                migrate(conn)
                metadata.create_all(conn)
        except sa.exc.OperationalError as e:
            self._engine.dispose()
            raise ValueError(Errors.E101.format(url=self.url, err=e.orig)) from e
        except (DBAPIError, ValueError, TypeError) as e:
            self._engine.dispose()
            raise ValueError(Errors.E964.format(url=self.url, err=e)) from e

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _transaction(
        self, *, write: bool, durable: bool = True
    ) -> Iterator[Connection]:
        """A transaction; a ``write`` one takes the write lock as it begins, and
        one not ``durable`` commits without waiting for the disk (see
        :meth:`_write`)."""
        with self._lock, self._engine.connect() as conn:
            if write:
                conn.execution_options(
                    **{WRITE_OPTION: True, LIGHT_OPTION: not durable}
                )
            with conn.begin():
                if write and not durable and conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield conn

    def _write(
        self,
        work: Callable[[Connection], T],
        *,
        n: int,
        dataset: str,
        durable: bool = True,
    ) -> T:
        """Run ``work`` in one write transaction, retried on a conflicting write.

        Conflicts (a concurrent insert of the same key, a deadlock, a serialization
        failure) roll the whole transaction back, so a retry starts clean.

        Answers and datasets are ``durable``: on disk when the commit returns.
        What servers and learners write to coordinate (leases, heartbeats, the
        learner's lock and queue) is not: its commit is seen by every process
        at once and survives any process's crash, but doesn't wait for the disk
        (a power loss may take back the last few; they are written again as
        the servers and the learner go on). Each answer then waits for one
        disk sync, not one for its answer and one for the next example's lease.
        """
        attempt = 1
        while True:
            try:
                with self._transaction(write=True, durable=durable) as conn:
                    return work(conn)
            except DBAPIError as e:
                if not is_conflict(e):
                    raise
                if attempt >= WRITE_ATTEMPTS:
                    msg = Errors.E114.format(
                        n=n, dataset=dataset, attempts=attempt, err=e.orig
                    )
                    raise RuntimeError(msg) from e
                time.sleep(random.uniform(0, RETRY_WAIT * attempt))
                attempt += 1

    # --- datasets ----------------------------------------------------------

    def _find_dataset(self, conn: Connection, name: str) -> int | None:
        if not isinstance(name, str) or unstorable_text(name) is not None:
            return None  # can't have been stored, and can't be looked up
        query = sa.select(datasets_table.c.id).where(datasets_table.c.name == name)
        if conn.get_execution_options().get(WRITE_OPTION, False):
            # Writers to one dataset take turns (SELECT ... FOR UPDATE where the
            # database has row locks; SQLite's BEGIN IMMEDIATE already serializes).
            query = query.with_for_update()
        return conn.execute(query).scalar_one_or_none()

    def _dataset_id(self, conn: Connection, name: str) -> int:
        found = self._find_dataset(conn, name)
        if found is None:
            names = conn.execute(
                sa.select(datasets_table.c.name).order_by(datasets_table.c.name)
            ).scalars()
            available = ", ".join(repr(n) for n in names) or "none yet"
            raise ValueError(
                Errors.E102.format(name=name, url=self.url, available=available)
            )
        return found

    def _ensure_dataset(
        self, conn: Connection, name: str, meta: dict[str, Any] | None = None
    ) -> int:
        found = self._find_dataset(conn, name)
        if found is not None:
            return found
        values = {"name": name, "created": utc_now(), "meta": meta or {}}
        result = conn.execute(datasets_table.insert().values(**values))
        return int(result.inserted_primary_key[0])

    def _lease_dataset(self, conn: Connection, name: str) -> int | None:
        # Leases don't take the dataset's writer lock (see _find_dataset): they
        # never change answers, so they needn't wait for answer writers.
        if not isinstance(name, str) or unstorable_text(name) is not None:
            return None
        query = sa.select(datasets_table.c.id).where(datasets_table.c.name == name)
        return conn.execute(query).scalar_one_or_none()
