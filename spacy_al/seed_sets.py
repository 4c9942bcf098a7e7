"""Cold-start seed sets: which texts to ask about before any model exists.

A random seed set asks about the pool's densest region many times and may
miss a rare label entirely. ``diverse_seed`` covers the pool's regions once
each; ``pattern_seed`` puts texts that a user's patterns mark in the seed set;
``take_turns`` gives every label with matches its share, in the seed set and in
the text-classification loop's pattern questions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import normalize

from spacy_al.errors import Errors
from spacy_al.strategies import check_n


def diverse_seed(vectors: Any, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` row indices that cover the pool: k-means over the L2-normalised
    ``vectors`` (dense or sparse) into ``n`` clusters, and the member nearest
    each centroid, biggest cluster first.

    A cold start's first questions then ask about each region of the pool once,
    where a random seed set asks about its densest region many times and may
    miss a rare class entirely.
    """
    X = normalize(vectors)
    size = X.shape[0]
    check_n(n, size)
    if n == size:
        return np.arange(size)
    kmeans = KMeans(n_clusters=n, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clusters = kmeans.fit_predict(X)
    distances = kmeans.transform(X)
    picked: list[int] = []
    sizes = np.bincount(clusters, minlength=n)
    for c in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(clusters == c)
        if len(members):
            picked.append(int(members[np.argmin(distances[members, c])]))
    rest = np.setdiff1d(np.arange(size), picked)
    if len(picked) < n:  # fewer distinct vectors than clusters
        picked.extend(int(i) for i in rest[: n - len(picked)])
    return np.asarray(picked[:n], dtype=int)


def take_turns(queues: Mapping[str, Sequence[int]], n: int) -> list[tuple[int, str]]:
    """Up to ``n`` (row, label) pairs from per-label queues of rows: the labels
    take turns (in the mapping's order), each its next row not taken yet.

    The cold start's pattern questions come from here, in the seed set
    (:func:`pattern_seed`) and in the loop (``ActiveLoop``): every label with
    matches gets its share, however common another label's matches are.
    """
    queues = {label: list(rows) for label, rows in queues.items()}
    picked: list[tuple[int, str]] = []
    taken: set[int] = set()
    while len(picked) < n and any(queues.values()):
        for label, rows in queues.items():
            while rows and rows[0] in taken:
                rows.pop(0)
            if rows and len(picked) < n:
                taken.add(rows[0])
                picked.append((rows.pop(0), label))
    return picked


def pattern_seed(
    matched: Sequence[Sequence[str]],
    base: Sequence[int],
    *,
    share: float = 0.5,
    rng: np.random.Generator,
) -> np.ndarray:
    """A seed set of ``len(base)`` rows, up to ``share`` of it texts a pattern
    marks: the labels with matches take turns (:func:`take_turns`), each a
    random one of its matched rows not taken yet; ``base``'s rows (in order)
    fill the rest.

    ``matched`` holds, per row of the pool, the labels whose patterns match it.
    A user who wrote patterns for a rare label has its first examples in the
    first model, where a random seed set of 20 may hold none.
    """
    base = [int(i) for i in base]
    n = len(base)
    if not 0.0 <= share <= 1.0:
        raise ValueError(Errors.E447.format(share=share))
    by_label: dict[str, list[int]] = {}
    for i, labels in enumerate(matched):
        for label in labels:
            by_label.setdefault(label, []).append(i)
    queues = {
        label: [rows[j] for j in rng.permutation(len(rows))]
        for label, rows in sorted(by_label.items())
    }
    picked = [i for i, _ in take_turns(queues, int(share * n))]
    taken = set(picked)
    picked += [i for i in base if i not in taken][: n - len(picked)]
    return np.asarray(picked, dtype=int)
