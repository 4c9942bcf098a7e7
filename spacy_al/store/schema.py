"""The store's tables: datasets, answers, leases, the servers' heartbeats, and
the learner process's lock and queue.

One :data:`metadata` holds them all; :class:`~spacy_al.store.Store` creates what
is missing when it opens a database, after :func:`~spacy_al.store.migrate.migrate`
has upgraded tables made by earlier versions.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

MAX_NAME_LENGTH = 255


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


def _dataset_id() -> sa.Column:
    """The column that ties a row to its dataset; the dataset's rows go with it."""
    return sa.Column(
        "dataset_id",
        _Id,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    )


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
    _dataset_id(),
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
    _dataset_id(),
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
# use from one nobody serves. A crashed server's row simply runs out (its
# heartbeat counts for HEARTBEAT_TTL seconds, see spacy_al.store.leases).
servers_table = sa.Table(
    "servers",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    _dataset_id(),
    sa.Column("server", sa.String(64), nullable=False),
    sa.Column("expires", sa.Float(), nullable=False),
    sa.UniqueConstraint("dataset_id", "server", name="uq_servers_dataset_server"),
    sqlite_autoincrement=True,
)

# The examples a dataset's learner process selected, best first, for its servers
# to serve (see spacy_al.serve.learner): ``model_version`` is the version that
# ranked them, ``rank`` their place in that ranking, ``input_key`` the example's
# identity key and ``task`` the task to serve. A new model version replaces the
# rows; a queue running low gets more appended (with higher ids).
queue_table = sa.Table(
    "queue",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    _dataset_id(),
    sa.Column("model_version", sa.BigInteger(), nullable=False),
    sa.Column("rank", sa.Integer(), nullable=False),
    sa.Column("input_key", sa.BigInteger(), nullable=False),
    sa.Column("task", sa.JSON(), nullable=False),
    sa.UniqueConstraint("dataset_id", "input_key", name="uq_queue_dataset_input"),
    sqlite_autoincrement=True,
)

# One learner process per dataset: the row names its holder and ends at
# ``expires`` (wall clock, unix seconds) unless renewed. Keyed by the dataset's
# name, so a learner can hold it before the dataset is created. The holder
# publishes here the model version it serves (``version``), the version that
# ranked the queue (``queue_version``, None before the first), whether its last
# selection found nothing left (``exhausted``) and what the servers show about
# learning (``state``: updates, the curve, the stopping signal, errors).
learners_table = sa.Table(
    "learners",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(MAX_NAME_LENGTH), nullable=False, unique=True),
    sa.Column("learner", sa.String(255), nullable=False),
    sa.Column("expires", sa.Float(), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False, default=0),
    sa.Column("queue_version", sa.BigInteger(), nullable=True),
    sa.Column("exhausted", sa.Boolean(), nullable=False, default=False),
    sa.Column("state", sa.JSON(), nullable=False),
    sqlite_autoincrement=True,
)
