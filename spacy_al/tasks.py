"""The task format and its one validator: one record checked and normalized.

A task is a dict with a non-empty ``text``, a ``meta`` dict and its identity keys
and hashes, plus any label fields it came with (``label``, ``labels``, ``cats``,
``spans``) and the fields of Prodigy answers (``answer``, ``accept``, ``options``,
``_session_id`` ...), which are kept as they are. :func:`validate_task` is the
check every reader of a source uses (:mod:`spacy_al.corpus`): a malformed record
raises :class:`~spacy_al.errors.SourceError` naming its file, line and field.
Plain records (a text and a flat meta) take a quick path with the same outcome.
:func:`gold_labels` says which labels a valid task asserts as true.
"""

from __future__ import annotations

import math
from typing import Any

from spacy_al.answers import FIX_SOURCE_LINE, AnswerError, check_answer_value
from spacy_al.errors import Errors, SourceError
from spacy_al.identity import (
    INPUT_HASH_ATTR,
    INPUT_KEY_ATTR,
    TASK_HASH_ATTR,
    TASK_KEY_ATTR,
    _text_hashes,
    get_input_key,
    is_key,
    set_hashes,
)

MAX_DEPTH = 100  # levels of lists and objects in a record
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON tools (ujson) read and write


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{type_name(value)} too large to show>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _printable(text: str) -> str:
    """``text`` with half surrogate pairs escaped, so a message can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unstorable(value: Any) -> str | None:
    """Why a value can't be a JSON value of valid Unicode, or None if it can."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            char = value[e.start]
            return f"the string has half a surrogate pair ({char!r} at {e.start}), which isn't valid Unicode"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value} isn't finite"
    if _is_int(value) and not _INT_MIN <= value <= _INT_MAX:
        return f"the integer {snippet(value)} is outside the 64-bit range"
    if value is None or isinstance(value, bool | int | list | tuple | dict):
        return None
    return f"{type_name(value)} isn't a JSON value"


def _check_values(record: dict[str, Any], fail: Any) -> None:
    """Refuse a record any of whose keys or values can't be stored as JSON."""
    # (top-level field, where in the record, value), depth first, in order.
    stack: list[tuple[str | None, str, Any, int]] = [(None, "", record, 0)]
    while stack:
        field, where, value, depth = stack.pop()
        why = _unstorable(value)
        if why is None and depth > MAX_DEPTH:
            why = f"it is nested more than {MAX_DEPTH} levels deep"
        children: list[tuple[Any, Any]] = []
        if why is None and isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str):
                    why = _unstorable(key)
                else:
                    why = f"the key {snippet(key)} isn't a string"
                if why is not None:
                    field, where = _inside(field, where, key)
                    break
                children.append((key, child))
        elif why is None and isinstance(value, list | tuple):
            children = list(enumerate(value))
        if why is not None:
            shown = where if len(where) <= 80 else where[:77] + "..."
            msg = Errors.E760.format(where=shown, why=why)
            raise fail(msg, field)
        stack.extend(
            (*_inside(field, where, key), child, depth + 1)
            for key, child in reversed(children)
        )


def _inside(field: str | None, where: str, key: Any) -> tuple[str, str]:
    if field is None:  # a top-level key names the field
        name = _printable(key) if isinstance(key, str) else snippet(key)
        return name, name
    return field, f"{where}[{snippet(key)}]"


def type_name(value: Any) -> str:
    return type(value).__name__


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def validate_task(
    record: Any, *, path: str | None = None, line: int | None = None
) -> dict[str, Any]:
    """Check one record and return it as a normalized task (a new dict).

    The task has a non-empty ``text``, a ``meta`` dict and both hashes; label and
    answer fields are checked but kept as given. Raises :class:`SourceError` naming
    ``path``, ``line`` and the field at fault.
    """

    task = _plain_task(record)
    if task is not None:
        return task

    def fail(message: str, field: str | None) -> SourceError:
        return SourceError(message, path=path, line=line, field=field)

    if not isinstance(record, dict):
        raise fail(
            Errors.E006.format(kind=type_name(record), snippet=snippet(record)), None
        )
    if "text" not in record:
        keys = ", ".join(map(repr, record)) or "none"
        raise fail(Errors.E007.format(field="text", keys=keys), "text")
    text = record["text"]
    if not isinstance(text, str):
        raise fail(
            Errors.E008.format(
                field="text", kind=type_name(text), snippet=snippet(text)
            ),
            "text",
        )
    if not text.strip():
        raise fail(Errors.E009.format(field="text"), "text")
    if "label" in record and not _is_label(record["label"]):
        value = record["label"]
        msg = Errors.E010.format(
            field="label", kind=type_name(value), snippet=snippet(value)
        )
        raise fail(msg, "label")
    if "labels" in record:
        labels = record["labels"]
        if not isinstance(labels, list) or not all(map(_is_label, labels)):
            raise fail(
                Errors.E011.format(field="labels", snippet=snippet(labels)), "labels"
            )
    if "cats" in record:
        cats = record["cats"]
        if not isinstance(cats, dict) or not all(
            _is_label(k) and _is_number(v) for k, v in cats.items()
        ):
            raise fail(Errors.E012.format(snippet=snippet(cats)), "cats")
        for label, value in cats.items():
            if not 0.0 <= value <= 1.0:
                msg = Errors.E013.format(label=_printable(label), value=snippet(value))
                raise fail(msg, "cats")
    if "spans" in record:
        _check_spans(record["spans"], len(text), fail)
    if "answer" in record:
        try:
            check_answer_value(record["answer"], fix=FIX_SOURCE_LINE)
        except AnswerError as e:
            raise fail(str(e), "answer") from e
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise fail(
            Errors.E017.format(kind=type_name(meta), snippet=snippet(meta)), "meta"
        )
    if "cost" in meta:
        cost = meta["cost"]
        if not (_is_number(cost) and cost > 0 and _is_finite(cost)):
            raise fail(Errors.E018.format(snippet=snippet(cost)), "meta.cost")
    for attr in (INPUT_HASH_ATTR, TASK_HASH_ATTR, INPUT_KEY_ATTR, TASK_KEY_ATTR):
        if attr in record and not _is_int(record[attr]):
            raise fail(
                Errors.E019.format(field=attr, snippet=snippet(record[attr])), attr
            )
    _check_nul_label(record, fail)
    _check_values(record, fail)
    task = dict(record)
    task["meta"] = dict(meta)
    if INPUT_KEY_ATTR in task and task[INPUT_KEY_ATTR] != get_input_key(task):
        # Identity comes from the content: keys that aren't the content's (an
        # edited text, keys out of range) are recomputed.
        del task[INPUT_KEY_ATTR]
        task.pop(TASK_KEY_ATTR, None)
    if TASK_KEY_ATTR in task and not is_key(task[TASK_KEY_ATTR]):
        del task[TASK_KEY_ATTR]
    return set_hashes(task)


