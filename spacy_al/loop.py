"""The active-learning loop.

    pool → score (serving model) → strategy → tasks → answers → store → updater ↺

``BaseLoop`` is what every task's loop shares (``spacy_al.textcat.loop.ActiveLoop``,
``spacy_al.ner.loop.NERLoop``): the pool, answers committed to the store before
they are queued, undo, and learning. They hold no Streamlit and print nothing,
and satisfy ``spacy_al.protocols.Loop``. Where they should give way to other work
(between docs tokenized and scored, between update steps) they call the yield
point they are given (``set_yield_point``), if any.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from spacy.tokens import Doc

from spacy_al import strategies as strategies_module
from spacy_al import uncertainty
from spacy_al.corpus import input_key_of, set_hashes, task_key_of
from spacy_al.errors import Errors
from spacy_al.pool import LOADING_WINDOW, Pool
from spacy_al.protocols import Updater, YieldPoint
from spacy_al.store import Store
from spacy_al.strategies import Strategy, strategy_needs
from spacy_al.team.consensus import Consensus, Decision
from spacy_al.updater import UpdateStats

COMMITTEE_MEASURES = tuple(uncertainty.COMMITTEE_MEASURES)


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
        ...) means the top k by it, and a strategy that needs scores (``diverse``,
        ``cost``, a registered name) uses ``DEFAULT_NER_MEASURE``
        (``spacy_al.ner.scores``); one that needs none
        (``random``, ``sequential``) gets the measure ``none``.
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
        from spacy_al.ner.scores import DEFAULT_NER_MEASURE, NER_MEASURES

        if ":" in name:
            strategy, measure = name.split(":", 1)
            strategy = strategies_module.resolve(strategy).strategy
        elif name in NER_MEASURES:
            strategy, measure = "spacy_al.top_k.v1", name
        else:
            strategy = strategies_module.resolve(name).strategy
            # The best NER measure on WNUT-17's dev file (#12).
            needs_scores = "scores" in strategy_needs(strategy)
            measure = DEFAULT_NER_MEASURE if needs_scores else "none"
        if measure not in NER_MEASURES and measure != "none":
            raise ValueError(
                Errors.E531.format(
                    measure=measure, name=name, measures=", ".join(NER_MEASURES)
                )
            )
        return cls(name, strategy, measure)

    @property
    def needs_scores(self) -> bool:
        """Whether the strategy reads scores (random and sequential don't)."""
        return "scores" in strategy_needs(self.strategy)

    @property
    def needs_vectors(self) -> bool:
        """Whether the strategy reads document vectors (diverse does)."""
        return "vectors" in strategy_needs(self.strategy)

    @property
    def uses_committee(self) -> bool:
        return self.measure in COMMITTEE_MEASURES


class BaseLoop:
    """What every loop shares: the pool, answers, undo, and learning.

    ``answer`` commits answers to the store first and then queues them; ``learn``
    turns the queued answers into targets and updates the model. A front end calls
    ``learn`` when ``ready_to_learn`` (the simulator calls it in line; the app's
    trainer thread calls it in the background). Subclasses say how to select and
    how answers become targets (``select``, ``_make_target``, ``label_counts``)
    and which ``task`` they serve.

    ``batch_size`` is the annotation batch: queued inputs learnt per update.
    ``yield_point`` (None: none) is called between docs while selecting, and by
    the updater between training steps and the model between prediction batches
    (``set_yield_point``).
    """

    #: The task the loop serves (``protocols.TASKS``); subclasses set it.
    task: str = ""

    def __init__(
        self,
        pool: Pool,
        updater: Updater,
        *,
        spec: StrategySpec,
        store: Store | None = None,
        dataset: str | None = None,
        batch_size: int = 10,
        window: int | None = None,
        strategy_config: dict | None = None,
        seed: int = 0,
        doc_cache_size: int = 100_000,
        yield_point: YieldPoint | None = None,
    ) -> None:
        if store is not None and not dataset:
            raise ValueError(Errors.E408)
        self.pool = pool
        self.updater: Updater = updater
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
        # The model as built tokenizes the pool (a retrained one tokenizes alike).
        self._model = updater.model
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
        self.yield_point = yield_point
        if yield_point is not None:
            updater.set_yield_point(yield_point)

    def set_yield_point(self, yield_point: YieldPoint | None) -> None:
        """Give way through ``yield_point`` while selecting and learning (e.g. the
        serving layer's request gate); None: never."""
        self.yield_point = yield_point
        self.updater.set_yield_point(yield_point)

    @property
    def version(self) -> int:
        return self.updater.version

    @property
    def trained(self) -> bool:
        """Whether the model has learnt anything (an untrained model's
        suggestions are noise): it has been updated at least once."""
        return self.updater.version > 0

    # --- selecting ------------------------------------------------------------

    def docs(self, indices: Sequence[int]) -> list[Doc]:
        """Tokenized pool texts; cached while the pool fits the cache."""
        return list(self.iter_docs(indices))

    def iter_docs(self, indices: Iterable[int]) -> Iterator[Doc]:
        """``docs``, one at a time, made as they are asked for."""
        cache = len(self.pool) <= self._doc_cache_size
        if not cache and self._docs:  # a pool read in the background outgrew it
            self._docs = {}
        yield_point = self.yield_point
        for i in indices:
            if yield_point is not None:
                yield_point()  # e.g. an annotator's request goes first
            i = int(i)
            doc = self._docs.get(i)
            if doc is None:
                doc = self._model.make_doc(self.pool.tasks[i])
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
        if self.pool.loading:
            window = min(window or LOADING_WINDOW, LOADING_WINDOW)
        remaining = self.pool.remaining(exclude=exclude)
        if window is not None and len(remaining) > window:
            # Sorted: ties between equal scores go to the earlier text, as
            # they do when the pool is scored on a Dask cluster.
            remaining = np.sort(self.rng.choice(remaining, size=window, replace=False))
        return remaining

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` questions, most informative first, as tasks.

        ``exclude`` holds input keys not to serve (held by other annotators).
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
            self._pending[eg["_input_key"]] = None
            self._refresh_target(eg["_input_key"])
        self.pool.mark(eg["_input_key"] for eg in answers)
        return ids

    def take_stored(self, answers: Iterable[dict]) -> int:
        """Queue answers another process committed (as the store reads them
        back, with ``_annotator_id`` and ``_id``) for the next update, without
        storing them again: how a learner process learns the servers' answers.
        Returns how many inputs were queued."""
        keys: dict[int, None] = {}
        for eg in answers:
            self._remember(eg)
            keys[input_key_of(eg)] = None
        for key in keys:
            self._pending[key] = None
            self._refresh_target(key)
        self.pool.mark(keys)
        return len(keys)

    def _remember(self, eg: dict) -> None:
        """Keep ``eg``, replacing its annotator's earlier answer to the same task."""
        key = input_key_of(eg)
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
            keys[input_key_of(eg)] = None
        for key in keys:
            self._refresh_target(key)

    def adjudicate(self, reviews: Iterable[dict]) -> int:
        """Learn reviewers' answers (``_review: true``) at the next update.

        A review overrides the annotators' answers on its input (see
        :mod:`spacy_al.team.consensus`). Returns how many inputs were queued.
        """
        keys: dict[int, None] = {}
        for eg in reviews:
            self._remember({"_annotator_id": "reviewer", **eg, "_review": True})
            keys[input_key_of(eg)] = None
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
        """Take back ``annotator``'s answer ``eg``, learnt from or not.

        It leaves the store (so ``train``, ``data-to-spacy`` and ``db-out`` never
        see it) and the queue, and the example can be served again: the answer
        given then is learnt with the next batch. A model that already learnt the
        undone answer is corrected by what it learns next, as any online learner:
        the new answer replaces the undone one's target in its replay memory.
        Returns False if there was no such answer to take back.
        """
        key = input_key_of(eg)
        undone = {**eg, "_annotator_id": annotator}
        kept = [a for a in self._answers.get(key, []) if not _same_answer(a, undone)]
        removed = len(kept) < len(self._answers.get(key, []))
        if self.store is not None:
            removed = (
                self.store.remove_answer(
                    self.dataset, task_key=task_key_of(eg), annotator=annotator
                )
                or removed
            )
        if not removed:
            return False
        if not kept:
            self._answers.pop(key, None)
            self._pending.pop(key, None)
            self._targets.pop(key, None)
            self._decisions.pop(key, None)
            self.pool.mark([key], False)
        else:
            self._answers[key] = kept
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


def _same_answer(a: dict, b: dict) -> bool:
    """Whether ``a`` and ``b`` are one annotator's answers to one task."""
    return task_key_of(a) == task_key_of(b) and a.get("_annotator_id") == b.get(
        "_annotator_id"
    )
