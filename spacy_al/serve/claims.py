"""Claiming a new lease in the store: the servers of one dataset share out its
examples as one server would.

Before a feed hands out a newly leased task, :func:`claim` claims the lease in
the store (:meth:`spacy_al.store.Store.claim_lease`, one transaction under
the dataset's writer lock), so that across servers at most ``overlap``
annotators hold or answered an example. A lost claim ends the lease here, and
the example is skipped: for good if it has its answers across servers, else
for a quarter of ``lease_seconds`` while another server's annotator holds it.
A store that can't be reached doesn't stop serving (the lease is written when
it can be); a dataset dropped under the server does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from spacy_al.errors import Errors
from spacy_al.serve.worker import WorkerFeed, failure

if TYPE_CHECKING:
    from spacy_al.protocols import Loop
    from spacy_al.serve.lease_writer import LeaseWriter
    from spacy_al.serve.leases import Leases
    from spacy_al.store import Store


class ClaimFeed(WorkerFeed, Protocol):
    """What a claim uses of the feed: its lease book and serving state, under
    ``_cond`` (the feed's lock), and its lease writer."""

    loop: Loop
    store: Store | None
    dataset: str
    overlap: int
    lease_seconds: float
    _clock: Callable[[], float]
    _leases: Leases
    _lease_writer: LeaseWriter
    _answered_by: defaultdict[int, set[str]]
    _active: dict[int, dict]
    _elsewhere: dict[int, float]
    _fatal: str | None
    _had_dataset: bool


def claim(feed: ClaimFeed, who: str, task: dict) -> bool | None:
    """Claim ``who``'s new lease of ``task`` in ``feed``'s store (call outside
    the feed's lock): True if it is theirs (or there is no store to share it
    through), False if the claim was lost (the lease ended here), None if the
    dataset was dropped under the server (``feed._fatal`` says so: stop)."""
    store = feed.store
    if store is None:
        return True
    key = task["_input_key"]
    # This example's leases ended here are ended in the store first (a stale
    # one would count against the claim); the others' changes, such as the
    # lease of the example just answered, go with the lease writer's next
    # write: no round trip for them on the request path.
    feed._lease_writer.flush(key)
    with feed._lock:
        wall = feed._leases.wall_end(key, who)
    if wall is None:  # ended meanwhile
        return False
    try:
        found = store.claim_lease(
            feed.dataset,
            key,
            who,
            expires=wall,
            task=task,
            overlap=feed.overlap,
            grace=feed.lease_seconds / 4,
        )
    except Exception as e:  # serve it: the store may be back for the answer
        with feed._cond:
            feed._error = failure("Saving leases", e)
            if who in feed._leases.holders(key):  # written when it can be
                feed._leases.renew(key, who, feed._clock())
        return True
    with feed._cond:
        if found is None:  # no dataset: nothing to share the example with
            if not feed._had_dataset:
                return True
            feed._fatal = Errors.E986.format(name=feed.dataset)
            feed._leases.drop(key, who)
            return None
        feed._had_dataset = True
        if found["claimed"]:
            feed._leases.claimed(key, who, wall)
            return True
        feed._leases.drop(key, who)
        answered = feed._answered_by[key]
        answered.update(found["answered"])
        local = bool(feed._leases.holders(key))
        if len(answered) >= feed.overlap:  # answered enough, across servers
            feed.loop.pool.mark([key])
            if not local:
                feed._active.pop(key, None)
        elif who not in answered:  # held elsewhere: skip it for a while
            feed._elsewhere[key] = feed._clock() + feed.lease_seconds / 4
            if not local and not answered:
                feed._active.pop(key, None)
        feed._cond.notify_all()
        return False
