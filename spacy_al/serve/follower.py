"""Serving without learning: a server that follows a learner process.

With ``--learner process`` or ``--learner remote`` a server's
:class:`~spacy_al.serve.feed.Feed` selects and learns nothing: the dataset's
learner process (:mod:`spacy_al.serve.learner`) does, and the server does only
requests and I/O. A :class:`Follower` thread reads, a few times a second and
from the database only:

* **the queue** the learner published (by a cursor on its ids): a new model
  version's ranking replaces the candidates, more of the same ranking is added
  after them. Each server takes the ranking in its own order within small
  blocks (seeded by its id), so that servers sharing one queue rarely reach
  for the same example at the same moment; a lease claimed by another server
  first is skipped, as always (:meth:`~spacy_al.serve.feed.Feed.next_task`).
* **the answers** every server commits (by a cursor on the answers' ids): who
  answered what, across servers. An example answered elsewhere is no longer
  served here; with ``overlap`` >= 2, an example answered elsewhere that wants
  more answers is offered here too, as in one server.
* **the live leases** of every server: examples held elsewhere (to the
  overlap) are skipped without a claim.
* **the learner's row**: the model version, the updates, the learning curve,
  the stopping signal and the agreement the app and ``/stats`` show.

Answers are committed to the store by the feed before they are acknowledged,
as in one process, and undo takes them out of the store; the learner reads
them from there.

Such a server's loop is a :class:`ServingLoop`: no model, nothing selected or
learnt, and a pool that needs no texts (a :class:`~spacy_al.scale.keys.KeyPool`
for a JSONL source: input keys and done marks only).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from spacy_al.corpus import task_key_of
from spacy_al.errors import Errors
from spacy_al.modelless import ModellessLoop
from spacy_al.serve.served import as_task
from spacy_al.serve.worker import Worker, WorkerFeed

if TYPE_CHECKING:
    from spacy_al.protocols import Loop, YieldPoint
    from spacy_al.serve.leases import Leases
    from spacy_al.store import Store

#: How often the follower reads the queue, the answers and the learner's row.
FOLLOW_SECONDS = 0.1
#: How often it reads the live leases of every server.
LEASES_SECONDS = 0.3
#: Servers take the queue's ranking in their own order within blocks this big.
BLOCK = 8


class FollowerFeed(WorkerFeed, Protocol):
    """What the follower uses of the feed that owns it: the serving state, read
    and written under ``_cond`` (the feed's lock), as serving does."""

    loop: Loop
    store: Store | None
    dataset: str
    overlap: int
    lease_seconds: float
    _server_id: str
    _clock: Callable[[], float]
    _candidates: deque[dict]
    _cand_version: int
    _exhausted: bool
    _active: dict[int, dict]
    _leases: Leases
    _answering: set[tuple[str, int]]
    _answer_ids: dict[tuple[str, int], int]
    _counts: Counter[str]
    _n_answers: int
    _last_answer_id: int

    @property
    def _answered_by(self) -> Mapping[int, set[str]]: ...

    @property
    def _elsewhere(self) -> dict[int, float]: ...


class Follower(Worker):
    """The feed's follower thread (:meth:`run`) and what the feed does
    instead of the loop when a learner process learns (:meth:`store_answer`,
    :meth:`remove_answer`, :meth:`stats`)."""

    feed: FollowerFeed

    def __init__(self, feed: FollowerFeed) -> None:
        super().__init__(feed)
        self.store = feed.store
        self.dataset = feed.dataset
        self._queue_id = 0  # the last queue row read
        self._answer_id = feed._last_answer_id  # the last answer read
        self._leases_at = 0.0
        self._state: dict[str, Any] | None = None  # the learner's row
        self._rng = random.Random(feed._server_id)

    # --- the thread ----------------------------------------------------------------

    def run(self) -> None:
        """The thread's body: :meth:`poll` every ``FOLLOW_SECONDS`` until the
        feed closes."""
        while True:
            with self._cond:
                if self.feed._stop:
                    return
            try:
                self.poll()
            except Exception as e:  # the database may be back at the next poll
                self.report("Reading the learner's queue", e)
            deadline = time.monotonic() + FOLLOW_SECONDS
            with self._cond:
                while not self.feed._stop and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)

    def poll(self) -> None:
        """Read the learner's row, the new queue rows, the new answers and (every
        ``LEASES_SECONDS``) the live leases, and apply them."""
        if self.store is None:
            return
        state = self.store.learner_state(self.dataset)
        rows = self.store.read_queue(self.dataset, since_id=self._queue_id)
        answers = self.store.get_answers(self.dataset, since_id=self._answer_id)
        leases = None
        now = time.monotonic()
        if now - self._leases_at >= LEASES_SECONDS:
            self._leases_at = now
            leases = self.store.live_leases(
                self.dataset, grace=self.feed.lease_seconds / 4
            )
        with self._cond:
            self._state = state
            self._take_answers(answers)
            self._take_queue(rows, state)
            if leases is not None:
                self._take_leases(leases)
            self._cond.notify_all()

    def _take_answers(self, answers: list[dict]) -> None:
        feed = self.feed
        for eg in answers:
            self._answer_id = eg["_id"]
            key, who = eg["_input_key"], eg["_annotator_id"]
            here = feed._answer_ids.get((who, key)) == eg["_id"]
            if here or (who, key) in feed._answering:
                continue  # answered here: counted by the feed
            answered = feed._answered_by[key]
            if who not in answered:
                answered.add(who)
                feed._counts[who] += 1
                feed._n_answers += 1
            feed._answer_ids[(who, key)] = eg["_id"]
            feed.loop.pool.mark([key])
            if feed.overlap < 2:
                continue
            if len(answered) < feed.overlap:
                if key not in feed._active and key in feed.loop.pool.index:
                    feed._active[key] = as_task(eg)
            elif not feed._leases.holders(key):
                feed._active.pop(key, None)

    def _take_queue(self, rows: list[dict], state: dict[str, Any] | None) -> None:
        feed = self.feed
        if rows:
            self._queue_id = rows[-1]["id"]
            version = max(row["model_version"] for row in rows)
            tasks = self._shuffled(
                [row["task"] for row in rows if row["model_version"] == version]
            )
            if version != feed._cand_version:
                # The new ranking first, then what is left of the earlier one:
                # stale, but served rather than making anyone wait.
                keys = {task["_input_key"] for task in tasks}
                older = [t for t in feed._candidates if t["_input_key"] not in keys]
                feed._candidates = deque(tasks + older[: len(tasks)])
                feed._cand_version = version
            else:
                feed._candidates.extend(tasks)
        if state is not None and state["queue_version"] is not None:
            if feed._cand_version < 0:  # an empty first ranking
                feed._cand_version = state["queue_version"]
            feed._exhausted = (
                state["exhausted"] and state["queue_version"] == feed._cand_version
            )

    def _shuffled(self, tasks: list[dict]) -> list[dict]:
        """``tasks`` in this server's order within blocks of ``BLOCK``."""
        out: list[dict] = []
        for start in range(0, len(tasks), BLOCK):
            block = tasks[start : start + BLOCK]
            self._rng.shuffle(block)
            out.extend(block)
        return out

    def _take_leases(self, leases: Mapping[int, set[str]]) -> None:
        """Examples held elsewhere, to the overlap, are skipped here for a while
        (as after a lost claim). A lease ends in the store a moment after its
        answer: who answered counts once."""
        feed = self.feed
        until = feed._clock() + 2 * LEASES_SECONDS
        for key, who in leases.items():
            if feed._leases.holders(key):
                continue  # held here: the feed knows better
            if len(who | feed._answered_by.get(key, set())) >= feed.overlap:
                feed._elsewhere[key] = max(feed._elsewhere.get(key, 0.0), until)

    # --- what the feed does instead of the loop ------------------------------------

    def store_answer(self, answer: dict, who: str, *, create: bool) -> list[int]:
        """Commit ``who``'s answer to the store (the learner reads it from there)
        and mark its example done here; the stored id. Without ``create``, a
        dataset missing in the store (dropped) raises ValueError."""
        assert self.store is not None  # a feed follows only with a store
        ids = self.store.add_answers(
            self.dataset,
            [answer],
            annotator=who,
            model_version=answer.get("_model_version"),
            create=create,
        )
        self.feed.loop.pool.mark([answer["_input_key"]])
        return ids

    def remove_answer(self, eg: dict, who: str, *, lease: dict[str, Any]) -> bool:
        """Take ``who``'s answer ``eg`` out of the store (undo) and lease its
        example to them (``lease``: ``input_hash``, ``expires``, ``task``) in the
        same transaction, so no other server claims it meanwhile; whether it was
        there. The learner learns the answer given instead."""
        assert self.store is not None
        removed = self.store.remove_answer(
            self.dataset, task_key=task_key_of(eg), annotator=who, lease=lease
        )
        if removed:
            self.feed.loop.pool.mark([eg["_input_key"]], False)
        return removed

    def stats(self) -> dict[str, Any]:
        """What the learner published (call under the feed's lock): ``version``,
        ``pending``, ``updates``, ``training``, ``last_update``, ``agreement``,
        the curve and stopping signal, and its ``error`` (or that no learner
        runs)."""
        state = self._state
        if state is None:
            return {"error": Errors.E1103.format(dataset=self.dataset)}
        published = dict(state["state"])
        out = {
            key: published[key]
            for key in (
                "pending",
                "updates",
                "training",
                "last_update",
                "agreement",
                "curve",
                "curve_kind",
                "curve_metric",
                "stopping",
            )
            if key in published
        }
        out["version"] = state["version"]
        if state["expires"] <= time.time():
            out["error"] = Errors.E1103.format(dataset=self.dataset)
        elif published.get("error"):
            out["error"] = published["error"]
        return out


