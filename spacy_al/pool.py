"""The pool of unlabelled texts: hashed, deduplicated, read in the background."""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Iterator

import numpy as np

from spacy_al.corpus import check_same_input, set_hashes

#: Texts scored per selection at most while the pool is read in the background.
LOADING_WINDOW = 2_000


class Pool:
    """The examples to ask about, deduplicated by content, and which are done.

    Examples are known by their ``_input_key`` (``index``, ``mark``, ``remaining``
    and ``answered`` take input keys); two tasks with the same key are compared,
    and two different texts under one key raise ValueError instead of one being
    dropped as a duplicate.

    By default ``tasks`` are read to the end before the pool is returned. With
    ``foreground_seconds``, the pool reads for that long and then goes on reading
    in a background thread, so that a session can ask its first questions while a
    big source is still being read: ``len``, ``tasks``, ``index`` and
    ``remaining`` cover what has been read so far, in the source's order.
    ``loading`` says whether more is coming and ``wait`` waits for it. An error
    raised while reading in the foreground propagates as usual; one raised in the
    background stops the reading and is kept in ``error``, and ``check`` raises it;
    every task read before the error is kept (a serving feed then stops serving
    and names the record: the texts after it were never read).
    """

    #: Tasks read per step; the lock is held only to add a step's tasks.
    chunk_size = 2048

    def __init__(
        self,
        tasks: Iterable[dict],
        *,
        answered: Collection[int] = (),
        foreground_seconds: float | None = None,
    ) -> None:
        self.tasks: list[dict] = []
        self.index: dict[int, int] = {}
        self.error: Exception | None = None
        self._done = np.zeros(0, dtype=bool)  # grown ahead of ``tasks``
        self._marks: dict[int, bool] = dict.fromkeys(answered, True)
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        stream = iter(tasks)
        deadline = (
            None
            if foreground_seconds is None
            else time.monotonic() + foreground_seconds
        )
        while self._add_chunk(stream):
            if deadline is not None and time.monotonic() >= deadline:
                # The thread holds the pool weakly: a pool nobody uses any more
                # (a recipe's process that hands over to the app's) stops reading.
                self._thread = threading.Thread(
                    target=_read_rest,
                    args=(weakref.ref(self), stream),
                    name="spacy_al-pool",
                    daemon=True,
                )
                self._thread.start()
                return
        self._loaded.set()

    def _add_chunk(self, stream: Iterator[dict]) -> bool:
        """Read up to ``chunk_size`` tasks and add them; False at the end."""
        chunk = []
        error: Exception | None = None
        try:
            for task in itertools.islice(stream, self.chunk_size):
                if not (
                    type(task.get("_input_key")) is int
                    and type(task.get("_task_key")) is int
                ):
                    task = set_hashes(task)
                chunk.append(task)
        except Exception as e:  # a bad record: every good one before it is kept
            error = e
        with self._lock:
            n = len(self.tasks)
            if n + len(chunk) > len(self._done):
                grown = np.zeros(max(2 * len(self._done), n + len(chunk)), dtype=bool)
                grown[:n] = self._done[:n]
                self._done = grown
            for task in chunk:
                key = task["_input_key"]
                if key in self.index:
                    check_same_input(self.tasks[self.index[key]], task, key)
                else:
                    i = len(self.tasks)
                    self.index[key] = i
                    self.tasks.append(task)
                    if self._marks:
                        self._done[i] = self._marks.pop(key, False)
        if error is not None:
            raise error
        return len(chunk) == self.chunk_size

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def loading(self) -> bool:
        """Whether the source is still being read in the background."""
        return not self._loaded.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the source is read (or failed); False if ``timeout`` passed."""
        return self._loaded.wait(timeout)

    def check(self) -> None:
        """Raise the error that stopped the background reading, if any."""
        if self.error is not None:
            raise self.error

    @property
    def done(self) -> np.ndarray:
        """Whether each task (in ``tasks`` order) has been answered (a copy)."""
        with self._lock:
            return self._done[: len(self.tasks)].copy()

    @property
    def n_done(self) -> int:
        with self._lock:
            return int(self._done[: len(self.tasks)].sum())

    def mark(self, input_keys: Iterable[int], done: bool = True) -> None:
        """Mark examples (not) done by their input keys; those not read yet are
        marked when they are."""
        with self._lock:
            for key in input_keys:
                i = self.index.get(key)
                if i is not None:
                    self._done[i] = done
                elif self.loading:
                    self._marks[key] = done

    def head(self, n: int) -> list[dict]:
        """The first ``n`` tasks read so far."""
        with self._lock:
            return self.tasks[:n]

    def remaining(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        """Indices of the tasks read so far that aren't done nor in ``exclude``."""
        with self._lock:
            free = ~self._done[: len(self.tasks)]
            for key in exclude:
                i = self.index.get(key)
                if i is not None:
                    free[i] = False
        return np.flatnonzero(free)


def _read_rest(ref: weakref.ref[Pool], stream: Iterator[dict]) -> None:
    """Read the rest of a pool's source, while the pool is in use."""
    while (pool := ref()) is not None:
        try:
            more = pool._add_chunk(stream)
        except Exception as e:  # kept for ``check``; the tasks read so far serve
            pool.error = e
            more = False
        if not more:
            pool._loaded.set()
            return
        del pool
