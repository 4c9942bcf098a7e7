"""What a server stores for an answer: the task it served, plus the client's answer.

A client's answer names its task by ``_input_key`` and carries only what an
annotator may change: ``answer``, ``accept`` and (where spans are edited)
``spans``. Everything else stored (text, hashes, model version, meta) comes
from the task as the server served it (:func:`from_served`), never from the
client. :func:`answer_key` checks what the client sent before the server looks
for the task; :func:`as_task` turns a stored answer back into the task as it
was served (a restart serves it again).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from spacy_al.answers import check_accept, check_answer_value
from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors, SourceError
from spacy_al.spans import validate_spans

# Keys an answer adds to a task; stripped when an answered task is served again.
ANSWER_FIELDS = ("answer", "_annotator_id", "_session_id", "_timestamp", "_id")


def as_task(eg: dict) -> dict:
    """An answered task as it was served (without the answer)."""
    skip = (*ANSWER_FIELDS, "accept", "_view_id")
    return {k: v for k, v in eg.items() if k not in skip}


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def answer_key(eg: Any, *, keys: Collection[int], labels: tuple[str, ...]) -> int:
    """The input key of the task the client's answer ``eg`` names; raises
    ValueError unless it is one of ``keys`` (the pool's) and ``eg``'s
    ``answer`` and ``accept`` (of ``labels``) are well-formed."""
    key = eg.get("_input_key") if isinstance(eg, dict) else None
    if not is_int(key):
        raise ValueError(Errors.E988.format(snippet=repr(key)[:60]))
    if key not in keys:
        raise ValueError(Errors.E603.format(input_hash=key))
    check_answer_value(eg.get("answer"))
    check_accept(eg.get("accept"), labels=labels)
    return key


def from_served(
    served: dict,
    eg: dict,
    *,
    view_id: str,
    labels: tuple[str, ...],
    ner: bool,
) -> dict:
    """The answer to store: the task ``served``, with only the client's
    ``answer``, ``accept`` and (where spans are edited, for ``ner``) ``spans``
    from ``eg``. A task is answered in the view it was served in (its
    ``_view_id``, else ``view_id``: a cold start of ner.teach serves whole-text
    ``ner_manual`` tasks). Raises ValueError for spans that don't fit."""
    view_id = served.get("_view_id") or view_id
    answer = as_task(served)
    answer["answer"] = eg["answer"]
    if eg.get("accept") is not None:
        answer["accept"] = list(eg["accept"])
    if ner and "spans" in eg:
        spans = eg["spans"]
        if view_id != "ner":
            answer["spans"] = spans
        elif spans != served.get("spans"):
            if not isinstance(spans, list) or len(spans) != 1:
                n = len(spans) if isinstance(spans, list) else spans
                raise ValueError(Errors.E616.format(n=n))
            raise ValueError(Errors.E981.format(snippet=repr(spans)[:60]))
    if ner:
        check_spans(answer, view_id=view_id, labels=labels)
    answer["_view_id"] = view_id
    return set_hashes(answer)


def check_spans(eg: dict, *, view_id: str, labels: tuple[str, ...]) -> None:
    """Raise ValueError unless ``eg``'s spans fit its text and ``labels``: they
    may overlap except in ``ner_manual``; in ``ner`` there is exactly one."""
    spans = eg.get("spans")
    if spans is None:
        spans = []
    if not isinstance(spans, list) or not isinstance(eg.get("text"), str):
        raise ValueError(Errors.E614.format(snippet=repr(spans)[:60]))
    try:
        validate_spans(
            eg["text"],
            spans,
            labels=labels,
            allow_overlap=view_id != "ner_manual",
        )
    except SourceError as e:
        raise ValueError(Errors.E615.format(err=e)) from e
    if view_id == "ner" and len(spans) != 1:
        raise ValueError(Errors.E616.format(n=len(spans)))
