"""A pool whose texts stay in the source file: keys, byte offsets and done marks.

:class:`OffsetPool` is what a session opened with ``dask=`` labels from. It
keeps, per example, only its input key, its byte offset in the JSONL source and
whether it is done, in numpy arrays (17 bytes an example, plus 12 for the key
lookup: about 300 MB for 10 million texts); a task is read from the file when
it is asked for (``tasks[i]``). The index is built on the cluster, each worker
indexing its partitions of the file, and a loop built on the pool scores it
there (``cluster``).

Duplicates are records with the same input key; the first is kept, as
:class:`~spacy_al.pool.Pool` keeps it. Unlike that pool, two different texts
under one 64-bit key aren't compared (their texts aren't in memory): at 10
million texts that happens about once in 300,000 pools.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from spacy_al.scale.source import (
    PARTITION_BYTES,
    Partition,
    index_partition,
    partitions,
    placed_error,
    read_records,
)

if TYPE_CHECKING:
    from spacy_al.scale.cluster import Cluster

#: Texts a loop on a cluster scores for its first selection (a random sample
#: spread over the whole pool; full passes follow): enough to fill the first
#: queues, about 10 s on two workers instead of half an hour at 10M texts.
FIRST_WINDOW = 100_000


def auto_partition_bytes(size: int, n_workers: int) -> int:
    """Partitions for a file of ``size`` bytes: at least 4 per worker (so one
    slow partition doesn't leave the others idle at the end of a pass), of 1 MB
    to ``PARTITION_BYTES``."""
    per_worker = size // (4 * max(n_workers, 1))
    return int(min(PARTITION_BYTES, max(2**20, per_worker)))


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def _concatenate(found: list, name: str) -> np.ndarray:
    """One array of every partition's ``name`` array, each let go once copied."""
    out = np.empty(sum(len(getattr(f, name)) for f in found), dtype=np.int64)
    at = 0
    for f in found:
        part = getattr(f, name)
        out[at : at + len(part)] = part
        at += len(part)
        setattr(f, name, None)
    return out


class KeyIndex:
    """Input key → position in the pool, over sorted numpy arrays (a dict of
    10 million ints would take a gigabyte)."""

    def __init__(self, keys: np.ndarray) -> None:
        self._order: np.ndarray | None = np.argsort(keys, kind="stable").astype(
            _index_dtype(len(keys))
        )
        self._sorted = keys[self._order]

    @classmethod
    def from_sorted(
        cls, sorted_keys: np.ndarray, positions: np.ndarray | None = None
    ) -> KeyIndex:
        """The index of distinct ``sorted_keys`` at ``positions`` (no sort);
        without ``positions``, each key's position is its place in
        ``sorted_keys`` (no second array: a pool held in sorted order)."""
        index = cls.__new__(cls)
        index._sorted, index._order = sorted_keys, positions
        return index

    def __len__(self) -> int:
        return len(self._sorted)

    def positions(self, keys: Iterable[int]) -> np.ndarray:
        """The positions of ``keys`` (-1 for a key not in the pool)."""
        wanted = np.fromiter((int(k) for k in keys), dtype=np.int64)
        if not len(self._sorted):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.searchsorted(self._sorted, wanted)
        at = np.minimum(at, len(self._sorted) - 1)
        found = self._sorted[at] == wanted
        where = at if self._order is None else self._order[at]
        return np.where(found, where, -1).astype(np.int64)

    def get(self, key: int, default: Any = None) -> Any:
        if not -(2**63) <= int(key) < 2**63:  # no 64-bit key: in no pool
            return default
        i = int(self.positions([key])[0])
        return default if i < 0 else i

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (int, np.integer)) and self.get(int(key)) is not None

    def __getitem__(self, key: int) -> int:
        i = self.get(key)
        if i is None:
            raise KeyError(key)
        return i


class DoneMarks:
    """A pool read whole before it is returned: its input keys (``keys``, with
    ``index`` from key to position), one done mark each, and what the reading
    found (``n_read``, ``n_skipped``, ``n_duplicates``, ``skipped_errors``, as
    a ``Source`` counts them). It answers as :class:`~spacy_al.pool.Pool` does
    for ``len``, ``index``, ``mark``, ``done``, ``n_done``, ``error`` (None),
    ``loading`` (False), ``wait`` and ``check``."""

    def __init__(
        self, keys: np.ndarray, index: KeyIndex, *, answered: Collection[int] = ()
    ) -> None:
        self.keys = np.asarray(keys, dtype=np.int64)
        self.index = index
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._done = np.zeros(len(self.keys), dtype=bool)
        self._n_done = 0  # kept as marks change: stats are polled often
        if answered:
            self.mark(answered)
        self.n_read = len(self.keys)
        self.n_skipped = 0
        self.n_duplicates = 0
        self.skipped_errors: list[str] = []

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def loading(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def check(self) -> None:
        """Nothing to raise: the pool was read before it was returned."""

    @property
    def done(self) -> np.ndarray:
        """Whether each example has been answered (a copy)."""
        with self._lock:
            return self._done.copy()

    @property
    def n_done(self) -> int:
        return self._n_done

    def mark(self, input_keys: Iterable[int], done: bool = True) -> None:
        """Mark examples (not) done by their input keys (others are ignored)."""
        at = self.index.positions(input_keys)
        at = np.unique(at[at >= 0])
        with self._lock:
            was = int(self._done[at].sum())
            self._done[at] = done
            self._n_done += len(at) - was if done else -was


class LazyTasks(Sequence):
    """The pool's tasks, read from the file by offset when asked for."""

    def __init__(self, path: str, offsets: np.ndarray) -> None:
        self._path = path
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, i: int) -> dict: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return read_records(self._path, self._offsets[i])
        n = len(self._offsets)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return read_records(self._path, [self._offsets[i]])[0]

    def __iter__(self) -> Iterator[dict]:
        step = 4096
        for lo in range(0, len(self._offsets), step):
            yield from self[lo : lo + step]


