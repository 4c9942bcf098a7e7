"""Identity from the content: the keys and hashes of a task.

``_input_key`` identifies a task's input (its text), ``_task_key`` the question
asked about it (the input plus its label fields): 64-bit signed blake2b digests of
canonical JSON, the same in every process and run. At that width two different
texts share a key about once in 10^9 sources of 150,000 texts, and where keys
match, the content is compared as well (:func:`input_content`,
:func:`check_same_input`), so two different texts are never taken for one.

The Prodigy-compatible hashes ``_input_hash`` and ``_task_hash`` (32-bit
murmurhash values of the same canonical JSON) are set too and kept in exports
and imports, for compatibility only: at 50,000 texts two of them collide about
one time in four.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _encode_string
from typing import Any

import murmurhash
import srsly

from spacy_al.errors import Errors

INPUT_HASH_ATTR = "_input_hash"
TASK_HASH_ATTR = "_task_hash"
INPUT_KEY_ATTR = "_input_key"
TASK_KEY_ATTR = "_task_key"
KEY_MIN, KEY_MAX = -(2**63), 2**63 - 1  # a key is a signed 64-bit integer
INPUT_KEYS: tuple[str, ...] = ("text", "image", "html")
TASK_KEYS: tuple[str, ...] = ("label", "labels", "cats", "spans", "options")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _canonical(values: dict[str, Any]) -> str:
    """The canonical JSON both hashes are computed from (sorted keys, compact,
    ASCII escapes)."""
    return srsly.json_dumps(values, sort_keys=True)


def _wide(text: str) -> int:
    """A signed 64-bit blake2b digest of ``text``: the identity keys."""
    data = text.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _hash(values: dict[str, Any], prefix: str = "") -> int:
    return murmurhash.hash(prefix + _canonical(values))


def _text_hashes(text: str) -> tuple[int, int, int, int]:
    """``_input_hash``, ``_task_hash``, ``_input_key`` and ``_task_key`` of a task
    whose only input and task key is ``text``, without building and dumping a dict.

    The same canonical JSON as ``_canonical`` (``json.dumps`` with ``sort_keys``,
    compact separators, ASCII escapes), so the values are identical.
    """
    canonical = '{"text":' + _encode_string(text) + "}"
    input_hash = murmurhash.hash(canonical)
    input_key = _wide(canonical)
    return (
        input_hash,
        murmurhash.hash(f"{input_hash}{{}}"),
        input_key,
        _wide(f"{input_key}{{}}"),
    )


def _task_hash(task: dict[str, Any], input_hash: int, task_keys: Iterable[str]) -> int:
    return _hash({k: task[k] for k in task_keys if k in task}, prefix=str(input_hash))


def _task_key(task: dict[str, Any], input_key: int, task_keys: Iterable[str]) -> int:
    values = {k: task[k] for k in task_keys if k in task}
    return _wide(str(input_key) + _canonical(values))


def get_input_hash(
    task: dict[str, Any], *, input_keys: Iterable[str] = INPUT_KEYS
) -> int:
    """Prodigy's 32-bit hash of the input keys present in ``task`` (by default
    text, image, html). For compatibility only: identity is :func:`get_input_key`."""
    return _hash({k: task[k] for k in input_keys if k in task})


def get_task_hash(
    task: dict[str, Any],
    *,
    input_keys: Iterable[str] = INPUT_KEYS,
    task_keys: Iterable[str] = TASK_KEYS,
) -> int:
    """Prodigy's 32-bit hash of the input hash plus the task keys present in
    ``task``. For compatibility only: identity is :func:`get_task_key`.

    The task's own ``_input_hash`` is used if it has one, so that task hashes stay
    consistent with input hashes kept from an earlier tool.
    """
    input_hash = task.get(INPUT_HASH_ATTR)
    if not _is_int(input_hash):
        input_hash = get_input_hash(task, input_keys=input_keys)
    return _task_hash(task, input_hash, task_keys)


def is_key(value: Any) -> bool:
    """Whether ``value`` can be an identity key (a signed 64-bit integer)."""
    return _is_int(value) and KEY_MIN <= value <= KEY_MAX


def get_input_key(
    task: dict[str, Any], *, input_keys: Iterable[str] = INPUT_KEYS
) -> int:
    """The identity of the input: a 64-bit hash of the input keys present in
    ``task`` (by default text, image, html).

    A task with none of them (an answer that names its input by ``_input_hash``
    alone) is keyed by that hash: it is all there is to know of its input.
    """
    values = {k: task[k] for k in input_keys if k in task}
    if not values and _is_int(task.get(INPUT_HASH_ATTR)):
        return _wide(f"{INPUT_HASH_ATTR}:{task[INPUT_HASH_ATTR]}")
    return _wide(_canonical(values))


def get_task_key(
    task: dict[str, Any],
    *,
    input_keys: Iterable[str] = INPUT_KEYS,
    task_keys: Iterable[str] = TASK_KEYS,
) -> int:
    """The identity of the question: a 64-bit hash of the input key plus the task
    keys present in ``task`` (the task's own ``_input_key`` if it has one)."""
    input_key = task.get(INPUT_KEY_ATTR)
    if not is_key(input_key):
        input_key = get_input_key(task, input_keys=input_keys)
    return _task_key(task, input_key, task_keys)


def input_key_of(task: dict[str, Any]) -> int:
    """The task's ``_input_key``, or the key of its content if it has none (an
    answer built by hand, or read from a tool that doesn't set keys)."""
    key = task.get(INPUT_KEY_ATTR)
    return key if is_key(key) else get_input_key(task)


def task_key_of(task: dict[str, Any]) -> int:
    """The task's ``_task_key``, or the key of its content if it has none."""
    key = task.get(TASK_KEY_ATTR)
    return key if is_key(key) else get_task_key(task)


def input_content(task: dict[str, Any]) -> dict[str, Any]:
    """What identifies a task's input: its input keys (text, image, html), or its
    ``_input_hash`` when it has none of them."""
    values = {k: task[k] for k in INPUT_KEYS if k in task}
    if not values and INPUT_HASH_ATTR in task:
        return {INPUT_HASH_ATTR: task[INPUT_HASH_ATTR]}
    return values


def check_same_input(first: dict[str, Any], task: dict[str, Any], key: int) -> None:
    """Raise ValueError if ``task`` has another input than ``first`` (a task, or
    the :func:`input_content` of one) although both have the input key ``key``."""
    content = input_content(task)
    if input_content(first) != content:
        msg = Errors.E963.format(
            key=key, first=_snippet(input_content(first)), second=_snippet(content)
        )
        raise ValueError(msg)


def set_hashes(
    task: dict[str, Any],
    *,
    input_keys: Iterable[str] = INPUT_KEYS,
    task_keys: Iterable[str] = TASK_KEYS,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Return a copy of ``task`` with its identity keys (``_input_key``,
    ``_task_key``) and Prodigy hashes (``_input_hash``, ``_task_hash``) set.

    Keys and hashes the task already has are kept unless ``overwrite`` is True.
    """
    task = dict(task)
    if overwrite or not _is_int(task.get(INPUT_HASH_ATTR)):
        task[INPUT_HASH_ATTR] = get_input_hash(task, input_keys=input_keys)
    if overwrite or not _is_int(task.get(TASK_HASH_ATTR)):
        task[TASK_HASH_ATTR] = _task_hash(task, task[INPUT_HASH_ATTR], task_keys)
    if overwrite or not is_key(task.get(INPUT_KEY_ATTR)):
        task[INPUT_KEY_ATTR] = get_input_key(task, input_keys=input_keys)
    if overwrite or not is_key(task.get(TASK_KEY_ATTR)):
        task[TASK_KEY_ATTR] = _task_key(task, task[INPUT_KEY_ATTR], task_keys)
    return task
