"""Annotation sources: read tasks from files, and write them.

Sources are JSONL, CSV, TXT and DocBin (``.spacy``) files, read lazily, one line
at a time. Each record becomes a task through :func:`~spacy_al.tasks.validate_task`
(the task format and its check live in :mod:`spacy_al.tasks`); a malformed record
raises :class:`SourceError` naming its file, line and field, or is skipped and
counted with ``skip_invalid=True``.

Each task gets its identity keys (``_input_key``, ``_task_key``) and Prodigy
hashes (``_input_hash``, ``_task_hash``) from :mod:`spacy_al.identity`, whose
functions this module re-exports, as it does :func:`~spacy_al.tasks.validate_task`
and :func:`~spacy_al.tasks.gold_labels`; duplicates are texts of the same content.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import srsly

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
from spacy_al.tasks import MAX_DEPTH, gold_labels, snippet, type_name, validate_task

if TYPE_CHECKING:
    from spacy.vocab import Vocab

# The identity names, validate_task and gold_labels are re-exported: readers of
# tasks have always found them here.
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

# What a loader yields: (1-based line, raw record) or (line, the error on that line).
_Raw = tuple[int, "dict[str, Any] | SourceError"]


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
                msg = Errors.E005.format(err=e, snippet=snippet(line))
                yield i, SourceError(msg, path=str(path), line=i)
                continue
            if not isinstance(record, dict):
                msg = Errors.E006.format(
                    kind=type_name(record), snippet=snippet(record)
                )
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