def _plain_task(record: Any) -> dict[str, Any] | None:
    """The task of a plain record, checked and hashed the quick way, or None.

    Plain: a dict of a non-blank ``text`` and, optionally, a flat ``meta`` of
    string keys and scalar values (no ``cost``), all storable. That is what most
    big sources hold (JSONL of texts, CSV), and for it the full check of
    ``validate_task`` comes to these few tests. Anything else (and a plain record
    the full check would refuse) gives None, so ``validate_task`` takes its
    usual path and refuses it with its usual message.
    """
    if type(record) is not dict:
        return None
    text = record.get("text")
    if type(text) is not str or not _is_storable_str(text):
        return None
    if len(record) == 1:
        meta: dict[str, Any] = {}
    elif len(record) == 2 and type(record.get("meta")) is dict:
        meta = record["meta"]
        if "cost" in meta or not all(
            type(key) is str and _is_storable_str(key) and _is_plain_scalar(value)
            for key, value in meta.items()
        ):
            return None
    else:
        return None
    if not text.strip():
        return None
    task = dict(record)  # keys in the record's order, as validate_task makes them
    task["meta"] = dict(meta)
    (
        task[INPUT_HASH_ATTR],
        task[TASK_HASH_ATTR],
        task[INPUT_KEY_ATTR],
        task[TASK_KEY_ATTR],
    ) = _text_hashes(text)
    return task


def _is_storable_str(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # half a surrogate pair
        return False
    return True


def _is_plain_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return _is_storable_str(value)
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX
    return value is None or kind is bool


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_nul_label(record: dict[str, Any], fail: Any) -> None:
    # The answer database keeps 'label' in a text column, which can't hold NUL
    # on PostgreSQL; refuse it here rather than when the answer is saved.
    label = record.get("label")
    if isinstance(label, str) and "\x00" in label:
        raise fail(Errors.E761.format(field="label", snippet=snippet(label)), "label")


def _check_spans(spans: Any, n_chars: int, fail: Any) -> None:
    if not isinstance(spans, list):
        raise fail(
            Errors.E014.format(kind=type_name(spans), snippet=snippet(spans)), "spans"
        )
    for i, span in enumerate(spans):
        ok = (
            isinstance(span, dict)
            and _is_int(span.get("start"))
            and _is_int(span.get("end"))
            and 0 <= span["start"] <= span["end"] <= n_chars
            and _is_label(span.get("label"))
        )
        if not ok:
            msg = Errors.E015.format(i=i, snippet=snippet(span), n_chars=n_chars)
            raise fail(msg, "spans")


def gold_labels(task: dict[str, Any]) -> list[str] | None:
    """The labels a record asserts as true, for replaying gold answers.

    From ``label`` (one), ``labels``, ``cats`` (values >= 0.5) or, for a choice
    answer, the ``accept`` list of option ids. ``[]`` when the record gives labels
    but says none is true (all cats below 0.5); None when it asserts nothing: no
    label field, or an ``answer`` of reject or ignore.
    """
    if task.get("answer") in ("reject", "ignore"):
        return None
    if "options" in task and isinstance(task.get("accept"), list):
        return [str(option_id) for option_id in task["accept"]]
    if "label" in task:
        return [task["label"]]
    if "labels" in task:
        return list(task["labels"])
    if "cats" in task:
        return [label for label, value in task["cats"].items() if value >= 0.5]
    return None
