"""The shared controller of one labelling server: who is asked what, and when the
model learns.

One ``Feed`` serves every annotator of a server process (the app keeps it in
``st.cache_resource``); it puts leases, several annotators and background
threads around the single-threaded :class:`~spacy_al.loop.ActiveLoop`:

* **Serving.** ``next_task(annotator)`` only pops from queues, never scores. Each
  annotator holds the examples leased to them (a reload re-serves them); a lease
  ends ``lease_seconds`` after it was last renewed, and the example goes to the
  next person who asks. Leases are kept in the store too (wall-clock ends), so
  a server restarted after a crash serves everyone what they held: the lease
  book is :class:`~spacy_al.serve.leases.Leases`, written by a lease writer
  thread (:mod:`spacy_al.serve.lease_writer`).
  ``overlap`` answers are collected per example, each from a different
  annotator; nobody is asked about an example twice. A new lease is claimed in
  the store before the task is handed out, so that several servers on one
  database share out the examples as one would (a lost claim is skipped); each
  server's heartbeat in the store tells ``drop`` the dataset is in use.
* **Answering.** ``answer`` takes from the client only the answer (``answer``,
  ``accept``, edited ``spans``) and the key of the task; what is stored is the
  task as it was served to that annotator, who must hold its lease.
* **Access.** Anyone may label, or only the named annotators with their tokens
  (:mod:`spacy_al.serve.access`; its ``check_annotator``, ``parse_annotators`` and
  ``make_tokens`` can still be imported from here).
* **Selecting.** A selector thread (:mod:`spacy_al.serve.selector`) asks the loop
  for the next candidates whenever the model version changes or the queue runs
  low, outside every lock.
* **Learning.** ``answer`` returns once the answer is committed to the store. A
  trainer thread (:mod:`spacy_al.serve.trainer`) takes each full batch
  (``loop.pop_targets``), updates the model outside the locks, checkpoints it,
  and reports the update to :class:`~spacy_al.serve.progress.ModelProgress` (the
  learning curve and the stopping signal the app shows).
* **Team.** With ``overlap`` >= 2 the loop learns an example once its annotators
  agree (:mod:`spacy_al.team.consensus`). A third thread
  (:mod:`spacy_al.serve.team`) picks up reviewers' answers (the ``review``
  recipe) for the loop to learn, and recomputes the agreement figures
  ``stats()`` shows after new answers.
* **A learner process.** With ``learner="process"`` or ``"remote"`` none of the
  three threads runs here: the dataset's learner process
  (:mod:`spacy_al.serve.learner`) selects and learns, and a follower thread
  (:mod:`spacy_al.serve.follower`) reads its queue, the answers of every server
  and its progress from the database. Several servers can then serve one
  dataset; answers are still committed here before they are acknowledged.

The feed owns the state and the locks its threads share (with a learner, the
part they share is :class:`~spacy_al.serve.shared.Shared`). Its workers are
small classes of their own modules (:mod:`spacy_al.serve.worker`), each given
the feed through a Protocol that names what it uses of it, as are the steps
that read its state without serving: what an answer stores
(:mod:`~spacy_al.serve.served`), a claim in the store
(:mod:`~spacy_al.serve.claims`), the figures it shows
(:mod:`~spacy_al.serve.stats`) and its state at a restart
(:mod:`~spacy_al.serve.resume`). Serving, answering and undo stay here: they
change one state (queues, leases, who answered what) under one lock, and its
invariants are easier to check in one place.
"""

from __future__ import annotations

import atexit
import time
import uuid
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from spacy_al.checkpoints import Checkpoints
from spacy_al.errors import Errors, SpacyALError
from spacy_al.protocols import Components, Loop
from spacy_al.serve import priority
from spacy_al.serve.access import Access, check_annotator, make_tokens, parse_annotators
from spacy_al.serve.claims import claim
from spacy_al.serve.follower import Follower
from spacy_al.serve.lease_writer import LeaseWriter
from spacy_al.serve.leases import Leases
from spacy_al.serve.resume import resume
from spacy_al.serve.served import answer_key, from_served, is_int
from spacy_al.serve.settings import (
    check_feed_options,
    config_settings,
    configure_process,
)
from spacy_al.serve.shared import Shared
from spacy_al.serve.stats import feed_stats
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW

