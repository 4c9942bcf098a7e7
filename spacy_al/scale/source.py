"""A JSONL source read by byte offsets: partitions, their index, records at offsets.

The learner splits the file into line-aligned byte ranges (:func:`partitions`);
each worker indexes its ranges itself (:func:`index_partition`: the input key
and byte offset of every valid record) and later reads the records it scores
from them (:func:`records_at`), so the texts never pass through the learner.
Records are read as :class:`~spacy_al.corpus.Source` reads them: lines end at
``\\n`` (a ``\\r`` before it is dropped), blank lines are skipped, a byte-order
mark is dropped from the first line, and each record is validated and hashed by
:func:`~spacy_al.tasks.validate_task`. A malformed record names its file and
line, as the in-process reader does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spacy_al.corpus import _parse_json
from spacy_al.errors import Errors, SourceError
from spacy_al.tasks import snippet, type_name, validate_task

#: Bytes per partition at most: a worker holds one partition's records while
#: scoring it (about 100 MB for 32 MB of short texts), and a task's overhead (a
#: few milliseconds) is small next to scoring a megabyte or more.
PARTITION_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class Partition:
    """Lines ``[start, end)`` (byte offsets) of the JSONL file ``path``."""

    path: str
    start: int
    end: int
    #: The file's size when the learner split it; a worker that sees another
    #: size reads another file.
    size: int


def partitions(
    path: str | Path, *, partition_bytes: int = PARTITION_BYTES
) -> list[Partition]:
    """The file split into byte ranges of about ``partition_bytes``, each
    starting at the beginning of a line (a line is never split)."""
    if partition_bytes < 1:
        raise ValueError(Errors.E1210.format(value=partition_bytes))
    path = str(path)
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as file:
        while bounds[-1] + partition_bytes < size:
            file.seek(bounds[-1] + partition_bytes)
            file.readline()  # to the end of the line the cut fell in
            end = file.tell()
            if end >= size:
                break
            bounds.append(end)
    bounds.append(size)
    return [
        Partition(path, a, b, size)
        for a, b in zip(bounds, bounds[1:], strict=False)
        if b > a
    ]


def _check_size(part: Partition) -> None:
    size = os.path.getsize(part.path)
    if size != part.size:
        import socket

        raise ValueError(
            Errors.E1209.format(
                worker=socket.gethostname(),
                path=part.path,
                size=size,
                expected=part.size,
            )
        )


def _read(part: Partition) -> bytes:
    _check_size(part)
    with open(part.path, "rb") as file:
        file.seek(part.start)
        return file.read(part.end - part.start)


def parse_line(raw: bytes, *, first: bool, validate: bool = True) -> dict | None:
    """The task of one line (without its ``\\n``), None for a blank line.

    Raises :class:`SourceError` without a place (the caller knows the line).
    ``validate=False`` returns the record as parsed: for a line already
    validated when the pool was indexed (its text and meta are the task's).
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(Errors.E004.format(err=e)) from e
    if first:
        line = line.removeprefix("\ufeff")
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    try:
        record = _parse_json(line)
    except (ValueError, RecursionError) as e:
        raise SourceError(Errors.E005.format(err=e, snippet=snippet(line))) from e
    if not isinstance(record, dict):
        raise SourceError(
            Errors.E006.format(kind=type_name(record), snippet=snippet(record))
        )
    return validate_task(record) if validate else record


def _lines(data: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset in the file, line without ``\\n``) of every line of ``data``."""
    pos = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        if end < 0:
            end = n
        yield start + pos, data[pos:end]
        pos = end + 1


@dataclass
class PartitionIndex:
    """What a worker found in one partition: every valid record's input key and
    byte offset (in file order), the number of lines, and what was wrong."""

    keys: np.ndarray  # int64
    offsets: np.ndarray  # int64, into the file
    n_lines: int
    n_read: int
    n_skipped: int = 0
    #: (line within the partition, 1-based; message; field) of the records
    #: skipped (the first few) or of the record that stopped the reading.
    errors: list[tuple[int, str, str | None]] = field(default_factory=list)
    #: Whether the reading stopped at ``errors[-1]`` (no ``skip_invalid``).
    failed: bool = False


def index_partition(
    part: Partition, *, skip_invalid: bool = False, max_errors: int = 10
) -> PartitionIndex:
    """Read one partition: the input key and offset of every valid record.

    A malformed record stops the reading (its line within the partition is
    kept, the learner adds the lines before it) unless ``skip_invalid``, which
    skips and counts it. Lines are counted to the end either way.
    """
    data = _read(part)
    keys: list[int] = []
    offsets: list[int] = []
    errors: list[tuple[int, str, str | None]] = []
    n_read = n_skipped = 0
    failed = False
    n_lines = 0
    for n_lines, (offset, raw) in enumerate(_lines(data, part.start), start=1):
        if failed:
            continue  # count the lines only
        try:
            task = parse_line(raw, first=offset == 0)
        except SourceError as e:
            n_read += 1
            if not skip_invalid:
                errors.append((n_lines, _message(e), e.field))
                failed = True
                continue
            n_skipped += 1
            if len(errors) < max_errors:
                errors.append((n_lines, _message(e), e.field))
            continue
        if task is None:
            continue
        n_read += 1
        keys.append(task["_input_key"])
        offsets.append(offset)
    return PartitionIndex(
        keys=np.asarray(keys, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        n_lines=n_lines,
        n_read=n_read,
        n_skipped=n_skipped,
        errors=errors,
        failed=failed,
    )


def _message(e: SourceError) -> str:
    """A SourceError's message without its place (``validate_task`` adds none
    when it is given none)."""
    return str(e.args[0]) if e.args else str(e)


def placed_error(path: str, line: int, message: str, field: str | None) -> SourceError:
    """The :class:`SourceError` the in-process reader raises for this record."""
    return SourceError(message, path=path, line=line, field=field)


def records_at(
    part: Partition,
    offsets: Sequence[int],
    *,
    data: bytes | None = None,
    validate: bool = True,
) -> list[dict]:
    """The tasks of the records starting at ``offsets`` (file offsets inside
    the partition), in the order given (``validate``: see :func:`parse_line`)."""
    if data is None:
        data = _read(part)
    tasks = []
    for offset in offsets:
        pos = int(offset) - part.start
        end = data.find(b"\n", pos)
        task = parse_line(
            data[pos : end if end >= 0 else len(data)],
            first=offset == 0,
            validate=validate,
        )
        tasks.append(task)
    return tasks


def read_records(path: str | Path, offsets: Sequence[int]) -> list[dict]:
    """The validated tasks of the records at ``offsets`` of ``path`` (one seek each)."""
    tasks = []
    with open(path, "rb") as file:
        for offset in offsets:
            file.seek(int(offset))
            raw = file.readline()
            tasks.append(parse_line(raw.rstrip(b"\n"), first=int(offset) == 0))
    return tasks
