"""The text-classification loop: pick the next texts, take answers, learn."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import numpy as np
from spacy.tokens import Doc

from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors
from spacy_al.loop import BaseLoop, StrategySpec
from spacy_al.pool import Pool
from spacy_al.protocols import Updater, YieldPoint
from spacy_al.scale.scoring import ScoreSpec, check_spec, pick_on_cluster
from spacy_al.seed_sets import take_turns
from spacy_al.store import Store
from spacy_al.strategies import Candidates
from spacy_al.textcat.learner import IDF_TEXTS
from spacy_al.textcat.patterns import PatternMatcher
from spacy_al.textcat.scoring import Scorer, make_scorer, score_stream
from spacy_al.textcat.targets import TextcatTarget, answers_to_textcat_targets


class ActiveLoop(BaseLoop):
    """Text classification: pick the next texts, take answers, learn from them.

    ``select`` scores (a window of) the remaining pool with the serving model and
    lets the strategy pick; each task suggests one label (the most probable for
    an exclusive model, the least certain for a multilabel one).
    """

    task = "textcat"

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
        patterns: PatternMatcher | None = None,
        min_label_answers: int = 5,
        strategy_config: dict | None = None,
        seed: int = 0,
        doc_cache_size: int = 100_000,
        yield_point: YieldPoint | None = None,
        first_window: int | None = None,
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
            yield_point=yield_point,
        )
        self.exclusive: bool = updater.model.exclusive
        self.strategy_config = dict(strategy_config or {})
        # A model with an idf (``linear``) takes it from the unlabelled pool's
        # first texts (as many as ``fit_idf`` reads).
        fits_idf = [
            member.model.fit_idf
            for member in getattr(updater, "members", None) or [updater]
            if getattr(member.model, "fit_idf", None) is not None
        ]
        if fits_idf:
            head = pool.head(IDF_TEXTS)
            for fit_idf in fits_idf:
                fit_idf(task["text"] for task in head)
        self.scorer: Scorer = make_scorer(spec.measure, multilabel=not self.exclusive)
        if spec.uses_committee and updater.n_members < 2:
            raise ValueError(Errors.E409.format(measure=spec.measure))
        # The first selection scores a random sample of at most this many
        # texts (then the window as usual): a full pass over millions of texts
        # would keep the first question waiting for half an hour.
        self.first_window = first_window
        self._selections = 0
        # A pool on a Dask cluster (``open_session(dask=...)``) is scored there.
        self.cluster = getattr(pool, "cluster", None)
        if self.cluster is not None:
            if patterns is not None:
                raise ValueError(Errors.E1205)
            check_spec(spec.name, spec.strategy, spec.measure)
            self._cluster_name = self.cluster.new_name()
        self.patterns = patterns
        self.min_label_answers = min_label_answers
        # Whether a task asks about one label (textcat.teach); a choice asks about
        # none, so its tasks carry no ``label`` (and no score for one).
        self.asks_label = True

    def label_counts(self) -> np.ndarray:
        """Answers that say each label is true, so far (learnt or pending)."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        index = {label: i for i, label in enumerate(self.labels)}
        for target in list(self._targets.values()):  # answers may arrive meanwhile
            for label, value in target.cats.items():
                if value >= 0.5:
                    counts[index[label]] += 1
        return counts

    def candidates(self, *, exclude: Collection[int] = ()) -> np.ndarray:
        """As :meth:`BaseLoop.candidates`; the first call, with
        ``first_window``, a random sample of that many of the remaining texts
        (sorted, drawn from the loop's rng: the same sample on a Dask cluster
        and in one process, spread over all its partitions)."""
        first, self._selections = self._selections == 0, self._selections + 1
        if not first or self.first_window is None or self.pool.loading:
            return super().candidates(exclude=exclude)
        self.pool.check()
        remaining = self.pool.remaining(exclude=exclude)
        size = min(self.first_window, self.window or self.first_window)
        if len(remaining) > size:
            remaining = np.sort(self.rng.choice(remaining, size=size, replace=False))
        return remaining

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` questions, most informative first, as tasks.

        ``exclude`` holds input keys not to serve (held by other annotators).
        """
        indices = self.candidates(exclude=exclude)
        if not len(indices):
            return []
        n = min(n, len(indices))
        served, version = self.updater.serving()
        if self.cluster is not None:
            return self._select_on_cluster(indices, n, served, version)
        # Tokenize and score the window batch by batch (score_stream); keep the
        # Docs only where the patterns or the strategy need them again.
        diverse = self.spec.needs_vectors
        docs: list[Doc] | None = [] if diverse or self.patterns is not None else None
        n_tokens = np.empty(len(indices))

        def stream() -> Iterator[Doc]:
            for j, doc in enumerate(self.iter_docs(indices)):
                n_tokens[j] = len(doc)
                if docs is not None:
                    docs.append(doc)
                yield doc

        scored = score_stream(self.scorer, served, stream())
        matches: list[tuple[int, str]] = []
        if self.patterns is not None:
            matches = self._pattern_picks(docs, n // 2 or 1)
        taken = {j for j, _ in matches}
        rest = np.array([j for j in range(len(indices)) if j not in taken], dtype=int)
        k = n - len(matches)
        chosen: list[tuple[int, str | None]] = []
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
                keys=indices[rest],
            )
            picked = self.strategy(cands, k, rng=self.rng)
            chosen.extend((int(rest[j]), None) for j in picked)
        chosen = self._half_of_each_batch(matches, chosen)
        return [
            self._task(
                int(indices[j]), scored.probs[j], scored.scores[j], version, label
            )
            for j, label in chosen
        ]

    def _select_on_cluster(
        self, indices: np.ndarray, n: int, served, version: int
    ) -> list[dict]:
        """``select`` with the window scored on the pool's Dask cluster: the
        same picks (see :mod:`spacy_al.scale.scoring`)."""
        chosen, probs, scores, tasks = pick_on_cluster(
            self.pool,
            served,
            version,
            indices,
            n,
            name=self._cluster_name,
            spec=ScoreSpec(
                measure=self.spec.measure,
                multilabel=not self.exclusive,
                strategy=self.spec.strategy,
                strategy_config=dict(self.strategy_config),
                labels=self.labels,
                label_counts=self.label_counts(),
                n=n,
            ),
            strategy=self.strategy,
            rng=self.rng,
            make_doc=self._model.make_doc,
        )
        return [
            self._task(int(i), probs[j], scores[j], version, None, source=tasks[j])
            for j, i in enumerate(chosen)
        ]

    def _window_costs(self, indices: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
        """``_costs`` from the docs' lengths: meta cost, else tokens (at least 1)."""
        costs = np.maximum(n_tokens, 1.0)
        for j, i in enumerate(indices):
            cost = self.pool.tasks[int(i)].get("meta", {}).get("cost")
            if cost is not None:
                costs[j] = float(cost)
        return costs

    def _pattern_picks(self, docs: Sequence[Doc], limit: int) -> list[tuple[int, str]]:
        """While a label has fewer than ``min_label_answers`` answers that say it
        is true, up to ``limit`` random texts of the window that a pattern marks
        for it (such labels take turns), as (position in ``docs``, label).

        Random matches, not the ones the model is least sure of: which matches
        a model that has hardly seen the label is unsure of is its guess, and
        those taught it less than a random sample of what the patterns find
        (BENCHMARKS.md, bench labels). The draw is ``pattern_seed``'s, a batch
        at a time.
        """
        counts = dict(zip(self.labels, self.label_counts(), strict=True))
        wanted = sorted(
            label
            for label in self.patterns.labels
            if counts.get(label, self.min_label_answers) < self.min_label_answers
        )
        if not wanted:
            return []
        queues: dict[str, list[int]] = {label: [] for label in wanted}
        # Match in a random order until every wanted label has enough: the same
        # draw as matching the whole window, at a fraction of the matching.
        for j in self.rng.permutation(len(docs)):
            for label in self.patterns.match(docs[j]):
                if label in queues:
                    queues[label].append(int(j))
            if all(len(rows) >= limit for rows in queues.values()):
                break
        return take_turns(queues, limit)

    def _half_of_each_batch(self, matches: list, picked: list) -> list:
        """The pattern matches as the first half of each ``batch_size`` of the
        ranking, the strategy's picks after them: a feed serves a long ranking
        (hundreds, for a queue) in order, and each batch an annotator answers
        should hold as many matches as a selection of one batch does."""
        half = max(self.batch_size // 2, 1)
        ranked: list = []
        while matches or picked:
            take, matches = matches[:half], matches[half:]
            fill = picked[: self.batch_size - len(take)]
            picked = picked[len(fill) :]
            ranked += take + fill
        return ranked

    def _task(
        self,
        i: int,
        probs: np.ndarray,
        score: float,
        version: int,
        label: str | None,
        *,
        source: dict | None = None,
    ) -> dict:
        if source is None:
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
        if self.asks_label:  # the model's probability for the label asked about
            meta["score"] = round(float(probs[self.labels.index(label)]), 4)
        else:  # a choice: its probability for every label (what it preselects)
            meta["scores"] = {
                name: round(float(p), 4)
                for name, p in zip(self.labels, probs, strict=True)
            }
        meta.update(uncertainty=round(float(score), 4), strategy=self.spec.name)
        if from_pattern:
            meta["pattern"] = True
        task = {
            "text": source["text"],
            "meta": meta,
            "_input_hash": source["_input_hash"],
            "_input_key": source["_input_key"],
            "_model_version": version,
        }
        if self.asks_label:
            task["label"] = label
        return set_hashes(task, overwrite=False)

    def _make_target(self, answers: Sequence[dict]) -> TextcatTarget | None:
        found = answers_to_textcat_targets(
            answers, self.labels, exclusive=self.exclusive
        )
        return found[0] if found else None
