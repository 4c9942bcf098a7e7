"""NER uncertainty from the beam (or greedy) parser: token marginals, per-doc measures."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc
from spacy.util import minibatch

from spacy_al.errors import Errors
from spacy_al.protocols import YieldPoint

OUT = "O"
MEASURES = {
    "max_token_entropy": "max_token_entropy",
    "token-entropy": "max_token_entropy",
    "mean_token_entropy": "mean_token_entropy",
    "sequence_least_confidence": "sequence_least_confidence",
    "mnlp": "mnlp",
}

Entity = tuple[int, int, str, float]
#: Docs scored per step (per call of the ner's model).
PREDICT_BATCH = 256


@dataclass(frozen=True, eq=False)
class DocNERScores:
    """NER uncertainty for one Doc. Token arrays are indexed like the Doc's tokens.

    labels: column names of ``token_marginals``; column 0 is "O" (no entity).
    token_marginals: (n_tokens, 1 + n_labels), rows sum to 1. The probability
        that the token is inside an entity of each label (B/I/L/U merged). Beam:
        exact under the beam. Greedy: the distribution of the one step that
        read the token, given the greedy history (so inside an entity the label
        is nearly certain); an approximation.
    token_entropy: (n_tokens,). Beam: entropy of the marginals row. Greedy:
        entropy of the softmax over the valid transitions at the token's step
        (boundary decisions count, too).
    entities: candidate entities (start, end, label, probability), token
        offsets, sorted by position. Beam: every entity of any analysis in the
        beam, with the summed probability of the analyses containing it.
        Greedy: the predicted entities, with the product of the probabilities
        of the transitions that built them.
    predicted: the best analysis (start, end, label); what ``nlp`` would
        annotate.
    sequence_least_confidence: 1 - p(best analysis).
    mnlp: -log p(best analysis) / n_tokens (the maximum normalized log
        probability of Shen et al. 2017, negated so that higher is more
        uncertain). Beam: p is the best analysis' probability within the beam.
        Greedy: p is the product of the chosen transitions' probabilities.
    method: "beam" or "greedy".

    An empty Doc has empty arrays and every score 0.
    """

    labels: tuple[str, ...]
    token_marginals: np.ndarray
    token_entropy: np.ndarray
    entities: list[Entity]
    predicted: list[tuple[int, int, str]]
    max_token_entropy: float
    mean_token_entropy: float
    sequence_least_confidence: float
    mnlp: float
    method: str

    @property
    def n_tokens(self) -> int:
        return len(self.token_entropy)


def _entropy(probs: np.ndarray) -> np.ndarray:
    logs = np.log(np.where(probs > 0, probs, 1.0))
    return np.clip(-(probs * logs).sum(axis=-1), 0.0, None) + 0.0


def _check_ner(ner: object) -> EntityRecognizer:
    if not isinstance(ner, EntityRecognizer):
        name = getattr(ner, "name", type(ner).__name__)
        raise ValueError(Errors.E520.format(name=name, cls=type(ner).__name__))
    if ner.moves.n_moves == 0 or not ner.labels:
        raise ValueError(Errors.E521.format(name=ner.name))
    return ner


def _check_docs(ner: EntityRecognizer, docs: Sequence[Doc]) -> None:
    if not any(isinstance(node, Tok2VecListener) for node in ner.model.walk()):
        return
    filled = [doc for doc in docs if len(doc)]
    n_missing = sum(1 for doc in filled if doc.tensor.size == 0)
    if n_missing:
        raise ValueError(
            Errors.E525.format(name=ner.name, n_missing=n_missing, n_docs=len(filled))
        )


def _scores(
    labels: tuple[str, ...],
    marginals: np.ndarray,
    token_entropy: np.ndarray,
    entities: list[Entity],
    predicted: list[tuple[int, int, str]],
    log_p_best: float,
    method: str,
) -> DocNERScores:
    n = len(token_entropy)
    return DocNERScores(
        labels=labels,
        token_marginals=marginals,
        token_entropy=token_entropy,
        entities=entities,
        predicted=predicted,
        max_token_entropy=float(token_entropy.max()) if n else 0.0,
        mean_token_entropy=float(token_entropy.mean()) if n else 0.0,
        sequence_least_confidence=max(0.0, -math.expm1(log_p_best)) + 0.0 if n else 0.0,
        mnlp=max(0.0, -log_p_best / n) + 0.0 if n else 0.0,
        method=method,
    )


def _empty(labels: tuple[str, ...], method: str) -> DocNERScores:
    return _scores(labels, np.zeros((0, len(labels))), np.zeros(0), [], [], 0.0, method)


def beam_ner_scores(
    ner: EntityRecognizer,
    docs: Sequence[Doc],
    *,
    beam_width: int = 4,
    beam_density: float = 1e-4,
    predict_batch: int = PREDICT_BATCH,
    set_annotations: bool = False,
    yield_point: YieldPoint | None = None,
) -> list[DocNERScores]:
    """Score ``docs`` with a beam search of ``ner`` (a ``ner`` or ``beam_ner``).

    The docs must have been through the components before the ner (a ner that
    listens to a tok2vec otherwise sees zero vectors; this raises instead), and
    not through the ner itself: entities already on a Doc are kept fixed by the
    parser, as from an entity_ruler, so their tokens would score as certain.
    :func:`score_docs` takes care of both, from texts or Docs. With
    ``set_annotations`` the best analysis is written to ``doc.ents``, as
    ``nlp`` would do. ``yield_point`` is called before each batch of
    ``predict_batch`` docs.
    """
    ner = _check_ner(ner)
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int)
        or beam_width < 2
    ):
        raise ValueError(Errors.E522.format(beam_width=beam_width))
    if not 0.0 <= beam_density < 1.0:
        raise ValueError(Errors.E526.format(beam_density=beam_density))
    docs = list(docs)
    _check_docs(ner, docs)
    labels = (OUT, *ner.labels)
    column = {label: i for i, label in enumerate(labels)}
    results: list[DocNERScores] = []
    for batch in minibatch(docs, size=predict_batch):
        if yield_point is not None:
            yield_point()  # e.g. an annotator's request goes first
        filled = [doc for doc in batch if len(doc)]
        beams = (
            ner.beam_parse(filled, beam_width=beam_width, beam_density=beam_density)
            if filled
            else []
        )
        parsed = iter(beams)
        for doc in batch:
            if not len(doc):
                results.append(_empty(labels, "beam"))
                continue
            parses = ner.moves.get_beam_parses(next(parsed))
            probs: dict[tuple[int, int, str], float] = defaultdict(float)
            for prob, ents in parses:
                for ent in ents:
                    probs[ent] += prob
            marginals = np.zeros((len(doc), len(labels)))
            for (start, end, label), prob in probs.items():
                marginals[start:end, column[label]] += prob
            marginals[:, 0] = np.clip(1.0 - marginals[:, 1:].sum(axis=1), 0.0, None)
            marginals /= marginals.sum(axis=1, keepdims=True)
            p_best, best = max(parses, key=lambda parse: parse[0])
            results.append(
                _scores(
                    labels,
                    marginals,
                    _entropy(marginals),
                    sorted(
                        (s, e, label, float(p)) for (s, e, label), p in probs.items()
                    ),
                    sorted(best),
                    math.log(max(p_best, np.finfo(float).tiny)),
                    "beam",
                )
            )
        if set_annotations and filled:
            ner.set_annotations(filled, beams)
    return results


def _decode(moves: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities from one BILUO move name per token."""
    ents = []
    start = 0
    for i, move in enumerate(moves):
        action, _, label = move.partition("-")
        if action == "B":
            start = i
        elif action == "L":
            ents.append((start, i + 1, label))
        elif action == "U" and label:
            ents.append((i, i + 1, label))
    return ents


