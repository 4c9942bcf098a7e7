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

:class:`Store` is the one object callers use; its parts live in modules of their
own:

* ``engine``: URLs, engines, SQLite's pragmas, conflicts worth a retry;
* ``schema``: the tables;
* ``migrate``: upgrading databases made by earlier versions;
* ``checks`` and ``collisions``: what a write is refused for (bad names and
  values; one identity key standing for two inputs);
* ``base``: the connection, transactions and retries the parts share;
* ``datasets``, ``answers``, ``leases``, ``queue``: what the store keeps, one
  class each, combined in :class:`Store` (``queue``: the learner process's lock
  and the examples it selected, see :mod:`spacy_al.serve.learner`).
"""

from __future__ import annotations

from spacy_al.answers import AnswerError, validate_answer
from spacy_al.store.answers import ANSWER_KEYS, AnswerStore
from spacy_al.store.base import StoreBase
from spacy_al.store.collisions import IDENTITY_PAGE
from spacy_al.store.datasets import DatasetStore
from spacy_al.store.engine import (
    BUSY_TIMEOUT_MS,
    DB_ENV_VAR,
    DEFAULT_DB,
    RETRY_WAIT,
    WRITE_ATTEMPTS,
    default_db,
)
from spacy_al.store.leases import HEARTBEAT_TTL, LeaseStore
from spacy_al.store.migrate import migrate
from spacy_al.store.queue import QueueStore
from spacy_al.store.schema import (
    MAX_NAME_LENGTH,
    UTCDateTime,
    answers_table,
    datasets_table,
    learners_table,
    leases_table,
    metadata,
    queue_table,
    servers_table,
)

__all__ = [
    "ANSWER_KEYS",
    "BUSY_TIMEOUT_MS",
    "DB_ENV_VAR",
    "DEFAULT_DB",
    "HEARTBEAT_TTL",
    "IDENTITY_PAGE",
    "MAX_NAME_LENGTH",
    "RETRY_WAIT",
    "WRITE_ATTEMPTS",
    "AnswerError",
    "Store",
    "StoreBase",
    "UTCDateTime",
    "answers_table",
    "datasets_table",
    "QueueStore",
    "default_db",
    "learners_table",
    "leases_table",
    "metadata",
    "migrate",
    "queue_table",
    "servers_table",
    "validate_answer",
]


class Store(DatasetStore, AnswerStore, LeaseStore, QueueStore):
    """The answer database, safe to share between threads.

    ``url`` is an SQLite file path (parent folders are created), ``":memory:"``, or
    any SQLAlchemy URL (``sqlite:///answers.db``,
    ``postgresql+psycopg://user@host/dbname``). Tables are created if missing.
    Datasets (:class:`DatasetStore`), answers (:class:`AnswerStore`), leases
    and heartbeats (:class:`LeaseStore`), and the learner process's lock and
    queue (:class:`QueueStore`) each have a part of their own.
    """

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
