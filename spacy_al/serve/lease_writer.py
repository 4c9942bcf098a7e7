"""The lease writer of a labelling server: its leases and heartbeat in the store.

A feed keeps its leases in memory (:class:`~spacy_al.serve.leases.Leases`,
under the feed's lock) and claims each new one in the store itself before the
task is handed out. A :class:`LeaseWriter` thread writes the rest off the
request path, a few times a second: renewals and ended leases, so that a server
restarted after a crash serves everyone what they held, and the server's
heartbeat, so that ``drop`` refuses a dataset in use (and the server notices a
dataset dropped under it).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

from spacy_al.errors import Errors
from spacy_al.serve.worker import Worker, WorkerFeed
from spacy_al.store import HEARTBEAT_TTL

if TYPE_CHECKING:
    from spacy_al.serve.leases import Leases
    from spacy_al.store import Store

# How often renewed and ended leases are written to the store (in the background).
LEASE_WRITE_SECONDS = 0.25
# How often a server renews its heartbeat in the store (``drop`` refuses a dataset
# with a live one; it counts for HEARTBEAT_TTL seconds).
HEARTBEAT_SECONDS = 5.0


class LeaseWriterFeed(WorkerFeed, Protocol):
    """What the lease writer uses of the feed that owns it: the lease book and
    the serving state, under ``_lock`` (the feed's lock)."""

    store: Store | None
    dataset: str
    _fatal: str | None
    _had_dataset: bool
    _server_id: str
    _leases: Leases


class LeaseWriter(Worker):
    """The feed's lease writer thread (:meth:`run`); the feed also calls
    :meth:`flush` itself where a lease must be in the store before it goes on,
    and :meth:`heartbeat` once as it starts."""

    feed: LeaseWriterFeed

    def __init__(self, feed: LeaseWriterFeed) -> None:
        super().__init__(feed)
        self.store = feed.store
        self.dataset = feed.dataset
        self._flush_lock = threading.Lock()  # one writer at a time

    def run(self) -> None:
        """Store renewed and ended leases a few times a second, off the request
        path (``next_task`` claims the leases it hands out itself), and renew
        the server's heartbeat every ``HEARTBEAT_SECONDS``, until the feed
        closes."""
        beat_at = time.monotonic() + HEARTBEAT_SECONDS  # start() beat once
        while True:
            with self._cond:
                if self.feed._stop:
                    return
            self.flush()
            if time.monotonic() >= beat_at:
                self.heartbeat()
                beat_at = time.monotonic() + HEARTBEAT_SECONDS
            time.sleep(LEASE_WRITE_SECONDS)

    def heartbeat(self) -> None:
        """Tell the store this server serves the dataset (``drop`` refuses a
        dataset in use); notice a dataset dropped under the server."""
        if self.store is None:
            return
        feed = self.feed
        try:
            alive = self.store.beat(
                self.dataset, feed._server_id, expires=time.time() + HEARTBEAT_TTL
            )
        except Exception as e:  # only drop's check misses it: keep serving
            self.report("Saving the heartbeat", e)
            return
        with self._cond:
            if alive:
                feed._had_dataset = True
            elif feed._had_dataset and feed._fatal is None:
                feed._fatal = Errors.E986.format(name=self.dataset)
                feed._error = feed._fatal
                self._cond.notify_all()

    def flush(self, key: int | None = None) -> None:
        """Write the lease changes made so far to the store (outside the lock; one
        writer at a time, so changes land in the order they were made); with
        ``key``, only those of that example's leases (no round trip if none)."""
        if self.store is None:
            return
        feed = self.feed
        with self._flush_lock:
            with self._lock:
                changes = feed._leases.pending(key)
            try:
                feed._leases.write(changes)
            except Exception as e:  # leases only help a restart: keep serving
                self.report("Saving leases", e)
