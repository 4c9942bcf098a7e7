"""The answer database: every answer is committed before it is acknowledged.

SQLAlchemy Core over an SQLite file by default (WAL journal, busy timeout, foreign
keys) or any SQLAlchemy URL, such as PostgreSQL's. A dataset holds answers, one row
per (dataset, task, annotator): answering a task again replaces the earlier answer
with a new row (a new, higher id), so readers polling with ``since_id`` see edits.
A task is known by its identity keys (``_input_key``, ``_task_key``: 64-bit hashes
of its content, see :mod:`spacy_al.corpus`), and where a key matches a stored
answer's, the inputs are compared too: two different texts are never stored as one
(a write that would is refused). Databases made before the keys are upgraded in
place when opened (:func:`migrate`).
Writers to one dataset take turns, so its ids are committed in increasing order and
``since_id`` polling misses nothing.
Answers read back as Prodigy-style tasks with ``answer``, ``_input_hash``,
``_task_hash``, ``_input_key``, ``_task_key``, ``_annotator_id``, ``_session_id``,
``_timestamp`` and more.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from spacy_al.answers import (
    ANSWERS,
    STORED_KEYS,
    AnswerError,
    check_answer_value,
    json_default,
    unstorable_text,
    validate_answer,
)
from spacy_al.errors import Errors
from spacy_al.identity import get_input_key, get_task_key, input_content

DEFAULT_DB = "spacy_al.db"
DB_ENV_VAR = "SPACY_AL_DB"
MAX_NAME_LENGTH = 255
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 5
RETRY_WAIT = 0.05  # seconds; a retry waits up to this times the attempt number
# SQLSTATEs of a transaction that lost a race: serialization failure, deadlock.
_CONFLICT_STATES = ("40001", "40P01")
# Keys that are columns and set on every answer read back; never kept in ``content``.
ANSWER_KEYS = STORED_KEYS
#: Rows compared per query when a write checks its keys against stored answers.
IDENTITY_PAGE = 500
_HASH_MIN, _HASH_MAX = -(2**63), 2**63 - 1
_WRITE_OPTION = "spacy_al_write"

T = TypeVar("T")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# SQLite only autoincrements an INTEGER PRIMARY KEY, so ids are BIGINT elsewhere.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

datasets_table = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(MAX_NAME_LENGTH), nullable=False, unique=True),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("meta", sa.JSON(), nullable=False),
    sqlite_autoincrement=True,
)

answers_table = sa.Table(
    "answers",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id",
        _Id,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("input_hash", sa.BigInteger(), nullable=False),
    sa.Column("task_hash", sa.BigInteger(), nullable=False),
    sa.Column("input_key", sa.BigInteger(), nullable=False),
    sa.Column("task_key", sa.BigInteger(), nullable=False),
    sa.Column("annotator", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("answer", sa.String(16), nullable=False),
    sa.Column("label", sa.Text(), nullable=True),
    sa.Column("accept", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("model_version", sa.BigInteger(), nullable=True),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("content", sa.JSON(), nullable=False),
    sa.UniqueConstraint(
        "dataset_id", "task_key", "annotator", name="uq_answers_dataset_key_annotator"
    ),
    sa.CheckConstraint(
        "answer IN ('accept', 'reject', 'ignore')", name="ck_answers_answer"
    ),
    sa.Index("ix_answers_dataset_input_key", "dataset_id", "input_key"),
    sa.Index("ix_answers_dataset_annotator", "dataset_id", "annotator"),
    # Ids only grow, never reused after a delete, so since_id readers miss nothing.
    sqlite_autoincrement=True,
)


# Who holds which example, until when: the feed's leases, kept so that a restarted
# server serves each annotator the example they held. ``input_hash`` holds the
# example's identity key (``_input_key``); ``expires`` is wall-clock (unix
# seconds); ``task`` the task as it was served.
leases_table = sa.Table(
    "leases",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id",
        _Id,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("input_hash", sa.BigInteger(), nullable=False),
    sa.Column("annotator", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("expires", sa.Float(), nullable=False),
    sa.Column("task", sa.JSON(), nullable=False),
    sa.UniqueConstraint(
        "dataset_id",
        "input_hash",
        "annotator",
        name="uq_leases_dataset_input_annotator",
    ),
    sqlite_autoincrement=True,
)

# The labelling servers serving a dataset: each renews its row every few seconds
# (``expires`` wall-clock, unix seconds), so that ``drop`` can tell a dataset in
# use from one nobody serves. A crashed server's row simply runs out.
HEARTBEAT_TTL = 30.0  # seconds a server's heartbeat counts after it was written
_NO_BOUND = 1e300  # a lease end later than any real one (drop_leases' not_after)
servers_table = sa.Table(
    "servers",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id",
        _Id,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("server", sa.String(64), nullable=False),
    sa.Column("expires", sa.Float(), nullable=False),
    sa.UniqueConstraint("dataset_id", "server", name="uq_servers_dataset_server"),
    sqlite_autoincrement=True,
)


# --- JSON and validation -----------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, allow_nan=False)


def _snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= width else text[: width - 3] + "..."


_unstorable_text = unstorable_text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        msg = Errors.E103.format(
            what=what, max=MAX_NAME_LENGTH, snippet=_snippet(value)
        )
        raise ValueError(msg)
    why = _unstorable_text(value)
    if why is not None:
        raise ValueError(
            Errors.E763.format(what=what, snippet=_snippet(value), why=why)
        )
    return value


def _check_answer_values(answers: str | Iterable[str] | None) -> list[str] | None:
    if answers is None:
        return None
    values = [answers] if isinstance(answers, str) else list(answers)
    for value in values:
        check_answer_value(
            value, field="answers", fix="Filter by any of them, e.g. accept."
        )
    return values


# --- URLs and engines ----------------------------------------------------------


def default_db() -> str:
    """The database to use when none is given: ``$SPACY_AL_DB`` or ``spacy_al.db``."""
    return os.environ.get(DB_ENV_VAR) or DEFAULT_DB


def _to_url(url: str | Path) -> URL:
    text = str(url)
    if text == ":memory:":
        return URL.create("sqlite")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        return make_url(text)
    except ArgumentError as e:
        raise ValueError(Errors.E101.format(url=text, err=e)) from e


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (see _on_sqlite_begin), so disable the driver's own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front, so a transaction never has to upgrade a
    # read lock (which fails at once in WAL mode instead of waiting).
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _create_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": _dumps}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False}
        if _is_memory(url):
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


def _is_conflict(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return state in _CONFLICT_STATES


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- the store -----------------------------------------------------------------


class Store:
    """The answer database, safe to share between threads.

    ``url`` is an SQLite file path (parent folders are created), ``":memory:"``, or
    any SQLAlchemy URL (``sqlite:///answers.db``,
    ``postgresql+psycopg://user@host/dbname``). Tables are created if missing.
    """

    def __init__(self, url: str | Path = DEFAULT_DB) -> None:
        self._url = _to_url(url)
        self.url = self._url.render_as_string(hide_password=True)
        self._engine = _create_engine(self._url)
        # One shared in-memory connection: transactions take turns.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if _is_memory(self._url) else nullcontext()
        )
        try:
            with self._transaction(write=True) as conn:
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        with self._lock, self._engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _write(self, work: Callable[[Connection], T], *, n: int, dataset: str) -> T:
        """Run ``work`` in one write transaction, retried on a conflicting write.

        Conflicts (a concurrent insert of the same key, a deadlock, a serialization
        failure) roll the whole transaction back, so a retry starts clean.
        """
        attempt = 1
        while True:
            try:
                with self._transaction(write=True) as conn:
                    return work(conn)
            except DBAPIError as e:
                if not _is_conflict(e):
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
        if not isinstance(name, str) or _unstorable_text(name) is not None:
            return None  # can't have been stored, and can't be looked up
        query = sa.select(datasets_table.c.id).where(datasets_table.c.name == name)
        if conn.get_execution_options().get(_WRITE_OPTION, False):
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
        values = {"name": name, "created": _now(), "meta": meta or {}}
        result = conn.execute(datasets_table.insert().values(**values))
        return int(result.inserted_primary_key[0])

    def create_dataset(self, name: str, *, meta: dict[str, Any] | None = None) -> int:
        """Create dataset ``name`` if it doesn't exist; return its id.

        ``meta`` is stored with a new dataset; an existing dataset keeps its own.
        """
        _check_name(name, "dataset")
        if meta is not None:
            if not isinstance(meta, dict):
                err = f"a {type(meta).__name__}"
                raise ValueError(Errors.E115.format(snippet=_snippet(meta), err=err))
            try:
                _dumps(meta)
            except (TypeError, ValueError) as e:
                msg = Errors.E115.format(snippet=_snippet(meta), err=e)
                raise ValueError(msg) from e
        return self._write(
            lambda conn: self._ensure_dataset(conn, name, meta), n=0, dataset=name
        )

    def has_dataset(self, name: str) -> bool:
        """Whether dataset ``name`` exists."""
        with self._transaction(write=False) as conn:
            return self._find_dataset(conn, name) is not None

    def datasets(self) -> list[str]:
        """The names of all datasets, sorted."""
        query = sa.select(datasets_table.c.name).order_by(datasets_table.c.name)
        with self._transaction(write=False) as conn:
            return list(conn.execute(query).scalars())

    def dataset_meta(self, name: str) -> dict[str, Any]:
        """The meta dict dataset ``name`` was created with."""
        with self._transaction(write=False) as conn:
            dataset_id = self._dataset_id(conn, name)
            query = sa.select(datasets_table.c.meta).where(
                datasets_table.c.id == dataset_id
            )
            return dict(conn.execute(query).scalar_one())

    def dataset_counts(self) -> dict[str, int]:
        """Each dataset's number of answers, by dataset name (sorted)."""
        a, d = answers_table, datasets_table
        query = (
            sa.select(d.c.name, sa.func.count(a.c.id))
            .select_from(d.outerjoin(a, a.c.dataset_id == d.c.id))
            .group_by(d.c.name)
            .order_by(d.c.name)
        )
        with self._transaction(write=False) as conn:
            return {name: count for name, count in conn.execute(query)}

    def drop_dataset(
        self, name: str, *, force: bool = False, now: float | None = None
    ) -> int:
        """Delete dataset ``name`` and its answers; return how many answers.

        A dataset in use (a live lease, or a labelling server's heartbeat, see
        :meth:`beat`) is kept and ValueError raised, unless ``force``: deleting
        it under a server loses what the server goes on answering. ``now`` is
        the wall clock (unix seconds) leases and heartbeats are compared with.
        """
        wall = time.time() if now is None else float(now)

        def drop(conn: Connection) -> int:
            dataset_id = self._dataset_id(conn, name)
            if not force:
                use = self._use(conn, dataset_id, wall)
                if use["leases"] or use["servers"]:
                    raise ValueError(
                        Errors.E985.format(name=name, seconds=HEARTBEAT_TTL, **use)
                    )
            a = answers_table
            removed = conn.execute(a.delete().where(a.c.dataset_id == dataset_id))
            conn.execute(
                leases_table.delete().where(leases_table.c.dataset_id == dataset_id)
            )
            conn.execute(
                servers_table.delete().where(servers_table.c.dataset_id == dataset_id)
            )
            conn.execute(
                datasets_table.delete().where(datasets_table.c.id == dataset_id)
            )
            return int(removed.rowcount)

        return self._write(drop, n=0, dataset=name)

    # --- writing answers ---------------------------------------------------

    def add_answers(
        self,
        dataset: str,
        answers: Sequence[dict[str, Any]],
        *,
        annotator: str,
        model_version: int | None = None,
    ) -> list[int]:
        """Store a batch of answers in one transaction; return their ids.

        Every answer is validated first (see :func:`validate_answer`): one bad answer
        raises :class:`AnswerError` naming its position and field, and nothing of the
        batch is written. The dataset is created if missing. An answer to a task that
        ``annotator`` already answered in this dataset replaces the earlier one; within
        the batch, the last answer to a task wins (and its id is returned for both).
        A task is known by its ``_task_key``; an answer whose keys match a stored
        answer's (or another of the batch's) on a different input is refused
        (:class:`AnswerError`, nothing written): keys are hashes, the text decides.
        """
        _check_name(dataset, "dataset")
        _check_name(annotator, "annotator")
        if model_version is not None and not _is_int(model_version):
            raise ValueError(Errors.E111.format(snippet=_snippet(model_version)))
        created = _now()
        rows: list[dict[str, Any]] = []
        for i, answer in enumerate(answers):
            try:
                task = validate_answer(answer)
            except AnswerError as e:
                msg = Errors.E117.format(i=i, dataset=dataset, err=e)
                raise AnswerError(msg, field=e.field, index=i) from e
            rows.append(
                {
                    "input_hash": task["_input_hash"],
                    "task_hash": task["_task_hash"],
                    "input_key": task["_input_key"],
                    "task_key": task["_task_key"],
                    "annotator": annotator,
                    "answer": task["answer"],
                    "label": task.get("label"),
                    "accept": task.get("accept"),
                    "model_version": model_version,
                    "created": created,
                    "content": {k: v for k, v in task.items() if k not in ANSWER_KEYS},
                }
            )
        _check_batch_identity(rows, dataset)
        last = {row["task_key"]: i for i, row in enumerate(rows)}
        unique = sorted(last.values())

        def write(conn: Connection) -> list[int]:
            dataset_id = self._ensure_dataset(conn, dataset)
            chosen = [rows[i] for i in unique]
            _check_stored_identity(conn, dataset_id, chosen, dataset)
            return self._replace_rows(conn, dataset_id, chosen)

        ids = self._write(write, n=len(unique), dataset=dataset)
        id_of = dict(zip(unique, ids, strict=True))
        return [id_of[last[row["task_key"]]] for row in rows]

    def _replace_rows(
        self, conn: Connection, dataset_id: int, rows: list[dict[str, Any]]
    ) -> list[int]:
        if not rows:
            return []
        a = answers_table
        conn.execute(
            a.delete().where(
                a.c.dataset_id == sa.bindparam("b_dataset_id"),
                a.c.task_key == sa.bindparam("b_task_key"),
                a.c.annotator == sa.bindparam("b_annotator"),
            ),
            [
                {
                    "b_dataset_id": dataset_id,
                    "b_task_key": row["task_key"],
                    "b_annotator": row["annotator"],
                }
                # One lock order for every writer makes deadlocks rarer.
                for row in sorted(rows, key=lambda row: row["task_key"])
            ],
        )
        params = [{**row, "dataset_id": dataset_id} for row in rows]
        if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
            insert = a.insert().returning(a.c.id, sort_by_parameter_order=True)
            return [int(i) for i in conn.execute(insert, params).scalars()]
        return [
            int(conn.execute(a.insert(), [p]).inserted_primary_key[0]) for p in params
        ]

    def remove_answer(self, dataset: str, *, task_key: int, annotator: str) -> bool:
        """Delete ``annotator``'s answer to the task ``task_key`` (undo).

        Returns whether there was such an answer.
        """

        def remove(conn: Connection) -> bool:
            dataset_id = self._dataset_id(conn, dataset)
            a = answers_table
            result = conn.execute(
                a.delete().where(
                    a.c.dataset_id == dataset_id,
                    a.c.task_key == task_key,
                    _is_annotator(annotator),
                )
            )
            return result.rowcount > 0

        return self._write(remove, n=1, dataset=dataset)

    # --- leases ------------------------------------------------------------

    def put_leases(self, dataset: str, leases: Sequence[dict[str, Any]]) -> None:
        """Record leases (``input_hash``, ``annotator``, ``expires`` in unix
        seconds, ``task``), replacing the same annotator's lease on the same input.

        Leases of a dataset that doesn't exist (yet) are not recorded.
        """
        rows = {
            (int(lease["input_hash"]), str(lease["annotator"])): {
                "input_hash": int(lease["input_hash"]),
                "annotator": str(lease["annotator"]),
                "expires": float(lease["expires"]),
                "task": lease["task"],
            }
            for lease in leases
        }
        if not rows:
            return
        ordered = [rows[k] for k in sorted(rows)]  # one lock order for every writer

        def write(conn: Connection) -> None:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return
            lt = leases_table
            conn.execute(
                lt.delete().where(
                    lt.c.dataset_id == dataset_id,
                    lt.c.input_hash == sa.bindparam("b_input_hash"),
                    lt.c.annotator == sa.bindparam("b_annotator"),
                ),
                [
                    {"b_input_hash": r["input_hash"], "b_annotator": r["annotator"]}
                    for r in ordered
                ],
            )
            conn.execute(
                lt.insert(), [{**r, "dataset_id": dataset_id} for r in ordered]
            )

        self._write(write, n=0, dataset=dataset)

    def drop_leases(
        self,
        dataset: str,
        keys: Iterable[tuple[int, str]] = (),
        *,
        expired_before: float | None = None,
        not_after: Mapping[tuple[int, str], float] | None = None,
    ) -> int:
        """Delete leases given as (input key, annotator) pairs, and with
        ``expired_before`` (unix seconds) every lease that ended before it.
        ``not_after`` ({pair: unix seconds}) spares a pair's lease whose stored
        end is later (renewed by another server meanwhile). Returns how many
        were deleted."""
        pairs = sorted({(int(k), str(who)) for k, who in keys})
        if not pairs and expired_before is None:
            return 0
        bounds = {
            (int(k), str(who)): float(t) for (k, who), t in (not_after or {}).items()
        }

        def write(conn: Connection) -> int:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return 0
            lt = leases_table
            removed = 0
            if pairs:
                result = conn.execute(
                    lt.delete().where(
                        lt.c.dataset_id == dataset_id,
                        lt.c.input_hash == sa.bindparam("b_input_hash"),
                        lt.c.annotator == sa.bindparam("b_annotator"),
                        lt.c.expires <= sa.bindparam("b_not_after"),
                    ),
                    [
                        {
                            "b_input_hash": k,
                            "b_annotator": who,
                            "b_not_after": bounds.get((k, who), _NO_BOUND),
                        }
                        for k, who in pairs
                    ],
                )
                removed += max(int(result.rowcount), 0)
            if expired_before is not None:
                result = conn.execute(
                    lt.delete().where(
                        lt.c.dataset_id == dataset_id,
                        lt.c.expires < float(expired_before),
                    )
                )
                removed += max(int(result.rowcount), 0)
            return removed

        return self._write(write, n=0, dataset=dataset)

    def get_leases(self, dataset: str) -> list[dict[str, Any]]:
        """The recorded leases of ``dataset`` (``input_hash``, ``annotator``,
        ``expires``, ``task``), oldest first; none for an unknown dataset."""
        lt = leases_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return []
            rows = conn.execute(
                sa.select(lt.c.input_hash, lt.c.annotator, lt.c.expires, lt.c.task)
                .where(lt.c.dataset_id == dataset_id)
                .order_by(lt.c.id)
            ).all()
        return [
            {
                "input_hash": row.input_hash,
                "annotator": row.annotator,
                "expires": row.expires,
                "task": row.task,
            }
            for row in rows
        ]

    def _lease_dataset(self, conn: Connection, name: str) -> int | None:
        # Leases don't take the dataset's writer lock (see _find_dataset): they
        # never change answers, so they needn't wait for answer writers.
        if not isinstance(name, str) or _unstorable_text(name) is not None:
            return None
        query = sa.select(datasets_table.c.id).where(datasets_table.c.name == name)
        return conn.execute(query).scalar_one_or_none()

    def claim_lease(
        self,
        dataset: str,
        key: int,
        annotator: str,
        *,
        expires: float,
        task: dict[str, Any],
        overlap: int = 1,
        grace: float = 0.0,
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """Lease the example ``key`` to ``annotator`` until ``expires`` (unix
        seconds), if it is still open to them: across every server of the
        dataset, fewer than ``overlap`` annotators have answered it or hold a
        live lease on it, and ``annotator`` hasn't answered it.

        One transaction that takes the dataset's writer lock, so claims and
        answers of every process take turns: of two servers claiming the last
        slot of an example, one wins. A lease counts as live until ``grace``
        seconds after its stored end (a server writes renewals a little late).
        ``annotator``'s own live lease is renewed. Returns ``claimed`` (bool),
        ``answered`` (who answered it) and ``held`` (the others who hold a live
        lease on it), or None if the dataset doesn't exist.
        """
        wall = time.time() if now is None else float(now)
        key = int(key)

        def write(conn: Connection) -> dict[str, Any] | None:
            dataset_id = self._find_dataset(conn, dataset)  # the writer lock
            if dataset_id is None:
                return None
            lt, a = leases_table, answers_table
            mine = (lt.c.dataset_id == dataset_id, lt.c.input_hash == key)
            conn.execute(lt.delete().where(*mine, lt.c.expires <= wall - grace))
            held = set(conn.execute(sa.select(lt.c.annotator).where(*mine)).scalars())
            # A lease's key is the example's identity key (``_input_key``).
            same = a.c.input_key == key
            answered = set(
                conn.execute(
                    sa.select(a.c.annotator)
                    .distinct()
                    .where(a.c.dataset_id == dataset_id, same)
                ).scalars()
            )
            claimed = annotator not in answered and (
                annotator in held or len(answered | held) < overlap
            )
            if claimed and annotator in held:
                conn.execute(
                    lt.update()
                    .where(*mine, lt.c.annotator == annotator)
                    .values(expires=float(expires), task=task)
                )
            elif claimed:
                conn.execute(
                    lt.insert().values(
                        dataset_id=dataset_id,
                        input_hash=key,
                        annotator=annotator,
                        expires=float(expires),
                        task=task,
                    )
                )
            return {
                "claimed": claimed,
                "answered": sorted(answered),
                "held": sorted(held - {annotator}),
            }

        return self._write(write, n=0, dataset=dataset)

    def beat(self, dataset: str, server: str, *, expires: float) -> bool:
        """Record that labelling server ``server`` (an id of its own) serves
        ``dataset`` until ``expires`` (unix seconds); servers renew this every
        few seconds. False if the dataset doesn't exist (any more)."""

        def write(conn: Connection) -> bool:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return False
            st = servers_table
            mine = (st.c.dataset_id == dataset_id, st.c.server == server)
            done = conn.execute(st.update().where(*mine).values(expires=expires))
            if not done.rowcount:
                conn.execute(
                    st.insert().values(
                        dataset_id=dataset_id, server=server, expires=expires
                    )
                )
            return True

        return self._write(write, n=0, dataset=dataset)

    def end_beat(self, dataset: str, server: str) -> None:
        """Forget labelling server ``server`` of ``dataset`` (it stopped)."""

        def write(conn: Connection) -> None:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is not None:
                st = servers_table
                conn.execute(
                    st.delete().where(
                        st.c.dataset_id == dataset_id, st.c.server == server
                    )
                )

        self._write(write, n=0, dataset=dataset)

    def dataset_in_use(
        self, dataset: str, *, now: float | None = None
    ) -> dict[str, int]:
        """How many live ``leases`` and labelling ``servers`` (heartbeats) the
        dataset has now (both 0 for an unknown dataset)."""
        wall = time.time() if now is None else float(now)
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return {"leases": 0, "servers": 0}
            return self._use(conn, dataset_id, wall)

    def _use(self, conn: Connection, dataset_id: int, wall: float) -> dict[str, int]:
        lt, st = leases_table, servers_table
        leases = conn.execute(
            sa.select(sa.func.count(lt.c.id)).where(
                lt.c.dataset_id == dataset_id, lt.c.expires > wall
            )
        ).scalar_one()
        servers = conn.execute(
            sa.select(sa.func.count(st.c.id)).where(
                st.c.dataset_id == dataset_id, st.c.expires > wall
            )
        ).scalar_one()
        return {"leases": int(leases), "servers": int(servers)}

    def answer_id(self, dataset: str, *, task_key: int, annotator: str) -> int | None:
        """The id of ``annotator``'s stored answer to the task ``task_key``, or None."""
        a = answers_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None or not (
                _is_int(task_key) and _HASH_MIN <= task_key <= _HASH_MAX
            ):
                return None
            query = sa.select(a.c.id).where(
                a.c.dataset_id == dataset_id,
                a.c.task_key == task_key,
                _is_annotator(annotator),
            )
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    # --- reading answers ---------------------------------------------------

    def _answers_query(
        self,
        dataset_id: int,
        *,
        annotator: str | None,
        since_id: int | None,
        answers: list[str] | None,
    ) -> sa.Select[Any]:
        a = answers_table
        query = (
            sa.select(
                a.c.id,
                a.c.input_hash,
                a.c.task_hash,
                a.c.input_key,
                a.c.task_key,
                a.c.annotator,
                a.c.answer,
                a.c.model_version,
                a.c.created,
                a.c.content,
            )
            .where(a.c.dataset_id == dataset_id)
            .order_by(a.c.id)
        )
        if annotator is not None:
            query = query.where(_is_annotator(annotator))
        if since_id is not None:
            query = query.where(a.c.id > since_id)
        if answers is not None:
            query = query.where(a.c.answer.in_(answers))
        return query

    def _read_answers(
        self,
        dataset: str,
        *,
        annotator: str | None,
        since_id: int | None,
        answers: list[str] | None,
        limit: int | None,
    ) -> list[dict[str, Any]]:
        with self._transaction(write=False) as conn:
            dataset_id = self._dataset_id(conn, dataset)
            query = self._answers_query(
                dataset_id, annotator=annotator, since_id=since_id, answers=answers
            )
            if limit is not None:
                query = query.limit(limit)
            rows = conn.execute(query).all()
        return [
            {
                **row.content,
                "answer": row.answer,
                "_input_hash": row.input_hash,
                "_task_hash": row.task_hash,
                "_input_key": row.input_key,
                "_task_key": row.task_key,
                "_annotator_id": row.annotator,
                "_session_id": f"{dataset}-{row.annotator}",
                "_timestamp": int(row.created.timestamp()),
                "_model_version": row.model_version,
                "_id": row.id,
            }
            for row in rows
        ]

    def get_answers(
        self,
        dataset: str,
        *,
        annotator: str | None = None,
        since_id: int | None = None,
        answers: str | Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The answers in ``dataset`` as tasks, in id order.

        Each is the task as answered plus ``answer``, ``_input_hash``, ``_task_hash``,
        ``_input_key``, ``_task_key``, ``_annotator_id``, ``_session_id`` (``"{dataset}-{annotator}"``),
        ``_timestamp`` (unix seconds), ``_model_version`` and ``_id`` (its row id).
        Filter by ``annotator``, by ids greater than ``since_id``, and by ``answers``
        (e.g. ``["accept"]``). Raises ValueError for an unknown dataset.
        """
        if since_id is not None and not _is_int(since_id):
            raise ValueError(Errors.E116.format(snippet=_snippet(since_id)))
        return self._read_answers(
            dataset,
            annotator=annotator,
            since_id=since_id,
            answers=_check_answer_values(answers),
            limit=None,
        )

    def iter_answers(
        self,
        dataset: str,
        *,
        batch_size: int = 1000,
        annotator: str | None = None,
        answers: str | Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream the answers of ``dataset`` as :meth:`get_answers` gives them.

        Reads ``batch_size`` answers per query, so a large dataset is never held in
        memory at once, and no transaction stays open between batches. Arguments and
        the dataset are checked at the call, not at the first answer.
        """
        if not _is_int(batch_size) or batch_size < 1:
            msg = Errors.E113.format(name="batch_size", snippet=_snippet(batch_size))
            raise ValueError(msg)
        values = _check_answer_values(answers)
        with self._transaction(write=False) as conn:
            self._dataset_id(conn, dataset)
        return self._pages(
            dataset, batch_size=batch_size, annotator=annotator, answers=values
        )

    def _pages(
        self,
        dataset: str,
        *,
        batch_size: int,
        annotator: str | None,
        answers: list[str] | None,
    ) -> Iterator[dict[str, Any]]:
        last_id: int | None = None
        while True:
            page = self._read_answers(
                dataset,
                annotator=annotator,
                since_id=last_id,
                answers=answers,
                limit=batch_size,
            )
            yield from page
            if len(page) < batch_size:
                return
            last_id = page[-1]["_id"]

    def _scalar_set(
        self, dataset: str, column: sa.ColumnElement[Any], annotator: str | None
    ) -> set[int]:
        a = answers_table
        with self._transaction(write=False) as conn:
            dataset_id = self._dataset_id(conn, dataset)
            query = sa.select(column).distinct().where(a.c.dataset_id == dataset_id)
            if annotator is not None:
                query = query.where(_is_annotator(annotator))
            return set(conn.execute(query).scalars())

    def answered_input_keys(
        self, dataset: str, *, annotator: str | None = None
    ) -> set[int]:
        """Input keys (``_input_key``) answered in ``dataset`` (by ``annotator``,
        if given)."""
        return self._scalar_set(dataset, answers_table.c.input_key, annotator)

    def answered_task_keys(
        self, dataset: str, *, annotator: str | None = None
    ) -> set[int]:
        """Task keys (``_task_key``) answered in ``dataset`` (by ``annotator``, if
        given)."""
        return self._scalar_set(dataset, answers_table.c.task_key, annotator)

    def count_answers(self, dataset: str, *, annotator: str | None = None) -> int:
        """How many answers ``dataset`` holds (by ``annotator``, if given)."""
        a = answers_table
        with self._transaction(write=False) as conn:
            dataset_id = self._dataset_id(conn, dataset)
            query = sa.select(sa.func.count(a.c.id)).where(a.c.dataset_id == dataset_id)
            if annotator is not None:
                query = query.where(_is_annotator(annotator))
            return int(conn.execute(query).scalar_one())

    def stats(self, dataset: str) -> dict[str, Any]:
        """A summary of ``dataset``.

        Keys: ``dataset``, ``created`` (unix seconds), ``total``, ``answers`` (count
        per answer value), ``annotators`` (count per annotator), ``labels`` (per
        ``label``: count per answer value), ``choices`` (how often each label or
        option id was in an accepted answer's ``accept`` list), and
        ``first_timestamp`` / ``last_timestamp`` (unix seconds, None when empty).
        """
        a, d = answers_table, datasets_table
        with self._transaction(write=False) as conn:
            dataset_id = self._dataset_id(conn, dataset)
            mine = a.c.dataset_id == dataset_id
            created = conn.execute(
                sa.select(d.c.created).where(d.c.id == dataset_id)
            ).scalar_one()
            by_answer = conn.execute(
                sa.select(a.c.answer, sa.func.count(a.c.id))
                .where(mine)
                .group_by(a.c.answer)
            ).all()
            by_annotator = conn.execute(
                sa.select(a.c.annotator, sa.func.count(a.c.id))
                .where(mine)
                .group_by(a.c.annotator)
                .order_by(a.c.annotator)
            ).all()
            by_label = conn.execute(
                sa.select(a.c.label, a.c.answer, sa.func.count(a.c.id))
                .where(mine, a.c.label.is_not(None))
                .group_by(a.c.label, a.c.answer)
                .order_by(a.c.label)
            ).all()
            first, last = conn.execute(
                sa.select(sa.func.min(a.c.created), sa.func.max(a.c.created)).where(
                    mine
                )
            ).one()
            accepted = conn.execute(
                sa.select(a.c.accept).where(
                    mine, a.c.answer == "accept", a.c.accept.is_not(None)
                )
            ).scalars()
            choices: dict[str, int] = {}
            for chosen in accepted:
                for value in chosen:
                    choices[str(value)] = choices.get(str(value), 0) + 1
        counts = {value: 0 for value in ANSWERS}
        counts.update({value: n for value, n in by_answer})
        labels: dict[str, dict[str, int]] = {}
        for label, value, n in by_label:
            labels.setdefault(label, {v: 0 for v in ANSWERS})[value] = n
        return {
            "dataset": dataset,
            "created": int(created.timestamp()),
            "total": sum(counts.values()),
            "answers": counts,
            "annotators": {name: n for name, n in by_annotator},
            "labels": labels,
            "choices": dict(sorted(choices.items())),
            "first_timestamp": _timestamp(first),
            "last_timestamp": _timestamp(last),
        }


def _is_annotator(name: str) -> sa.ColumnElement[bool]:
    if not isinstance(name, str) or _unstorable_text(name) is not None:
        return sa.false()  # no such annotator can have been stored
    return answers_table.c.annotator == name


def _timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


# --- identity ------------------------------------------------------------------


def _input_of(row: dict[str, Any]) -> dict[str, Any]:
    return input_content({**row["content"], "_input_hash": row["input_hash"]})


def _check_batch_identity(rows: list[dict[str, Any]], dataset: str) -> None:
    """Refuse a batch in which one key stands for two different inputs."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        for column in ("input_key", "task_key"):
            seen = first.setdefault((column, row[column]), row)
            if seen is not row and _input_of(seen) != _input_of(row):
                msg = Errors.E962.format(
                    key=row[column],
                    dataset=dataset,
                    first=_snippet(_input_of(seen)),
                    second=_snippet(_input_of(row)),
                )
                raise AnswerError(msg, field=f"_{column}")


def _check_stored_identity(
    conn: Connection, dataset_id: int, rows: list[dict[str, Any]], dataset: str
) -> None:
    """Refuse rows whose input or task key is a stored answer's on another input.

    Keys are 64-bit hashes: equal keys almost always mean the same input, and
    comparing the inputs makes it always.
    """
    a = answers_table
    for column in ("input_key", "task_key"):
        by_key = {row[column]: row for row in rows}
        keys = sorted(by_key)
        for start in range(0, len(keys), IDENTITY_PAGE):
            page = keys[start : start + IDENTITY_PAGE]
            found = conn.execute(
                sa.select(a.c[column], a.c.input_hash, a.c.content).where(
                    a.c.dataset_id == dataset_id, a.c[column].in_(page)
                )
            ).all()
            for key, input_hash, content in found:
                stored = _input_of({"input_hash": input_hash, "content": content})
                new = _input_of(by_key[key])
                if stored != new:
                    msg = Errors.E962.format(
                        key=key,
                        dataset=dataset,
                        first=_snippet(stored),
                        second=_snippet(new),
                    )
                    raise AnswerError(msg, field=f"_{column}")


# --- migrations ------------------------------------------------------------------


def _row_keys(input_hash: int, content: dict[str, Any]) -> tuple[int, int]:
    """The identity keys of a stored answer, from its content (as
    :func:`~spacy_al.corpus.set_hashes` would have set them)."""
    task = {**content, "_input_hash": input_hash}
    task.pop("_input_key", None)
    task.pop("_task_key", None)
    input_key = get_input_key(task)
    return input_key, get_task_key({**task, "_input_key": input_key})


def migrate(conn: Connection) -> bool:
    """Upgrade an answers table made before the identity keys, in place.

    Adds the ``input_key`` and ``task_key`` columns, fills them from each answer's
    content, and makes (dataset, task key, annotator) the unique key instead of
    (dataset, 32-bit task hash, annotator), under which two different texts whose
    hashes collided were one answer. Ids are kept (SQLite's id sequence too), so
    ``since_id`` readers miss nothing. Runs in the caller's write transaction:
    all of it, or none. Returns whether anything was upgraded.
    """
    if not sa.inspect(conn).has_table("answers"):
        return False
    if conn.dialect.name == "postgresql":
        # Another process may be upgrading too: the second waits, then sees it done.
        conn.exec_driver_sql("LOCK TABLE answers IN ACCESS EXCLUSIVE MODE")
    inspector = sa.inspect(conn)
    columns = {column["name"] for column in inspector.get_columns("answers")}
    if "task_key" in columns:
        return False
    if conn.dialect.name == "sqlite":
        _migrate_sqlite(conn)
    else:
        _migrate_alter(conn, inspector)
    return True


def _old_rows(conn: Connection, table: str) -> Iterator[Any]:
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                f"SELECT id, input_hash, content FROM {table} "
                "WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": IDENTITY_PAGE},
        ).all()
        yield from rows
        if len(rows) < IDENTITY_PAGE:
            return
        last = rows[-1].id


def _content(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str | bytes) else dict(value)


def _migrate_sqlite(conn: Connection) -> None:
    # SQLite can't drop a constraint: rebuild the table under its new schema.
    sequence = conn.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = 'answers'"
    ).scalar_one_or_none()
    for index in sa.inspect(conn).get_indexes("answers"):
        conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{index["name"]}"')
    conn.exec_driver_sql("ALTER TABLE answers RENAME TO answers_before_keys")
    answers_table.create(conn)
    names = [
        c.name for c in answers_table.columns if c.name not in ("input_key", "task_key")
    ]
    listed = ", ".join(names)
    copy = sa.text(
        f"INSERT INTO answers ({listed}, input_key, task_key) "
        f"SELECT {listed}, :input_key, :task_key FROM answers_before_keys "
        "WHERE id = :id"
    )
    batch: list[dict[str, int]] = []
    for row in _old_rows(conn, "answers_before_keys"):
        input_key, task_key = _row_keys(row.input_hash, _content(row.content))
        batch.append({"input_key": input_key, "task_key": task_key, "id": row.id})
        if len(batch) >= IDENTITY_PAGE:
            conn.execute(copy, batch)
            batch = []
    if batch:
        conn.execute(copy, batch)
    conn.exec_driver_sql("DROP TABLE answers_before_keys")
    if sequence is not None:
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'answers'")
        conn.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('answers', ?)",
            (int(sequence),),
        )


def _migrate_alter(conn: Connection, inspector: Any) -> None:
    conn.exec_driver_sql("ALTER TABLE answers ADD COLUMN input_key BIGINT")
    conn.exec_driver_sql("ALTER TABLE answers ADD COLUMN task_key BIGINT")
    update = sa.text(
        "UPDATE answers SET input_key = :input_key, task_key = :task_key WHERE id = :id"
    )
    batch: list[dict[str, int]] = []
    for row in _old_rows(conn, "answers"):
        input_key, task_key = _row_keys(row.input_hash, _content(row.content))
        batch.append({"input_key": input_key, "task_key": task_key, "id": row.id})
        if len(batch) >= IDENTITY_PAGE:
            conn.execute(update, batch)
            batch = []
    if batch:
        conn.execute(update, batch)
    conn.exec_driver_sql("ALTER TABLE answers ALTER COLUMN input_key SET NOT NULL")
    conn.exec_driver_sql("ALTER TABLE answers ALTER COLUMN task_key SET NOT NULL")
    for constraint in inspector.get_unique_constraints("answers"):
        if constraint["column_names"] == ["dataset_id", "task_hash", "annotator"]:
            conn.exec_driver_sql(
                f'ALTER TABLE answers DROP CONSTRAINT "{constraint["name"]}"'
            )
    for index in inspector.get_indexes("answers"):
        if index["column_names"] == ["dataset_id", "input_hash"]:
            conn.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    for constraint in answers_table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            conn.execute(sa.schema.AddConstraint(constraint))
    for index in answers_table.indexes:
        if index.name == "ix_answers_dataset_input_key":
            index.create(conn)
