"""What every background thread of a feed (or of a learner) holds of its owner.

The selector, trainer, team thread, lease writer and follower are each a
:class:`Worker`: given the feed (or learner) that owns them through a Protocol
naming what they use of it, they share its lock and condition, stop when its
stop flag is set, and report what failed as its last error (the app and the
JSON API's ``/stats`` show it) instead of ending: labelling goes on.
"""

from __future__ import annotations

import threading
from typing import Protocol


class WorkerFeed(Protocol):
    """What every worker uses of the feed that owns it: its lock (``_cond`` is
    a condition on ``_lock``), stop flag and last error, read and written under
    the lock."""

    _lock: threading.Lock
    _cond: threading.Condition
    _stop: bool
    _error: str | None


def failure(what: str, e: BaseException) -> str:
    """The error shown when ``what`` failed with ``e``."""
    return f"{what} failed: {type(e).__name__}: {e}"


class Worker:
    """A background worker of ``feed``: holds the feed and its lock."""

    def __init__(self, feed: WorkerFeed) -> None:
        self.feed = feed
        self._lock = feed._lock
        self._cond = feed._cond

    def report(self, what: str, e: BaseException) -> None:
        """Show that ``what`` failed with ``e`` (the feed's last error)."""
        with self._lock:
            self.feed._error = failure(what, e)
