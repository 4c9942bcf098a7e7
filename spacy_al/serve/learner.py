"""The learner process: the selector and the trainer of a dataset, apart from its
servers.

In the one-process design (:class:`~spacy_al.serve.feed.Feed`) the selector and
the trainer are threads of the serving process, and hold its GIL while
requests wait. A :class:`Learner` runs them in a process of its own (``python -m
spacy_al learner DATASET SOURCE ...``, on this machine or another), and talks
to the servers only through the database and the checkpoint folder:

* **Answers in.** It reads the answers the servers commit, by a cursor on the
  answers' ids (never re-reading what it has), and queues them for learning
  (:meth:`~spacy_al.loop.BaseLoop.take_stored`).
* **Learning.** The feed's own :class:`~spacy_al.serve.trainer.Trainer` learns
  each full batch, checkpoints the model and writes the version mark; the
  :class:`~spacy_al.serve.team.TeamThread` picks up reviews and recomputes the
  agreement.
* **Questions out.** The feed's :class:`~spacy_al.serve.selector.Selector` keeps
  candidates ready (with ``preselect``, the model's labels on each), re-ranked
  for each new model version; the learner publishes them as the dataset's
  queue in the database (:meth:`~spacy_al.store.Store.publish_queue`), a
  window ahead of what the servers took, and drops from it what was answered
  or is leased (so it refills in time).
* **What the servers show.** The model version, the updates, the curve and the
  stopping signal, the agreement and the last error, on the learner's row
  (:meth:`~spacy_al.store.Store.renew_learner`), read by each server's
  :class:`~spacy_al.serve.follower.Follower`.

One learner per dataset: :class:`LearnerLock` holds the dataset's learner row
with a heartbeat. A second learner waits for it (or refuses, with
``--no-wait``), and takes over when the holder stops, when its heartbeat runs
out, or at once when the holder was a process of this machine that no longer
runs (killed). The lock is taken before the session opens: opening it learns
stored answers and saves the checkpoint, which only the holder may do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spacy_al.errors import Errors, SpacyALError
from spacy_al.protocols import Components, Loop
from spacy_al.serve.settings import config_settings
from spacy_al.serve.shared import Shared
from spacy_al.serve.worker import failure
from spacy_al.store import Store

#: Seconds a learner's heartbeat holds the lock; renewed every BEAT_SECONDS.
LOCK_SECONDS = 15.0
BEAT_SECONDS = 2.0
#: How often the learner reads new answers and leases, and publishes.
FOLLOW_SECONDS = 0.1
#: How often a waiting learner asks for the lock again.
WAIT_SECONDS = 0.5
#: The learning state is published at most this often (a new version at once).
STATE_SECONDS = 1.0
#: The niceness of a learner process a server starts beside itself.
BESIDE_NICE = 10
#: Seconds from a selection's end until the servers serve it: the learner's next
#: step publishes it, a server's follower reads it (each every FOLLOW_SECONDS),
#: and the learner learns what was taken a step late; with room for a step
#: delayed by a refit holding the learner's GIL.
SERVE_LAG = 4 * FOLLOW_SECONDS
#: The queue published ahead of what the servers took: this many times the
#: selector's refill level (the rest of the ranking waits here, published as
#: the servers take from the queue: each new version's ranking is a smaller
#: write, and a smaller read in the serving processes).
PUBLISH_FACTOR = 2
#: The queue is published in transactions of at most this many examples: each
#: holds SQLite's write lock, which the servers' answers and claims wait for, a
#: millisecond or two instead of tens (a new version's ranking is hundreds).
PUBLISH_CHUNK = 50


class LearnerBusy(SpacyALError, RuntimeError):
    """Another learner holds the dataset's lock (and ``wait`` was False)."""


class LearnerLost(SpacyALError, RuntimeError):
    """The learner lost its lock (its heartbeat ran out and another took over):
    it stopped learning."""


class DatasetDropped(SpacyALError, RuntimeError):
    """The learner's dataset was deleted from the database under it: it
    stopped learning."""


