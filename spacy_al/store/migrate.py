"""Upgrading databases made by earlier versions, in place, when they are opened.

Answers tables made before the identity keys get ``input_key`` and ``task_key``
columns filled from each answer's content, and (dataset, task key, annotator) as
their unique key. SQLite can't drop a constraint, so its table is rebuilt;
other databases are altered.

Tables added by later versions (the servers' ``leases`` and ``servers``, the
learner process's ``learners`` and ``queue``) change no existing table: a
database made before them gets them, empty, when it is opened (the store
creates every missing table right after :func:`migrate`, in the same
transaction, see :class:`~spacy_al.store.base.StoreBase`). :data:`ADDED_TABLES`
names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.identity import get_input_key, get_task_key
from spacy_al.store.collisions import IDENTITY_PAGE
from spacy_al.store.schema import answers_table

#: Tables added after the first release, created where missing (empty).
ADDED_TABLES = ("leases", "servers", "learners", "queue")


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