class ServingLoop(ModellessLoop):
    """The loop of a server whose learner process selects and learns: a
    ``spacy_al.protocols.Loop`` with no model.

    The feed serves what the :class:`Follower` reads from the learner's queue
    and stores answers itself, so this loop only holds what the feed asks of
    a loop: the ``pool`` (input keys and done marks), the ``store`` and
    ``dataset``, the ``labels`` and ``exclusive``, the ``task`` and the
    ``batch_size``. As the Loop protocol says of a loop that learns nothing,
    its ``updater`` is None and its ``version`` 0 (the feed's ``stats`` show
    the learner's); selecting, answering and learning here are errors.
    """

    def __init__(
        self,
        pool: Any,
        *,
        store: Store,
        dataset: str,
        labels: Sequence[str],
        exclusive: bool,
        task: str = "textcat",
        batch_size: int = 10,
    ) -> None:
        super().__init__(
            store=store,
            dataset=dataset,
            labels=labels,
            exclusive=exclusive,
            task=task,
            batch_size=batch_size,
        )
        self.pool = pool  # the learner process has the model
        self.asks_label = True

    def hold(self, answers: Iterable[dict]) -> None:
        """Answers held back for agreement are the learner's to hold."""

    def set_yield_point(self, yield_point: YieldPoint | None) -> None:
        """Nothing is selected or learnt here: nothing to give way."""

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        raise RuntimeError(Errors.E1108.format(what="select", dataset=self.dataset))

    def answer(self, answers: Sequence[dict], *, annotator: str) -> list[int]:
        raise RuntimeError(Errors.E1108.format(what="answer", dataset=self.dataset))

    def undo(self, eg: dict, *, annotator: str) -> bool:
        raise RuntimeError(Errors.E1108.format(what="undo", dataset=self.dataset))