def learner_id() -> str:
    """A learner's id in the lock: this machine, this process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(holder: str) -> bool:
    """Whether the learner ``holder`` (a :func:`learner_id`) was a process of
    this machine that no longer runs (killed, or crashed): its lock is free at
    once, not only when its heartbeat runs out."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it runs, as another user
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child not reaped yet still has its pid: it runs no more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class LearnerLock:
    """The learner lock of one dataset, held with a heartbeat.

    :meth:`acquire` takes it (waiting for the holder, or raising
    :class:`LearnerBusy`); a thread then renews it every ``beat_seconds`` for
    ``seconds`` until :meth:`release`. If a renewal finds the lock taken by
    another learner, :attr:`lost` is set. ``close_store``: :meth:`release`
    closes ``store`` too.
    """

    def __init__(
        self,
        store: Store,
        dataset: str,
        *,
        seconds: float = LOCK_SECONDS,
        beat_seconds: float = BEAT_SECONDS,
        learner: str | None = None,
        close_store: bool = False,
    ) -> None:
        self.store = store
        self._close_store = close_store
        self.dataset = dataset
        self.seconds = float(seconds)
        self.beat_seconds = float(beat_seconds)
        self.learner = learner or learner_id()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder: str | None = None  # who held it when we last asked

    def acquire(
        self,
        *,
        wait: bool = True,
        timeout: float | None = None,
        waiting: Callable[[str], None] | None = None,
    ) -> bool:
        """Take the lock, then keep it with a heartbeat. With ``wait``, ask again
        every ``WAIT_SECONDS`` until it is free (or ``timeout`` seconds passed:
        False); ``waiting(holder)`` is called once while it waits. Without
        ``wait``, raise :class:`LearnerBusy` if another learner holds it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            found = self.store.acquire_learner(
                self.dataset, self.learner, seconds=self.seconds, gone=holder_gone
            )
            self.holder = found["holder"]
            if found["acquired"]:
                break
            if not wait:
                raise LearnerBusy(
                    Errors.E1100.format(
                        dataset=self.dataset,
                        holder=found["holder"],
                        seconds=max(found["expires"] - time.time(), 0.0),
                    )
                )
            if waiting is not None and not told:
                waiting(found["holder"])
                told = True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._stop.wait(WAIT_SECONDS):
                return False
        self._thread = threading.Thread(
            target=self._beat_forever, name="spacy_al-learner-lock", daemon=True
        )
        self._thread.start()
        return True

    def renew(
        self, *, version: int | None = None, state: Mapping[str, Any] | None = None
    ) -> bool:
        """Renew the lock now (publishing ``version`` and ``state``); False,
        with :attr:`lost` set, if another learner holds it."""
        held = self.store.renew_learner(
            self.dataset,
            self.learner,
            seconds=self.seconds,
            version=version,
            state=state,
        )
        if not held:
            self.lost.set()
        return held

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            try:
                if not self.renew():
                    return
            except Exception:  # the database may be back at the next beat
                continue

    def release(self) -> None:
        """Stop the heartbeat and free the lock (the next learner starts now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.beat_seconds + 5.0)
        if not self.lost.is_set():
            try:
                self.store.release_learner(self.dataset, self.learner)
            except Exception:  # it runs out by itself
                pass
        if self._close_store:
            self.store.close()