def greedy_scores(
    ner: EntityRecognizer,
    docs: Sequence[Doc],
    *,
    predict_batch: int = PREDICT_BATCH,
    set_annotations: bool = False,
    yield_point: YieldPoint | None = None,
) -> list[DocNERScores]:
    """Score ``docs`` by replaying the greedy parse of ``ner``.

    At each step the scores of the valid transitions are softmaxed; the step's
    entropy goes to the token at the head of the buffer (the token the step
    reads; the maximum if several steps read one token). The parse is the same
    as ``ner.predict``. Token marginals merge the step distribution by label
    (see :class:`DocNERScores`). The docs must have been through the
    components before the ner and not the ner itself, as for
    :func:`beam_ner_scores` (``yield_point`` too).
    """
    ner = _check_ner(ner)
    docs = list(docs)
    _check_docs(ner, docs)
    labels = (OUT, *ner.labels)
    names = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
    columns = np.array(
        [
            labels.index(name[2:])
            if name[:2] in ("B-", "I-", "L-", "U-") and name[2:]
            else 0
            for name in names
        ]
    )
    results: list[DocNERScores] = []
    for batch in minibatch(docs, size=predict_batch):
        if yield_point is not None:
            yield_point()  # e.g. an annotator's request goes first
        filled = [doc for doc in batch if len(doc)]
        states = ner.moves.init_batch(filled)
        row_of = {id(state): i for i, state in enumerate(states)}
        entropy = [np.full(len(doc), -1.0) for doc in filled]
        marginals = [np.zeros((len(doc), len(labels))) for doc in filled]
        chosen = [[OUT] * len(doc) for doc in filled]
        log_p = [np.zeros(len(doc)) for doc in filled]
        todo = [state for state in states if not state.is_final()]
        if todo:
            step = ner.model.predict(filled)
            while todo:
                scores = step.predict(todo)
                for state, row in zip(todo, scores, strict=True):
                    i, token = row_of[id(state)], state.B(0)
                    valid = np.fromiter(
                        (ner.moves.is_valid(state, name) for name in names),
                        dtype=bool,
                        count=len(names),
                    )
                    logits = np.where(valid, row.astype(float), -np.inf)
                    guess = int(np.argmax(logits))
                    log_probs = logits - logits[guess]
                    log_probs -= np.log(np.exp(log_probs).sum())
                    probs = np.exp(log_probs)
                    h = float(_entropy(probs))
                    if h > entropy[i][token]:
                        entropy[i][token] = h
                        marginals[i][token] = np.bincount(
                            columns, weights=probs, minlength=len(labels)
                        )
                    chosen[i][token] = names[guess]
                    log_p[i][token] += log_probs[guess]
                todo = ner.transition_states(todo, scores)
            step.clear_memory()
        filled_scores = iter(range(len(filled)))
        for doc in batch:
            if not len(doc):
                results.append(_empty(labels, "greedy"))
                continue
            i = next(filled_scores)
            predicted = _decode(chosen[i])
            entities = [
                (s, e, label, float(np.exp(log_p[i][s:e].sum())))
                for s, e, label in predicted
            ]
            results.append(
                _scores(
                    labels,
                    marginals[i],
                    np.clip(entropy[i], 0.0, None),
                    entities,
                    predicted,
                    float(log_p[i].sum()),
                    "greedy",
                )
            )
        if set_annotations and filled:
            ner.set_annotations(filled, states)
    return results


