"""The learner process's lock and queue: one learner per dataset, and what it
selected for the servers.

A dataset's learner process (:mod:`spacy_al.serve.learner`) holds a row of the
``learners`` table while it runs, renewed every few seconds (a heartbeat): a
second learner waits until the row is free, or ends, or its holder's heartbeat
runs out. The holder publishes on that row the model version it serves and
what the servers show about learning, and the examples it selected in the
``queue`` table, best first. Every write of the holder checks that it still
holds the row, in the same transaction: a learner that lost the lock (it stalled
past its heartbeat and another took over) can't overwrite the new one's queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.store.base import StoreBase
from spacy_al.store.schema import (
    answers_table,
    learners_table,
    leases_table,
    queue_table,
)


def _learner_row(row: Any) -> dict[str, Any]:
    return {
        "learner": row.learner,
        "expires": float(row.expires),
        "version": int(row.version or 0),
        "queue_version": None if row.queue_version is None else int(row.queue_version),
        "exhausted": bool(row.exhausted),
        "state": dict(row.state or {}),
    }


class QueueStore(StoreBase):
    """The learner lock and the queue of selected examples (part of
    :class:`~spacy_al.store.Store`)."""

    # --- the lock --------------------------------------------------------------

    def acquire_learner(
        self,
        dataset: str,
        learner: str,
        *,
        seconds: float,
        gone: Callable[[str], bool] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Take the learner lock of ``dataset`` for ``learner`` (an id of its
        own) for ``seconds``, if it is free: nobody holds it, the holder's
        heartbeat ran out, ``gone(holder)`` says the holder has ended (a process
        of this machine that no longer runs), or ``learner`` holds it already.

        Returns ``acquired`` (bool), ``holder`` (who holds it now) and
        ``expires`` (when the holder's heartbeat runs out, unix seconds). The
        new holder keeps the published version, so the version goes on.
        """
        wall = time.time() if now is None else float(now)
        lt = learners_table

        def write(conn: Connection) -> dict[str, Any]:
            row = conn.execute(
                sa.select(lt.c.learner, lt.c.expires)
                .where(lt.c.dataset == dataset)
                .with_for_update()
            ).first()
            ends = wall + float(seconds)
            if row is None:
                conn.execute(
                    lt.insert().values(
                        dataset=dataset,
                        learner=learner,
                        expires=ends,
                        version=0,
                        queue_version=None,
                        exhausted=False,
                        state={},
                    )
                )
                return {"acquired": True, "holder": learner, "expires": ends}
            free = (
                row.learner == learner
                or row.expires <= wall
                or (gone is not None and gone(row.learner))
            )
            if not free:
                return {
                    "acquired": False,
                    "holder": row.learner,
                    "expires": float(row.expires),
                }
            conn.execute(
                lt.update()
                .where(lt.c.dataset == dataset)
                .values(learner=learner, expires=ends)
            )
            return {"acquired": True, "holder": learner, "expires": ends}

        return self._write(write, n=0, dataset=dataset, durable=False)

    def renew_learner(
        self,
        dataset: str,
        learner: str,
        *,
        seconds: float,
        version: int | None = None,
        state: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> bool:
        """Renew ``learner``'s lock of ``dataset`` for ``seconds`` (and publish
        ``version`` and ``state`` when given). False if it doesn't hold the lock
        (any more): it must stop learning."""
        wall = time.time() if now is None else float(now)
        lt = learners_table
        values: dict[str, Any] = {"expires": wall + float(seconds)}
        if version is not None:
            values["version"] = int(version)
        if state is not None:
            values["state"] = dict(state)

        def write(conn: Connection) -> bool:
            done = conn.execute(
                lt.update()
                .where(lt.c.dataset == dataset, lt.c.learner == learner)
                .values(**values)
            )
            return done.rowcount > 0

        return self._write(write, n=0, dataset=dataset, durable=False)

    def release_learner(self, dataset: str, learner: str) -> None:
        """End ``learner``'s lock of ``dataset`` now (it stopped): the next
        learner takes over at once. What it published stays for the servers."""
        lt = learners_table

        def write(conn: Connection) -> None:
            conn.execute(
                lt.update()
                .where(lt.c.dataset == dataset, lt.c.learner == learner)
                .values(expires=0.0)
            )

        self._write(write, n=0, dataset=dataset, durable=False)

    def learner_state(self, dataset: str) -> dict[str, Any] | None:
        """The learner row of ``dataset``: ``learner`` (its holder), ``expires``,
        ``version``, ``queue_version``, ``exhausted`` and ``state``; None if no
        learner ever ran for it."""
        lt = learners_table
        with self._transaction(write=False) as conn:
            row = conn.execute(sa.select(lt).where(lt.c.dataset == dataset)).first()
        return None if row is None else _learner_row(row)

    # --- the queue ---------------------------------------------------------------

    def publish_queue(
        self,
        dataset: str,
        learner: str,
        *,
        version: int,
        tasks: Sequence[dict[str, Any]],
        replace: bool,
        exhausted: bool,
    ) -> bool | None:
        """Publish ``learner``'s selected ``tasks`` (best first, each with its
        ``_input_key``), ranked by model ``version``: instead of the queue
        (``replace``, for a new version) or after it (more of the same ranking).
        ``exhausted``: the selection found nothing more to ask. One transaction,
        and only while ``learner`` holds the lock: returns False (nothing
        written) if it doesn't, None if the dataset doesn't exist (any more)."""
        lt, qt = learners_table, queue_table

        def write(conn: Connection) -> bool | None:
            holder = conn.execute(
                sa.select(lt.c.learner).where(lt.c.dataset == dataset).with_for_update()
            ).scalar_one_or_none()
            dataset_id = self._lease_dataset(conn, dataset)
            if holder != learner:
                return False
            if dataset_id is None:
                return None
            mine = qt.c.dataset_id == dataset_id
            keys = [int(task["_input_key"]) for task in tasks]
            if replace:
                conn.execute(qt.delete().where(mine))
                start = 0
            else:
                if keys:
                    conn.execute(qt.delete().where(mine, qt.c.input_key.in_(keys)))
                top = conn.execute(
                    sa.select(sa.func.max(qt.c.rank)).where(
                        mine, qt.c.model_version == int(version)
                    )
                ).scalar_one_or_none()
                start = 0 if top is None else int(top) + 1
            if tasks:
                conn.execute(
                    qt.insert(),
                    [
                        {
                            "dataset_id": dataset_id,
                            "model_version": int(version),
                            "rank": start + i,
                            "input_key": key,
                            "task": dict(task),
                        }
                        for i, (key, task) in enumerate(zip(keys, tasks, strict=True))
                    ],
                )
            conn.execute(
                lt.update()
                .where(lt.c.dataset == dataset)
                .values(queue_version=int(version), exhausted=bool(exhausted))
            )
            return True

        return self._write(write, n=len(tasks), dataset=dataset, durable=False)

    def read_queue(self, dataset: str, *, since_id: int = 0) -> list[dict[str, Any]]:
        """The queue rows of ``dataset`` published after the row ``since_id``, in
        the order published: ``id``, ``model_version``, ``rank``, ``input_key``
        and ``task`` (none for an unknown dataset)."""
        qt = queue_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return []
            rows = conn.execute(
                sa.select(
                    qt.c.id, qt.c.model_version, qt.c.rank, qt.c.input_key, qt.c.task
                )
                .where(qt.c.dataset_id == dataset_id, qt.c.id > int(since_id))
                .order_by(qt.c.id)
            ).all()
        return [
            {
                "id": int(row.id),
                "model_version": int(row.model_version),
                "rank": int(row.rank),
                "input_key": int(row.input_key),
                "task": dict(row.task),
            }
            for row in rows
        ]

    def live_leases(
        self, dataset: str, *, grace: float = 0.0, now: float | None = None
    ) -> dict[int, set[str]]:
        """Who holds a live lease on each leased example of ``dataset`` ({input
        key: annotators}), across every server; a lease counts until ``grace``
        seconds after its stored end (as in :meth:`claim_lease`)."""
        wall = time.time() if now is None else float(now)
        lt = leases_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return {}
            rows = conn.execute(
                sa.select(lt.c.input_hash, lt.c.annotator).where(
                    lt.c.dataset_id == dataset_id, lt.c.expires > wall - grace
                )
            ).all()
        held: dict[int, set[str]] = {}
        for key, who in rows:
            held.setdefault(int(key), set()).add(who)
        return held

    def max_answer_id(self, dataset: str) -> int:
        """The highest answer id of ``dataset`` (0: none, or no such dataset):
        where a reader of the answers as they are committed starts."""
        a = answers_table
        with self._transaction(write=False) as conn:
            dataset_id = self._lease_dataset(conn, dataset)
            if dataset_id is None:
                return 0
            found = conn.execute(
                sa.select(sa.func.max(a.c.id)).where(a.c.dataset_id == dataset_id)
            ).scalar_one_or_none()
        return int(found or 0)