class Learner(Shared):
    """Select and learn for the servers of one dataset (see the module).

    ``loop`` is the recipe's loop (with its store and dataset), opened while
    ``lock`` was held; ``since_id`` the last answer id the session had read
    when it opened (answers after it are read here). ``settings`` are those
    of :class:`~spacy_al.serve.shared.Shared` (``checkpoint``,
    ``checkpoint_seconds``, ``eval_path``, ``preselect``, ``prefetch``, the
    stopping settings, ``clock``): they mean what they mean for the feed;
    ``overlap`` and ``lease_seconds`` must be the servers'. ``close_store``:
    close the store on :meth:`close`.
    """

    def __init__(
        self,
        loop: Loop,
        *,
        lock: LearnerLock,
        since_id: int = 0,
        **settings: Any,
    ) -> None:
        if loop.store is None:
            raise ValueError(Errors.E1102)
        super().__init__(loop, serve_lag=SERVE_LAG, **settings)
        self.store: Store = loop.store  # never None (checked above)
        self.lock = lock
        self._cursor = int(since_id)
        # What was published last: the queue's version and keys, the state.
        self._pub_version = -1
        self._pub_keys: set[int] = set()
        self._pub_exhausted = False
        self._pub_state: dict[str, Any] | None = None
        self._pub_at = 0.0
        self._pub_version_shown = -1
        self._load_answers()

    @classmethod
    def from_components(
        cls, components: Components, *, lock: LearnerLock, **kwargs: Any
    ) -> Learner:
        """A learner for the components a recipe returned (the settings a feed
        would read from their config); it closes their store."""
        settings = config_settings(components, kwargs)
        return cls(components["loop"], lock=lock, **settings)

    def _load_answers(self) -> None:
        """Who answered what so far (the session learnt the answers already)."""
        if not self.store.has_dataset(self.dataset):
            return
        for eg in self.store.iter_answers(self.dataset):
            self._answered_by[eg["_input_key"]].add(eg["_annotator_id"])
            self._n_answers += 1

    # --- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the selector, trainer and team threads (once)."""
        if not self._threads:
            self._start_threads(self._learning(), prefix="spacy_al-learner-")

    def run(self, *, stopped: threading.Event | None = None) -> None:
        """Learn until ``stopped`` is set or the lock is lost (then raise
        :class:`LearnerLost`); reads answers and publishes every
        ``FOLLOW_SECONDS``."""
        self.start()
        while not (stopped is not None and stopped.is_set()):
            if self.lock.lost.is_set():
                raise LearnerLost(Errors.E1101.format(dataset=self.dataset))
            try:
                self.step()
            except (LearnerLost, DatasetDropped):
                raise
            except Exception as e:  # the database may be back at the next step
                with self._lock:
                    self._error = failure("The learner's step", e)
            with self._cond:
                if self._stop:
                    return
                self._cond.wait(FOLLOW_SECONDS)

    def close(self, *, timeout: float = 30.0) -> None:
        """Stop the threads, checkpoint the model, free the lock."""
        if not self._stop_threads(timeout):
            return
        if not self.lock.lost.is_set():
            try:
                self._trainer.save_checkpoint(force=True)
                self._publish_state(force=True)
            except Exception:  # the next learner learns the rest from the store
                pass
        self.lock.release()
        if self._close_store:
            self.store.close()

    def __enter__(self) -> Learner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def poll_reviews(self) -> int:
        """Queue reviewers' new answers on this dataset's examples for learning
        (the team thread does this every few seconds); how many examples were
        adjudicated since the last call."""
        return self._team.poll_reviews()

    # --- one step ----------------------------------------------------------------

    def step(self) -> None:
        """Read new answers and live leases, then publish the queue and state."""
        self._read_answers()
        self._read_leases()
        self._publish_queue()
        self._publish_state()

    def _read_answers(self) -> None:
        try:
            answers = self.store.get_answers(self.dataset, since_id=self._cursor)
        except ValueError:
            if not self.store.has_dataset(self.dataset):  # dropped under us
                raise DatasetDropped(Errors.E986.format(name=self.dataset)) from None
            raise
        if not answers:
            return
        self._cursor = answers[-1]["_id"]
        with self._loop_lock:
            self.loop.take_stored(answers)
        with self._cond:
            for eg in answers:
                who = self._answered_by[eg["_input_key"]]
                if eg["_annotator_id"] not in who:
                    who.add(eg["_annotator_id"])
                    self._n_answers += 1
            self._drop_candidates()
            self._cond.notify_all()  # the trainer may have a full batch now

    def _read_leases(self) -> None:
        held = self.store.live_leases(self.dataset, grace=self.lease_seconds / 4)
        with self._cond:
            # A lease ends in the store a moment after its answer: who
            # answered counts once.
            self._elsewhere = {
                key: 0.0
                for key, who in held.items()
                if len(who | self._answered_by.get(key, set())) >= self.overlap
            }
            self._drop_candidates()

    def _drop_candidates(self) -> None:
        """Take what was answered or is leased out of the candidates (under the
        lock): what is left is what the servers can still hand out, and the
        selector refills once it runs low."""
        kept = deque(
            task
            for task in self._candidates
            if not self._answered_by.get(task["_input_key"])
            and task["_input_key"] not in self._elsewhere
        )
        gone = len(self._candidates) - len(kept)
        if gone:
            self._candidates = kept
            self._taken += gone
            self._cond.notify_all()

    def _publish_queue(self) -> None:
        """Publish the candidates the servers don't have yet, up to
        ``PUBLISH_FACTOR`` times the selector's refill level ahead of what they
        took (a new version's ranking instead of the queue): the rest follows
        as they take from it. Exhausted only once everything is published."""
        with self._cond:
            version = self._cand_version
            candidates = list(self._candidates)
            exhausted = self._exhausted
            ahead = max(PUBLISH_FACTOR * self._selector.refill_level(), self.prefetch)
        if version < 0:
            return
        replace = version != self._pub_version
        unpublished, live = candidates, 0
        if not replace:
            unpublished = [
                t for t in candidates if t["_input_key"] not in self._pub_keys
            ]
            live = len(candidates) - len(unpublished)
        tasks = unpublished[: max(ahead - live, 0)]
        exhausted = exhausted and len(tasks) == len(unpublished)
        if not replace and not tasks and exhausted == self._pub_exhausted:
            return
        # Best first, a chunk a transaction: the servers can serve the first
        # chunk while the rest is written.
        starts = range(0, max(len(tasks), 1), PUBLISH_CHUNK)
        for start in starts:
            chunk = tasks[start : start + PUBLISH_CHUNK]
            first, last = start == 0, start == starts[-1]
            held = self.store.publish_queue(
                self.dataset,
                self.lock.learner,
                version=version,
                tasks=chunk,
                replace=replace and first,
                exhausted=exhausted and last,
            )
            if held is None:
                raise DatasetDropped(Errors.E986.format(name=self.dataset))
            if not held:
                self.lock.lost.set()
                raise LearnerLost(Errors.E1101.format(dataset=self.dataset))
            if replace and first:
                self._pub_keys = set()
            self._pub_keys.update(t["_input_key"] for t in chunk)
            self._pub_version = version
        self._pub_exhausted = exhausted

    def state(self) -> dict[str, Any]:
        """What the servers show about learning (JSON): ``updates``,
        ``training``, ``last_update``, ``pending``, ``error``, ``agreement`` and
        the model's progress (``curve``, ``curve_kind``, ``curve_metric``,
        ``stopping``)."""
        with self._lock:
            out: dict[str, Any] = {
                "updates": self._n_updates,
                "training": self._training,
                "last_update": self._last_update,
                "pending": self.loop.n_pending,
                "error": self._error,
                "agreement": self._agreement,
            }
        out.update(self.progress.stats())
        return out

    def _publish_state(self, *, force: bool = False) -> None:
        """Publish the version and :meth:`state` on the lock's row: at once for
        a new version, else at most every ``STATE_SECONDS`` (each write takes
        the database's write lock, which the servers' answers wait for)."""
        now = time.monotonic()
        version = self.loop.version
        due = version != self._pub_version_shown or now - self._pub_at >= STATE_SECONDS
        if not (force or due):
            return
        state = self.state()
        if not force and state == self._pub_state and now - self._pub_at < BEAT_SECONDS:
            return
        if not self.lock.renew(version=version, state=state):
            raise LearnerLost(Errors.E1101.format(dataset=self.dataset))
        self._pub_state = state
        self._pub_at = now
        self._pub_version_shown = version


