"""What a serving process holds of a pool: its input keys and done marks.

A server that follows a learner process (``--learner process|remote``) selects
nothing: its tasks come with the learner's queue, its leases and the stored
answers, each carrying the task. Of the pool it needs only which input keys
are in it (an answer names its example by key) and which are done (the
progress it shows). :class:`KeyPool` keeps exactly that: the distinct input
keys sorted in one int64 array (looked up with ``searchsorted``; a dict of ten
million ints takes a gigabyte) and one done mark each, 9 bytes a text, about
90 MB for 10 million. It never holds a text, so it has no ``tasks``.

It is read in this process, a partition of the JSONL source at a time
(:func:`~spacy_al.scale.source.index_partition`, as the Dask workers index it:
the same keys, a malformed record named by its file and line as the
in-process reader names it), without Dask and without a model.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from spacy_al.scale.pool import DoneMarks, KeyIndex
from spacy_al.scale.source import index_partition, partitions, placed_error


class KeyPool(DoneMarks):
    """The input keys of a JSONL source and which are done (see the module).

    It answers as :class:`~spacy_al.pool.Pool` does for serving: ``len``,
    ``index`` (``key in pool.index``), ``mark``, ``done``, ``n_done``,
    ``error`` (None), ``loading`` (False: read before it is returned),
    ``wait`` and ``check``. ``n_read``, ``n_skipped``, ``n_duplicates`` and
    ``skipped_errors`` count what the reading found, as a ``Source`` does.
    """

    def __init__(self, keys: np.ndarray, *, answered: Collection[int] = ()) -> None:
        keys = np.asarray(keys, dtype=np.int64)  # sorted, distinct
        super().__init__(keys, KeyIndex.from_sorted(keys), answered=answered)

    @classmethod
    def read(
        cls,
        path: str | Path,
        *,
        answered: Collection[int] = (),
        skip_invalid: bool = False,
    ) -> KeyPool:
        """Read the input keys of the JSONL file ``path``, a partition at a time.

        A malformed record raises the :class:`~spacy_al.errors.SourceError` the
        in-process reader would (its file and line), unless ``skip_invalid``.
        """
        path = str(Path(path).resolve())
        found: list[np.ndarray] = []
        skipped: list[str] = []
        n_read = n_skipped = line_base = 0
        for part in partitions(path):
            part_index = index_partition(part, skip_invalid=skip_invalid)
            for line, message, field in part_index.errors:
                error = placed_error(path, line_base + line, message, field)
                if part_index.failed:
                    raise error
                if len(skipped) < 10:
                    skipped.append(str(error))
            line_base += part_index.n_lines
            n_read += part_index.n_read
            n_skipped += part_index.n_skipped
            found.append(part_index.keys)
            del part_index  # its offsets: a serving process reads no text
        # One array, each partition's let go once copied; sorted in place.
        keys = np.empty(sum(len(k) for k in found), dtype=np.int64)
        at = 0
        while found:
            part_keys = found.pop(0)
            keys[at : at + len(part_keys)] = part_keys
            at += len(part_keys)
        keys.sort()
        n_records = len(keys)
        if n_records > 1:
            distinct = np.empty(n_records, dtype=bool)
            distinct[0] = True
            np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
            if not distinct.all():
                keys = keys[distinct]
            del distinct
        pool = cls(keys, answered=answered)
        pool.n_duplicates = n_records - len(keys)
        pool.n_read, pool.n_skipped = n_read, n_skipped
        pool.skipped_errors = skipped
        return pool