class OffsetPool(DoneMarks):
    """The examples of a JSONL file, by input key, byte offset and done mark.

    It answers as :class:`~spacy_al.pool.Pool` does (``tasks``, ``index``,
    ``mark``, ``remaining``, ``done``, ``n_done``; ``loading`` is False: the
    index is built before the pool is returned). ``cluster`` is the Dask
    cluster its loops score on. ``n_read``, ``n_skipped``, ``n_duplicates``
    and ``skipped_errors`` count what the index found, as a ``Source`` does.
    """

    def __init__(
        self,
        path: str | Path,
        keys: np.ndarray,
        offsets: np.ndarray,
        *,
        parts: Sequence[Partition],
        answered: Collection[int] = (),
        cluster: Cluster | None = None,
        index: KeyIndex | None = None,
    ) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        super().__init__(
            keys, index if index is not None else KeyIndex(keys), answered=answered
        )
        self.path = str(path)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.parts = list(parts)
        self.cluster = cluster
        self.tasks = LazyTasks(self.path, self.offsets)
        # Where each partition's examples begin, for splitting a window.
        self._part_starts = np.searchsorted(self.offsets, [p.start for p in self.parts])

    @classmethod
    def build(
        cls,
        path: str | Path,
        *,
        cluster: Cluster,
        answered: Collection[int] = (),
        skip_invalid: bool = False,
        partition_bytes: int | None = None,
    ) -> OffsetPool:
        """Index ``path`` on the cluster (each worker its partitions) and keep
        the first record of each input key, in file order.

        A malformed record raises the :class:`~spacy_al.errors.SourceError`
        the in-process reader would (its file and line), unless
        ``skip_invalid``. ``partition_bytes`` (None: :func:`auto_partition_bytes`)
        is the size of the byte ranges a worker reads and scores at once.
        """
        path = str(Path(path).resolve())
        if partition_bytes is None:
            partition_bytes = auto_partition_bytes(
                os.path.getsize(path), cluster.n_workers
            )
        parts = partitions(path, partition_bytes=partition_bytes)
        found = cluster.map(index_partition, parts, skip_invalid=skip_invalid)
        line_base = 0
        skipped: list[str] = []
        for part_index in found:
            for line, message, field in part_index.errors:
                error = placed_error(path, line_base + line, message, field)
                if part_index.failed:
                    raise error
                if len(skipped) < 10:
                    skipped.append(str(error))
            line_base += part_index.n_lines
        n_read = sum(f.n_read for f in found)
        n_skipped = sum(f.n_skipped for f in found)
        # Ten million texts' keys and offsets are 160 MB: each partition's
        # arrays are let go as soon as they are copied.
        keys = _concatenate(found, "keys")
        offsets = _concatenate(found, "offsets")
        del found
        n_records = len(keys)
        # The first record of each key (a stable sort keeps the first of equal
        # keys first), in file order; the key lookup comes from the same sort.
        perm = np.argsort(keys, kind="stable")
        sorted_keys = keys[perm]
        del keys
        firsts = np.ones(len(sorted_keys), dtype=bool)
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=firsts[1:])
        unique = sorted_keys[firsts]
        del sorted_keys
        first = perm[firsts]
        del perm, firsts
        order = np.argsort(first)
        member_offsets = offsets[first[order]]
        del offsets, first
        position = np.empty(len(order), dtype=_index_dtype(len(order)))
        position[order] = np.arange(len(order), dtype=position.dtype)
        pool = cls(
            path,
            unique[order],
            member_offsets,
            parts=parts,
            answered=answered,
            cluster=cluster,
            index=KeyIndex.from_sorted(unique, position),
        )
        pool.n_duplicates = n_records - len(order)
        pool.n_read, pool.n_skipped = n_read, n_skipped
        pool.skipped_errors = skipped
        return pool

    def fresh(self, *, answered: Collection[int] = ()) -> OffsetPool:
        """The same examples with nothing done but ``answered`` (the arrays
        are shared, not copied): a new run over the same source."""
        pool = OffsetPool(
            self.path,
            self.keys,
            self.offsets,
            parts=self.parts,
            cluster=self.cluster,
            index=self.index,
            answered=answered,
        )
        pool.n_read, pool.n_skipped = self.n_read, self.n_skipped
        pool.n_duplicates = self.n_duplicates
        pool.skipped_errors = list(self.skipped_errors)
        return pool

    def remaining(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        """Indices of the examples not done nor in ``exclude``, in file order."""
        with self._lock:
            free = ~self._done
        if exclude:
            at = self.index.positions(exclude)
            free[at[at >= 0]] = False
        return np.flatnonzero(free)

    def tasks_at(self, indices: Sequence[int]) -> list[dict]:
        """The tasks at pool ``indices`` (one seek each)."""
        return read_records(
            self.path, self.offsets[np.asarray(indices, dtype=np.int64)]
        )

    def head(self, n: int) -> list[dict]:
        """The first ``n`` tasks (read from the file)."""
        return self.tasks[:n]

    def split(self, indices: np.ndarray) -> list[tuple[Partition, np.ndarray]]:
        """Sorted pool ``indices`` grouped by partition: (partition, indices)."""
        cuts = np.searchsorted(indices, self._part_starts[1:])
        groups = np.split(indices, cuts)
        return [(p, g) for p, g in zip(self.parts, groups, strict=True) if len(g)]