def score_docs(
    nlp: Language,
    docs: Iterable[str | Doc],
    *,
    component: str = "ner",
    beam_width: int = 4,
    beam_density: float = 1e-4,
    predict_batch: int = PREDICT_BATCH,
    yield_point: YieldPoint | None = None,
) -> list[DocNERScores]:
    """Score texts or unprocessed Docs with the ner component ``component``.

    The components before it (e.g. a shared tok2vec) run first, batch by batch;
    the ner itself only scores and annotates nothing. A Doc is scored on a fresh
    copy of its tokens, so annotations it already carries (say, the ner's own
    entities from ``nlp.pipe``, which would pin those tokens and score them as
    certain) don't count; only the components before the ner annotate it.
    ``beam_width`` >= 2 gives :func:`beam_ner_scores`; 1 gives
    :func:`greedy_scores`. ``yield_point`` is called before each batch of
    ``predict_batch`` docs (between the steps where a caller may give way).
    """
    if component not in nlp.pipe_names:
        raise ValueError(
            Errors.E523.format(name=component, names=", ".join(nlp.pipe_names))
        )
    ner = _check_ner(nlp.get_pipe(component))
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int)
        or beam_width < 1
    ):
        raise ValueError(Errors.E522.format(beam_width=beam_width))
    preceding = nlp.pipeline[: nlp.pipe_names.index(component)]
    results: list[DocNERScores] = []
    for batch in minibatch(docs, size=predict_batch):
        if yield_point is not None:
            yield_point()  # e.g. an annotator's request goes first
        batch = [
            nlp.make_doc(d)
            if isinstance(d, str)
            else Doc(
                nlp.vocab,
                words=[t.text for t in d],
                spaces=[bool(t.whitespace_) for t in d],
            )
            for d in batch
        ]
        for _, proc in preceding:
            if hasattr(proc, "pipe"):
                batch = list(proc.pipe(batch, batch_size=predict_batch))
            else:
                batch = [proc(doc) for doc in batch]
        if beam_width == 1:
            results.extend(
                greedy_scores(
                    ner, batch, predict_batch=predict_batch, yield_point=yield_point
                )
            )
        else:
            results.extend(
                beam_ner_scores(
                    ner,
                    batch,
                    beam_width=beam_width,
                    beam_density=beam_density,
                    predict_batch=predict_batch,
                    yield_point=yield_point,
                )
            )
    return results


def doc_scores(scores: Sequence[DocNERScores], measure: str) -> np.ndarray:
    """One uncertainty per document (higher = more informative) for ranking.

    ``measure``: "max_token_entropy" (alias "token-entropy"),
    "mean_token_entropy", "sequence_least_confidence" or "mnlp".
    """
    if measure not in MEASURES:
        raise ValueError(
            Errors.E524.format(measure=measure, measures=", ".join(MEASURES))
        )
    attr = MEASURES[measure]
    return np.array([getattr(s, attr) for s in scores], dtype=float)


