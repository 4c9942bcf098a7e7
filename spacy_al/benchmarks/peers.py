"""Other active-learning libraries, replaying gold labels as ``simulate`` does.

A peer run starts from the same seed set (:func:`seed_indices`, the indices
``spacy_al.simulate.run_one`` draws), asks ``batch_size`` questions per round
until ``budget`` labels (seed set included), refits on every label after each
round, and scores on the evaluation set with the same metric,
:func:`spacy_al.metrics.textcat_score`. The result is a learning curve
``[(n_labels, score), ...]`` whose points fall on the same label counts as ours.

The peers:

- ``small-text-entropy``, ``small-text-breaking-ties``: small-text's
  ``PoolBasedActiveLearner`` with ``PredictionEntropy`` / ``BreakingTies`` and its
  default scikit-learn classifier, ``ConfidenceEnhancedLinearSVC`` (a LinearSVC
  whose "probabilities" are its decision scores through a sigmoid, L1-normalised;
  their argmax is the SVM's prediction, so the metric scores the SVM's own
  decisions). It is retrained from scratch after every round. PredictionEntropy
  scores all rows in one ``scipy.stats.entropy`` call (small-text calls it once
  per row: the same scores, seconds per round slower).
- ``small-text-random``: small-text's ``RandomSampling`` with the same
  classifier, to tell small-text's model from its strategy. Where small-text
  draws from numpy's global generator, it asks the pool in the order the run's
  seed decides (:func:`spacy_al.strategies.pool_order`), as ``simulate``'s
  random does with the same seed: the random baselines of every system ask the
  same texts, so their difference is the learners' (common random numbers).
- ``modal-uncertainty``, ``modal-margin``: modAL's ``uncertainty_sampling`` and
  ``margin_sampling`` on a scikit-learn ``LogisticRegression`` (default settings,
  ``max_iter=1000``) that we refit on all labels each round (modAL's
  ``ActiveLearner.teach`` doesn't run with scikit-learn >= 1.6, its query
  functions do).
- ``sklearn-random``: the same LogisticRegression with random questions (in the
  same order), to tell the model's strength from the strategy's.

In a binary task entropy, breaking ties, least confidence and margin rank the
pool alike, so each library's two curves coincide there.

Features are tf-idf (scikit-learn's ``TfidfVectorizer`` defaults) fit on the
texts of the whole pool: this uses the unlabelled pool text, as is standard in
pool-based active learning, but never its labels. Both models see the labelled
set through a thin adapter that keeps probability columns in ``labels`` order
(zeros for labels not seen yet) and, while the labelled set holds one class
only, predicts that class with probability 1 (neither LinearSVC nor
LogisticRegression fits on one class). LogisticRegression is fit on the feature
columns the labelled rows use, which gives the same model ~10x faster.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.stats import entropy
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from spacy_al.errors import Errors
from spacy_al.metrics import textcat_score
from spacy_al.strategies import pool_order

#: A learning curve: (labels so far, score on the evaluation set) per round.
Curve = list[tuple[int, float]]


@dataclass(frozen=True)
class Peer:
    """A peer system: the package it needs, its model and its query strategy."""

    name: str
    module: str  # what must import for the peer to run
    pip_name: str
    model: str  # "linear-svc" or "logistic-regression"
    strategy: str
    description: str


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            "small-text-entropy",
            "small_text",
            "small-text",
            "linear-svc",
            "PredictionEntropy",
            "small-text PredictionEntropy, ConfidenceEnhancedLinearSVC on tf-idf",
        ),
        Peer(
            "small-text-breaking-ties",
            "small_text",
            "small-text",
            "linear-svc",
            "BreakingTies",
            "small-text BreakingTies, ConfidenceEnhancedLinearSVC on tf-idf",
        ),
        Peer(
            "small-text-random",
            "small_text",
            "small-text",
            "linear-svc",
            "RandomSampling",
            "small-text RandomSampling, ConfidenceEnhancedLinearSVC on tf-idf",
        ),
        Peer(
            "modal-uncertainty",
            "modAL.uncertainty",
            "modAL-python",
            "logistic-regression",
            "uncertainty_sampling",
            "modAL uncertainty_sampling, LogisticRegression on tf-idf",
        ),
        Peer(
            "modal-margin",
            "modAL.uncertainty",
            "modAL-python",
            "logistic-regression",
            "margin_sampling",
            "modAL margin_sampling, LogisticRegression on tf-idf",
        ),
        Peer(
            "sklearn-random",
            "sklearn",
            "scikit-learn",
            "logistic-regression",
            "random",
            "random questions, LogisticRegression on tf-idf",
        ),
    )
}


def _import_error(peer: Peer) -> str | None:
    try:
        importlib.import_module(peer.module)
    except ImportError as e:
        return Errors.E701.format(
            name=peer.name, module=peer.module, err=e, pip_name=peer.pip_name
        )
    return None


def available_peers() -> dict[str, str | None]:
    """Every peer's name, mapped to ``None`` if it can run, else why it can't."""
    return {name: _import_error(peer) for name, peer in PEERS.items()}


def get_peer(name: str) -> Peer:
    """The peer called ``name``; ``ImportError`` if its package is missing."""
    if name not in PEERS:
        raise ValueError(Errors.E700.format(name=name, names=", ".join(PEERS)))
    peer = PEERS[name]
    reason = _import_error(peer)
    if reason is not None:
        raise ImportError(reason)
    return peer


def seed_indices(n_pool: int, seed_size: int, seed: int) -> np.ndarray:
    """The seed set ``simulate`` starts seed ``seed`` from: positions in the pool."""
    rng = np.random.default_rng(seed)
    return rng.choice(n_pool, size=min(seed_size, n_pool), replace=False)


class LabelSpace(ClassifierMixin, BaseEstimator):
    """An estimator whose probability columns are all ``n_classes`` labels.

    Labels are integers ``0..n_classes-1``. Columns of labels not in the
    training set are 0; a training set with one class predicts it with
    probability 1. With ``trim_features``, the inner estimator sees only the
    feature columns that are non-zero in the training rows: under an L2 penalty
    every other column gets weight 0 at the optimum, so the model is the same
    (to the solver's tolerance), and lbfgs on tf-idf runs ~10x faster.
    """

    def __init__(
        self, estimator: BaseEstimator, n_classes: int, *, trim_features: bool = False
    ) -> None:
        self.estimator = estimator
        self.n_classes = n_classes
        self.trim_features = trim_features

    def fit(self, X, y, sample_weight=None) -> LabelSpace:
        y = np.asarray(y, dtype=int)
        self.classes_ = np.arange(self.n_classes)
        seen = np.unique(y)
        self.constant_ = int(seen[0]) if len(seen) == 1 else None
        self.estimator_ = None
        self.columns_ = None
        if self.constant_ is None:
            columns = np.unique(X.tocsr().indices) if self.trim_features else []
            if len(columns):  # no columns: the rows are all zero, keep them all
                self.columns_ = columns
                X = X[:, columns]
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
            self.estimator_ = clone(self.estimator).fit(X, y, **kwargs)
        return self

    def predict_proba(self, X) -> np.ndarray:
        probs = np.zeros((X.shape[0], self.n_classes))
        if self.estimator_ is None:
            probs[:, self.constant_] = 1.0
        else:
            X = X if self.columns_ is None else X[:, self.columns_]
            probs[:, self.estimator_.classes_] = self.estimator_.predict_proba(X)
        return probs

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)


def _base_estimator(model: str, seed: int) -> BaseEstimator:
    if model == "linear-svc":
        from small_text import ConfidenceEnhancedLinearSVC

        # small-text's default classifier; random_state only makes runs repeatable
        return ConfidenceEnhancedLinearSVC(linearsvc_kwargs={"random_state": seed})
    return LogisticRegression(max_iter=1000)


@dataclass
class _Data:
    X: object  # sparse tf-idf of the pool
    y: np.ndarray
    X_eval: object
    eval_gold: list[list[str]]
    labels: list[str]

    @classmethod
    def build(cls, texts, gold, eval_texts, eval_gold, labels) -> _Data:
        labels = list(labels)
        y = _encode(gold, labels, texts, what="the pool")
        _encode(eval_gold, labels, eval_texts, what="the evaluation set")
        vectorizer = TfidfVectorizer().fit(texts)  # unlabelled pool text only
        return cls(
            vectorizer.transform(texts),
            y,
            vectorizer.transform(eval_texts),
            [list(g) for g in eval_gold],
            labels,
        )

    def score(self, probs: np.ndarray, positive_label: str | None) -> float:
        return textcat_score(
            probs,
            self.eval_gold,
            self.labels,
            exclusive=True,
            positive_label=positive_label,
        )


def _encode(
    gold: Sequence[Sequence[str]], labels: list[str], texts: Sequence[str], *, what: str
) -> np.ndarray:
    if len(gold) != len(texts):
        raise ValueError(
            Errors.E706.format(what=what, n_texts=len(texts), n_gold=len(gold))
        )
    y = np.empty(len(gold), dtype=int)
    for i, g in enumerate(gold):
        if len(g) != 1:
            raise ValueError(Errors.E702.format(i=i, what=what, n=len(g), gold=list(g)))
        if g[0] not in labels:
            raise ValueError(
                Errors.E703.format(i=i, what=what, label=g[0], labels=labels)
            )
        y[i] = labels.index(g[0])
    return y


def _check_seed(indices: Sequence[int], n: int) -> np.ndarray:
    idx = np.asarray(indices)
    ok = (
        idx.ndim == 1
        and len(idx) > 0
        and np.issubdtype(idx.dtype, np.integer)
        and len(np.unique(idx)) == len(idx)
        and idx.min() >= 0
        and idx.max() < n
    )
    if not ok:
        snippet = repr(list(idx.ravel()[:10])) + (" ..." if idx.size > 10 else "")
        raise ValueError(Errors.E704.format(n=n, snippet=snippet))
    return idx.astype(int)


class _Learner(Protocol):
    """Fits on the labelled set and picks the next pool positions to ask about."""

    def start(self, labelled: np.ndarray) -> None: ...

    def query(self, n: int) -> np.ndarray: ...

    def teach(self, indices: np.ndarray) -> None: ...

    def predict_proba(self, X) -> np.ndarray: ...


def _vectorised(prediction_entropy: type) -> type:
    """small-text's PredictionEntropy, scoring all rows in one call.

    The scores are the same (``scipy.stats.entropy`` of each row); small-text's
    row-by-row ``apply_along_axis`` costs seconds per round on a 5k-text pool.
    """

    class PredictionEntropy(prediction_entropy):
        def get_confidence(
            self, clf, dataset, _indices_unlabeled, _indices_labeled, _y
        ):
            return entropy(clf.predict_proba(dataset), axis=1)

    return PredictionEntropy


def _in_pool_order(positions: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` of the pool ``positions`` in the order ``seed`` decides:
    the texts ``simulate``'s random asks with the same seed (common random
    numbers: our random and the peers' random learn from the same questions)."""
    positions = np.asarray(positions, dtype=np.int64)
    return positions[np.argsort(pool_order(positions, seed), kind="stable")[:n]]


def _seeded(random_sampling: type, seed: int) -> type:
    """small-text's RandomSampling asking the pool in ``seed``'s random order."""

    class RandomSampling(random_sampling):
        def query(self, clf, _dataset, indices_unlabeled, indices_labeled, y, n=10):
            self._validate_query_input(indices_unlabeled, n)
            return _in_pool_order(indices_unlabeled, n, seed)

    return RandomSampling


class _SmallTextLearner:
    def __init__(self, data: _Data, strategy: str, seed: int) -> None:
        from small_text import (
            BreakingTies,
            PoolBasedActiveLearner,
            PredictionEntropy,
            RandomSampling,
            SklearnClassifierFactory,
            SklearnDataset,
        )
        from small_text.base import LABEL_UNLABELED

        self.data = data
        n_classes = len(data.labels)
        factory = SklearnClassifierFactory(
            LabelSpace(_base_estimator("linear-svc", seed), n_classes), n_classes
        )
        query_strategy = {
            "PredictionEntropy": _vectorised(PredictionEntropy),
            "BreakingTies": BreakingTies,
            "RandomSampling": _seeded(RandomSampling, seed),
        }
        # The pool's labels stay hidden: the learner only gets them via update().
        pool = SklearnDataset(
            data.X,
            np.full(data.X.shape[0], LABEL_UNLABELED),
            target_labels=np.arange(n_classes),
        )
        self.learner = PoolBasedActiveLearner(factory, query_strategy[strategy](), pool)

    def start(self, labelled: np.ndarray) -> None:
        self.learner.initialize_data(labelled, self.data.y[labelled])

    def query(self, n: int) -> np.ndarray:
        return np.asarray(self.learner.query(num_samples=n), dtype=int)

    def teach(self, indices: np.ndarray) -> None:
        self.learner.update(self.data.y[indices])

    def predict_proba(self, X) -> np.ndarray:
        return self.learner.classifier.model.predict_proba(X)


#: Positions (into the rows passed) of the ``n`` rows to ask about, given the
#: rows' positions in the pool and the run's seed.
QueryFn = Callable[[BaseEstimator, object, int, np.ndarray, int], np.ndarray]


class _RefitLearner:
    """A scikit-learn model refit on all labels each round; a query function."""

    def __init__(self, data: _Data, query: QueryFn, seed: int) -> None:
        self.data = data
        self.query_fn = query
        self.seed = seed
        self.model = LabelSpace(
            _base_estimator("logistic-regression", seed),
            len(data.labels),
            trim_features=True,
        )
        self.labelled = np.zeros(data.X.shape[0], dtype=bool)

    def _fit(self) -> None:
        rows = np.flatnonzero(self.labelled)
        self.model.fit(self.data.X[rows], self.data.y[rows])

    def start(self, labelled: np.ndarray) -> None:
        self.labelled[labelled] = True
        self._fit()

    def query(self, n: int) -> np.ndarray:
        free = np.flatnonzero(~self.labelled)
        picked = self.query_fn(self.model, self.data.X[free], n, free, self.seed)
        return free[np.asarray(picked)]

    def teach(self, indices: np.ndarray) -> None:
        self.labelled[indices] = True
        self._fit()

    def predict_proba(self, X) -> np.ndarray:
        return self.model.predict_proba(X)


def _modal_query(strategy: str) -> QueryFn:
    from modAL import uncertainty

    sampling = getattr(uncertainty, strategy)
    return lambda model, X, n, positions, seed: sampling(model, X, n_instances=n)[0]


def _random_query(
    model: BaseEstimator, X, n: int, positions: np.ndarray, seed: int
) -> np.ndarray:
    return np.argsort(pool_order(positions, seed), kind="stable")[:n]


def _learner(peer: Peer, data: _Data, seed: int) -> _Learner:
    if peer.module == "small_text":
        return _SmallTextLearner(data, peer.strategy, seed)
    if peer.strategy == "random":
        return _RefitLearner(data, _random_query, seed)
    return _RefitLearner(data, _modal_query(peer.strategy), seed)


def run_peer(
    name: str,
    texts: Sequence[str],
    gold_labels: Sequence[Sequence[str]],
    eval_texts: Sequence[str],
    eval_gold: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    seed_indices: Sequence[int],
    batch_size: int,
    budget: int,
    positive_label: str | None = None,
    seed: int = 0,
) -> Curve:
    """One learning curve of a peer, from the seed set to ``budget`` labels.

    ``texts`` is the pool (deduplicated, in ``simulate``'s order) and
    ``gold_labels`` one label per text; ``seed_indices`` are positions in it.
    The first point is at ``len(seed_indices)`` labels, then one per batch.
    """
    peer = get_peer(name)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(Errors.E705.format(name="batch_size", value=batch_size))
    data = _Data.build(texts, gold_labels, eval_texts, eval_gold, labels)
    labelled = _check_seed(seed_indices, len(texts))
    learner = _learner(peer, data, seed)
    learner.start(labelled)
    n_done = len(labelled)
    curve = [(n_done, data.score(learner.predict_proba(data.X_eval), positive_label))]
    while n_done < budget and n_done < len(texts):
        n = min(batch_size, budget - n_done, len(texts) - n_done)
        learner.teach(learner.query(n))
        n_done += n
        curve.append(
            (n_done, data.score(learner.predict_proba(data.X_eval), positive_label))
        )
    return curve


#: How each peer model's full-data reference is trained (reported with it).
FULL_DATA_SETTINGS = {
    "linear-svc": "small-text's ConfidenceEnhancedLinearSVC (LinearSVC defaults: "
    "C=1, squared hinge, max_iter=1000) fit once on all of TRAIN, tf-idf fit on "
    "TRAIN's texts",
    "logistic-regression": "LogisticRegression (lbfgs, C=1, max_iter=1000) fit once "
    "on all of TRAIN, tf-idf fit on TRAIN's texts",
}


def full_data_score_peer(
    name: str,
    texts: Sequence[str],
    gold_labels: Sequence[Sequence[str]],
    eval_texts: Sequence[str],
    eval_gold: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    positive_label: str | None = None,
    seed: int = 0,
) -> float:
    """The peer's model trained on every text of the pool, scored on the eval set."""
    peer = get_peer(name)
    data = _Data.build(texts, gold_labels, eval_texts, eval_gold, labels)
    model = LabelSpace(
        _base_estimator(peer.model, seed),
        len(data.labels),
        trim_features=peer.model == "logistic-regression",
    )
    model.fit(data.X, data.y)
    return data.score(model.predict_proba(data.X_eval), positive_label)
