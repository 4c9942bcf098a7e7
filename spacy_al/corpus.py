"""Annotation sources: read, validate, hash and write tasks.

A task is a dict with a non-empty ``text``, a ``meta`` dict and two hashes, plus any
label fields it came with (``label``, ``labels``, ``cats``, ``spans``) and the fields
of Prodigy answers (``answer``, ``accept``, ``options``, ``_session_id`` ...), which
are kept as they are. Sources are JSONL, CSV, TXT and DocBin (``.spacy``) files, read
lazily, one line at a time. A malformed record raises :class:`SourceError` naming its
file, line and field, or is skipped and counted with ``skip_invalid=True``.

Each task gets its identity keys (``_input_key``, ``_task_key``) and Prodigy
hashes (``_input_hash``, ``_task_hash``) from :mod:`spacy_al.identity`, whose
functions this module re-exports; duplicates are texts of the same content.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import srsly

from spacy_al.answers import FIX_SOURCE_LINE, AnswerError, check_answer_value
from spacy_al.errors import Errors, SourceError
from spacy_al.identity import (
    INPUT_HASH_ATTR,
    INPUT_KEY_ATTR,
    INPUT_KEYS,
    KEY_MAX,
    KEY_MIN,
    TASK_HASH_ATTR,
    TASK_KEY_ATTR,
    TASK_KEYS,
    _text_hashes,
    check_same_input,
    get_input_hash,
    get_input_key,
    get_task_hash,
    get_task_key,
    input_content,
    input_key_of,
    is_key,
    set_hashes,
    task_key_of,
)

if TYPE_CHECKING:
    from spacy.vocab import Vocab

# The identity names are re-exported: readers of tasks have always found them here.
__all__ = [
    "CSV_FIELD_LIMIT",
    "INPUT_HASH_ATTR",
    "INPUT_KEYS",
    "INPUT_KEY_ATTR",
    "KEY_MAX",
    "KEY_MIN",
    "LOADERS",
    "MAX_DEPTH",
    "MAX_SKIPPED_ERRORS",
    "SUFFIXES",
    "Source",
    "TASK_HASH_ATTR",
    "TASK_KEYS",
    "TASK_KEY_ATTR",
    "check_same_input",
    "get_input_hash",
    "get_input_key",
    "get_task_hash",
    "get_task_key",
    "gold_labels",
    "input_content",
    "input_key_of",
    "is_key",
    "read_jsonl",
    "read_source",
    "set_hashes",
    "task_key_of",
    "validate_task",
    "write_jsonl",
]

LOADERS: tuple[str, ...] = ("jsonl", "csv", "txt", "spacy")
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".txt": "txt",
    ".spacy": "spacy",
}
MAX_SKIPPED_ERRORS = 10
CSV_FIELD_LIMIT = 2**31 - 1  # characters in one CSV cell
MAX_DEPTH = 100  # levels of lists and objects in a record
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON tools (ujson) read and write

# What a loader yields: (1-based line, raw record) or (line, the error on that line).
_Raw = tuple[int, "dict[str, Any] | SourceError"]


# --- validation ------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _snippet(value: Any, width: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, or nested too deep
        text = f"<{_kind(value)} too large to show>"
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
        return f"the integer {_snippet(value)} is outside the 64-bit range"
    if value is None or isinstance(value, bool | int | list | tuple | dict):
        return None
    return f"{_kind(value)} isn't a JSON value"


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
                    why = f"the key {_snippet(key)} isn't a string"
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
        name = _printable(key) if isinstance(key, str) else _snippet(key)
        return name, name
    return field, f"{where}[{_snippet(key)}]"


def _kind(value: Any) -> str:
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
            Errors.E006.format(kind=_kind(record), snippet=_snippet(record)), None
        )
    if "text" not in record:
        keys = ", ".join(map(repr, record)) or "none"
        raise fail(Errors.E007.format(field="text", keys=keys), "text")
    text = record["text"]
    if not isinstance(text, str):
        raise fail(
            Errors.E008.format(field="text", kind=_kind(text), snippet=_snippet(text)),
            "text",
        )
    if not text.strip():
        raise fail(Errors.E009.format(field="text"), "text")
    if "label" in record and not _is_label(record["label"]):
        value = record["label"]
        msg = Errors.E010.format(
            field="label", kind=_kind(value), snippet=_snippet(value)
        )
        raise fail(msg, "label")
    if "labels" in record:
        labels = record["labels"]
        if not isinstance(labels, list) or not all(map(_is_label, labels)):
            raise fail(
                Errors.E011.format(field="labels", snippet=_snippet(labels)), "labels"
            )
    if "cats" in record:
        cats = record["cats"]
        if not isinstance(cats, dict) or not all(
            _is_label(k) and _is_number(v) for k, v in cats.items()
        ):
            raise fail(Errors.E012.format(snippet=_snippet(cats)), "cats")
        for label, value in cats.items():
            if not 0.0 <= value <= 1.0:
                msg = Errors.E013.format(label=_printable(label), value=_snippet(value))
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
        raise fail(Errors.E017.format(kind=_kind(meta), snippet=_snippet(meta)), "meta")
    if "cost" in meta:
        cost = meta["cost"]
        if not (_is_number(cost) and cost > 0 and _is_finite(cost)):
            raise fail(Errors.E018.format(snippet=_snippet(cost)), "meta.cost")
    for attr in (INPUT_HASH_ATTR, TASK_HASH_ATTR, INPUT_KEY_ATTR, TASK_KEY_ATTR):
        if attr in record and not _is_int(record[attr]):
            raise fail(
                Errors.E019.format(field=attr, snippet=_snippet(record[attr])), attr
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
        raise fail(Errors.E761.format(field="label", snippet=_snippet(label)), "label")


def _check_spans(spans: Any, n_chars: int, fail: Any) -> None:
    if not isinstance(spans, list):
        raise fail(
            Errors.E014.format(kind=_kind(spans), snippet=_snippet(spans)), "spans"
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
            msg = Errors.E015.format(i=i, snippet=_snippet(span), n_chars=n_chars)
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


# --- loaders -----------------------------------------------------------------


def _lines(file: BinaryIO, path: str) -> Iterator[tuple[int, str | SourceError]]:
    """Decode a binary file line by line, so a bad byte names its line."""
    for i, raw in enumerate(file, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, SourceError(Errors.E004.format(err=e), path=path, line=i)
            continue
        if i == 1:
            line = line.removeprefix("\ufeff")
        yield i, line.rstrip("\r\n")


def _read_jsonl(path: Path) -> Iterator[_Raw]:
    with path.open("rb") as file:
        for i, line in _lines(file, str(path)):
            if isinstance(line, SourceError):
                yield i, line
                continue
            if not line.strip():
                continue
            try:
                # The standard library parses numbers exactly (ujson rounds some
                # floats) and takes any integer, which validation then checks.
                record = _parse_json(line)
            except (ValueError, RecursionError) as e:
                msg = Errors.E005.format(err=e, snippet=_snippet(line))
                yield i, SourceError(msg, path=str(path), line=i)
                continue
            if not isinstance(record, dict):
                msg = Errors.E006.format(kind=_kind(record), snippet=_snippet(record))
                yield i, SourceError(msg, path=str(path), line=i)
                continue
            yield i, record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} isn't a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _parse_json(line: str) -> Any:
    """``json.loads(line, parse_constant=_no_constant)``, with one decoder for all
    lines (``json.loads`` builds one per call)."""
    if line.startswith("\ufeff"):  # json.loads refuses it with its own message
        return json.loads(line, parse_constant=_no_constant)
    return _DECODER.decode(line)


def _read_txt(path: Path) -> Iterator[_Raw]:
    with path.open("rb") as file:
        for i, line in _lines(file, str(path)):
            if isinstance(line, SourceError):
                yield i, line
            elif line.strip():
                yield i, {"text": line}


def _read_csv(
    path: Path, *, text_column: str, label_column: str, label_sep: str | None
) -> Iterator[_Raw]:
    bad: dict[int, SourceError] = {}

    def decoded(file: BinaryIO) -> Iterator[str]:
        # csv.reader needs strings; remember bad lines and check each row against
        # them. A bad line is still decoded (with U+FFFD) so that its quotes count.
        for i, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad[i] = SourceError(Errors.E004.format(err=e), path=str(path), line=i)
                line = raw.decode("utf-8", "replace")
            if i == 1:
                line = line.removeprefix("\ufeff")
            yield line.rstrip("\r\n") + "\n"

    def parse_error(e: csv.Error, line: int) -> SourceError:
        return SourceError(Errors.E762.format(err=e), path=str(path), line=line)

    # Texts as long as a JSONL line may hold: lift the csv module's 128 KB cell
    # limit (a process-wide setting, only ever raised).
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with path.open("rb") as file:
        reader = csv.reader(decoded(file))
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise parse_error(e, 1) from e
        if header is None:
            return
        if 1 in bad:
            raise bad[1]
        columns = [name.strip() for name in header]
        for column, option, what, required in (
            (text_column, "text_column", "texts", True),
            (label_column, "label_column", "labels", label_column != "label"),
        ):
            if required and column not in columns:
                msg = Errors.E020.format(
                    column=column,
                    option=option,
                    columns=", ".join(map(repr, columns)),
                    what=what,
                )
                raise SourceError(msg, path=str(path), line=1, field=column)
        text_i = columns.index(text_column)
        label_i = columns.index(label_column) if label_column in columns else None
        last = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                first, last = last + 1, reader.line_num
                yield first, parse_error(e, first)
                continue
            first, last = last + 1, reader.line_num
            errors = [bad[i] for i in range(first, last + 1) if i in bad]
            if errors:
                yield first, errors[0]
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                msg = Errors.E021.format(n=len(row), n_header=len(columns))
                yield first, SourceError(msg, path=str(path), line=first)
                continue
            text = row[text_i]
            if not text.strip():
                msg = Errors.E009.format(field=text_column)
                yield (
                    first,
                    SourceError(msg, path=str(path), line=first, field=text_column),
                )
                continue
            record: dict[str, Any] = {"text": text}
            if label_i is not None and row[label_i].strip():
                cell = row[label_i].strip()
                if label_sep is None:
                    record["label"] = cell
                else:
                    record["labels"] = [
                        part.strip() for part in cell.split(label_sep) if part.strip()
                    ]
            meta: dict[str, Any] = {
                name: value
                for j, (name, value) in enumerate(zip(columns, row, strict=True))
                if j not in (text_i, label_i)
            }
            if "cost" in meta:
                meta["cost"] = _parse_number(meta["cost"])
            record["meta"] = meta
            yield first, record


def _parse_number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value  # left for validation to report


def _read_docbin(path: Path, vocab: Vocab) -> Iterator[_Raw]:
    from spacy.tokens import DocBin

    try:
        doc_bin = DocBin().from_disk(path)
    except (ValueError, KeyError, TypeError, OSError) as e:
        msg = Errors.E022.format(path=path, err=e, loaders=", ".join(LOADERS))
        raise ValueError(msg) from e
    for i, doc in enumerate(doc_bin.get_docs(vocab), start=1):
        record: dict[str, Any] = {"text": doc.text}
        if doc.cats:
            record["cats"] = dict(doc.cats)
        if doc.has_annotation("ENT_IOB"):
            record["spans"] = [
                {"start": ent.start_char, "end": ent.end_char, "label": ent.label_}
                for ent in doc.ents
            ]
        yield i, record


def _resolve_loader(path: Path, loader: str | None) -> str:
    loaders = ", ".join(LOADERS)
    if loader is not None:
        if loader not in LOADERS:
            raise ValueError(
                Errors.E003.format(loader=loader, path=path, loaders=loaders)
            )
        return loader
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            Errors.E002.format(
                path=path, suffix=suffix, suffixes=", ".join(SUFFIXES), loaders=loaders
            )
        )
    return SUFFIXES[suffix]


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(Errors.E001.format(path=path, cwd=Path.cwd()))


# --- sources ---------------------------------------------------------------


class Source:
    """An annotation source file, read lazily into validated, hashed tasks.

    Each iteration re-reads the file. ``n_read`` (records read, blank lines not
    counted), ``n_skipped`` (invalid records skipped), ``n_duplicates`` (records
    whose input hash was seen before) and ``skipped_errors`` (the first messages of
    skipped records) describe the last iteration, as far as it got; ``line`` is
    the line of the task yielded last. For DocBin files the "line" of an error
    is the 1-based number of the doc.

    Duplicates are records of the same text (the same ``_input_key``, and the
    same input when compared); two different texts are never taken for one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        loader: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        label_sep: str | None = None,
        skip_invalid: bool = False,
        dedupe: bool = True,
        vocab: Vocab | None = None,
    ) -> None:
        self.path = Path(path)
        _check_exists(self.path)
        self.loader = _resolve_loader(self.path, loader)
        if label_sep == "":
            raise ValueError(Errors.E023)
        self.text_column = text_column
        self.label_column = label_column
        self.label_sep = label_sep
        self.skip_invalid = skip_invalid
        self.dedupe = dedupe
        self.vocab = vocab
        self.n_read = 0
        self.n_skipped = 0
        self.n_duplicates = 0
        self.skipped_errors: list[str] = []
        self.line: int | None = None  # the line of the task yielded last

    def __repr__(self) -> str:
        return f"Source({str(self.path)!r}, loader={self.loader!r})"

    def _raw(self) -> Iterator[_Raw]:
        if self.loader == "jsonl":
            return _read_jsonl(self.path)
        if self.loader == "txt":
            return _read_txt(self.path)
        if self.loader == "csv":
            return _read_csv(
                self.path,
                text_column=self.text_column,
                label_column=self.label_column,
                label_sep=self.label_sep,
            )
        if self.vocab is None:
            import spacy

            self.vocab = spacy.blank("xx").vocab
        return _read_docbin(self.path, self.vocab)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.n_read = self.n_skipped = self.n_duplicates = 0
        self.skipped_errors = []
        seen: dict[int, dict[str, Any]] = {}
        for line, record in self._raw():
            self.n_read += 1
            try:
                if isinstance(record, SourceError):
                    raise record
                task = validate_task(record, path=str(self.path), line=line)
            except SourceError as e:
                if not self.skip_invalid:
                    raise
                self.n_skipped += 1
                if len(self.skipped_errors) < MAX_SKIPPED_ERRORS:
                    self.skipped_errors.append(str(e))
                continue
            if self.dedupe:
                key = task[INPUT_KEY_ATTR]
                first = seen.get(key)
                if first is not None:
                    check_same_input(first, task, key)
                    self.n_duplicates += 1
                    continue
                seen[key] = task  # the task itself: no copy of its text
            self.line = line
            yield task


def read_source(path: str | Path, **kwargs: Any) -> Source:
    """Open ``path`` as a :class:`Source`; keyword arguments go to ``Source``."""
    return Source(path, **kwargs)


def read_jsonl(path: str | Path, *, validate: bool = True) -> Iterator[dict[str, Any]]:
    """Read a JSONL file lazily, without deduplication.

    With ``validate`` (the default) each line becomes a normalized, hashed task;
    without it, lines are only parsed. A malformed line raises :class:`SourceError`.
    """
    path = Path(path)
    _check_exists(path)

    def read() -> Iterator[dict[str, Any]]:
        for line, record in _read_jsonl(path):
            if isinstance(record, SourceError):
                raise record
            yield (
                validate_task(record, path=str(path), line=line) if validate else record
            )

    return read()


def write_jsonl(path: str | Path, tasks: Iterable[dict[str, Any]]) -> int:
    """Write ``tasks`` to ``path`` as JSON Lines; return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for task in tasks:
            count += 1
            yield task

    srsly.write_jsonl(path, counted())
    return count
