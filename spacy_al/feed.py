"""The shared controller of one labelling server: who is asked what, and when the
model learns.

One ``Feed`` serves every annotator of a server process (the app keeps it in
``st.cache_resource``); it puts leases, several annotators and two background
threads around the single-threaded :class:`~spacy_al.loop.ActiveLoop`:

* **Serving.** ``next_task(annotator)`` only pops from queues, never scores. Each
  annotator holds the examples leased to them (a reload re-serves them); a lease
  ends ``lease_seconds`` after it was last renewed, and the example goes to the
  next person who asks. ``overlap`` answers are collected per example, each from
  a different annotator; nobody is asked about an example twice.
* **Selecting.** A selector thread asks the loop for the next candidates whenever
  the model version changes or the queue runs low, outside every lock.
* **Learning.** ``answer`` returns once the answer is committed to the store. A
  trainer thread takes each full batch (``loop.pop_targets``), updates the model
  outside the locks, checkpoints it, and adds a point to the learning curve: on the
  eval file when there is one, else on the newest gold answers, each scored by the
  model that was serving *before* it learnt from them (test, then train): macro
  F1 for text classification, entity F1 (spaCy's scorer) for NER.
"""

from __future__ import annotations

import atexit
import hmac
import secrets
import threading
import time
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spacy.scorer import get_ner_prf
from spacy.training import Example

from spacy_al.corpus import ANSWERS, Source, gold_labels, set_hashes
from spacy_al.errors import Errors, SourceError
from spacy_al.loop import ActiveLoop
from spacy_al.metrics import predicted_labels, textcat_score
from spacy_al.ner_loop import NERLoop
from spacy_al.ner_models import gold_docs
from spacy_al.ner_targets import reference_doc
from spacy_al.spans import validate_spans
from spacy_al.targets import TextcatTarget

MAX_ANNOTATOR_LENGTH = 64
# Keys an answer adds to a task; stripped when an answered task is served again.
ANSWER_FIELDS = ("answer", "_annotator_id", "_session_id", "_timestamp", "_id")
# The progressive curve needs this many gold answers before its first point.
MIN_CURVE_EXAMPLES = 10
SELECT_ATTEMPTS = 5


def check_annotator(name: Any) -> str:
    """An annotator's name, stripped; raises ValueError if it can't be one."""
    value = name.strip() if isinstance(name, str) else name
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ANNOTATOR_LENGTH
        or not value.isprintable()
    ):
        text = repr(name)
        snippet = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(Errors.E601.format(max=MAX_ANNOTATOR_LENGTH, snippet=snippet))
    return value


def parse_annotators(value: str | Iterable[str] | None) -> list[str]:
    """``"alice,bob"`` (or a list of names) as checked names, in order, no repeats."""
    if value is None:
        return []
    names = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(check_annotator(n) for n in names if str(n).strip()))


def make_tokens(annotators: Iterable[str]) -> dict[str, str]:
    """A fresh random access token per annotator."""
    return {name: secrets.token_urlsafe(16) for name in parse_annotators(annotators)}


