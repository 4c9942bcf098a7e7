"""Identity checks: one identity key never stands for two different inputs.

Keys (``_input_key``, ``_task_key``) are 64-bit hashes of a task's content:
equal keys almost always mean the same input, and comparing the inputs where keys
match makes it always. A write whose keys match another answer's (in its own
batch, or stored) on a different input is refused with :class:`AnswerError`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spacy_al.answers import AnswerError
from spacy_al.errors import Errors
from spacy_al.identity import input_content
from spacy_al.store.checks import snippet
from spacy_al.store.schema import answers_table

#: Rows compared per query when a write checks its keys against stored answers.
IDENTITY_PAGE = 500


def _input_of(row: dict[str, Any]) -> dict[str, Any]:
    return input_content({**row["content"], "_input_hash": row["input_hash"]})


def check_batch_identity(rows: list[dict[str, Any]], dataset: str) -> None:
    """Refuse a batch in which one key stands for two different inputs."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        for column in ("input_key", "task_key"):
            seen = first.setdefault((column, row[column]), row)
            if seen is not row and _input_of(seen) != _input_of(row):
                msg = Errors.E962.format(
                    key=row[column],
                    dataset=dataset,
                    first=snippet(_input_of(seen)),
                    second=snippet(_input_of(row)),
                )
                raise AnswerError(msg, field=f"_{column}")


def check_stored_identity(
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
                        first=snippet(stored),
                        second=snippet(new),
                    )
                    raise AnswerError(msg, field=f"_{column}")