# What the app, the API and the recipes import from here (some of it lives in
# the feed's helper modules).
__all__ = [
    "Feed",
    "LeaseError",
    "ServingStopped",
    "check_annotator",
    "configure_process",
    "make_tokens",
    "parse_annotators",
]


class LeaseError(SpacyALError, ValueError):
    """An answer to an example the annotator doesn't hold a lease on (never
    served to them, or their lease ended): the JSON API replies 409."""


class ServingStopped(SpacyALError, RuntimeError):
    """The server can't go on serving (its dataset was deleted under it, or its
    source has a malformed record): the JSON API replies 503."""


class Feed(Shared):
    """Serve a loop's questions to several annotators and learn in the background.

    ``loop`` is the recipe's :class:`ActiveLoop` (with its store and dataset). With
    ``tokens`` ({annotator: token}) only those annotators may label, each with
    their token. ``checkpoint`` (the dataset's :class:`Checkpoints`, or a folder)
    is where the trainer saves the model (at most every ``checkpoint_seconds``,
    and on ``close``), the version and the progress; ``eval_path`` a labelled file for
    the learning curve. ``preselect`` adds the model's predicted labels as
    ``accept`` to each task (for ``textcat.correct``). The stopping signal
    compares successive versions' predictions on ``stop_set_size`` examples of
    the pool (seed 0: the same set after a restart) and says stop once the mean
    kappa of the last ``stop_window`` updates reaches ``stop_threshold``.
    ``clock`` times leases. ``learner``: "thread" selects and learns here;
    "process" and "remote" follow the dataset's learner process (see the
    module) and serve only.
    ``start=False`` leaves the threads to :meth:`start`.
    """

    def __init__(
        self,
        loop: Loop,
        *,
        view_id: str = "classification",
        overlap: int = 1,
        lease_seconds: float = 120.0,
        prefetch: int | None = None,
        tokens: Mapping[str, str] | None = None,
        checkpoint: Checkpoints | str | Path | None = None,
        checkpoint_seconds: float = 30.0,
        eval_path: str | Path | None = None,
        preselect: bool = False,
        history_size: int = 10,
        curve_window: int = 100,
        stop_set_size: int = DEFAULT_STOP_SET_SIZE,
        stop_window: int = DEFAULT_WINDOW,
        stop_threshold: float = DEFAULT_THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
        close_store: bool = False,
        learner: str = "thread",
        start: bool = True,
    ) -> None:
        check_feed_options(
            loop,
            learner=learner,
            overlap=overlap,
            lease_seconds=lease_seconds,
            prefetch=prefetch,
            stop_set_size=stop_set_size,
        )
        super().__init__(
            loop,
            overlap=overlap,
            lease_seconds=lease_seconds,
            prefetch=prefetch,
            preselect=preselect,
            checkpoint=checkpoint,
            checkpoint_seconds=checkpoint_seconds,
            eval_path=eval_path,
            curve_window=curve_window,
            stop_set_size=stop_set_size,
            stop_window=stop_window,
            stop_threshold=stop_threshold,
            clock=clock,
            close_store=close_store,
        )
        self.view_id = view_id
        self.ner = loop.task == "ner"
        # Selecting and learning step aside while an annotator's request runs.
        loop.set_yield_point(priority.pause)
        self._access = Access(tokens)
        # Requests that found nothing to serve and waited for more (the queue
        # ran dry, or everything open was held by others): see next_task.
        self.dry_waits = 0
        # Who holds what until when (used under _lock); the lease writer writes
        # its changes to the store.
        self._leases = Leases(
            self.store,
            self.dataset,
            lease_seconds=self.lease_seconds,
            tasks=self._active,
            clock=clock,
        )
        self._answering: set[tuple[str, int]] = set()
        # Each annotator's stored answer ids (a repeated answer gets the same id).
        self._answer_ids: dict[tuple[str, int], int] = {}
        self._last_answer_id = 0  # the highest answer id read at the start
        # This server's id in the store's heartbeats; whether its dataset existed
        # (once it did, its disappearance means it was dropped under the server).
        self._server_id = uuid.uuid4().hex
        self._had_dataset = self.store is not None and self.store.has_dataset(
            self.dataset
        )
        self._fatal: str | None = None
        self._history: dict[str, deque[tuple[dict, dict]]] = defaultdict(
            lambda: deque(maxlen=history_size)
        )
        self._counts: Counter[str] = Counter()
        self._close_at_exit: Callable[[], None] | None = None
        self._lease_writer = LeaseWriter(self)
        resume(self)  # earlier answers, and the leases that still stand
        # With a learner process: its queue and the other servers' answers.
        self._follower = Follower(self) if learner != "thread" else None
        if start:
            self.start()

    @classmethod
    def from_components(
        cls,
        components: Components,
        *,
        tokens: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Feed:
        """A feed for the components a recipe returned; it closes their store.

        With ``--annotators`` in the recipe's config and no ``tokens``, fresh tokens
        are made (read them from :attr:`tokens`). ``overlap``, ``preselect`` and
        the stopping signal's ``stop_window``, ``stop_threshold`` and
        ``stop_set_size`` come from the config unless given here.
        """
        config = components.get("config") or {}
        if tokens is None and config.get("annotators"):
            tokens = make_tokens(parse_annotators(config["annotators"]))
        settings = config_settings(components, kwargs)
        settings.setdefault("learner", config.get("learner") or "thread")
        return cls(
            components["loop"],
            view_id=components["view_id"],
            tokens=tokens,
            **settings,
        )

    # --- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the selector, trainer and team threads, or the follower of a
        learner process, and the lease writer (once).

        The feed also closes itself when the process exits (so the last updates
        are checkpointed even if nobody calls :meth:`close`). A serving process
        also calls :func:`configure_process` once, before it serves.
        """
        if self._threads:
            return
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            feed = ref()
            if feed is not None:
                feed.close(timeout=5.0)

        self._close_at_exit = close_at_exit
        atexit.register(close_at_exit)
        self._lease_writer.heartbeat()  # in use from now on: drop refuses it
        workers = (
            [(self._follower.run, "follower")]
            if self._follower is not None
            else self._learning()
        )
        workers.append((self._lease_writer.run, "leases"))
        self._start_threads(workers, prefix="spacy_al-")

    def close(self, *, timeout: float = 30.0) -> None:
        """Stop the threads, checkpoint what was learnt since the last save."""
        if not self._stop_threads(timeout):
            return
        if self._close_at_exit is not None:
            atexit.unregister(self._close_at_exit)
        self._lease_writer.flush()
        if self.store is not None and self._threads:
            try:
                self.store.end_beat(self.dataset, self._server_id)
            except Exception:  # its heartbeat runs out by itself
                pass
        self._trainer.save_checkpoint(force=True)
        if self._close_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- access --------------------------------------------------------------

    @property
    def restricted(self) -> bool:
        """Whether only named annotators, with their tokens, may label."""
        return self._access.restricted

    @property
    def annotators(self) -> list[str]:
        """The annotators allowed to label (empty: anyone)."""
        return self._access.annotators

    @property
    def tokens(self) -> dict[str, str]:
        """Each allowed annotator's token (empty when anyone may label)."""
        return self._access.tokens

    def check_token(self, annotator: str, token: str | None) -> bool:
        """Whether ``annotator`` may label with ``token`` (always, if unrestricted)."""
        return self._access.check_token(annotator, token)

    def _who(self, annotator: str) -> str:
        return self._access.check(annotator)

    # --- serving -------------------------------------------------------------

    def next_task(self, annotator: str, *, timeout: float = 5.0) -> dict | None:
        """The example ``annotator`` should answer now, leased to them.

        Their oldest outstanding example first (a reload gets the same one back),
        then examples that want more answers (``overlap``), then the best new
        candidate. Waits up to ``timeout`` seconds for the selector when nothing is
        queued (counted in :attr:`dry_waits`); None when nothing is left for this
        annotator (now).
        """
        who = self._who(annotator)
        with priority.foreground():
            task = self._next_task(who, timeout)
            if task is not None:
                # Its lease is stored before the task is shown: a server restarted
                # after a crash won't serve it to anyone else meanwhile. (Other
                # lease changes go with the lease writer's next write.)
                self._lease_writer.flush(task["_input_key"])
            return task

    def _next_task(self, who: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                task, fresh = self._wait_for_task(who, deadline)
            if task is None or not fresh:
                return None if task is None else dict(task)
            # A newly leased example is claimed in the store first: another
            # server's annotator may hold it or have answered it.
            if self._claim(who, task):
                return dict(task)

    def _wait_for_task(self, who: str, deadline: float) -> tuple[dict | None, bool]:
        """The task to lease to ``who`` and whether it is newly leased (to be
        claimed in the store); waits for the selector until ``deadline``."""
        waited = False
        while True:
            self._check_serving(source=True)
            now = self._clock()
            self._leases.expire(now)
            task, fresh = self._take(who, now)
            if task is not None:
                return task, fresh
            if self._stop or self._finished_for(who):
                return None, False
            self._cond.notify_all()  # wake the selector
            left = deadline - time.monotonic()
            if left <= 0:
                return None, False
            if not waited:
                waited = True
                self.dry_waits += 1
            with priority.waiting():  # for the selector: it mustn't pause
                self._cond.wait(min(left, 0.5))

    def _check_serving(self, *, source: bool = False) -> None:
        """Raise :class:`ServingStopped` if the dataset was dropped under the
        server (or, with ``source``, if reading the source stopped at a
        malformed record: the texts after it were never read)."""
        if self._fatal is not None:
            raise ServingStopped(self._fatal)
        error = self.loop.pool.error if source else None
        if error is not None:
            raise ServingStopped(Errors.E987.format(err=error))

    def _check_dataset(self) -> None:
        """Before an answer is stored: raise :class:`ServingStopped` if the
        dataset was dropped under the server (storing would create it again,
        without its settings)."""
        if (
            self.store is None
            or not self._had_dataset
            or self.store.has_dataset(self.dataset)
        ):
            return
        with self._cond:
            self._fatal = self._error = Errors.E986.format(name=self.dataset)
            self._cond.notify_all()
        raise ServingStopped(self._fatal)

    def _claim(self, who: str, task: dict) -> bool:
        """Claim ``who``'s new lease of ``task`` in the store (outside the lock;
        see :func:`~spacy_al.serve.claims.claim`): whether it is theirs. Raises
        :class:`ServingStopped` if the dataset was dropped under the server."""
        found = claim(self, who, task)
        if found is None:
            raise ServingStopped(self._fatal)
        return found

    def has_task(self, annotator: str) -> bool:
        """Whether :meth:`next_task` would give ``annotator`` a task now."""
        who = self._who(annotator)
        with self._lock:
            self._leases.expire(self._clock())
            if self._leases.first(who) is not None:
                return True
            if any(self._open_to(key, who) for key in self._active):
                return True
            return any(
                t["_input_key"] not in self._active
                and not self._answered_by.get(t["_input_key"])
                for t in self._candidates
            )

    def touch(self, annotator: str) -> None:
        """Renew ``annotator``'s leases (the app calls this while their page is open)."""
        who = self._who(annotator)
        with self._lock:
            self._leases.touch(who, self._clock())

    def _open_to(self, key: int, who: str) -> bool:
        answered = self._answered_by.get(key, ())
        holders = self._leases.holders(key)
        return (
            who not in answered
            and who not in holders
            and len(answered) + len(holders) < self.overlap
            and key not in self._elsewhere
        )

    def _take(self, who: str, now: float) -> tuple[dict | None, bool]:
        """The task ``who`` gets now, leased to them, and whether the lease is
        new (the caller claims it in the store): their oldest lease first, then
        examples wanting more answers, then the best candidate."""
        while (key := self._leases.first(who)) is not None:
            task = self._active.get(key)
            if task is None:  # completed by others' (late) answers meanwhile
                self._leases.drop(key, who)
                continue
            self._leases.renew(key, who, now)
            return task, False
        for key, until in list(self._elsewhere.items()):
            if until <= now:
                del self._elsewhere[key]
        for key, task in self._active.items():
            if self._open_to(key, who):
                self._leases.lease(key, who, now, store=False)
                return task, True
        while self._candidates:
            task = self._candidates.popleft()
            key = task["_input_key"]
            if (
                key in self._active
                or self._answered_by.get(key)
                or key in self._elsewhere
            ):
                continue
            self._active[key] = task
            self._leases.lease(key, who, now, store=False)
            self._taken += 1
            return task, True
        return None, False

    def _finished_for(self, who: str) -> bool:
        if self._candidates or not self._exhausted or self._cand_version < 0:
            return False
        return not any(
            who not in self._answered_by.get(key, ())
            and len(self._answered_by.get(key, ())) < self.overlap
            for key in self._active
        )

    # --- answering -----------------------------------------------------------

    def answer(self, annotator: str, eg: dict) -> int | None:
        """Commit ``annotator``'s answer to a task served to them; return its id
        in the store.

        ``eg`` names the task by its ``_input_key`` (the task :meth:`next_task`
        returned can be passed back as it is) and carries the answer: ``answer``
        (accept, reject or ignore), for a choice or a reject → correct
        ``accept`` (the right labels), for ``ner.correct``/``ner.manual`` the
        ``spans``. Everything else stored (text, hashes, model version, meta)
        comes from the task as it was served, never from ``eg``. Raises
        :class:`LeaseError` if ``annotator`` holds no lease on the example
        (never served to them, or their lease ended), ValueError for a
        malformed answer. Returns None, storing nothing, if the annotator
        already answered this example (a second click: :meth:`answer_id` gives
        the stored id); use :meth:`undo` to change an answer.
        """
        with priority.foreground():
            return self._answer(annotator, eg)

    def _answer(self, annotator: str, eg: dict) -> int | None:
        who = self._who(annotator)
        key = answer_key(eg, keys=self.loop.pool.index, labels=self.labels)
        with self._lock:
            self._check_serving()
            if who in self._answered_by.get(key, ()) or (who, key) in self._answering:
                return None
            self._leases.expire(self._clock())
            served = self._active.get(key)
            not_leased = LeaseError(
                Errors.E980.format(who=who, input_hash=key, seconds=self.lease_seconds)
            )
            holds = who in self._leases.holders(key)
            # A lease that ran out while nobody else took the example: a late
            # answer takes it back (claimed in the store like a new lease).
            retake = (
                served is not None
                and not holds
                and self._leases.lapsed(key, who)
                and self._open_to(key, who)
            )
            if served is None or not (holds or retake):
                raise not_leased
            if retake:
                self._leases.lease(key, who, self._clock(), store=False)
            self._answering.add((who, key))
        try:
            if retake and not self._claim(who, served):
                raise not_leased
            answer = from_served(
                served, eg, view_id=self.view_id, labels=self.labels, ner=self.ner
            )
            ids = self._store_answer(answer, who)
        except BaseException:
            with self._cond:
                self._answering.discard((who, key))
                self._cond.notify_all()  # repeats of this answer wait for its id
            raise
        with self._cond:
            # Stored: counted here, in the same step as it stops being stored
            # (the follower, reading every server's answers, skips it).
            self._answering.discard((who, key))
            answered = self._answered_by[key]
            answered.add(who)
            self._leases.drop(key, who)
            if len(answered) >= self.overlap:
                self._active.pop(key, None)
            if ids:
                self._answer_ids[(who, key)] = ids[0]
            self._history[who].append((served, answer))
            self._counts[who] += 1
            self._n_answers += 1
            self._cond.notify_all()  # the trainer may have a full batch now
        return ids[0] if ids else None

    def _store_answer(self, answer: dict, who: str) -> list[int]:
        """Store ``answer`` through the loop, or (following a learner process)
        through the follower: the store refuses it if the dataset was dropped,
        so no round trip checks it first. Takes the loop lock (never inside
        the feed's lock)."""
        if self._follower is None:
            self._check_dataset()
            with self._loop_lock:
                return self.loop.answer([answer], annotator=who)
        try:
            with self._loop_lock:
                return self._follower.store_answer(
                    answer, who, create=not self._had_dataset
                )
        except ValueError:
            self._check_dataset()  # ServingStopped if it was dropped under us
            raise

    def answer_id(
        self, annotator: str, input_hash: int, *, timeout: float = 30.0
    ) -> int | None:
        """The id of ``annotator``'s stored answer to the example
        ``input_hash`` (None: none here). If the same answer is being stored
        right now, waits up to ``timeout`` seconds for it: every repeat of an
        answer gets the id of the one stored."""
        who = self._who(annotator)
        if not is_int(input_hash):
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while (who, input_hash) in self._answering:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._answer_ids.get((who, input_hash))

    def can_undo(self, annotator: str) -> bool:
        """Whether ``annotator`` has an answer to take back (one of their last
        ``history_size``, learnt from or not)."""
        who = self._who(annotator)
        with self._lock:
            return bool(self._history.get(who))

    def undo(self, annotator: str) -> dict | None:
        """Take back ``annotator``'s last answer and serve its example to them again.

        Each call takes back one more of their last ``history_size`` answers,
        whatever batch they were in: the answer leaves the store and the queue
        (see :meth:`spacy_al.loop.BaseLoop.undo`), and the answer given instead is
        learnt with the next batch. Returns the task served again, or None.
        """
        who = self._who(annotator)
        with self._lock:
            if not self._history.get(who):
                return None
            task, eg = self._history[who][-1]
        key = eg["_input_key"]
        # Across servers the example is leased back in the answer's removal:
        # another server's claim can't take it in between.
        wall = time.time() + self.lease_seconds
        with self._loop_lock:
            undone = (
                self._follower.remove_answer(
                    eg,
                    who,
                    lease={"input_hash": key, "expires": wall, "task": task},
                )
                if self._follower is not None
                else self.loop.undo(eg, annotator=who)
            )
        with self._cond:
            history = self._history[who]
            if history and history[-1][1] is eg:
                history.pop()
            if not undone:  # not stored any more (the dataset was dropped?)
                return None
            self._answered_by[key].discard(who)
            self._answer_ids.pop((who, key), None)
            self._counts[who] -= 1
            self._n_answers -= 1
            self._active[key] = task
            stored = self._follower is None  # else leased in the store already
            self._leases.lease(key, who, self._clock(), first=True, store=stored)
            if not stored:
                self._leases.claimed(key, who, wall)
            self._cond.notify_all()
            return dict(task)

    # --- progress ------------------------------------------------------------

    def stats(self, annotator: str | None = None) -> dict[str, Any]:
        """Progress of the whole team (and of ``annotator``), cheap enough to poll.

        Keys: ``dataset``, ``view_id``, ``total`` (examples in the pool), ``done``
        (examples answered at least once), ``answers``, ``annotators`` (answers per
        annotator), ``overlap``, ``version`` (of the serving model), ``pending``
        (answers waiting for the next update), ``batch_size``, ``updates``,
        ``training``, ``last_update``, the model's ``curve``, ``curve_kind``,
        ``curve_metric`` and ``stopping`` signal (see
        :meth:`spacy_al.serve.progress.ModelProgress.stats`), ``error`` (the last
        background error, or None), ``agreement`` (with ``overlap`` >= 2: see
        :meth:`refresh_agreement`; else None), ``dry_waits`` (requests that
        found nothing queued and waited: :attr:`dry_waits`), ``finished`` and, for
        an ``annotator``, ``you`` ({"answers", "can_undo", "finished"}).
        """
        return feed_stats(self, annotator)

    # --- the team thread: reviews and agreement ------------------------------

    def poll_reviews(self) -> int:
        """Queue reviewers' new answers on this dataset's examples for learning.

        Reviews are the answers of the datasets whose meta says they review this
        one (``review_of``, set by the ``review`` recipe). Returns how many
        examples were adjudicated since the last call.
        """
        return self._team.poll_reviews()

    def refresh_agreement(self) -> dict[str, Any] | None:
        """Recompute the agreement figures ``stats()`` shows (overlap >= 2).

        :func:`spacy_al.team.agreement.agreement_summary` over the dataset's answers,
        plus ``held`` (examples in conflict, not learnt until reviewed) and
        ``waiting`` (examples with fewer answers than the overlap). The team
        thread calls this after new answers, at most every few seconds.
        """
        return self._team.refresh_agreement()