def open_learner(
    build: Callable[[], Components],
    *,
    db: str,
    dataset: str,
    wait: bool = True,
    waiting: Callable[[str], None] | None = None,
    lock_seconds: float = LOCK_SECONDS,
    **kwargs: Any,
) -> Learner | None:
    """Take ``dataset``'s learner lock, then open the session (``build()``
    returns the recipe's components) and make its :class:`Learner`.

    The lock comes first: opening the session learns the stored answers and
    saves the checkpoint, which only the lock's holder may do. The answers'
    cursor is read before the session opens, so none is missed (an answer
    committed meanwhile may be learnt twice, never not at all). Returns None
    if the wait was given up (``wait`` False raises :class:`LearnerBusy`).
    """
    lock = LearnerLock(Store(db), dataset, seconds=lock_seconds, close_store=True)
    try:
        if not lock.acquire(wait=wait, waiting=waiting):
            lock.release()
            return None
        since_id = lock.store.max_answer_id(dataset)
        components = build()
        learner = Learner.from_components(
            components, lock=lock, since_id=since_id, **kwargs
        )
    except BaseException:
        lock.release()
        raise
    return learner


def start_learner_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m spacy_al learner ARGV`` beside a server (its output
    goes to the server's terminal), at a lower CPU priority (``--nice``
    :data:`BESIDE_NICE`, unless ARGV sets one): the server's requests come
    first on the cores they share. Stop it with :func:`stop_learner_process`."""
    nice = [] if "--nice" in argv else ["--nice", str(BESIDE_NICE)]
    return subprocess.Popen(
        [sys.executable, "-m", "spacy_al", "learner", *argv, *nice],
        env={**os.environ, **(env or {})},
    )


def stop_learner_process(
    process: subprocess.Popen[bytes], *, timeout: float = 60.0
) -> int | None:
    """SIGTERM (the model is checkpointed, the lock freed), then SIGKILL after
    ``timeout`` seconds; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
