"""The answer format and its one validator.

An answer is the task an annotator was shown, plus what they said about it:

* ``answer``: one of :data:`ANSWERS` (accept, reject, ignore);
* ``accept``: for a choice or a correction, the chosen labels or option ids;
* ``spans``: for NER, the entities as the annotator left them.

The task's own fields (``text``, ``label``, ``meta`` ...) come with it, and so do
its identity keys (``_input_key``, ``_task_key``) and Prodigy hashes
(``_input_hash``, ``_task_hash``). Read back from the store, every answer also
carries the :data:`STORED_KEYS`. :func:`validate_answer` is the check every part
uses: the store before it writes, ``db-in`` before it imports, the feed and the
loops before they learn; :func:`check_answer_value` checks an answer value alone
(a source's ``answer`` field, a filter, a command-line option).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from spacy_al.errors import Errors, SpacyALError
from spacy_al.identity import (
    INPUT_KEY_ATTR,
    TASK_KEY_ATTR,
    get_input_key,
    is_key,
    set_hashes,
)

#: The values of ``answer``.
ANSWERS: tuple[str, ...] = ("accept", "reject", "ignore")
#: The fields an annotator sets on the task they were shown.
ANSWER_FIELDS: tuple[str, ...] = ("answer", "accept", "spans")
#: Keys the store sets on every answer it reads back (they are columns, never
#: kept in the answer's stored content).
STORED_KEYS: tuple[str, ...] = (
    "answer",
    "_input_hash",
    "_task_hash",
    "_input_key",
    "_task_key",
    "_annotator_id",
    "_session_id",
    "_timestamp",
    "_model_version",
    "_id",
)
_HASH_MIN, _HASH_MAX = -(2**63), 2**63 - 1


class AnswerError(SpacyALError, ValueError):
    """An answer is malformed. In a batch, nothing of the batch was written.

    ``field`` names the key at fault (None if the answer isn't a dict); ``index`` is
    the answer's position in the batch (None when validated alone).
    """

    def __init__(
        self, message: str, *, field: str | None = None, index: int | None = None
    ) -> None:
        self.field = field
        self.index = index
        super().__init__(message)


def _snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def unstorable_text(value: str) -> str | None:
    """Why a string can't go into a text column on every backend, or None."""
    if "\x00" in value:
        return "it contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{value[e.start]!r} at {e.start} is half a surrogate pair"
    return None


def _field_name(key: Any) -> str:
    if isinstance(key, str):
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return _snippet(key)


def json_default(value: Any) -> Any:
    """JSON for numpy arrays and scalars (their ``tolist``)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _check_json(value: Any) -> None:
    """Raise TypeError or ValueError unless ``value`` is storable as UTF-8 JSON."""
    try:
        json.dumps(
            value, default=json_default, allow_nan=False, ensure_ascii=False
        ).encode("utf-8")
    except RecursionError as e:
        raise ValueError("it is nested too deeply") from e


#: What to do about a wrong answer value, by where it came from.
FIX_ANSWER = "Set the answer the annotator gave."
FIX_SOURCE_LINE = "Fix it, or use --skip-invalid to skip such lines."


def check_answer_value(
    value: Any, *, field: str = "answer", fix: str = FIX_ANSWER
) -> str:
    """Return ``value`` if it is one of :data:`ANSWERS`; else raise
    :class:`AnswerError` naming ``field`` (the key, option or filter it came
    from) and saying what to do (``fix``)."""
    if not isinstance(value, str) or value not in ANSWERS:
        msg = Errors.E960.format(field=field, snippet=_snippet(value), fix=fix)
        raise AnswerError(msg, field=field)
    return value


def check_accept(accept: Any, *, labels: Collection[str] | None = None) -> None:
    """Raise :class:`AnswerError` unless ``accept`` is None or a list of chosen
    labels or option ids (strings or integers) and, with ``labels``, only of
    those labels."""
    if accept is None:
        return
    if not (
        isinstance(accept, list)
        and all(isinstance(v, str) or _is_int(v) for v in accept)
    ):
        raise AnswerError(Errors.E108.format(snippet=_snippet(accept)), field="accept")
    if labels is not None and any(value not in labels for value in accept):
        msg = Errors.E605.format(labels=list(labels), snippet=_snippet(accept))
        raise AnswerError(msg, field="accept")


def validate_answer(
    answer: Any, *, labels: Collection[str] | None = None
) -> dict[str, Any]:
    """Check one answer and return a copy with its keys and hashes set.

    An answer is a task dict with a non-empty ``text`` (or an ``_input_hash``), an
    ``answer`` of accept, reject or ignore, an optional string ``label`` and an
    optional ``accept`` list (with ``labels``, of those labels only); every value
    must be storable as JSON. An ``_input_key`` it carries must be the key of its
    content. Raises :class:`AnswerError` naming the field at fault.
    """
    if not isinstance(answer, dict):
        msg = Errors.E104.format(kind=type(answer).__name__, snippet=_snippet(answer))
        raise AnswerError(msg)
    text = answer.get("text")
    if ("_input_hash" not in answer or "text" in answer) and not (
        isinstance(text, str) and text.strip()
    ):
        raise AnswerError(Errors.E105.format(snippet=_snippet(text)), field="text")
    check_answer_value(answer.get("answer"))
    label = answer.get("label")
    if label is not None and not isinstance(label, str):
        msg = Errors.E107.format(kind=type(label).__name__, snippet=_snippet(label))
        raise AnswerError(msg, field="label")
    why = None if label is None else unstorable_text(label)
    if why is not None:
        raise AnswerError(
            Errors.E764.format(snippet=_snippet(label), why=why), field="label"
        )
    check_accept(answer.get("accept"), labels=labels)
    for key in ("_input_hash", "_task_hash", INPUT_KEY_ATTR, TASK_KEY_ATTR):
        if key in answer and not (
            _is_int(answer[key]) and _HASH_MIN <= answer[key] <= _HASH_MAX
        ):
            msg = Errors.E109.format(field=key, snippet=_snippet(answer[key]))
            raise AnswerError(msg, field=key)
    for key, value in answer.items():
        if not isinstance(key, str) or _field_name(key) != key:
            field = _field_name(key)
            raise AnswerError(Errors.E765.format(field=field), field=field)
        try:
            _check_json(value)
        except (TypeError, ValueError) as e:
            msg = Errors.E110.format(field=key, err=e)
            raise AnswerError(msg, field=key) from e
    given = answer.get(INPUT_KEY_ATTR)
    if is_key(given):
        content_key = get_input_key(answer)
        if given != content_key:
            msg = Errors.E961.format(given=given, key=content_key)
            raise AnswerError(msg, field=INPUT_KEY_ATTR)
    return set_hashes(answer)