class Feed:
    """Serve a loop's questions to several annotators and learn in the background.

    ``loop`` is the recipe's :class:`ActiveLoop` (with its store and dataset). With
    ``tokens`` ({annotator: token}) only those annotators may label, each with
    their token. ``checkpoint`` is where the trainer saves the model (at most every
    ``checkpoint_seconds``, and on ``close``); ``eval_path`` a labelled file for
    the learning curve. ``preselect`` adds the model's predicted labels as
    ``accept`` to each task (for ``textcat.correct``). ``clock`` times leases.
    ``start=False`` leaves the threads to :meth:`start`.
    """

    def __init__(
        self,
        loop: ActiveLoop,
        *,
        view_id: str = "classification",
        overlap: int = 1,
        lease_seconds: float = 120.0,
        prefetch: int | None = None,
        tokens: Mapping[str, str] | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_seconds: float = 30.0,
        eval_path: str | Path | None = None,
        preselect: bool = False,
        history_size: int = 10,
        curve_window: int = 100,
        clock: Callable[[], float] = time.monotonic,
        close_store: bool = False,
        start: bool = True,
    ) -> None:
        _require(
            isinstance(overlap, int) and overlap >= 1,
            "overlap",
            "an integer >= 1",
            overlap,
        )
        _require(lease_seconds > 0, "lease_seconds", "a number > 0", lease_seconds)
        _require(
            prefetch is None or prefetch >= 1,
            "prefetch",
            "None or an integer >= 1",
            prefetch,
        )
        self.loop = loop
        self.store = loop.store
        self.dataset = loop.dataset
        self.view_id = view_id
        self.labels: tuple[str, ...] = tuple(loop.labels)
        self.exclusive: bool = loop.exclusive
        self.overlap = overlap
        self.lease_seconds = float(lease_seconds)
        # Candidates kept ready: enough for everyone while the next selection runs
        # (choosing 60 costs the same scoring as choosing 10).
        self.prefetch = prefetch or max(6 * loop.batch_size, 60)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.checkpoint_seconds = checkpoint_seconds
        self.eval_path = Path(eval_path) if eval_path else None
        # NER tasks carry the model's analysis in their spans already.
        self.ner = isinstance(loop, NERLoop)
        self.preselect = preselect and not self.ner
        self._tokens = (
            {check_annotator(k): v for k, v in tokens.items()} if tokens else None
        )
        self._clock = clock
        self._close_store = close_store
        # _lock guards the feed's own state; _loop_lock every call that changes the
        # loop (answer, undo, pop_targets). Never one inside the other.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop_lock = threading.Lock()
        self._candidates: deque[dict] = deque()
        self._cand_version = -1  # the model version the candidates were chosen by
        self._exhausted = False  # the last selection found nothing new
        self._active: dict[int, dict] = {}  # handed out, fewer than overlap answers
        self._leases: dict[int, dict[str, float]] = {}  # input hash → {who: expiry}
        self._queues: dict[str, list[int]] = defaultdict(list)  # who → leased hashes
        self._answered_by: dict[int, set[str]] = defaultdict(set)
        self._answering: set[tuple[str, int]] = set()
        self._history: dict[str, deque[tuple[dict, dict]]] = defaultdict(
            lambda: deque(maxlen=history_size)
        )
        self._counts: Counter[str] = Counter()
        self._n_answers = 0
        self._n_updates = 0
        self._training = False
        self._last_update: dict[str, Any] | None = None
        self._error: str | None = None
        self._curve: list[dict[str, Any]] = []
        # The learning curve: macro F1 (text classification) or entity F1 (NER);
        # another loop serves and learns the same way, without a curve.
        self._curves = isinstance(loop, (ActiveLoop, NERLoop))
        self._curve_kind: str | None = (
            ("eval" if self.eval_path else "progressive") if self._curves else None
        )
        # (probabilities, gold labels) per answer; for NER, Examples (predicted, gold)
        self._recent: deque[Any] = deque(maxlen=curve_window)
        self._learnt: set[int] = set()
        # (docs, gold labels); for NER, (gold docs, None)
        self._eval_docs: tuple[list, list[list[str]] | None] | None = None
        self._unsaved = 0
        self._last_save = clock()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._close_at_exit: Callable[[], None] | None = None
        self._load_answers()
        if start:
            self.start()

    @classmethod
    def from_components(
        cls,
        components: Mapping[str, Any],
        *,
        tokens: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Feed:
        """A feed for the components a recipe returned; it closes their store.

        With ``--annotators`` in the recipe's config and no ``tokens``, fresh tokens
        are made (read them from :attr:`tokens`).
        """
        config = components.get("config") or {}
        if tokens is None and config.get("annotators"):
            tokens = make_tokens(parse_annotators(config["annotators"]))
        kwargs.setdefault("overlap", int(config.get("overlap") or 1))
        kwargs.setdefault("preselect", bool(config.get("preselect", False)))
        kwargs.setdefault("checkpoint", components.get("checkpoint"))
        kwargs.setdefault("eval_path", components.get("eval"))
        kwargs.setdefault("close_store", True)
        return cls(
            components["loop"], view_id=components["view_id"], tokens=tokens, **kwargs
        )

    # --- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the selector and trainer threads (once).

        The feed also closes itself when the process exits (so the last updates
        are checkpointed even if nobody calls :meth:`close`).
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
        for target, name in (
            (self._select_forever, "selector"),
            (self._train_forever, "trainer"),
        ):
            thread = threading.Thread(
                target=target, name=f"spacy_al-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def close(self, *, timeout: float = 30.0) -> None:
        """Stop the threads, checkpoint what was learnt since the last save."""
        with self._cond:
            if self._stop:
                return
            self._stop = True
            self._cond.notify_all()
        if self._close_at_exit is not None:
            atexit.unregister(self._close_at_exit)
        for thread in self._threads:
            thread.join(timeout)
        self._save_checkpoint(force=True)
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
        return self._tokens is not None

    @property
    def annotators(self) -> list[str]:
        """The annotators allowed to label (empty: anyone)."""
        return list(self._tokens or ())

    @property
    def tokens(self) -> dict[str, str]:
        """Each allowed annotator's token (empty when anyone may label)."""
        return dict(self._tokens or {})

    def check_token(self, annotator: str, token: str | None) -> bool:
        """Whether ``annotator`` may label with ``token`` (always, if unrestricted)."""
        if self._tokens is None:
            return True
        expected = self._tokens.get(
            annotator.strip() if isinstance(annotator, str) else ""
        )
        given = token if isinstance(token, str) else ""
        # Compare even for unknown names, so timing doesn't tell names apart.
        ok = hmac.compare_digest((expected or "\0").encode(), given.encode())
        return ok and expected is not None

    def _who(self, annotator: str) -> str:
        name = check_annotator(annotator)
        if self._tokens is not None and name not in self._tokens:
            allowed = ", ".join(repr(n) for n in self._tokens)
            raise PermissionError(Errors.E602.format(name=name, allowed=allowed))
        return name

    # --- serving -------------------------------------------------------------

    def next_task(self, annotator: str, *, timeout: float = 5.0) -> dict | None:
        """The example ``annotator`` should answer now, leased to them.

        Their oldest outstanding example first (a reload gets the same one back),
        then examples that want more answers (``overlap``), then the best new
        candidate. Waits up to ``timeout`` seconds for the selector when nothing is
        queued; None when nothing is left for this annotator (now).
        """
        who = self._who(annotator)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = self._clock()
                self._expire(now)
                task = self._take(who, now)
                if task is not None:
                    return dict(task)
                if self._stop or self._finished_for(who):
                    return None
                self._cond.notify_all()  # wake the selector
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def has_task(self, annotator: str) -> bool:
        """Whether :meth:`next_task` would give ``annotator`` a task now."""
        who = self._who(annotator)
        with self._lock:
            self._expire(self._clock())
            if self._queues.get(who):
                return True
            if any(self._open_to(key, who) for key in self._active):
                return True
            return any(
                t["_input_hash"] not in self._active
                and not self._answered_by.get(t["_input_hash"])
                for t in self._candidates
            )

    def touch(self, annotator: str) -> None:
        """Renew ``annotator``'s leases (the app calls this while their page is open)."""
        who = self._who(annotator)
        with self._lock:
            expiry = self._clock() + self.lease_seconds
            for key in self._queues.get(who, ()):
                self._leases[key][who] = expiry

    def _expire(self, now: float) -> None:
        for key, holders in list(self._leases.items()):
            for who, expiry in list(holders.items()):
                if expiry <= now:
                    del holders[who]
                    self._queues[who].remove(key)
            if not holders:
                del self._leases[key]

    def _lease(self, key: int, who: str, now: float, *, first: bool = False) -> None:
        self._leases.setdefault(key, {})[who] = now + self.lease_seconds
        queue = self._queues[who]
        if key in queue:
            queue.remove(key)
        queue.insert(0, key) if first else queue.append(key)

    def _open_to(self, key: int, who: str) -> bool:
        answered = self._answered_by.get(key, ())
        holders = self._leases.get(key, {})
        return (
            who not in answered
            and who not in holders
            and len(answered) + len(holders) < self.overlap
        )

    def _take(self, who: str, now: float) -> dict | None:
        queue = self._queues.get(who)
        while queue:
            key = queue[0]
            task = self._active.get(key)
            if task is None:  # completed by others' (late) answers meanwhile
                self._drop_lease(key, who)
                continue
            self._leases[key][who] = now + self.lease_seconds
            return task
        for key, task in self._active.items():
            if self._open_to(key, who):
                self._lease(key, who, now)
                return task
        while self._candidates:
            task = self._candidates.popleft()
            key = task["_input_hash"]
            if key in self._active or self._answered_by.get(key):
                continue
            self._active[key] = task
            self._lease(key, who, now)
            return task
        return None

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
        """Commit ``annotator``'s answer to a served task; return its id in the store.

        ``eg`` is the task with ``answer`` (accept, reject or ignore) and, for a
        choice or a reject → correct, ``accept`` (the right labels). Returns None,
        storing nothing, if the annotator already answered this example (a second
        click); use :meth:`undo` to change an answer.
        """
        who = self._who(annotator)
        key = eg.get("_input_hash")
        if key not in self.loop.pool.index:
            raise ValueError(Errors.E603.format(input_hash=key))
        if eg.get("answer") not in ANSWERS:
            raise ValueError(Errors.E604.format(snippet=repr(eg.get("answer"))[:60]))
        accept = eg.get("accept")
        if accept is not None and (
            not isinstance(accept, list)
            or any(label not in self.labels for label in accept)
        ):
            raise ValueError(
                Errors.E605.format(labels=list(self.labels), snippet=repr(accept)[:60])
            )
        if self.ner:
            self._check_spans(eg)
        with self._lock:
            if who in self._answered_by.get(key, ()) or (who, key) in self._answering:
                return None
            self._answering.add((who, key))
            served = self._active.get(key)
        eg = set_hashes({k: v for k, v in eg.items() if k not in ANSWER_FIELDS[1:]})
        eg["_view_id"] = self.view_id
        try:
            with self._loop_lock:
                ids = self.loop.answer([eg], annotator=who)
        finally:
            with self._lock:
                self._answering.discard((who, key))
        task = served or _as_task(eg)
        with self._cond:
            answered = self._answered_by[key]
            answered.add(who)
            self._drop_lease(key, who)
            if len(answered) >= self.overlap:
                self._active.pop(key, None)
            elif key not in self._active:
                self._active[key] = task
            self._history[who].append((task, eg))
            self._counts[who] += 1
            self._n_answers += 1
            self._cond.notify_all()  # the trainer may have a full batch now
        return ids[0] if ids else None

    def _check_spans(self, eg: dict) -> None:
        spans = eg.get("spans")
        if spans is None:
            spans = []
        if not isinstance(spans, list) or not isinstance(eg.get("text"), str):
            raise ValueError(Errors.E614.format(snippet=repr(spans)[:60]))
        try:
            validate_spans(
                eg["text"],
                spans,
                labels=self.labels,
                allow_overlap=self.view_id != "ner_manual",
            )
        except SourceError as e:
            raise ValueError(Errors.E615.format(err=e)) from e
        if self.view_id == "ner" and len(spans) != 1:
            raise ValueError(Errors.E616.format(n=len(spans)))

    def _drop_lease(self, key: int, who: str) -> None:
        holders = self._leases.get(key)
        if holders and who in holders:
            del holders[who]
            if not holders:
                del self._leases[key]
        if key in self._queues.get(who, ()):
            self._queues[who].remove(key)

    def can_undo(self, annotator: str) -> bool:
        """Whether ``annotator`` has an answer the model hasn't learnt from yet."""
        who = self._who(annotator)
        with self._lock:
            return bool(self._history.get(who))

    def undo(self, annotator: str) -> dict | None:
        """Take back ``annotator``'s last answer and serve its example to them again.

        Only answers the model hasn't learnt from can be taken back (the last ones
        of the current batch). Returns the task served again, or None.
        """
        who = self._who(annotator)
        with self._lock:
            if not self._history.get(who):
                return None
            task, eg = self._history[who][-1]
        with self._loop_lock:
            undone = self.loop.undo(eg, annotator=who)
        key = eg["_input_hash"]
        with self._cond:
            history = self._history[who]
            if history and history[-1][1] is eg:
                history.pop()
            if not undone:  # learnt meanwhile, and so is everything before it
                history.clear()
                return None
            self._answered_by[key].discard(who)
            self._counts[who] -= 1
            self._n_answers -= 1
            self._active[key] = task
            self._lease(key, who, self._clock(), first=True)
            self._cond.notify_all()
            return dict(task)

    # --- progress ------------------------------------------------------------

    def stats(self, annotator: str | None = None) -> dict[str, Any]:
        """Progress of the whole team (and of ``annotator``), cheap enough to poll.

        Keys: ``dataset``, ``view_id``, ``total`` (examples in the pool), ``done``
        (examples answered at least once), ``answers``, ``annotators`` (answers per
        annotator), ``overlap``, ``version`` (of the serving model), ``pending``
        (answers waiting for the next update), ``batch_size``, ``updates``,
        ``training``, ``last_update``, ``curve`` (points with ``answers``,
        ``version``, ``score``), ``curve_kind`` ("eval", "progressive", or None
        when the loop has no curve), ``curve_metric`` ("macro F1" or "entity F1"),
        ``error`` (the last background error, or None), ``finished`` and, for
        an ``annotator``, ``you`` ({"answers", "can_undo", "finished"}).
        """
        pool = self.loop.pool
        with self._lock:
            out: dict[str, Any] = {
                "dataset": self.dataset,
                "view_id": self.view_id,
                "total": len(pool),
                "done": pool.n_done,
                "answers": self._n_answers,
                "annotators": dict(sorted(self._counts.items())),
                "overlap": self.overlap,
                "version": self.loop.version,
                "pending": self.loop.n_pending,
                "batch_size": self.loop.batch_size,
                "updates": self._n_updates,
                "training": self._training,
                "last_update": self._last_update,
                "curve": list(self._curve),
                "curve_kind": self._curve_kind,
                "curve_metric": "entity F1" if self.ner else "macro F1",
                "error": self._error,
                "finished": self._cand_version >= 0
                and self._exhausted
                and not self._candidates
                and not self._active,
            }
            if annotator is not None:
                who = check_annotator(annotator)
                out["you"] = {
                    "answers": self._counts.get(who, 0),
                    "can_undo": bool(self._history.get(who)),
                    "finished": self._finished_for(who) and not self._queues.get(who),
                }
            return out

    # --- the selector thread -------------------------------------------------

    def _wants_selection(self) -> bool:
        if self.loop.version != self._cand_version:
            return True
        return (
            len(self._candidates) < max(self.prefetch // 2, 1) and not self._exhausted
        )

    def _select_forever(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._wants_selection():
                    self._cond.wait(1.0)
                if self._stop:
                    return
                version = self.loop.version
                fresh = version != self._cand_version
                exclude = set(self._active)
                if not fresh:
                    exclude.update(t["_input_hash"] for t in self._candidates)
                n = self.prefetch if fresh else self.prefetch - len(self._candidates)
            try:
                tasks = self._select(n, exclude)
                if self.preselect:
                    self._add_predictions(tasks)
            except Exception as e:  # keep serving what is queued; show the error
                with self._cond:
                    self._error = f"Selecting examples failed: {type(e).__name__}: {e}"
                    self._cand_version = version
                    self._exhausted = True
                    self._cond.notify_all()
                continue
            with self._cond:
                fresh_tasks = [
                    t
                    for t in tasks
                    if t["_input_hash"] not in self._active
                    and not self._answered_by.get(t["_input_hash"])
                ]
                if fresh:
                    self._candidates = deque(fresh_tasks)
                else:
                    self._candidates.extend(fresh_tasks)
                self._cand_version = version
                self._exhausted = not tasks
                self._cond.notify_all()

    def _select(self, n: int, exclude: set[int]) -> list[dict]:
        # select() runs outside _loop_lock so that answers never wait for scoring.
        # ActiveLoop.label_counts iterates a dict that answer() may grow meanwhile
        # ("dictionary changed size during iteration"): then select again.
        for attempt in range(SELECT_ATTEMPTS):
            try:
                return self.loop.select(n, exclude=exclude)
            except RuntimeError:
                if attempt == SELECT_ATTEMPTS - 1:
                    raise
        return []

    def _predict(self, texts: Sequence[str]) -> np.ndarray:
        served, _ = self.loop.updater.serving()
        models = served if isinstance(served, list) else [served]
        docs = models[0].make_docs(texts)
        return np.mean([model.predict(docs) for model in models], axis=0)

    def _add_predictions(self, tasks: list[dict]) -> None:
        if not tasks:
            return
        probs = self._predict([t["text"] for t in tasks])
        chosen = predicted_labels(probs, self.labels, exclusive=self.exclusive)
        for task, row, labels in zip(tasks, probs, chosen, strict=True):
            task["accept"] = labels
            task["meta"]["scores"] = {
                label: round(float(p), 4)
                for label, p in zip(self.labels, row, strict=True)
            }

    # --- the trainer thread --------------------------------------------------

    def _train_forever(self) -> None:
        try:
            self._eval_docs = self._read_eval()
            with self._lock:
                if self._curves:
                    self._curve_kind = "eval" if self._eval_docs else "progressive"
            self._add_eval_point()
        except Exception as e:  # no curve, but labelling goes on
            with self._lock:
                self._error = f"Reading the eval file failed: {type(e).__name__}: {e}"
            self._eval_docs = None
        while True:
            with self._cond:
                while not self._stop and not self.loop.ready_to_learn:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                self._training = True
            try:
                self._learn()
            except Exception as e:  # the thread must live on; the app shows the error
                with self._lock:
                    self._error = f"Updating the model failed: {type(e).__name__}: {e}"
                time.sleep(1.0)
            finally:
                with self._cond:
                    self._training = False
                    self._cond.notify_all()

    def _learn(self) -> None:
        with self._loop_lock:
            targets = self.loop.pop_targets()
        with self._lock:  # what was learnt can't be undone
            for history in self._history.values():
                history.clear()
        if not targets:
            return
        if self._curves and self._eval_docs is None:
            self._score_before_learning(targets)
        stats = self.loop.updater.update(targets)
        self._learnt.update(t.input_hash for t in targets)
        self._unsaved += 1
        with self._cond:
            self._n_updates += 1
            self._last_update = {
                "version": stats.version,
                "loss": round(float(stats.loss), 4),
                "examples": stats.n_new,
                "seconds": round(stats.seconds, 3),
            }
            self._error = None
            self._cond.notify_all()  # the selector re-scores for the new version
        if self._eval_docs is not None:
            self._add_eval_point()
        elif self._curves:
            self._add_progressive_point()
        self._save_checkpoint()

    def _read_eval(self) -> tuple[list, list[list[str]] | None] | None:
        if self.eval_path is None or not self._curves:
            return None
        if self.ner:
            return self._read_ner_eval()
        texts: list[str] = []
        gold: list[list[str]] = []
        for task in Source(self.eval_path):
            labels = gold_labels(task)
            if labels is not None:
                texts.append(task["text"])
                gold.append(labels)
        if not texts:
            return None
        served, _ = self.loop.updater.serving()
        model = served[0] if isinstance(served, list) else served
        return model.make_docs(texts), gold

    def _read_ner_eval(self) -> tuple[list, None] | None:
        """Gold Docs of the eval file's complete annotations: records with
        ``spans`` and no answer, or answered "accept" in a manual view."""
        tasks = [
            task
            for task in Source(self.eval_path)
            if isinstance(task.get("spans"), list)
            and task.get("answer", "accept") == "accept"
            and task.get("_view_id", "ner_manual") not in ("ner", "ner_teach")
        ]
        if not tasks:
            return None
        served, _ = self.loop.updater.serving()
        return gold_docs(served.nlp, tasks, labels=self.labels), None

    def _add_eval_point(self) -> None:
        if not self._eval_docs:
            return
        docs, gold = self._eval_docs
        served, version = self.loop.updater.serving()
        if self.ner:
            score = served.evaluate(docs)["ents_f"]
            if score is not None:
                self._add_point(version, float(score))
            return
        models = served if isinstance(served, list) else [served]
        probs = np.mean([model.predict(docs) for model in models], axis=0)
        score = textcat_score(probs, gold, self.labels, exclusive=self.exclusive)
        self._add_point(version, score)

    def _score_before_learning(self, targets: Sequence[TextcatTarget]) -> None:
        new = [t for t in targets if t.is_gold and t.input_hash not in self._learnt]
        if not new:
            return
        if self.ner:  # entities predicted by the serving model vs. the gold spans
            served, _ = self.loop.updater.serving()
            gold = [
                reference_doc(served.nlp, t, incorrect_spans_key=None)[0] for t in new
            ]
            predicted = served.annotate(gold)
            self._recent.extend(
                Example(p, g) for p, g in zip(predicted, gold, strict=True)
            )
            return
        probs = self._predict([t.text for t in new])
        for row, target in zip(probs, new, strict=True):
            gold = [label for label, value in target.cats.items() if value >= 0.5]
            self._recent.append((row, gold))

    def _add_progressive_point(self) -> None:
        if len(self._recent) < MIN_CURVE_EXAMPLES:
            return
        if self.ner:
            score = get_ner_prf(list(self._recent))["ents_f"]
            if score is not None:
                self._add_point(self.loop.version, float(score))
            return
        probs = np.vstack([row for row, _ in self._recent])
        gold = [labels for _, labels in self._recent]
        score = textcat_score(probs, gold, self.labels, exclusive=self.exclusive)
        self._add_point(self.loop.version, score)

    def _add_point(self, version: int, score: float) -> None:
        with self._lock:
            self._curve.append(
                {
                    "answers": self._n_answers,
                    "version": version,
                    "score": round(score, 4),
                }
            )

    def _save_checkpoint(self, *, force: bool = False) -> None:
        save = getattr(self.loop.updater, "save", None)
        if self.checkpoint is None or save is None or not self._unsaved:
            return
        now = self._clock()
        if force or now - self._last_save >= self.checkpoint_seconds:
            save(self.checkpoint)
            self._unsaved = 0
            self._last_save = now

    # --- restarting ----------------------------------------------------------

    def _load_answers(self) -> None:
        """Earlier answers of this dataset: counts, and examples wanting more."""
        if self.store is None or not self.store.has_dataset(self.dataset):
            return
        last: dict[int, dict] = {}
        for eg in self.store.iter_answers(self.dataset):
            key = eg["_input_hash"]
            self._answered_by[key].add(eg["_annotator_id"])
            self._counts[eg["_annotator_id"]] += 1
            self._n_answers += 1
            if self.overlap > 1:
                last[key] = eg
        for key, eg in last.items():
            if (
                len(self._answered_by[key]) < self.overlap
                and key in self.loop.pool.index
            ):
                self._active[key] = _as_task(eg)


def _as_task(eg: dict) -> dict:
    """An answered task as it was served (without the answer)."""
    skip = (*ANSWER_FIELDS, "accept", "_view_id")
    return {k: v for k, v in eg.items() if k not in skip}


def _require(ok: bool, name: str, requirement: str, value: Any) -> None:
    if not ok:
        raise ValueError(
            Errors.E606.format(name=name, requirement=requirement, value=value)
        )
