"""Uncertainty measures: how much a label for each example would teach the model.

Every measure maps probabilities to one score per example, as a float64 array of
shape (n,), and a higher score always means a more informative example.

Inputs, by family:

* exclusive (``textcat``): ``probs`` of shape (n, n_labels), rows summing to 1.
  A single column is read as the binary distribution (p, 1 - p).
* multilabel (``textcat_multilabel``): ``probs`` of shape (n, n_labels), one
  independent sigmoid per label.
* committee: ``member_probs`` of shape (n_members, n, n_labels), one exclusive
  probability matrix per member.
* Bayesian: ``samples`` of shape (n_samples, n, n_labels), one exclusive
  probability matrix per MC-dropout forward pass.

Entropies are in nats. Values a hair outside [0, 1] from float error are clipped;
anything further out, or NaN, is an error (pass probabilities, not logits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from spacy_al.errors import Errors

# float32 softmax rows sum to 1 within ~1e-6; this only catches wrong inputs.
_SUM_ATOL = 1e-3
_RANGE_ATOL = 1e-6


class Measure(Protocol):
    """An uncertainty measure: probabilities in, one score per example out."""

    def __call__(self, probs: ArrayLike, /) -> np.ndarray: ...


def _validate(
    probs: ArrayLike, *, ndim: int, exclusive: bool, what: str = "", item: str = ""
) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-1] < 1 or (ndim == 3 and arr.shape[0] < 1):
        if ndim == 2:
            raise ValueError(Errors.E201.format(shape=arr.shape))
        raise ValueError(
            Errors.E202.format(what=what, axis=f"n_{item}s", item=item, shape=arr.shape)
        )
    bad = ~np.isfinite(arr) | (arr < -_RANGE_ATOL) | (arr > 1 + _RANGE_ATOL)
    if bad.any():
        raise ValueError(
            Errors.E203.format(n_bad=int(bad.sum()), size=arr.size, example=arr[bad][0])
        )
    arr = np.clip(arr, 0.0, 1.0)
    if not exclusive:
        return arr
    if arr.shape[-1] == 1:
        return np.concatenate([arr, 1.0 - arr], axis=-1)
    sums = arr.sum(axis=-1)
    off = np.abs(sums - 1.0) > _SUM_ATOL
    if off.any():
        row = tuple(int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            Errors.E204.format(
                n_bad=int(off.sum()),
                row=row[0] if len(row) == 1 else row,
                total=float(sums[row]),
            )
        )
    return arr / sums[..., None]


def _entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy over the last axis, with 0 * log 0 = 0."""
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    return np.maximum(-(p * logp).sum(axis=-1), 0.0)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    return _entropy(np.stack([p, 1.0 - p], axis=-1))


# --- exclusive -----------------------------------------------------------


def least_confidence(probs: ArrayLike) -> np.ndarray:
    """1 - the top probability, in [0, 1 - 1/n_labels]."""
    p = _validate(probs, ndim=2, exclusive=True)
    return 1.0 - p.max(axis=1)


def margin(probs: ArrayLike) -> np.ndarray:
    """1 - (top probability - second probability), in [0, 1]."""
    p = _validate(probs, ndim=2, exclusive=True)
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: ArrayLike) -> np.ndarray:
    """Shannon entropy of each row, in [0, log n_labels]."""
    return _entropy(_validate(probs, ndim=2, exclusive=True))


# --- multilabel ----------------------------------------------------------


def multilabel_least_confidence(probs: ArrayLike) -> np.ndarray:
    """Over labels, the largest 1 - max(p, 1 - p); in [0, 0.5]."""
    p = _validate(probs, ndim=2, exclusive=False)
    return np.minimum(p, 1.0 - p).max(axis=1)


def multilabel_margin(probs: ArrayLike) -> np.ndarray:
    """Over labels, the largest 1 - |2p - 1| (p closest to 0.5); in [0, 1]."""
    p = _validate(probs, ndim=2, exclusive=False)
    return (1.0 - np.abs(2.0 * p - 1.0)).max(axis=1)


def multilabel_entropy(probs: ArrayLike) -> np.ndarray:
    """Mean binary entropy over labels, in [0, log 2]."""
    return _binary_entropy(_validate(probs, ndim=2, exclusive=False)).mean(axis=1)


# --- committee -----------------------------------------------------------


def _committee(member_probs: ArrayLike) -> np.ndarray:
    return _validate(
        member_probs,
        ndim=3,
        exclusive=True,
        what="committee probabilities",
        item="member",
    )


def vote_entropy(member_probs: ArrayLike) -> np.ndarray:
    """Entropy of the members' argmax votes, in [0, log n_labels].

    A member whose top probability is tied splits its vote between the tied
    labels, so the score doesn't depend on the order of the label columns.
    """
    p = _committee(member_probs)
    top = (p == p.max(axis=2, keepdims=True)).astype(np.float64)
    votes = top / top.sum(axis=2, keepdims=True)
    return _entropy(votes.mean(axis=0))


def consensus_entropy(member_probs: ArrayLike) -> np.ndarray:
    """Entropy of the members' mean distribution, in [0, log n_labels]."""
    return _entropy(_committee(member_probs).mean(axis=0))


def kl_max_disagreement(member_probs: ArrayLike) -> np.ndarray:
    """Largest KL(member || consensus) over members, in [0, log n_members]."""
    p = _committee(member_probs)
    mean = p.mean(axis=0, keepdims=True)
    nonzero = p > 0
    logp = np.log(p, out=np.zeros_like(p), where=nonzero)
    logm = np.log(
        np.broadcast_to(mean, p.shape), out=np.zeros_like(p), where=nonzero & (mean > 0)
    )
    kl = (p * (logp - logm)).sum(axis=2)
    return np.maximum(kl.max(axis=0), 0.0)


# --- Bayesian ------------------------------------------------------------


def bald(samples: ArrayLike) -> np.ndarray:
    """BALD: entropy of the mean minus the mean of the entropies over samples.

    The mutual information between the label and the model weights, estimated
    from MC-dropout passes; 0 when all passes agree, at most log n_labels.
    """
    p = _validate(
        samples, ndim=3, exclusive=True, what="MC-dropout samples", item="sample"
    )
    mutual = _entropy(p.mean(axis=0)) - _entropy(p).mean(axis=0)
    return np.maximum(mutual, 0.0)


MEASURES: Mapping[str, Measure] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
MULTILABEL_MEASURES: Mapping[str, Measure] = {
    "least_confidence": multilabel_least_confidence,
    "margin": multilabel_margin,
    "entropy": multilabel_entropy,
}
COMMITTEE_MEASURES: Mapping[str, Measure] = {
    "vote_entropy": vote_entropy,
    "consensus_entropy": consensus_entropy,
    "kl_max_disagreement": kl_max_disagreement,
}


def get_measure(name: str, *, multilabel: bool) -> Measure:
    """The single-model measure called ``name``, for exclusive or multilabel probs."""
    measures = MULTILABEL_MEASURES if multilabel else MEASURES
    if name not in measures:
        raise ValueError(
            Errors.E205.format(
                name=name,
                kind="multilabel" if multilabel else "exclusive",
                names=", ".join(measures),
                committee=", ".join(COMMITTEE_MEASURES),
            )
        )
    return measures[name]
