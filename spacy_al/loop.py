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

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from spacy.tokens import Doc

from spacy_al import strategies as strategies_module
from spacy_al import uncertainty
from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors
from spacy_al.models import UpdateStats
from spacy_al.patterns import PatternMatcher
from spacy_al.scoring import Scorer, make_scorer
from spacy_al.store import Store
from spacy_al.strategies import Candidates, Strategy
from spacy_al.targets import TextcatTarget, answers_to_textcat_targets

COMMITTEE_MEASURES = tuple(uncertainty.COMMITTEE_MEASURES)
#: Strategies that don't look at the scores.
UNSCORED = ("spacy_al.random.v1", "spacy_al.sequential.v1")


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
    """The examples to ask about, deduplicated by input hash, and which are done."""

    def __init__(
        self, tasks: Iterable[dict], *, answered: Collection[int] = ()
    ) -> None:
        self.tasks: list[dict] = []
        self.index: dict[int, int] = {}
        for task in tasks:
            task = set_hashes(task)
            key = task["_input_hash"]
            if key not in self.index:
                self.index[key] = len(self.tasks)
                self.tasks.append(task)
        self.done = np.zeros(len(self.tasks), dtype=bool)
        self.mark(answered, True)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def n_done(self) -> int:
        return int(self.done.sum())

    def mark(self, input_hashes: Iterable[int], done: bool = True) -> None:
        for key in input_hashes:
            i = self.index.get(key)
            if i is not None:
                self.done[i] = done

    def remaining(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        free = ~self.done
        if exclude:
            for key in exclude:
                i = self.index.get(key)
                if i is not None:
                    free[i] = False
        return np.flatnonzero(free)


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
        self._hasher: HashingVectorizer | None = None

    @property
    def version(self) -> int:
        return self.updater.version

    # --- selecting ------------------------------------------------------------

    def _make_doc(self, task: dict) -> Doc:
        return self._nlp.make_doc(task["text"])

    def docs(self, indices: Sequence[int]) -> list[Doc]:
        """Tokenized pool texts; cached while the pool fits the cache."""
        out = []
        cache = len(self.pool) <= self._doc_cache_size
        for i in indices:
            i = int(i)
            doc = self._docs.get(i)
            if doc is None:
                doc = self._make_doc(self.pool.tasks[i])
                if cache:
                    self._docs[i] = doc
            out.append(doc)
        return out

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
        """Indices of the pool to score: all remaining, or a random window of them."""
        remaining = self.pool.remaining(exclude=exclude)
        if self.window is not None and len(remaining) > self.window:
            remaining = self.rng.choice(remaining, size=self.window, replace=False)
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
        """Commit answers to the store, then queue them for the next update."""
        answers = [set_hashes(eg) for eg in answers]
        self._check_answers(answers)
        ids: list[int] = []
        if self.store is not None:
            versions = {eg.get("_model_version") for eg in answers}
            for version in versions:
                group = [eg for eg in answers if eg.get("_model_version") == version]
                ids.extend(
                    self.store.add_answers(
                        self.dataset, group, annotator=annotator, model_version=version
                    )
                )
        for eg in answers:
            key = eg["_input_hash"]
            self._answers[key] = [
                a for a in self._answers[key] if a.get("_task_hash") != eg["_task_hash"]
            ] + [eg]
            self._pending[key] = None
            self._refresh_target(key)
        self.pool.mark(eg["_input_hash"] for eg in answers)
        return ids

    def undo(self, eg: dict, *, annotator: str) -> bool:
        """Take back an answer not yet learnt from; it can be served again."""
        key = eg["_input_hash"]
        if key not in self._pending:
            return False
        if self.store is not None:
            self.store.remove_answer(
                self.dataset, task_hash=eg["_task_hash"], annotator=annotator
            )
        self._answers[key] = [
            a for a in self._answers[key] if a.get("_task_hash") != eg["_task_hash"]
        ]
        if not self._answers[key]:
            del self._answers[key]
            del self._pending[key]
            self._targets.pop(key, None)
            self.pool.mark([key], False)
        else:
            self._refresh_target(key)
        return True

    def _make_target(self, answers: Sequence[dict]):
        """The target of one input's answers, or None if they say nothing."""
        raise NotImplementedError

    def _refresh_target(self, key: int) -> None:
        target = self._make_target(self._answers[key])
        if target is not None:
            self._targets[key] = target
        else:
            self._targets.pop(key, None)

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    @property
    def ready_to_learn(self) -> bool:
        return len(self._pending) >= self.batch_size

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
        docs = self.docs(indices)
        scored = self.scorer(served, docs)
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
                vectors=self._vectors([docs[j] for j in rest])
                if self.spec.strategy == "spacy_al.diverse.v1"
                else None,
                costs=self._costs(indices[rest], [docs[j] for j in rest]),
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
