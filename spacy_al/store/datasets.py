"""Datasets: named collections of answers, each with the meta it was created with."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.errors import Errors
from spacy_al.store.base import StoreBase
from spacy_al.store.checks import check_name, snippet
from spacy_al.store.engine import dumps
from spacy_al.store.leases import HEARTBEAT_TTL, count_in_use
from spacy_al.store.schema import (
    answers_table,
    datasets_table,
    leases_table,
    servers_table,
)


class DatasetStore(StoreBase):
    """Creating, listing, describing and dropping datasets (part of
    :class:`~spacy_al.store.Store`)."""

    def create_dataset(self, name: str, *, meta: dict[str, Any] | None = None) -> int:
        """Create dataset ``name`` if it doesn't exist; return its id.

        ``meta`` is stored with a new dataset; an existing dataset keeps its own.
        """
        check_name(name, "dataset")
        if meta is not None:
            if not isinstance(meta, dict):
                err = f"a {type(meta).__name__}"
                raise ValueError(Errors.E115.format(snippet=snippet(meta), err=err))
            try:
                dumps(meta)
            except (TypeError, ValueError) as e:
                msg = Errors.E115.format(snippet=snippet(meta), err=e)
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
                use = count_in_use(conn, dataset_id, wall)
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
