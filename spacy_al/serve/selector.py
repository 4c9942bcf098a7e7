"""The selector of a labelling server: keeps candidates ready for the annotators.

A :class:`Selector` thread asks the loop for the next candidates
(``loop.select``) whenever the model version changes or the feed's queue runs
low, outside every lock, so that an annotator's request never waits for scoring;
with ``preselect`` it adds the model's predicted labels to each task. The queue
it fills is the feed's: :meth:`~spacy_al.serve.feed.Feed.next_task` pops from it.

So that the queue never runs dry while the pool has texts:

* A textcat selection ranks its whole scoring window whatever it is asked for
  (:func:`cheap_selection`), so each asks for ten times ``prefetch`` (3,000 by
  default: :func:`default_prefetch`), the first too: scoring a window while
  requests run takes many times longer than the last one took (it steps aside
  for each request), and the queue serves meanwhile. Elsewhere each selection
  asks for three times the refill level below, at least ``prefetch``.
* "Low" is measured against demand: the selector refills once the queue holds
  less than twice what is expected to go out before a selection started now is
  served (the answering rate times the last selection's duration, plus
  ``serve_lag``: the time a learner process's queue takes to reach its
  servers), or less than what went out during the last selection.
* A new model version's ranking goes first, the rest of the earlier one after
  it: stale, but served rather than making anyone wait.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np

from spacy_al.metrics import predicted_labels
from spacy_al.serve.progress import serving_probs
from spacy_al.serve.worker import Worker, WorkerFeed, failure

if TYPE_CHECKING:
    from spacy_al.protocols import Loop

SELECT_ATTEMPTS = 5
# Before re-selecting for a new model version, the selector rests this many times
# as long as its last selection took (the share of the CPU left to answers).
SELECT_REST = 1.0
#: Refill once the queue holds less than this many times what is expected to go
#: out before a selection started now is served.
REFILL_MARGIN = 2.0
#: Each selection asks for this many times that refill level: under steady
#: demand the selector then scores about a third of the time, not all of it.
SELECT_FACTOR = 3
#: The answering rate is measured over the last this many seconds ...
RATE_SECONDS = 2.0
#: ... and over no less than this (a few answers in a millisecond are no rate).
RATE_MIN_SECONDS = 0.5
#: At most this many times ``prefetch`` are asked for in one selection.
MAX_FACTOR = 10


def cheap_selection(loop: Loop) -> bool:
    """Whether asking ``loop`` for more candidates costs next to nothing: a
    textcat loop ranks its whole scoring window whatever number it is asked
    for (except with a strategy that clusters the candidates that many ways,
    ``diverse``). NER builds and parses each chosen task."""
    spec = getattr(loop, "spec", None)
    return loop.task == "textcat" and not getattr(spec, "needs_vectors", False)


def default_prefetch(loop: Loop) -> int:
    """``prefetch`` when a feed or learner is not told: where selecting more is
    cheap (:func:`cheap_selection`) 30 batches, at least 300, and each
    selection asks for ten times it; else 6 batches, at least 60, the first
    queue and the least a selection asks for."""
    if cheap_selection(loop):
        return max(30 * loop.batch_size, 300)
    return max(6 * loop.batch_size, 60)


class SelectorFeed(WorkerFeed, Protocol):
    """What the selector uses of the feed that owns it.

    The candidate queue and what has been handed out are the feed's state, read
    and written under ``_cond`` (the feed's lock), as serving does.
    """

    loop: Loop
    labels: tuple[str, ...]
    exclusive: bool
    prefetch: int
    preselect: bool
    # Seconds from a selection's end until its servers can serve it (0 here;
    # a learner process's queue is published and read by its servers).
    serve_lag: float
    _candidates: deque[dict]
    _cand_version: int  # the model version the candidates were chosen by
    _exhausted: bool  # the last selection found nothing new
    _taken: int  # candidates handed out so far
    _active: dict[int, dict]

    @property
    def _answered_by(self) -> Mapping[int, set[str]]: ...

    @property
    def _elsewhere(self) -> Mapping[int, float]: ...


class Selector(Worker):
    """The feed's selector thread (:meth:`run`); the feed starts it."""

    feed: SelectorFeed

    def __init__(self, feed: SelectorFeed) -> None:
        super().__init__(feed)
        self.loop = feed.loop
        self.labels = feed.labels
        self.exclusive = feed.exclusive
        self.prefetch = feed.prefetch
        self.preselect = feed.preselect
        self._max_n = MAX_FACTOR * self.prefetch
        # Where more candidates cost nothing, every selection asks for the most:
        # scoring a window can take many times longer while requests run than
        # the last one took (it steps aside for them), and the queue serves
        # meanwhile. Elsewhere the queue grows with demand.
        self._cheap = cheap_selection(self.loop)
        # The queue a selection fills up to.
        self._select_n = self._max_n if self._cheap else self.prefetch
        self._taken_before = 0  # candidates handed out when the last selection started
        self._select_seconds = 0.0  # how long the last selection took
        self._select_end = 0.0  # when it ended (time.monotonic)
        self._taken_during = 0  # candidates handed out during the last selection
        # (time.monotonic, feed._taken) samples for the answering rate.
        self._marks: deque[tuple[float, int]] = deque()

    def rate(self) -> float:
        """Candidates handed out per second lately (call under the feed's lock)."""
        now, taken = time.monotonic(), self.feed._taken
        marks = self._marks
        if not marks or now - marks[-1][0] >= 0.05:
            marks.append((now, taken))
        while len(marks) > 1 and now - marks[0][0] > RATE_SECONDS:
            marks.popleft()
        start, before = marks[0]
        return (taken - before) / max(now - start, RATE_MIN_SECONDS)

    def refill_level(self) -> int:
        """The queue length below which the selector selects more (call under
        the feed's lock): twice what is expected to go out before a selection
        started now is served, and at least half of ``prefetch``."""
        rate = self.rate()
        lag = self.feed.serve_lag
        expected = max(
            rate * (self._select_seconds + lag), self._taken_during + rate * lag
        )
        level = max(self.prefetch // 2, math.ceil(REFILL_MARGIN * expected), 1)
        return min(level, self._max_n)

    def _selection_wait(self) -> float | None:
        """Seconds until the selector should select (0: now); None: no need yet.

        At once for the first selection and when the queue runs low
        (:meth:`refill_level`). For a new model version, once the selector has
        rested as long as its last selection took: under fast answering
        versions come faster than a big window is re-scored, and back-to-back
        selections would take the CPU from answers and learning. The queue
        serves meanwhile.
        """
        low = len(self.feed._candidates) < self.refill_level()
        if self.feed._cand_version < 0 or (low and not self.feed._exhausted):
            return 0.0
        if self.loop.version == self.feed._cand_version:
            return None
        rested = time.monotonic() - self._select_end
        return max(SELECT_REST * self._select_seconds - rested, 0.0)

    def run(self) -> None:
        """The thread's body: select whenever the feed needs candidates, until
        the feed closes."""
        while True:
            with self._cond:
                while not self.feed._stop:
                    wait = self._selection_wait()
                    if wait == 0.0:
                        break
                    self._cond.wait(1.0 if wait is None else min(wait, 1.0))
                if self.feed._stop:
                    return
                version = self.loop.version
                first = self.feed._cand_version < 0
                fresh = version != self.feed._cand_version
                exclude = set(self.feed._active) | set(self.feed._elsewhere)
                if not fresh:
                    exclude.update(t["_input_key"] for t in self.feed._candidates)
                if not first and not self._cheap:
                    # Enough to serve three times the refill level, or three
                    # times what went out over the last cycle (a rest and a
                    # selection): at least prefetch, at most ten times it.
                    cycle = self.feed._taken - self._taken_before
                    self._select_n = min(
                        max(
                            self.prefetch,
                            SELECT_FACTOR * self.refill_level(),
                            SELECT_FACTOR * cycle,
                        ),
                        self._max_n,
                    )
                n = (
                    self._select_n
                    if fresh
                    else self._select_n - len(self.feed._candidates)
                )
                self._taken_before = taken = self.feed._taken
            started = time.monotonic()
            # Read before selecting: a pool whose reading ends during the
            # selection may have more than this selection saw.
            loading = self.loop.pool.loading
            try:
                tasks = self._select(max(n, 1), exclude)
                if self.preselect:
                    self._add_predictions(tasks)
            except Exception as e:  # keep serving what is queued; show the error
                with self._cond:
                    self.feed._error = failure("Selecting examples", e)
                    self.feed._cand_version = version
                    self.feed._exhausted = True
                    self._cond.notify_all()
                continue
            with self._cond:
                self._select_end = time.monotonic()
                self._select_seconds = self._select_end - started
                self._taken_during = self.feed._taken - taken
                fresh_tasks = [
                    t
                    for t in tasks
                    if t["_input_key"] not in self.feed._active
                    and not self.feed._answered_by.get(t["_input_key"])
                ]
                if fresh:
                    # The new ranking first, then what is left of the earlier one:
                    # stale, but served rather than making anyone wait.
                    keys = {t["_input_key"] for t in fresh_tasks}
                    older = [
                        t for t in self.feed._candidates if t["_input_key"] not in keys
                    ]
                    self.feed._candidates = deque(fresh_tasks + older[: self._select_n])
                else:
                    self.feed._candidates.extend(fresh_tasks)
                self.feed._cand_version = version
                # A pool still being read may have more soon: not exhausted.
                self.feed._exhausted = not tasks and not loading
                self._cond.notify_all()
                if not tasks and loading:
                    self._cond.wait(0.2)

    def _select(self, n: int, exclude: set[int]) -> list[dict]:
        # select() runs outside _loop_lock so that answers never wait for scoring.
        # ActiveLoop.label_counts iterates a dict that answer() may grow meanwhile
        # ("dictionary changed size during iteration"): then select again.
        for attempt in range(SELECT_ATTEMPTS):
            try:
                return self.loop.select(n, exclude=exclude)
            except RuntimeError:
                if attempt == SELECT_ATTEMPTS - 1:
                    raise
        return []

    def _add_predictions(self, tasks: list[dict]) -> None:
        """The model's labels for each task (``accept``) and its score for
        every label (``meta["scores"]``). A textcat choice task brings the
        scores its selection computed (a selection is thousands of tasks:
        predicting them all again would double its work); others are
        predicted here."""
        missing = [
            t for t in tasks if set(t["meta"].get("scores") or ()) != set(self.labels)
        ]
        if missing:
            probs = serving_probs(self.loop.updater, [t["text"] for t in missing])
            for task, row in zip(missing, probs, strict=True):
                task["meta"]["scores"] = {
                    label: round(float(p), 4)
                    for label, p in zip(self.labels, row, strict=True)
                }
        if not tasks:
            return
        probs = np.array(
            [[t["meta"]["scores"][label] for label in self.labels] for t in tasks]
        )
        chosen = predicted_labels(probs, self.labels, exclusive=self.exclusive)
        for task, labels in zip(tasks, chosen, strict=True):
            task["accept"] = labels
