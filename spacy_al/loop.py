"""The active-learning loop.

    pool → score (serving model) → strategy → tasks → answers → store → updater ↺

``ActiveLoop`` (text classification) and ``spacy_al.ner_loop.NERLoop`` are the
single-threaded core that every front end drives: the labelling app (through the
shared feed, which adds leases, several annotators and a trainer thread), and the
oracle of ``simulate`` and the tests. Both share ``BaseLoop``: the pool, answers
committed to the store before they are queued, undo, and learning; they differ in
how they score, what a task looks like and how answers become targets. They hold
no Streamlit and print nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from spacy.tokens import Doc

from spacy_al import priority, uncertainty
from spacy_al import strategies as strategies_module
from spacy_al.consensus import Consensus, Decision
from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors
from spacy_al.models import UpdateStats
from spacy_al.patterns import PatternMatcher
from spacy_al.scoring import Scorer, make_scorer, score_stream
from spacy_al.store import Store
from spacy_al.strategies import Candidates, Strategy
from spacy_al.targets import TextcatTarget, answers_to_textcat_targets

COMMITTEE_MEASURES = tuple(uncertainty.COMMITTEE_MEASURES)
#: Strategies that don't look at the scores.
UNSCORED = ("spacy_al.random.v1", "spacy_al.sequential.v1")
#: Texts scored per selection at most while the pool is read in the background.
LOADING_WINDOW = 2_000


@dataclass(frozen=True)
class StrategySpec:
    """A strategy as named on the command line: what picks, and by which measure.

    ``margin`` = the top k by margin; ``diverse`` = k-means over the most uncertain
    by margin; ``diverse:entropy`` = the same by entropy; ``vote_entropy`` = top k
    by committee disagreement; ``bald`` = top k by MC-dropout BALD.
    """

    name: str
    strategy: str
    measure: str

    @classmethod
    def parse(cls, name: str, *, task: str = "textcat") -> StrategySpec:
        """The spec for a command-line name; ``task="ner"`` reads NER measures.

        For NER, a measure name alone (``mnlp``, ``token-entropy``, ``entity``
        ...) means the top k by it, and a short strategy name (``diverse``,
        ``cost``) uses ``mnlp``; ``random`` and ``sequential`` need no scores.
        """
        if task == "ner":
            return cls._parse_ner(name)
        if ":" in name:
            strategy, measure = name.split(":", 1)
            return cls(name, strategies_module.resolve(strategy).strategy, measure)
        if name in COMMITTEE_MEASURES or name == "bald":
            return cls(name, "spacy_al.top_k.v1", name)
        alias = strategies_module.resolve(name)
        return cls(name, alias.strategy, alias.measure or "margin")

    @classmethod
    def _parse_ner(cls, name: str) -> StrategySpec:
        from spacy_al.scoring import NER_MEASURES

        if ":" in name:
            strategy, measure = name.split(":", 1)
            strategy = strategies_module.resolve(strategy).strategy
        elif name in NER_MEASURES:
            strategy, measure = "spacy_al.top_k.v1", name
        else:
            alias = strategies_module.resolve(name)
            strategy = alias.strategy
            measure = "mnlp" if alias.measure is not None else "none"
        if measure not in NER_MEASURES and measure != "none":
            raise ValueError(
                Errors.E531.format(
                    measure=measure, name=name, measures=", ".join(NER_MEASURES)
                )
            )
        return cls(name, strategy, measure)

    @property
    def needs_scores(self) -> bool:
        """False for strategies that ignore scores (random, sequential)."""
        return self.strategy not in UNSCORED

    @property
    def uses_committee(self) -> bool:
        return self.measure in COMMITTEE_MEASURES


class Pool:
    """The examples to ask about, deduplicated by input hash, and which are done.

    By default ``tasks`` are read to the end before the pool is returned. With
    ``foreground_seconds``, the pool reads for that long and then goes on reading
    in a background thread, so that a session can ask its first questions while a
    big source is still being read: ``len``, ``tasks``, ``index`` and
    ``remaining`` cover what has been read so far, in the source's order.
    ``loading`` says whether more is coming and ``wait`` waits for it. An error
    raised while reading in the foreground propagates as usual; one raised in the
    background stops the reading and is kept in ``error``, and ``check`` raises it.
    """

    #: Tasks read per step; the lock is held only to add a step's tasks.
    chunk_size = 2048

    def __init__(
        self,
        tasks: Iterable[dict],
        *,
        answered: Collection[int] = (),
        foreground_seconds: float | None = None,
    ) -> None:
        self.tasks: list[dict] = []
        self.index: dict[int, int] = {}
        self.error: Exception | None = None
        self._done = np.zeros(0, dtype=bool)  # grown ahead of ``tasks``
        self._marks: dict[int, bool] = dict.fromkeys(answered, True)
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        stream = iter(tasks)
        deadline = (
            None
            if foreground_seconds is None
            else time.monotonic() + foreground_seconds
        )
        while self._add_chunk(stream):
            if deadline is not None and time.monotonic() >= deadline:
                # The thread holds the pool weakly: a pool nobody uses any more
                # (a recipe's process that hands over to the app's) stops reading.
                self._thread = threading.Thread(
                    target=_read_rest,
                    args=(weakref.ref(self), stream),
                    name="spacy_al-pool",
                    daemon=True,
                )
                self._thread.start()
                return
        self._loaded.set()

    def _add_chunk(self, stream: Iterator[dict]) -> bool:
        """Read up to ``chunk_size`` tasks and add them; False at the end."""
        chunk = []
        for task in itertools.islice(stream, self.chunk_size):
            if not (
                type(task.get("_input_hash")) is int
                and type(task.get("_task_hash")) is int
            ):
                task = set_hashes(task)
            chunk.append(task)
        with self._lock:
            n = len(self.tasks)
            if n + len(chunk) > len(self._done):
                grown = np.zeros(max(2 * len(self._done), n + len(chunk)), dtype=bool)
                grown[:n] = self._done[:n]
                self._done = grown
            for task in chunk:
                key = task["_input_hash"]
                if key not in self.index:
                    i = len(self.tasks)
                    self.index[key] = i
                    self.tasks.append(task)
                    if self._marks:
                        self._done[i] = self._marks.pop(key, False)
        return len(chunk) == self.chunk_size

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def loading(self) -> bool:
        """Whether the source is still being read in the background."""
        return not self._loaded.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the source is read (or failed); False if ``timeout`` passed."""
        return self._loaded.wait(timeout)

    def check(self) -> None:
        """Raise the error that stopped the background reading, if any."""
        if self.error is not None:
            raise self.error

    @property
    def done(self) -> np.ndarray:
        """Whether each task (in ``tasks`` order) has been answered (a copy)."""
        with self._lock:
            return self._done[: len(self.tasks)].copy()

    @property
    def n_done(self) -> int:
        with self._lock:
            return int(self._done[: len(self.tasks)].sum())

    def mark(self, input_hashes: Iterable[int], done: bool = True) -> None:
        """Mark examples (not) done; those not read yet are marked when they are."""
        with self._lock:
            for key in input_hashes:
                i = self.index.get(key)
                if i is not None:
                    self._done[i] = done
                elif self.loading:
                    self._marks[key] = done

    def remaining(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        """Indices of the tasks read so far that aren't done nor in ``exclude``."""
        with self._lock:
            free = ~self._done[: len(self.tasks)]
            for key in exclude:
                i = self.index.get(key)
                if i is not None:
                    free[i] = False
        return np.flatnonzero(free)


def _read_rest(ref: weakref.ref[Pool], stream: Iterator[dict]) -> None:
    """Read the rest of a pool's source, while the pool is in use."""
    while (pool := ref()) is not None:
        try:
            more = pool._add_chunk(stream)
        except Exception as e:  # kept for ``check``; the tasks read so far serve
            pool.error = e
            more = False
        if not more:
            pool._loaded.set()
            return
        del pool


class BaseLoop:
    """What every loop shares: the pool, answers, undo, and learning.

    ``answer`` commits answers to the store first and then queues them; ``learn``
    turns the queued answers into targets and updates the model. A front end calls
    ``learn`` when ``ready_to_learn`` (the simulator calls it in line; the app's
    trainer thread calls it in the background). Subclasses say how to select and
    how answers become targets (``select``, ``_make_target``, ``label_counts``).
    """

    def __init__(
        self,
        pool: Pool,
        updater,
        *,
        spec: StrategySpec,
        store: Store | None = None,
        dataset: str | None = None,
        batch_size: int = 10,
        window: int | None = None,
        strategy_config: dict | None = None,
        seed: int = 0,
        doc_cache_size: int = 100_000,
    ) -> None:
        if store is not None and not dataset:
            raise ValueError(Errors.E408)
        self.pool = pool
        self.updater = updater
        self.spec = spec
        self.strategy: Strategy = strategies_module.get_strategy(
            spec.strategy, **(strategy_config or {})
        )
        self.labels: tuple[str, ...] = tuple(updater.model.labels)
        self.store = store
        self.dataset = dataset
        self.batch_size = batch_size
        self.window = window
        self.rng = np.random.default_rng(seed)
        self._nlp = updater.model.nlp
        self._docs: dict[int, Doc] = {}
        self._doc_cache_size = doc_cache_size
        self._answers: dict[int, list[dict]] = defaultdict(list)
        self._pending: dict[int, None] = {}
        self._targets: dict[int, object] = {}
        # Who must agree before an input is learnt (the feed sets its overlap).
        self.consensus = Consensus()
        self._decisions: dict[int, Decision] = {}
        self._hasher: HashingVectorizer | None = None

    @property
    def version(self) -> int:
        return self.updater.version

    # --- selecting ------------------------------------------------------------

    def _make_doc(self, task: dict) -> Doc:
        return self._nlp.make_doc(task["text"])

    def docs(self, indices: Sequence[int]) -> list[Doc]:
        """Tokenized pool texts; cached while the pool fits the cache."""
        return list(self.iter_docs(indices))

    def iter_docs(self, indices: Iterable[int]) -> Iterator[Doc]:
        """``docs``, one at a time, made as they are asked for."""
        cache = len(self.pool) <= self._doc_cache_size
        if not cache and self._docs:  # a pool read in the background outgrew it
            self._docs = {}
        for i in indices:
            priority.pause()  # an annotator's request goes first
            i = int(i)
            doc = self._docs.get(i)
            if doc is None:
                doc = self._make_doc(self.pool.tasks[i])
                if cache:
                    self._docs[i] = doc
            yield doc

    def label_counts(self) -> np.ndarray:
        """Answers that say each label is true, so far (learnt or pending)."""
        raise NotImplementedError

    def _vectors(self, docs: Sequence[Doc]):
        if self._nlp.vocab.vectors.shape[0]:
            return np.vstack([doc.vector for doc in docs])
        if self._hasher is None:
            self._hasher = HashingVectorizer(
                analyzer=lambda doc: [t.lower_ for t in doc if not t.is_punct],
                n_features=2**18,
                alternate_sign=False,
                norm="l2",
            )
        return self._hasher.transform(docs)

    def _costs(self, indices: Sequence[int], docs: Sequence[Doc]) -> np.ndarray:
        costs = np.empty(len(docs))
        for j, (i, doc) in enumerate(zip(indices, docs, strict=True)):
            cost = self.pool.tasks[int(i)].get("meta", {}).get("cost")
            costs[j] = float(cost) if cost is not None else max(len(doc), 1)
        return costs

    def candidates(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        """Indices of the pool to score: all remaining, or a random window of them.

        While the pool is read in the background, of those read so far, and at
        most ``LOADING_WINDOW`` of them: the first questions then come quickly
        (tokenizing a full window competes with the reading for the CPU), and the
        full window serves once the pool is read. Raises the error that stopped
        the reading, if one did.
        """
        self.pool.check()
        window = self.window
        if getattr(self.pool, "loading", False):
            window = min(window or LOADING_WINDOW, LOADING_WINDOW)
        remaining = self.pool.remaining(exclude=exclude)
        if window is not None and len(remaining) > window:
            remaining = self.rng.choice(remaining, size=window, replace=False)
        return remaining

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` questions, most informative first, as tasks.

        ``exclude`` holds input hashes not to serve (held by other annotators).
        """
        raise NotImplementedError

    # --- answering and learning -----------------------------------------------

    def _check_answers(self, answers: Sequence[dict]) -> None:
        """Raise before anything is stored if an answer can't be learnt from."""

    def answer(self, answers: Sequence[dict], *, annotator: str) -> list[int]:
        """Commit answers to the store, then queue them for the next update.

        What is learnt from an input is what :attr:`consensus` decides on all its
        answers: with an overlap of 2 or more, nothing until enough annotators
        agree (or a reviewer adjudicates, see :meth:`adjudicate`).
        """
        answers = [set_hashes(eg) for eg in answers]
        self._check_answers(answers)
        ids: list[int] = []
        id_of: dict[int, int] = {}
        if self.store is not None:
            versions = {eg.get("_model_version") for eg in answers}
            for version in versions:
                at = [
                    i
                    for i, eg in enumerate(answers)
                    if eg.get("_model_version") == version
                ]
                found = self.store.add_answers(
                    self.dataset,
                    [answers[i] for i in at],
                    annotator=annotator,
                    model_version=version,
                )
                ids.extend(found)
                id_of.update(zip(at, found, strict=True))
        for i, eg in enumerate(answers):
            eg = {**eg, "_annotator_id": annotator}
            if i in id_of:  # the store's order: which answer is an annotator's latest
                eg["_id"] = id_of[i]
            self._remember(eg)
            self._pending[eg["_input_hash"]] = None
            self._refresh_target(eg["_input_hash"])
        self.pool.mark(eg["_input_hash"] for eg in answers)
        return ids

    def _remember(self, eg: dict) -> None:
        """Keep ``eg``, replacing its annotator's earlier answer to the same task."""
        key = eg["_input_hash"]
        self._answers[key] = [
            a for a in self._answers[key] if not _same_answer(a, eg)
        ] + [eg]

    def hold(self, answers: Iterable[dict]) -> None:
        """Remember earlier answers of inputs not learnt yet (waiting for more
        answers, or in conflict), so that later answers and reviews complete them.

        Nothing is queued: the recipes pass what :meth:`Consensus.split` held back
        when they resume a dataset.
        """
        keys: dict[int, None] = {}
        for eg in answers:
            self._remember(eg)
            keys[eg["_input_hash"]] = None
        for key in keys:
            self._refresh_target(key)

    def adjudicate(self, reviews: Iterable[dict]) -> int:
        """Learn reviewers' answers (``_review: true``) at the next update.

        A review overrides the annotators' answers on its input (see
        :mod:`spacy_al.consensus`). Returns how many inputs were queued.
        """
        keys: dict[int, None] = {}
        for eg in reviews:
            self._remember({"_annotator_id": "reviewer", **eg, "_review": True})
            keys[eg["_input_hash"]] = None
        for key in keys:
            self._pending[key] = None
            self._refresh_target(key)
        return len(keys)

    @property
    def conflicts(self) -> dict[int, tuple[dict, ...]]:
        """Inputs held back because their annotators disagree: their answers."""
        return {
            key: decision.answers
            for key, decision in list(self._decisions.items())
            if decision.kind == "conflict"
        }

    @property
    def n_waiting(self) -> int:
        """Inputs answered by fewer annotators than the overlap asks for."""
        return sum(d.kind == "wait" for d in list(self._decisions.values()))

    def undo(self, eg: dict, *, annotator: str) -> bool:
        """Take back an answer not yet learnt from; it can be served again."""
        key = eg["_input_hash"]
        if key not in self._pending:
            return False
        if self.store is not None:
            self.store.remove_answer(
                self.dataset, task_hash=eg["_task_hash"], annotator=annotator
            )
        undone = {**eg, "_annotator_id": annotator}
        self._answers[key] = [
            a for a in self._answers[key] if not _same_answer(a, undone)
        ]
        if not self._answers[key]:
            del self._answers[key]
            del self._pending[key]
            self._targets.pop(key, None)
            self._decisions.pop(key, None)
            self.pool.mark([key], False)
        else:
            self._refresh_target(key)
        return True

    def _make_target(self, answers: Sequence[dict]):
        """The target of one input's answers, or None if they say nothing."""
        raise NotImplementedError

    def _refresh_target(self, key: int) -> None:
        decision = self.consensus.decide(self._answers[key])
        self._decisions[key] = decision
        target = self._make_target(decision.answers) if decision.learn else None
        if target is not None:
            self._targets[key] = target
        else:
            self._targets.pop(key, None)

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    @property
    def ready_to_learn(self) -> bool:
        """A batch of answers can be learnt: ``batch_size`` queued inputs, not
        counting those waiting for more answers or in conflict (overlap >= 2)."""
        if len(self._pending) < self.batch_size:
            return False
        if self.consensus.overlap == 1:
            return True
        decided = [self._decisions.get(key) for key in list(self._pending)]
        return sum(d is not None and d.learn for d in decided) >= self.batch_size

    def pop_targets(self) -> list:
        """Take the queued answers' targets off the queue (cheap; call under a lock).

        A trainer thread then runs ``updater.update(targets)`` outside the lock.
        """
        keys = list(self._pending)
        self._pending.clear()
        return [self._targets[k] for k in keys if k in self._targets]

    def learn(self) -> UpdateStats | None:
        """Update the model on the queued answers (everything queued, at once)."""
        targets = self.pop_targets()
        if not targets:
            return None
        return self.updater.update(targets)

    @property
    def targets(self) -> list:
        return list(self._targets.values())


class ActiveLoop(BaseLoop):
    """Text classification: pick the next texts, take answers, learn from them.

    ``select`` scores (a window of) the remaining pool with the serving model and
    lets the strategy pick; each task suggests one label (the most probable for
    an exclusive model, the least certain for a multilabel one).
    """

    def __init__(
        self,
        pool: Pool,
        updater,
        *,
        spec: StrategySpec,
        store: Store | None = None,
        dataset: str | None = None,
        batch_size: int = 10,
        window: int | None = None,
        patterns: PatternMatcher | None = None,
        min_label_answers: int = 5,
        strategy_config: dict | None = None,
        seed: int = 0,
        doc_cache_size: int = 100_000,
    ) -> None:
        super().__init__(
            pool,
            updater,
            spec=spec,
            store=store,
            dataset=dataset,
            batch_size=batch_size,
            window=window,
            strategy_config=strategy_config,
            seed=seed,
            doc_cache_size=doc_cache_size,
        )
        self.exclusive: bool = updater.model.exclusive
        self.scorer: Scorer = make_scorer(spec.measure, multilabel=not self.exclusive)
        if spec.uses_committee and not isinstance(updater.serving()[0], list):
            raise ValueError(Errors.E409.format(measure=spec.measure))
        self.patterns = patterns
        self.min_label_answers = min_label_answers

    def label_counts(self) -> np.ndarray:
        """Answers that say each label is true, so far (learnt or pending)."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        index = {label: i for i, label in enumerate(self.labels)}
        for target in list(self._targets.values()):  # answers may arrive meanwhile
            for label, value in target.cats.items():
                if value >= 0.5:
                    counts[index[label]] += 1
        return counts

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` questions, most informative first, as tasks.

        ``exclude`` holds input hashes not to serve (held by other annotators).
        """
        indices = self.candidates(exclude=exclude)
        if not len(indices):
            return []
        n = min(n, len(indices))
        served, version = self.updater.serving()
        # Tokenize and score the window batch by batch (score_stream); keep the
        # Docs only where the patterns or the strategy need them again.
        diverse = self.spec.strategy == "spacy_al.diverse.v1"
        docs: list[Doc] | None = [] if diverse or self.patterns is not None else None
        n_tokens = np.empty(len(indices))

        def stream() -> Iterator[Doc]:
            for j, doc in enumerate(self.iter_docs(indices)):
                n_tokens[j] = len(doc)
                if docs is not None:
                    docs.append(doc)
                yield doc

        scored = score_stream(self.scorer, served, stream())
        chosen: list[tuple[int, str | None]] = []
        if self.patterns is not None:
            chosen = self._pattern_picks(indices, docs, scored.scores, n // 2 or 1)
        taken = {j for j, _ in chosen}
        rest = np.array([j for j in range(len(indices)) if j not in taken], dtype=int)
        k = n - len(chosen)
        if k > 0 and len(rest):
            k = min(k, len(rest))
            cands = Candidates(
                scores=scored.scores[rest],
                probs=scored.probs[rest],
                labels=self.labels,
                vectors=self._vectors([docs[j] for j in rest]) if diverse else None,
                costs=self._window_costs(indices[rest], n_tokens[rest]),
                label_counts=self.label_counts(),
                multilabel=not self.exclusive,
            )
            picked = self.strategy(cands, k, rng=self.rng)
            chosen.extend((int(rest[j]), None) for j in picked)
        return [
            self._task(
                int(indices[j]), scored.probs[j], scored.scores[j], version, label
            )
            for j, label in chosen
        ]

    def _window_costs(self, indices: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
        """``_costs`` from the docs' lengths: meta cost, else tokens (at least 1)."""
        costs = np.maximum(n_tokens, 1.0)
        for j, i in enumerate(indices):
            cost = self.pool.tasks[int(i)].get("meta", {}).get("cost")
            if cost is not None:
                costs[j] = float(cost)
        return costs

    def _pattern_picks(
        self, indices: np.ndarray, docs: Sequence[Doc], scores: np.ndarray, limit: int
    ) -> list[tuple[int, str]]:
        """While a label has few answers, up to ``limit`` texts a pattern marks for it."""
        counts = dict(zip(self.labels, self.label_counts(), strict=True))
        wanted = [
            label
            for label in self.patterns.labels
            if counts.get(label, self.min_label_answers) < self.min_label_answers
        ]
        if not wanted:
            return []
        picks: list[tuple[int, str]] = []
        for j in np.argsort(-scores, kind="stable"):
            matched = [
                label for label in self.patterns.match(docs[j]) if label in wanted
            ]
            if matched:
                picks.append((int(j), matched[0]))
                if len(picks) >= limit:
                    break
        return picks

    def _task(
        self, i: int, probs: np.ndarray, score: float, version: int, label: str | None
    ) -> dict:
        source = self.pool.tasks[i]
        from_pattern = label is not None
        if label is None:
            if self.exclusive:
                # Ties (an untrained model scores every label alike) go to a random
                # one of the tied labels, not always to the first label.
                tied = np.flatnonzero(probs >= probs.max() - 1e-6)
                label = self.labels[int(self.rng.choice(tied))]
            else:  # the label the model is least sure of
                label = self.labels[int(np.argmin(np.abs(probs - 0.5)))]
        meta = dict(source.get("meta") or {})
        meta.update(
            score=round(float(probs[self.labels.index(label)]), 4),
            uncertainty=round(float(score), 4),
            strategy=self.spec.name,
        )
        if from_pattern:
            meta["pattern"] = True
        task = {
            "text": source["text"],
            "label": label,
            "meta": meta,
            "_input_hash": source["_input_hash"],
            "_model_version": version,
        }
        return set_hashes(task, overwrite=False)

    def _make_target(self, answers: Sequence[dict]) -> TextcatTarget | None:
        found = answers_to_textcat_targets(
            answers, self.labels, exclusive=self.exclusive
        )
        return found[0] if found else None


def _same_answer(a: dict, b: dict) -> bool:
    """Whether ``a`` and ``b`` are one annotator's answers to one task."""
    return a.get("_task_hash") == b.get("_task_hash") and a.get(
        "_annotator_id"
    ) == b.get("_annotator_id")
