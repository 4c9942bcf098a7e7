"""The active-learning loop for named-entity recognition.

``NERLoop`` is a ``spacy_al.protocols.Loop`` as ``spacy_al.textcat.loop.ActiveLoop``
is (``select``, ``answer``, ``undo``, ``pop_targets``, ``learn``,
``ready_to_learn``, ``n_pending`` ...), so the feed, the app and ``simulate``
drive it the same way; its ``task`` is ``"ner"``. It runs in one of three modes:

* ``teach`` (view ``ner``): one question per text: a single entity the model is
  unsure of (probability closest to 0.5 among the beam's candidates), or, while a
  label has few accepted answers, a span a pattern marks. Texts are ranked by the
  strategy's measure (``entity`` by default: the uncertainty of that candidate;
  or ``mnlp``, ``token-entropy`` ...).
* ``correct`` (view ``ner_manual``): the model's best analysis, to be fixed;
  while the model is untrained (:attr:`NERLoop.trained`), nothing (or the
  patterns' matches): an untrained model's entities are noise to delete.
* ``manual`` (view ``ner_manual``): spans from scratch, pre-highlighted by
  patterns if any.

The cold start of ``teach`` without patterns (``cold_start=True``): while the
model is untrained and some label has fewer than ``min_label_answers``
accepted entities, the texts are served in source order as ``ner_manual``
tasks (``meta["cold_start"]``) for the annotator to mark, instead of an
untrained model's guesses. This needs a feed that answers a task in the view it
was served in (its ``_view_id``).

Every task carries its tokens with the model's per-token entropy and entity
probability (when the model scored it), for shading in the app.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from spacy.tokens import Doc

from spacy_al.answers import check_answer_value
from spacy_al.corpus import get_task_hash, get_task_key, set_hashes
from spacy_al.errors import Errors
from spacy_al.loop import BaseLoop, StrategySpec
from spacy_al.ner.patterns import EntityPatterns
from spacy_al.ner.scores import (
    GREEDY_MEASURES,
    DocNERScores,
    label_presence,
    ner_doc_scores,
)
from spacy_al.ner.targets import (
    NERTarget,
    answers_to_ner_targets,
    reference_doc,
)
from spacy_al.pool import Pool
from spacy_al.protocols import Updater, YieldPoint
from spacy_al.store import Store
from spacy_al.strategies import Candidates

MODES = ("teach", "correct", "manual")
VIEW_IDS = {"teach": "ner", "correct": "ner_manual", "manual": "ner_manual"}

# (start, end, label, probability or None), token offsets, end exclusive.
Suggestion = tuple[int, int, str, float | None]


def _round(value: float) -> float:
    return round(float(value), 4)


class NERLoop(BaseLoop):
    """Pick texts (and, in ``teach``, single entities), take answers, learn."""

    task = "ner"

    def __init__(
        self,
        pool: Pool,
        updater: Updater,
        *,
        spec: StrategySpec,
        mode: str = "teach",
        store: Store | None = None,
        dataset: str | None = None,
        batch_size: int = 10,
        window: int | None = None,
        patterns: EntityPatterns | None = None,
        min_label_answers: int = 5,
        pretrained: bool = False,
        cold_start: bool = False,
        strategy_config: dict | None = None,
        seed: int = 0,
        doc_cache_size: int = 100_000,
        yield_point: YieldPoint | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(Errors.E538.format(mode=mode, valid=list(MODES)))
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
        self.mode = mode
        self.view_id = VIEW_IDS[mode]
        self.exclusive = False
        self.patterns = patterns
        self.min_label_answers = min_label_answers
        self.pretrained = pretrained
        self.cold_start = cold_start

    @property
    def trained(self) -> bool:
        """Whether the model has learnt anything: updated at least once, or
        built on a pipeline whose entity recognizer came trained
        (``pretrained``)."""
        return self.pretrained or self.version > 0

    def in_cold_start(self, version: int | None = None) -> bool:
        """Whether ``teach`` asks for whole analyses now (see the module doc)."""
        version = self.version if version is None else version
        return (
            self.mode == "teach"
            and self.cold_start
            and self.patterns is None
            and not self.pretrained
            and (
                version == 0
                or bool(len(self.labels))
                and int(self.label_counts().min()) < self.min_label_answers
            )
        )

    # --- selecting ------------------------------------------------------------

    def label_counts(self) -> np.ndarray:
        """Accepted entities per label so far (learnt or pending)."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        index = {label: i for i, label in enumerate(self.labels)}
        for target in list(self._targets.values()):
            for label in target.labels:
                counts[index[label]] += 1
        return counts

    def _wanted_labels(self) -> list[str]:
        if self.patterns is None:
            return []
        counts = dict(zip(self.labels, self.label_counts(), strict=True))
        return [
            label
            for label in self.patterns.labels
            if counts.get(label, 0) < self.min_label_answers
        ]

    def _candidates(
        self,
        indices: np.ndarray,
        docs: Sequence[Doc],
        scored: Sequence[DocNERScores] | None,
        rows: Sequence[int],
    ) -> Candidates:
        picked_docs = [docs[j] for j in rows]
        if scored is not None and self.spec.needs_scores:
            subset = [scored[j] for j in rows]
            scores = ner_doc_scores(subset, self.spec.measure)
            probs = label_presence(subset, self.labels)
        else:
            scores = np.zeros(len(rows))
            probs = None
        return Candidates(
            scores=scores,
            probs=probs,
            labels=self.labels,
            vectors=self._vectors(picked_docs) if self.spec.needs_vectors else None,
            costs=self._costs(indices[list(rows)], picked_docs),
            label_counts=self.label_counts(),
            multilabel=True,
            keys=indices[list(rows)],
        )

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` tasks, most informative first (see the module doc).

        ``exclude`` holds input keys not to serve (held by other annotators).
        In ``teach`` mode a text the model has no candidate entity for (and no
        pattern marks) can't be asked about, so fewer than ``n`` may come back.
        """
        indices = self.candidates(exclude=exclude)
        if not len(indices) or n <= 0:
            return []
        n = min(n, len(indices))
        served, version = self.updater.serving()
        if self.in_cold_start(version):
            picked = indices[:n]
            return [
                self._task(int(i), doc, None, [], version, None, False, cold=True)
                for i, doc in zip(picked, self.docs(picked), strict=True)
            ]
        trained = self.pretrained or version > 0
        docs = self.docs(indices)
        score_all = self.mode == "teach" or self.spec.needs_scores
        # greedy_mnlp reads a greedy parse, whatever the model's beam width.
        greedy = {"beam_width": 1} if self.spec.measure in GREEDY_MEASURES else {}
        scored = served.score(docs, **greedy) if score_all else None
        chosen: list[tuple[int, list[Suggestion], bool]] = []
        if self.mode == "teach":
            chosen = self._pattern_picks(docs, scored, n // 2 or 1)
        taken = {j for j, _, _ in chosen}
        rest = [j for j in range(len(indices)) if j not in taken]
        if self.mode == "teach":
            rest = [j for j in rest if scored[j].entities]
        k = min(n - len(chosen), len(rest))
        if k > 0:
            cands = self._candidates(indices, docs, scored, rest)
            picked = [rest[int(j)] for j in self.strategy(cands, k, rng=self.rng)]
            if scored is None and self.mode == "correct":
                fresh = served.score([docs[j] for j in picked], **greedy)
                scored = [None] * len(docs)
                for j, s in zip(picked, fresh, strict=True):
                    scored[j] = s
            for j in picked:
                chosen.append(
                    (
                        j,
                        self._suggest(
                            docs[j], scored[j] if scored else None, trained=trained
                        ),
                        False,
                    )
                )
        tasks = []
        for j, spans, from_pattern in chosen:
            s = scored[j] if scored is not None else None
            uncertainty = (
                float(ner_doc_scores([s], self.spec.measure)[0])
                if s is not None and self.spec.measure != "none"
                else None
            )
            tasks.append(
                self._task(
                    int(indices[j]),
                    docs[j],
                    s,
                    spans,
                    version,
                    uncertainty,
                    from_pattern,
                )
            )
            if not trained and self.mode != "manual":  # the app says so
                tasks[-1]["meta"]["untrained"] = True
        return tasks

    def _pattern_picks(
        self, docs: Sequence[Doc], scored: Sequence[DocNERScores], limit: int
    ) -> list[tuple[int, list[Suggestion], bool]]:
        """While a label has few accepted answers, spans a pattern marks for it,
        in the texts the model is least sure of first."""
        wanted = self._wanted_labels()
        if not wanted:
            return []
        order = np.argsort(-ner_doc_scores(scored, "mnlp"), kind="stable")
        picks: list[tuple[int, list[Suggestion], bool]] = []
        for j in order:
            matches = [m for m in self.patterns.spans(docs[j]) if m[2] in wanted]
            if matches:
                start, end, label = matches[0]
                prob = next(
                    (
                        p
                        for s, e, lab, p in scored[j].entities
                        if (s, e, lab) == matches[0]
                    ),
                    0.0,
                )
                picks.append((int(j), [(start, end, label, prob)], True))
                if len(picks) >= limit:
                    break
        return picks

    def _suggest(
        self, doc: Doc, scores: DocNERScores | None, *, trained: bool = True
    ) -> list[Suggestion]:
        """What a task shows: one uncertain entity (teach), the model's analysis
        (correct; the pattern matches while the model is untrained), or the
        pattern matches (manual)."""
        if self.mode == "teach":
            start, end, label, prob = min(
                scores.entities, key=lambda c: (abs(c[3] - 0.5), c[0], c[1], c[2])
            )
            return [(start, end, label, prob)]
        if self.mode == "correct" and trained:
            probs = {(s, e, lab): p for s, e, lab, p in scores.entities}
            return [
                (s, e, lab, probs.get((s, e, lab))) for s, e, lab in scores.predicted
            ]
        if self.patterns is None:
            return []
        return [(s, e, lab, None) for s, e, lab in self.patterns.spans(doc)]

    def _task(
        self,
        i: int,
        doc: Doc,
        scores: DocNERScores | None,
        spans: list[Suggestion],
        version: int,
        uncertainty: float | None,
        from_pattern: bool,
        *,
        cold: bool = False,
    ) -> dict:
        """The task of pool text ``i``; ``cold``: a cold-start task of
        ``teach``, answered in the ``ner_manual`` view."""
        view_id = "ner_manual" if cold else self.view_id
        teach = self.mode == "teach" and not cold
        source = self.pool.tasks[i]
        tokens = []
        for token in doc:
            entry: dict[str, Any] = {
                "text": token.text,
                "start": token.idx,
                "end": token.idx + len(token.text),
                "id": token.i,
                "ws": bool(token.whitespace_),
            }
            if scores is not None:
                entry["entropy"] = _round(scores.token_entropy[token.i])
                entry["p_entity"] = _round(1.0 - scores.token_marginals[token.i, 0])
            tokens.append(entry)
        out_spans = []
        for start, end, label, prob in spans:
            span: dict[str, Any] = {
                "start": doc[start].idx,
                "end": doc[end - 1].idx + len(doc[end - 1].text),
                "token_start": start,
                "token_end": end - 1,
                "label": label,
            }
            if prob is not None:
                span["score"] = _round(prob)
            out_spans.append(span)
        meta = dict(source.get("meta") or {})
        meta["strategy"] = self.spec.name
        if uncertainty is not None:
            meta["uncertainty"] = _round(uncertainty)
        if teach and out_spans and "score" in out_spans[0]:
            meta["score"] = out_spans[0]["score"]
        if from_pattern:
            meta["pattern"] = True
        if cold:
            meta["cold_start"] = True
        task: dict[str, Any] = {
            "text": source["text"],
            "tokens": tokens,
            "spans": out_spans,
            "meta": meta,
            "_input_hash": source["_input_hash"],
            "_input_key": source["_input_key"],
            "_model_version": version,
            "_view_id": view_id,
        }
        if teach:
            task["label"] = out_spans[0]["label"]
        # The question, not the model's numbers: the same span (teach) or the same
        # text (correct, manual) asked again has the same task key (and hash).
        asked = [
            {"start": s["start"], "end": s["end"], "label": s["label"]}
            for s in (out_spans if teach else [])
        ]
        question = {"spans": asked, "label": view_id}
        task["_task_hash"] = get_task_hash(
            {"_input_hash": source["_input_hash"], **question}
        )
        task["_task_key"] = get_task_key(
            {"_input_key": source["_input_key"], **question}
        )
        return task

    # --- answering ------------------------------------------------------------

    def _check_answers(self, answers: Sequence[dict]) -> None:
        """Every answer must become a valid reference Doc, or nothing is stored."""
        for eg in answers:
            check_answer_value(eg.get("answer"))
            eg.setdefault("_view_id", self.view_id)
            for target in answers_to_ner_targets([eg], self.labels):
                reference_doc(self._nlp, target, incorrect_spans_key=None)

    def _make_target(self, answers: Sequence[dict]) -> NERTarget | None:
        found = answers_to_ner_targets(answers, self.labels)
        return found[0] if found else None


def oracle_answer(task: dict, gold: Sequence[dict], *, mode: str) -> dict:
    """What a careful annotator answers, from the gold spans (character offsets).

    ``teach``: accept the suggested span if it is exactly a gold entity, else
    reject it. ``correct``/``manual`` (and a cold-start task of ``teach``): the
    gold spans, accepted.
    """
    eg = dict(task)
    if mode == "teach" and task.get("_view_id", "ner") == "ner":  # not a cold start
        gold_triples = {(s["start"], s["end"], s["label"]) for s in gold}
        span = task["spans"][0]
        eg["answer"] = (
            "accept"
            if (span["start"], span["end"], span["label"]) in gold_triples
            else "reject"
        )
        return eg
    eg["spans"] = [
        {"start": s["start"], "end": s["end"], "label": s["label"]} for s in gold
    ]
    eg["answer"] = "accept"
    return set_hashes(eg)
