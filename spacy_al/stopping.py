"""When to stop annotating: stabilizing predictions (Bloodgood & Vijay-Shanker, 2009).

Keep a fixed set of unlabelled examples (the stop set) aside. After each model
update, predict its labels and compare them with the previous model's predictions
by Cohen's kappa. Once the mean of the last ``window`` kappas reaches ``threshold``
the model has stopped changing its mind, and more labels are unlikely to help.

Kappa is undefined when both models predict one and the same label for every
example of the stop set (chance agreement is 1); that counts as agreement 1.0,
since the predictions are identical.

:func:`stop_set_labels` turns a model's predictions on the stop set into label
ids: the argmax class (or the 0/1 label flags of a multilabel model) for text
classification; for NER the BIO tag of every token of every stop-set text, so
that kappa compares the entity analyses token by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from spacy.tokens import Doc

from spacy_al.errors import Errors
from spacy_al.protocols import Served
from spacy_al.team.agreement import cohen_kappa

DEFAULT_WINDOW = 3
DEFAULT_THRESHOLD = 0.99
# The paper's stop set had 2,000 examples; 1,000 keeps predicting it after every
# update cheap (NER annotates every text of it).
DEFAULT_STOP_SET_SIZE = 1000


def _check(name: str, value: Any, ok: bool, requirement: str) -> None:
    if not ok:
        raise ValueError(
            Errors.E755.format(name=name, requirement=requirement, value=value)
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def sample_stop_set(
    n_pool: int, *, size: int = DEFAULT_STOP_SET_SIZE, seed: int = 0
) -> np.ndarray:
    """Indices of a fixed random stop set: ``size`` of ``n_pool`` examples (all if fewer).

    The same ``seed`` gives the same set, so a restarted run compares like with like.
    """
    _check("n_pool", n_pool, _is_int(n_pool) and n_pool >= 1, "an integer >= 1")
    _check("size", size, _is_int(size) and size >= 1, "an integer >= 1")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pool, size=min(size, n_pool), replace=False))


def stop_set_labels(served: Served, docs: Sequence[Doc]) -> np.ndarray:
    """What a serving model predicts for the stop set ``docs``, as label ids.

    ``served`` is a text classifier (``TextcatModel``), a committee of them
    (``CommitteeModel``: their mean probabilities) or an ``NERModel`` (its
    ``task`` is ``"ner"``). Text classification gives one label id per Doc (the
    argmax), or, for a multilabel model, a row of 0/1 flags (p >= 0.5) per Doc.
    NER gives the BIO tag id of every token of every Doc, in order: 0 for O,
    then B and I of each label.
    """
    if served.task == "ner":
        return _bio_ids(served.annotate(docs), served.labels)
    probs = served.predict(docs)
    if served.exclusive:
        return np.argmax(probs, axis=1)
    return (probs >= 0.5).astype(np.int64)


def _bio_ids(docs: Sequence[Doc], labels: Sequence[str]) -> np.ndarray:
    ids = {label: 1 + 2 * i for i, label in enumerate(labels)}
    out: list[int] = []
    for doc in docs:
        for token in doc:
            iob = token.ent_iob_
            if iob not in ("B", "I"):
                out.append(0)
                continue
            first = ids.setdefault(token.ent_type_, 1 + 2 * len(ids))
            out.append(first if iob == "B" else first + 1)
    return np.asarray(out, dtype=np.int64)


def _as_labels(predictions: ArrayLike) -> list[Any]:
    arr = np.asarray(predictions)
    ok = arr.ndim in (1, 2) and arr.shape[0] >= 1 and arr.size >= 1
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not ok or arr.dtype.kind not in "biuf":
        raise ValueError(Errors.E756.format(shape=arr.shape, dtype=arr.dtype))
    arr = arr.astype(np.int64)
    if arr.ndim == 1:
        return arr.tolist()
    return [tuple(row) for row in arr.tolist()]  # multilabel: a label set per row


class StabilizingPredictions:
    """The stabilizing-predictions stopping signal.

    Call :meth:`update` with each new model's predicted label ids on the stop set
    (a 1-D array; for multilabel models a 2-D 0/1 array, one row per example, each
    distinct row a category). ``history`` holds the kappa of each model with the one
    before; ``should_stop`` turns True once the mean of the last ``window`` kappas
    is at least ``threshold``, and ``stop_index`` is the update at which it first did.

    A model that gives the whole stop set one and the same label hasn't learnt to
    tell examples apart (an early NER model that finds no entity at all, a
    classifier that says "ham" to everything): its kappa with an identical
    predecessor is 1.0, but the signal never says stop while the latest model
    predicts a single label.
    """

    def __init__(
        self, *, window: int = DEFAULT_WINDOW, threshold: float = DEFAULT_THRESHOLD
    ) -> None:
        _check("window", window, _is_int(window) and window >= 1, "an integer >= 1")
        ok = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        ok = ok and -1.0 <= threshold <= 1.0
        _check("threshold", threshold, ok, "a number in [-1, 1] (a kappa)")
        self.window = int(window)
        self.threshold = float(threshold)
        self.history: list[float] = []
        self.n_updates = 0
        self.stop_index: int | None = None
        self._previous: list[Any] | None = None
        self._varied = False

    def __repr__(self) -> str:
        return (
            f"StabilizingPredictions(window={self.window}, threshold={self.threshold}, "
            f"n_updates={self.n_updates}, should_stop={self.should_stop})"
        )

    def update(self, predictions: ArrayLike) -> float | None:
        """Record a new model's predictions; return its kappa with the previous model.

        None for the first model. The stop set must stay the same: predictions of
        another length raise ValueError.
        """
        labels = _as_labels(predictions)
        previous = self._previous
        if previous is not None and len(previous) != len(labels):
            raise ValueError(Errors.E757.format(n=len(labels), n_prev=len(previous)))
        self._previous = labels
        self._varied = any(x != labels[0] for x in labels)
        self.n_updates += 1
        if previous is None:
            return None
        kappa = cohen_kappa(previous, labels)
        self.history.append(kappa)
        if self.stop_index is None and self.should_stop:
            self.stop_index = self.n_updates
        return kappa

    @property
    def mean_kappa(self) -> float | None:
        """The mean of the last ``window`` kappas, or None before there are that many."""
        if len(self.history) < self.window:
            return None
        return float(np.mean(self.history[-self.window :]))

    @property
    def varied(self) -> bool:
        """Whether the latest model predicts more than one label on the stop set."""
        return self._varied

    @property
    def should_stop(self) -> bool:
        """Whether the last ``window`` kappas average at least ``threshold`` (and
        the latest model predicts more than one label)."""
        mean = self.mean_kappa
        return mean is not None and mean >= self.threshold and self.varied

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready values, to save with a checkpoint."""
        return {
            "window": self.window,
            "threshold": self.threshold,
            "history": list(self.history),
            "n_updates": self.n_updates,
            "stop_index": self.stop_index,
            "previous": self._previous,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StabilizingPredictions:
        """Restore a signal saved with :meth:`to_dict`."""
        try:
            signal = cls(window=state["window"], threshold=state["threshold"])
            signal.history = [float(k) for k in state["history"]]
            signal.n_updates = int(state["n_updates"])
            signal.stop_index = state["stop_index"]
            previous = state["previous"]
        except (KeyError, TypeError) as e:
            raise ValueError(Errors.E758.format(err=e)) from e
        if previous is not None:
            signal._previous = labels = _as_labels(np.asarray(previous))
            signal._varied = any(x != labels[0] for x in labels)
        return signal
