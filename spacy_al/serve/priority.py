"""Requests first: background work steps aside while an annotator's request runs.

CPython runs one thread's Python code at a time (the GIL). A request thread
gives the GIL up at every database call; while the selector (scoring a pool)
and the trainer are busy, it then waits a switch interval or the end of a long
C call to get it back, many times over in one request. So the tail of answer
→ next grows with the background work, not with the request's own.

The feed marks each request with :func:`foreground`; the background threads
call :func:`pause` at safe points (between documents scored, between update
steps). While any request runs, a pause sleeps (without the GIL) until none
does. Under load that never lets up, background work still gets its share: a
pause lasts at most ``MAX_PAUSE`` seconds, and after one that ran out the
thread works ``MIN_RUN`` seconds before it pauses again.

The gate is one per process, as the GIL is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# Longest one pause may last, and how long a thread whose pause ran out then
# works before pausing again: background work gets at least a fifth of the
# time under unbroken load.
MAX_PAUSE = 0.02
MIN_RUN = 0.005


class Gate:
    """Counts the requests in flight; background threads wait for none."""

    def __init__(self, *, max_pause: float = MAX_PAUSE, min_run: float = MIN_RUN):
        self.max_pause = max_pause
        self.min_run = min_run
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._local = threading.local()

    @property
    def busy(self) -> int:
        """Requests in flight now."""
        return self._busy

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark the calling thread as serving a request while the block runs."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            self._leave()
            local.depth -= 1

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Inside :meth:`foreground`: a block that waits for background work
        (the selector's next candidates), which must then not pause for it."""
        self._leave()
        try:
            yield
        finally:
            with self._cond:
                self._busy += 1

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            if not self._busy:
                self._cond.notify_all()

    def pause(self) -> None:
        """Background threads: wait while a request runs (see the module doc)."""
        if not self._busy:  # the common case: an unlocked read
            return
        local = self._local
        if getattr(local, "depth", 0):  # a request reached a pause point: it goes on
            return
        if time.monotonic() < getattr(local, "run_until", 0.0):
            return
        with self._cond:
            idle = self._cond.wait_for(lambda: not self._busy, self.max_pause)
        if not idle:
            local.run_until = time.monotonic() + self.min_run


GATE = Gate()
foreground = GATE.foreground
waiting = GATE.waiting
pause = GATE.pause
