"""The figures a labelling server shows: the team's and each annotator's progress.

:func:`feed_stats` reads them from the feed's state in one step under its lock,
with the model's learning curve and stopping signal
(:meth:`~spacy_al.serve.progress.ModelProgress.stats`) and, on a server that
follows a learner process, what that process published
(:meth:`~spacy_al.serve.follower.Follower.stats`). It is cheap enough for the
app and the JSON API to poll.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Protocol

from spacy_al.serve.access import check_annotator

if TYPE_CHECKING:
    from spacy_al.protocols import Loop
    from spacy_al.serve.follower import Follower
    from spacy_al.serve.leases import Leases
    from spacy_al.serve.progress import ModelProgress


class StatsFeed(Protocol):
    """What the figures are read from: the feed's state, under ``_lock``."""

    dataset: str
    view_id: str
    overlap: int
    loop: Loop
    progress: ModelProgress
    dry_waits: int
    _lock: threading.Lock
    _follower: Follower | None
    _leases: Leases
    _n_answers: int
    _counts: Counter[str]
    _history: dict[str, deque[tuple[dict, dict]]]
    _n_updates: int
    _training: bool
    _last_update: dict[str, Any] | None
    _error: str | None
    _agreement: dict[str, Any] | None
    _candidates: deque[dict]
    _cand_version: int
    _exhausted: bool
    _active: dict[int, dict]

    def _finished_for(self, who: str) -> bool: ...


def feed_stats(feed: StatsFeed, annotator: str | None = None) -> dict[str, Any]:
    """The figures :meth:`spacy_al.serve.feed.Feed.stats` returns (see there),
    read under the feed's lock; ``you`` for an ``annotator``."""
    pool = feed.loop.pool
    with feed._lock:
        out: dict[str, Any] = {
            "dataset": feed.dataset,
            "view_id": feed.view_id,
            "total": len(pool),
            "done": pool.n_done,
            "answers": feed._n_answers,
            "annotators": dict(sorted(feed._counts.items())),
            "overlap": feed.overlap,
            "version": feed.loop.version,
            "pending": feed.loop.n_pending,
            "batch_size": feed.loop.batch_size,
            "updates": feed._n_updates,
            "training": feed._training,
            "last_update": feed._last_update,
            "error": feed._error,
            "agreement": feed._agreement,
            "dry_waits": feed.dry_waits,
            **feed.progress.stats(),
            "finished": feed._cand_version >= 0
            and feed._exhausted
            and not feed._candidates
            and not feed._active,
        }
        if feed._follower is not None:  # what the learner process published
            out.update(feed._follower.stats())
            out["error"] = feed._error or out.get("error")
        if annotator is not None:
            who = check_annotator(annotator)
            out["you"] = {
                "answers": feed._counts.get(who, 0),
                "can_undo": bool(feed._history.get(who)),
                "finished": feed._finished_for(who) and feed._leases.first(who) is None,
            }
        return out
