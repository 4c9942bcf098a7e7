"""The lease book of a feed: who holds which example, until when.

An example (by its input key) served to an annotator is leased to them: they hold
it until ``lease_seconds`` after the lease was last renewed (serving it again,
or :meth:`Leases.touch` while their page is open). Each annotator holds a
queue of examples, oldest first; a reload serves the first one again. Once a
lease ends, the example is free for the next person who asks.

Expiries in memory are on the feed's clock (``time.monotonic``, or a test's
clock). The store keeps each lease with its task and a wall-clock end (unix
seconds), so a server restarted after a crash gives every annotator back what
they held until then (:meth:`Leases.load`). Changes wait in memory, the latest
per lease, until the feed writes them (:meth:`Leases.pending`, then
:meth:`Leases.write`). A renewal is written only once the stored end lags the
real one by a quarter of ``lease_seconds``: a lease is written a few times,
not on every renewal.

A new lease is not written this way: the feed claims it in the store itself
(:meth:`spacy_al.store.Store.claim_lease`, one transaction under the dataset's
writer lock), so that several servers on one database never hand one example
to more annotators than the overlap asks for; :meth:`Leases.claimed` then
notes it as stored. Other servers count a stored lease as live until a
quarter of ``lease_seconds`` after its stored end (the most a renewal lags).

A ``Leases`` object has no lock of its own: every method except :meth:`write`
is called under the feed's lock, and :meth:`write` by one writer at a time,
outside it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from spacy_al.store import Store

# Ran-out leases remembered (for late answers), at most.
MAX_LAPSED = 10_000
# A lease change waiting to be written: (wall-clock end, task), or None if the
# lease ended; keyed by (input key, annotator).
LeaseChanges = dict[tuple[int, str], tuple[float, dict] | None]


class Leases:
    """Who holds which example until when, in memory and in ``store``.

    ``tasks`` is the feed's live mapping of the examples being served (input
    hash → task): a lease is stored with its task, and only while the example
    is in ``tasks``. ``clock`` is the feed's clock, ``wall`` the clock of the
    stored ends (unix seconds). Without a ``store`` the leases live in memory
    only.
    """

    def __init__(
        self,
        store: Store | None,
        dataset: str,
        *,
        lease_seconds: float,
        tasks: Mapping[int, dict],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.dataset = dataset
        self.lease_seconds = float(lease_seconds)
        self._tasks = tasks
        self._clock = clock
        self._wall = wall
        self._held: dict[int, dict[str, float]] = {}  # input key → {who: expiry}
        self._queues: dict[str, list[int]] = defaultdict(list)  # who → leased hashes
        self._changes: LeaseChanges = {}  # not yet written
        self._saved: dict[tuple[int, str], float] = {}  # each stored (wall) expiry
        # Leases that ran out (not answered), latest last: a late answer may
        # take its example back if nobody else has it (see :meth:`lapsed`).
        self._lapsed: dict[tuple[int, str], None] = {}
        # The last stored end of each ended lease not yet deleted (see write).
        self._ended: dict[tuple[int, str], float] = {}

    # --- reading -------------------------------------------------------------

    def holders(self, key: int) -> Mapping[str, float]:
        """Who holds the example ``key``, each with their lease's expiry."""
        return self._held.get(key, {})

    def held_by(self, who: str) -> list[int]:
        """The examples ``who`` holds, oldest first."""
        return list(self._queues.get(who, ()))

    def first(self, who: str) -> int | None:
        """The oldest example ``who`` holds (None: none)."""
        queue = self._queues.get(who)
        return queue[0] if queue else None

    # --- changing ------------------------------------------------------------

    def lease(
        self,
        key: int,
        who: str,
        now: float,
        *,
        first: bool = False,
        store: bool = True,
    ) -> None:
        """Lease ``key`` to ``who`` until ``lease_seconds`` after ``now``, last in
        their queue (``first``: first, to be served next). ``store=False``: not
        written by :meth:`write` (the feed claims it in the store itself, see
        :meth:`claimed`)."""
        self._held.setdefault(key, {})[who] = now + self.lease_seconds
        self._lapsed.pop((key, who), None)
        if store:
            self._note(key, who, now + self.lease_seconds)
        queue = self._queues[who]
        if key in queue:
            queue.remove(key)
        queue.insert(0, key) if first else queue.append(key)

    def renew(self, key: int, who: str, now: float) -> None:
        """Renew ``who``'s lease of ``key`` (which they hold) from ``now``; its
        place in their queue stays."""
        self._held[key][who] = now + self.lease_seconds
        self._note(key, who, now + self.lease_seconds)

    def touch(self, who: str, now: float) -> None:
        """Renew every lease ``who`` holds from ``now``."""
        expiry = now + self.lease_seconds
        for key in self._queues.get(who, ()):
            self._held[key][who] = expiry
            self._note(key, who, expiry)

    def wall_end(self, key: int, who: str) -> float | None:
        """The wall-clock end (unix seconds) of ``who``'s lease of ``key``, or
        None if they don't hold it."""
        expiry = self._held.get(key, {}).get(who)
        return None if expiry is None else self._wall() + (expiry - self._clock())

    def claimed(self, key: int, who: str, wall: float) -> None:
        """Note that ``who``'s lease of ``key`` is in the store until ``wall``
        (the feed claimed it there): later renewals and its end are written."""
        self._saved[(key, who)] = wall
        self._changes.pop((key, who), None)

    def drop(self, key: int, who: str) -> None:
        """End ``who``'s lease of ``key`` (answered, or no longer served)."""
        self._lapsed.pop((key, who), None)
        holders = self._held.get(key)
        if holders and who in holders:
            del holders[who]
            if not holders:
                del self._held[key]
            self._note(key, who, None)
        if key in self._queues.get(who, ()):
            self._queues[who].remove(key)

    def expire(self, now: float) -> None:
        """End every lease whose expiry is ``now`` or earlier."""
        for key, holders in list(self._held.items()):
            for who, expiry in list(holders.items()):
                if expiry <= now:
                    del holders[who]
                    self._queues[who].remove(key)
                    self._note(key, who, None)
                    self._lapsed[(key, who)] = None
                    if len(self._lapsed) > MAX_LAPSED:
                        del self._lapsed[next(iter(self._lapsed))]
            if not holders:
                del self._held[key]

    def lapsed(self, key: int, who: str) -> bool:
        """Whether ``who``'s lease of ``key`` ran out (rather than being
        answered or taken back): the example was theirs until then."""
        return (key, who) in self._lapsed

    def _note(self, key: int, who: str, expiry: float | None) -> None:
        """Queue a lease change for the store (None: the lease ended)."""
        if self.store is None:
            return
        if expiry is None:
            saved = self._saved.pop((key, who), None)
            if saved is not None:
                self._changes[(key, who)] = None
                self._ended[(key, who)] = saved
            return
        task = self._tasks.get(key)
        if task is None:
            return
        wall = self._wall() + (expiry - self._clock())
        saved = self._saved.get((key, who))
        if saved is not None and wall - saved < self.lease_seconds / 4:
            return
        self._saved[(key, who)] = wall
        self._changes[(key, who)] = (wall, task)

    # --- the store -----------------------------------------------------------

    def pending(self, key: int | None = None) -> LeaseChanges:
        """Take the changes not yet written (for :meth:`write`); with ``key``,
        only those of that example's leases (the others stay pending)."""
        if key is None:
            changes, self._changes = self._changes, {}
            return changes
        pairs = [pair for pair in self._changes if pair[0] == key]
        return {pair: self._changes.pop(pair) for pair in pairs}

    def write(self, changes: LeaseChanges) -> None:
        """Write ``changes`` (from :meth:`pending`) to the store: ended leases
        deleted, held ones recorded. Call outside the feed's lock, one writer
        at a time (so changes land in the order they were made); raises what
        the store raised."""
        if self.store is None or not changes:
            return
        ended = [key for key, change in changes.items() if change is None]
        held = [
            {"input_hash": k, "annotator": who, "expires": ch[0], "task": ch[1]}
            for (k, who), ch in changes.items()
            if ch is not None
        ]
        if ended:
            # Only the rows this server wrote: another server may have renewed
            # the same annotator's lease since (after a restart, say).
            bounds = {pair: self._ended.pop(pair, math.inf) for pair in ended}
            self.store.drop_leases(self.dataset, ended, not_after=bounds)
        if held:
            self.store.put_leases(self.dataset, held)

    def load(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Take back the leases stored when the server stopped (or crashed).

        Each annotator holds again what they held, until the lease's wall-clock
        end. ``keep`` gets each stored lease (``input_hash``, ``annotator``,
        ``expires``, ``task``) that hasn't ended and isn't held already, and
        says whether it still stands (the feed checks answers, overlap and who
        may label, and serves the lease's task). Ended leases and those not
        kept are deleted from the store.
        """
        if self.store is None:
            return
        now, wall = self._clock(), self._wall()
        stale: list[tuple[int, str]] = []
        for lease in self.store.get_leases(self.dataset):
            key, who = lease["input_hash"], lease["annotator"]
            if (
                lease["expires"] <= wall
                or who in self._held.get(key, {})
                or not keep(lease)
            ):
                stale.append((key, who))
                continue
            self._held.setdefault(key, {})[who] = now + (lease["expires"] - wall)
            self._queues[who].append(key)
            self._saved[(key, who)] = lease["expires"]
        self.store.drop_leases(self.dataset, stale, expired_before=wall)
