"""Score documents with the serving model: probabilities and one uncertainty each.

A scorer takes what an updater serves (a ``protocols.Served``: one model, or a
committee's ``CommitteeModel``) and a batch of Docs, and returns the
probabilities (columns = labels) and a document-level informativeness score
(higher = more informative), using the measures in ``spacy_al.uncertainty``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from spacy.tokens import Doc
from thinc.api import set_dropout_rate

from spacy_al import uncertainty
from spacy_al.errors import Errors
from spacy_al.protocols import Served
from spacy_al.textcat.model import TextcatModel

#: Measures of a single model (the names of ``uncertainty.get_measure``).
SINGLE_MEASURES = ("least_confidence", "margin", "entropy")


@dataclass
class Scores:
    probs: np.ndarray  # (n, n_labels)
    scores: np.ndarray  # (n,) higher = more informative


class Scorer(Protocol):
    """Scores Docs with a served model. ``batchable``: each doc's score depends
    on that doc alone, so ``score_stream`` may score the docs batch by batch."""

    measure: str
    batchable: bool

    def __call__(self, served: Served, docs: Sequence[Doc]) -> Scores: ...


#: Docs scored per step by ``score_stream`` (``nlp.pipe``'s default for textcat).
STREAM_PREDICT_BATCH = 512


class ModelScorer:
    """Least confidence, margin or entropy of one model's probabilities."""

    #: Each doc's score depends on that doc alone, so docs can be scored in batches.
    batchable = True

    def __init__(self, measure: str = "margin", *, multilabel: bool = False) -> None:
        self.measure = measure
        self._measure = uncertainty.get_measure(measure, multilabel=multilabel)

    def __call__(self, served: Served, docs: Sequence[Doc]) -> Scores:
        probs = served.predict(docs)
        return Scores(probs, self._measure(probs) if len(docs) else np.zeros(0))


class CommitteeScorer:
    """Disagreement of a committee: vote entropy, consensus entropy or max KL.

    The committee is served as one model whose ``members`` are scored each;
    the probabilities reported are the committee's mean.
    """

    batchable = True

    def __init__(self, measure: str = "vote_entropy") -> None:
        if measure not in uncertainty.COMMITTEE_MEASURES:
            raise ValueError(
                Errors.E403.format(
                    measure=measure, valid=list(uncertainty.COMMITTEE_MEASURES)
                )
            )
        self.measure = measure
        self._measure = uncertainty.COMMITTEE_MEASURES[measure]

    def __call__(self, served: Served, docs: Sequence[Doc]) -> Scores:
        member_probs = np.stack([model.predict(docs) for model in served.members])
        if not len(docs):
            return Scores(member_probs.mean(0), np.zeros(0))
        return Scores(member_probs.mean(0), self._measure(member_probs))


class BALDScorer:
    """BALD from Monte-Carlo dropout: ``n_samples`` stochastic forward passes.

    Only architectures with dropout give samples that differ (``ensemble``; the
    ``bow`` architecture has no dropout nodes, so its BALD is 0 everywhere, and
    this scorer refuses it). The passes run on a private copy of the weights, so
    that the served model is never put into dropout mode under another reader.
    """

    measure = "bald"
    #: The dropout samples are drawn per call: all the docs in one.
    batchable = False

    def __init__(self, *, n_samples: int = 10, dropout: float = 0.2) -> None:
        self.n_samples = n_samples
        self.dropout = dropout

    def __call__(self, served: TextcatModel, docs: Sequence[Doc]) -> Scores:
        model = copy.deepcopy(served.thinc_model)
        if not any(node.attrs.get("dropout_rate") is not None for node in model.walk()):
            raise ValueError(Errors.E404)
        set_dropout_rate(model, self.dropout)
        docs = list(docs)
        if not docs:
            return Scores(np.zeros((0, len(served.labels))), np.zeros(0))
        samples = np.stack(
            [
                model.ops.to_numpy(model(docs, is_train=True)[0])
                for _ in range(self.n_samples)
            ]
        )
        if not served.exclusive:
            # Independent sigmoids: treat each label as its own binary distribution.
            samples = np.stack([samples, 1.0 - samples], axis=-1)
            n_samples, n, n_labels, _ = samples.shape
            flat = samples.transpose(0, 1, 2, 3).reshape(n_samples, n * n_labels, 2)
            per_label = uncertainty.bald(flat).reshape(n, n_labels)
            return Scores(samples[..., 0].mean(0), per_label.mean(1))
        return Scores(samples.mean(0), uncertainty.bald(samples))


def score_stream(
    scorer: Scorer,
    served: Served,
    docs: Iterable[Doc],
    *,
    predict_batch: int = STREAM_PREDICT_BATCH,
) -> Scores:
    """``scorer(served, docs)``, a batch of ``predict_batch`` docs at a time.

    Docs made on the fly (a generator) are then tokenized and scored batch by
    batch, as ``nlp.pipe`` does, instead of all being built first and kept alive
    together. The scores are those of one call on all the docs. A scorer whose
    scores depend on the whole set (``batchable`` False, e.g. ``BALDScorer``,
    which copies the model per call) gets all the docs at once.
    """
    if not scorer.batchable:
        return scorer(served, list(docs))
    stream = iter(docs)
    parts: list[Scores] = []
    while batch := list(itertools.islice(stream, predict_batch)):
        parts.append(scorer(served, batch))
    if not parts:
        return scorer(served, [])
    if len(parts) == 1:
        return parts[0]
    return Scores(
        np.concatenate([p.probs for p in parts]),
        np.concatenate([p.scores for p in parts]),
    )


def make_scorer(measure: str, *, multilabel: bool = False) -> Scorer:
    """The scorer for a measure name (single model, committee, or ``bald``)."""
    if measure == "bald":
        return BALDScorer()
    if measure in uncertainty.COMMITTEE_MEASURES:
        return CommitteeScorer(measure)
    return ModelScorer(measure, multilabel=multilabel)
