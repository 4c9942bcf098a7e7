"""Answers: written in one transaction per batch, replaced, undone, read and counted.

A dataset holds one row per (dataset, task, annotator): answering a task again
replaces the earlier answer with a new row (a new, higher id), so readers polling
with ``since_id`` see edits. Answers read back as Prodigy-style tasks with the
:data:`~spacy_al.answers.STORED_KEYS` set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.answers import (
    ANSWERS,
    STORED_KEYS,
    AnswerError,
    unstorable_text,
    validate_answer,
)
from spacy_al.errors import Errors
from spacy_al.store.base import StoreBase, utc_now
from spacy_al.store.checks import check_answer_values, check_name, is_int, snippet
from spacy_al.store.collisions import check_batch_identity, check_stored_identity
from spacy_al.store.leases import write_leases
from spacy_al.store.schema import answers_table, datasets_table

# Keys that are columns and set on every answer read back; never kept in ``content``.
ANSWER_KEYS = STORED_KEYS
_HASH_MIN, _HASH_MAX = -(2**63), 2**63 - 1


class AnswerStore(StoreBase):
    """Writing and reading the answers of datasets (part of
    :class:`~spacy_al.store.Store`)."""

    def add_answers(
        self,
        dataset: str,
        answers: Sequence[dict[str, Any]],
        *,
        annotator: str,
        model_version: int | None = None,
        create: bool = True,
    ) -> list[int]:
        """Store a batch of answers in one transaction; return their ids.

        Every answer is validated first (see :func:`validate_answer`): one bad answer
        raises :class:`AnswerError` naming its position and field, and nothing of the
        batch is written. The dataset is created if missing, unless ``create`` is
        False: then a missing dataset raises ValueError (E102), nothing written. An answer to a task that
        ``annotator`` already answered in this dataset replaces the earlier one; within
        the batch, the last answer to a task wins (and its id is returned for both).
        A task is known by its ``_task_key``; an answer whose keys match a stored
        answer's (or another of the batch's) on a different input is refused
        (:class:`AnswerError`, nothing written): keys are hashes, the text decides.
        """
        check_name(dataset, "dataset")
        check_name(annotator, "annotator")
        if model_version is not None and not is_int(model_version):
            raise ValueError(Errors.E111.format(snippet=snippet(model_version)))
        created = utc_now()
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
        check_batch_identity(rows, dataset)
        last = {row["task_key"]: i for i, row in enumerate(rows)}
        unique = sorted(last.values())

        def write(conn: Connection) -> list[int]:
            if create:
                dataset_id = self._ensure_dataset(conn, dataset)
            else:
                dataset_id = self._dataset_id(conn, dataset)
            chosen = [rows[i] for i in unique]
            check_stored_identity(conn, dataset_id, chosen, dataset)
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

    def remove_answer(
        self,
        dataset: str,
        *,
        task_key: int,
        annotator: str,
        lease: Mapping[str, Any] | None = None,
    ) -> bool:
        """Delete ``annotator``'s answer to the task ``task_key`` (undo).

        With ``lease`` (``input_hash``, ``expires``, ``task``), the example is
        leased to ``annotator`` in the same transaction, so no other server can
        claim it between the answer's removal and the lease (the annotator is
        served it again). Returns whether there was such an answer.
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
            removed = result.rowcount > 0
            if removed and lease is not None:
                row = {
                    "input_hash": int(lease["input_hash"]),
                    "annotator": annotator,
                    "expires": float(lease["expires"]),
                    "task": lease["task"],
                }
                write_leases(conn, dataset_id, [row])
            return removed

        return self._write(remove, n=1, dataset=dataset)

    def answer_id(self, dataset: str, *, task_key: int, annotator: str) -> int | None:
        """The id of ``annotator``'s stored answer to the task ``task_key``, or None."""
        a = answers_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None or not (
                is_int(task_key) and _HASH_MIN <= task_key <= _HASH_MAX
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
        if since_id is not None and not is_int(since_id):
            raise ValueError(Errors.E116.format(snippet=snippet(since_id)))
        return self._read_answers(
            dataset,
            annotator=annotator,
            since_id=since_id,
            answers=check_answer_values(answers),
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
        if not is_int(batch_size) or batch_size < 1:
            msg = Errors.E113.format(name="batch_size", snippet=snippet(batch_size))
            raise ValueError(msg)
        values = check_answer_values(answers)
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
    if not isinstance(name, str) or unstorable_text(name) is not None:
        return sa.false()  # no such annotator can have been stored
    return answers_table.c.annotator == name


def _timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
