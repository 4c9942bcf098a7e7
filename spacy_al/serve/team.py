"""The team thread of a labelling server: reviewers' answers and agreement.

With ``overlap`` >= 2 the loop learns an example once its annotators agree
(:mod:`spacy_al.team.consensus`). A :class:`TeamThread` picks up reviewers'
answers (the ``review`` recipe) for the loop to learn, and recomputes the
agreement figures the feed's ``stats()`` shows after new answers.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from spacy_al.serve.worker import Worker, WorkerFeed
from spacy_al.team.agreement import agreement_summary
from spacy_al.team.consensus import review_datasets

if TYPE_CHECKING:
    from spacy_al.protocols import Loop
    from spacy_al.store import Store

# How often the team thread looks for reviewers' answers and new agreement figures.
TEAM_SECONDS = 5.0
AGREEMENT_SECONDS = 2.0  # at most this often after answers (it reads them all)


class TeamFeed(WorkerFeed, Protocol):
    """What the team thread uses of the feed that owns it.

    The agreement figures and the answer count are the feed's state, read and
    written under ``_cond`` (the feed's lock); reviews change the loop under
    ``_loop_lock``.
    """

    loop: Loop
    store: Store | None
    dataset: str
    overlap: int
    _loop_lock: threading.Lock
    _n_answers: int
    _agreement: dict[str, Any] | None


class TeamThread(Worker):
    """The feed's team thread (:meth:`run`); the feed starts it, and its
    :meth:`~spacy_al.serve.feed.Feed.poll_reviews` and
    :meth:`~spacy_al.serve.feed.Feed.refresh_agreement` call this one's."""

    feed: TeamFeed

    def __init__(self, feed: TeamFeed) -> None:
        super().__init__(feed)
        self.loop = feed.loop
        self.store = feed.store
        self.dataset = feed.dataset
        self.overlap = feed.overlap
        self._loop_lock = feed._loop_lock
        self._reviews_seen: dict[str, int] = {}  # review dataset → last answer id
        self._review_lock = threading.Lock()  # one poll at a time

    def poll_reviews(self) -> int:
        """Queue reviewers' new answers on this dataset's examples for learning.

        Reviews are the answers of the datasets whose meta says they review this
        one (``review_of``, set by the ``review`` recipe). Returns how many
        examples were adjudicated since the last call.
        """
        if self.store is None or self.loop.updater is None:  # nothing learns
            return 0
        with self._review_lock:
            new: list[dict] = []
            for name in review_datasets(self.store, self.dataset):
                found = self.store.get_answers(
                    name, since_id=self._reviews_seen.get(name)
                )
                if found:
                    self._reviews_seen[name] = found[-1]["_id"]
                    new.extend(found)
            if not new:
                return 0
            with self._loop_lock:
                n = self.loop.adjudicate(new)
        with self._cond:
            self._cond.notify_all()  # the trainer may have a full batch now
        return n

    def refresh_agreement(self) -> dict[str, Any] | None:
        """Recompute the agreement figures ``stats()`` shows (overlap >= 2).

        :func:`spacy_al.team.agreement.agreement_summary` over the dataset's answers,
        plus ``held`` (examples in conflict, not learnt until reviewed) and
        ``waiting`` (examples with fewer answers than the overlap). The team
        thread calls this after new answers, at most every few seconds.
        """
        if self.overlap < 2 or self.store is None:
            return None
        if not self.store.has_dataset(self.dataset):
            return None
        answers = self.store.get_answers(self.dataset)
        summary = agreement_summary(answers, min_answers=self.overlap)
        summary["held"] = len(self.loop.conflicts)
        summary["waiting"] = self.loop.n_waiting
        with self._lock:
            self.feed._agreement = summary
        return summary

    def run(self) -> None:
        """The thread's body: poll reviews every ``TEAM_SECONDS`` and recompute
        the agreement after new answers (at most every ``AGREEMENT_SECONDS``,
        less often on a big dataset), until the feed closes."""
        seen = -1
        figures_at = 0.0  # no new figures before then (after new answers)
        while True:
            with self._cond:
                if self.feed._stop:
                    return
                n_answers = self.feed._n_answers
            try:
                reviewed = self.poll_reviews()
                start = time.monotonic()
                if reviewed or (n_answers != seen and start >= figures_at):
                    self.refresh_agreement()
                    seen = n_answers
                    # It reads every answer: on a big dataset, recompute less often.
                    took = time.monotonic() - start
                    figures_at = start + max(AGREEMENT_SECONDS, 5 * took)
            except Exception as e:  # labelling goes on; the app shows the error
                self.report("Reading reviews or agreement", e)
            # Reviews: every TEAM_SECONDS; new answers: new figures after figures_at.
            deadline = time.monotonic() + TEAM_SECONDS
            with self._cond:
                while not self.feed._stop and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(min(left, AGREEMENT_SECONDS))
                    if (
                        self.overlap > 1
                        and self.feed._n_answers != seen
                        and time.monotonic() >= figures_at
                    ):
                        break
