"""Evaluation of text classifiers, via scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score

from spacy_al.errors import Errors


def predicted_labels(
    probs: np.ndarray, labels: Sequence[str], *, exclusive: bool, threshold: float = 0.5
) -> list[list[str]]:
    """The labels a model predicts: the argmax (exclusive) or every p >= threshold."""
    if exclusive:
        return [[labels[int(i)]] for i in np.argmax(probs, axis=1)]
    return [[labels[j] for j in np.flatnonzero(row >= threshold)] for row in probs]


def textcat_score(
    probs: np.ndarray,
    gold: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    exclusive: bool,
    positive_label: str | None = None,
) -> float:
    """Positive-class F1 with ``positive_label``, else macro F1 over ``labels``."""
    labels = list(labels)
    if positive_label is not None and positive_label not in labels:
        raise ValueError(Errors.E410.format(label=positive_label, labels=labels))
    predicted = predicted_labels(probs, labels, exclusive=exclusive)
    y_true = np.array([[label in g for label in labels] for g in gold], dtype=int)
    y_pred = np.array([[label in p for label in labels] for p in predicted], dtype=int)
    if positive_label is not None:
        j = labels.index(positive_label)
        return float(f1_score(y_true[:, j], y_pred[:, j], zero_division=0))
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))
