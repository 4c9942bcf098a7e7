"""A server's state at its start, from the store: who answered what, and the
leases held when it last stopped (or crashed).

:func:`resume` fills a new feed's state before its threads start: each
annotator's answers (their counts, and the ids a repeated answer gets back),
the examples that want more answers (with ``overlap`` >= 2), and the leases
that still stand, so that everyone is served what they held until the lease's
wall-clock end. Ended leases, and leases of examples answered meanwhile, are
deleted (:meth:`~spacy_al.serve.leases.Leases.load`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Protocol

from spacy_al.serve.served import as_task

if TYPE_CHECKING:
    from spacy_al.protocols import Loop
    from spacy_al.serve.access import Access
    from spacy_al.serve.leases import Leases
    from spacy_al.store import Store


class ResumeFeed(Protocol):
    """What is filled in of a new feed (before its threads start: no lock)."""

    loop: Loop
    store: Store | None
    dataset: str
    overlap: int
    _access: Access
    _leases: Leases
    _active: dict[int, dict]
    _answered_by: defaultdict[int, set[str]]
    _answer_ids: dict[tuple[str, int], int]
    _counts: Counter[str]
    _n_answers: int
    _last_answer_id: int


def resume(feed: ResumeFeed) -> None:
    """Fill ``feed`` with its dataset's earlier answers, then the leases that
    still stand (nothing if the dataset isn't stored yet)."""
    if feed.store is None or not feed.store.has_dataset(feed.dataset):
        return
    last: dict[int, dict] = {}
    for eg in feed.store.iter_answers(feed.dataset):
        key, who = eg["_input_key"], eg["_annotator_id"]
        feed._last_answer_id = max(feed._last_answer_id, eg["_id"])
        feed._answered_by[key].add(who)
        feed._answer_ids[(who, key)] = eg["_id"]
        feed._counts[who] += 1
        feed._n_answers += 1
        if feed.overlap > 1:
            last[key] = eg
    for key, eg in last.items():
        if len(feed._answered_by[key]) < feed.overlap and key in feed.loop.pool.index:
            feed._active[key] = as_task(eg)
    feed._leases.load(lambda lease: _keep_lease(feed, lease))


def _keep_lease(feed: ResumeFeed, lease: dict[str, Any]) -> bool:
    """Whether a lease taken back from the store still stands; if so, its
    task is served (again)."""
    key, who = lease["input_hash"], lease["annotator"]
    answered = feed._answered_by.get(key, set())
    if (
        key not in feed.loop.pool.index
        or who in answered
        or len(answered) + len(feed._leases.holders(key)) >= feed.overlap
        or not feed._access.allows(who)
        or not isinstance(lease["task"], dict)
    ):
        return False
    task = feed._active.setdefault(key, as_task(lease["task"]))
    return task.get("_input_key") == key
