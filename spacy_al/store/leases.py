"""Leases and heartbeats: who holds which example, and which servers serve a dataset.

The feed's leases are kept here so that a restarted server serves each annotator
the example they held, and so that servers sharing one database never serve an
example to more annotators than the overlap (:meth:`LeaseStore.claim_lease`).
Each labelling server renews a heartbeat row while it serves a dataset, so that
``drop`` can tell a dataset in use from one nobody serves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.store.base import StoreBase
from spacy_al.store.schema import answers_table, leases_table, servers_table

HEARTBEAT_TTL = 30.0  # seconds a server's heartbeat counts after it was written
_NO_BOUND = 1e300  # a lease end later than any real one (drop_leases' not_after)


def count_in_use(conn: Connection, dataset_id: int, wall: float) -> dict[str, int]:
    """How many live ``leases`` and ``servers`` (heartbeats) a dataset has at
    ``wall`` (unix seconds)."""
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


def write_leases(
    conn: Connection, dataset_id: int, rows: Sequence[dict[str, Any]]
) -> None:
    """Record lease ``rows`` (``input_hash``, ``annotator``, ``expires``,
    ``task``; sorted, one lock order for every writer) in the transaction of
    ``conn``, replacing the same annotator's lease on the same input."""
    lt = leases_table
    conn.execute(
        lt.delete().where(
            lt.c.dataset_id == dataset_id,
            lt.c.input_hash == sa.bindparam("b_input_hash"),
            lt.c.annotator == sa.bindparam("b_annotator"),
        ),
        [
            {"b_input_hash": r["input_hash"], "b_annotator": r["annotator"]}
            for r in rows
        ],
    )
    conn.execute(lt.insert(), [{**r, "dataset_id": dataset_id} for r in rows])


class LeaseStore(StoreBase):
    """The leases and servers' heartbeats of datasets (part of
    :class:`~spacy_al.store.Store`)."""

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
            if dataset_id is not None:
                write_leases(conn, dataset_id, ordered)

        self._write(write, n=0, dataset=dataset, durable=False)

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

        return self._write(write, n=0, dataset=dataset, durable=False)

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

        return self._write(write, n=0, dataset=dataset, durable=False)

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

        return self._write(write, n=0, dataset=dataset, durable=False)

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

        self._write(write, n=0, dataset=dataset, durable=False)

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
            return count_in_use(conn, dataset_id, wall)
