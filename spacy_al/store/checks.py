"""Checks of the values the store is given: names, integers and answer filters.

Each raises ValueError with a coded message (:mod:`spacy_al.errors`) that shows
the value, cut to a snippet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spacy_al.answers import check_answer_value, unstorable_text
from spacy_al.errors import Errors
from spacy_al.store.schema import MAX_NAME_LENGTH


def snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= width else text[: width - 3] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        msg = Errors.E103.format(what=what, max=MAX_NAME_LENGTH, snippet=snippet(value))
        raise ValueError(msg)
    why = unstorable_text(value)
    if why is not None:
        raise ValueError(Errors.E763.format(what=what, snippet=snippet(value), why=why))
    return value


def check_answer_values(answers: str | Iterable[str] | None) -> list[str] | None:
    if answers is None:
        return None
    values = [answers] if isinstance(answers, str) else list(answers)
    for value in values:
        check_answer_value(
            value, field="answers", fix="Filter by any of them, e.g. accept."
        )
    return values