def entity_candidates(
    scores: Sequence[DocNERScores], *, min_prob: float = 0.0
) -> list[tuple[int, int, int, str, float]]:
    """Candidate entities to ask about, as (doc index, start, end, label, prob)
    with token offsets, most uncertain (probability closest to 0.5) first.

    Candidates below ``min_prob`` are left out.
    """
    if not 0.0 <= min_prob <= 1.0:
        raise ValueError(Errors.E527.format(min_prob=min_prob))
    found = [
        (i, start, end, label, prob)
        for i, doc_scores_ in enumerate(scores)
        for start, end, label, prob in doc_scores_.entities
        if prob >= min_prob
    ]
    found.sort(key=lambda c: (abs(c[4] - 0.5), c[0], c[1], c[2], c[3]))
    return found


#: Measures read from a greedy parse whatever the model's beam width: the
#: per-step probabilities are locally normalised, so the best parse's -log p
#: per token is a true MNLP (a beam's are a softmax over at most its width of
#: finished analyses, so p >= 1/width and -log p / n favours short texts).
GREEDY_MEASURES = ("greedy_mnlp",)

#: Document measures of the NER strategies: ``MEASURES``, plus ``entity``
#: (ner.teach's one uncertain entity), ``any_entity`` (the token most unsure of
#: being inside any entity) and ``greedy_mnlp``.
NER_MEASURES = (*MEASURES, "entity", "any_entity", *GREEDY_MEASURES)

#: The NER measure strategies use when none is named (``diverse``, ``cost``)
#: and what ``ner.correct``, ``ner.teach`` and ``simulate ner`` rank by by
#: default: the one that needed the fewest annotated tokens to reach 90% of
#: the full-data model's entity F1 on WNUT-17's dev file (median over 10
#: seeds, the rule written down before the runs; BENCHMARKS.md, issue #12).
DEFAULT_NER_MEASURE = "sequence_least_confidence"
#: What the NER recipes and ``simulate ner`` pick texts by when no
#: ``--strategy`` is given: the dev winner (random, if no measure beat it).
DEFAULT_NER_STRATEGY = DEFAULT_NER_MEASURE


def entity_uncertainty(scores: DocNERScores) -> float:
    """How unsure the model is of the doc's most uncertain candidate entity.

    ``1 - 2 |p - 0.5|`` for the candidate whose probability is closest to 0.5:
    1 for a coin flip, 0 for a doc with no candidate or only certain ones. This
    is what ``ner.teach`` asks about: that one entity, accept or reject.
    """
    if not scores.entities:
        return 0.0
    return max(1.0 - 2.0 * abs(p - 0.5) for *_, p in scores.entities)


def any_entity_uncertainty(scores: DocNERScores) -> float:
    """How unsure the model is whether some token is inside an entity at all:
    ``1 - |1 - 2 p|`` for the token whose probability ``p`` of being inside
    any entity (1 - its "O" marginal) is closest to 0.5. Unlike the sequence
    measures it ignores which label and which boundaries: it looks for the
    entities the model may be missing."""
    if not scores.n_tokens:
        return 0.0
    p_inside = 1.0 - scores.token_marginals[:, 0]
    return float(np.max(1.0 - np.abs(1.0 - 2.0 * p_inside)))


def ner_doc_scores(scores: Sequence[DocNERScores], measure: str) -> np.ndarray:
    """One uncertainty per doc (higher = more informative), by NER measure name.

    ``greedy_mnlp`` expects greedy scores (``score_docs(..., beam_width=1)``);
    the NER loop scores that way for it."""
    if measure == "entity":
        return np.array([entity_uncertainty(s) for s in scores], dtype=float)
    if measure == "any_entity":
        return np.array([any_entity_uncertainty(s) for s in scores], dtype=float)
    if measure in GREEDY_MEASURES:
        return doc_scores(scores, "mnlp")
    return doc_scores(scores, measure)


def label_presence(scores: Sequence[DocNERScores], labels: Sequence[str]) -> np.ndarray:
    """Per doc and label, the highest probability of a token being in such an
    entity: shape (n_docs, n_labels), columns in ``labels`` order (for the
    class-balanced strategy)."""
    out = np.zeros((len(scores), len(labels)))
    for i, s in enumerate(scores):
        if s.n_tokens:
            columns = [s.labels.index(label) for label in labels]
            out[i] = s.token_marginals[:, columns].max(axis=0)
    return out
