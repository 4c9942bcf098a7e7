from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_al import uncertainty
from spacy_al.uncertainty import (
    COMMITTEE_MEASURES,
    MEASURES,
    MULTILABEL_MEASURES,
    bald,
    consensus_entropy,
    entropy,
    get_measure,
    kl_max_disagreement,
    least_confidence,
    margin,
    vote_entropy,
)

EXCLUSIVE = sorted(MEASURES)
MULTILABEL = sorted(MULTILABEL_MEASURES)
COMMITTEE = sorted(COMMITTEE_MEASURES)

# Upper bounds given n_labels (and n_members for the committee).
EXCLUSIVE_BOUND = {
    "least_confidence": lambda n_labels: 1 - 1 / n_labels,
    "margin": lambda n_labels: 1.0,
    "entropy": lambda n_labels: math.log(n_labels),
}
MULTILABEL_BOUND = {
    "least_confidence": 0.5,
    "margin": 1.0,
    "entropy": math.log(2),
}
TOL = 1e-9

unit = st.floats(0, 1, allow_subnormal=False)


@st.composite
def exclusive_probs(draw, *, min_labels: int = 2, max_labels: int = 6) -> np.ndarray:
    """(n, n_labels) rows that sum to 1, including one-hot and tied rows."""
    n = draw(st.integers(1, 8))
    n_labels = draw(st.integers(min_labels, max_labels))
    weights = draw(arrays(np.float64, (n, n_labels), elements=unit))
    weights[weights.sum(axis=1) == 0] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


@st.composite
def multilabel_probs(draw) -> np.ndarray:
    n = draw(st.integers(1, 8))
    n_labels = draw(st.integers(1, 6))
    return draw(arrays(np.float64, (n, n_labels), elements=unit))


@st.composite
def committee_probs(draw) -> np.ndarray:
    """(n_members, n, n_labels): each member an exclusive probability matrix."""
    n_members = draw(st.integers(1, 5))
    n = draw(st.integers(1, 6))
    n_labels = draw(st.integers(2, 5))
    weights = draw(arrays(np.float64, (n_members, n, n_labels), elements=unit))
    weights[weights.sum(axis=2) == 0] = 1.0
    return weights / weights.sum(axis=2, keepdims=True)


# --- exclusive and multilabel -------------------------------------------


@pytest.mark.parametrize("name", EXCLUSIVE)
@given(probs=exclusive_probs())
def test_uncertainty_exclusive_scores_are_finite_and_bounded(name, probs):
    scores = MEASURES[name](probs)
    assert scores.shape == (len(probs),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert (scores >= 0).all()
    assert (scores <= EXCLUSIVE_BOUND[name](probs.shape[1]) + TOL).all()


@pytest.mark.parametrize("name", MULTILABEL)
@given(probs=multilabel_probs())
def test_uncertainty_multilabel_scores_are_finite_and_bounded(name, probs):
    scores = MULTILABEL_MEASURES[name](probs)
    assert scores.shape == (len(probs),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert (scores >= 0).all()
    assert (scores <= MULTILABEL_BOUND[name] + TOL).all()


@pytest.mark.parametrize("name", EXCLUSIVE)
@given(probs=exclusive_probs())
def test_uncertainty_exclusive_uniform_row_scores_highest(name, probs):
    n_labels = probs.shape[1]
    uniform = np.full((1, n_labels), 1 / n_labels)
    scores = MEASURES[name](np.vstack([probs, uniform]))
    assert scores[-1] >= scores.max() - TOL
    assert scores[-1] == pytest.approx(EXCLUSIVE_BOUND[name](n_labels))


@pytest.mark.parametrize("name", MULTILABEL)
@given(probs=multilabel_probs())
def test_uncertainty_multilabel_uniform_row_scores_highest(name, probs):
    uniform = np.full((1, probs.shape[1]), 0.5)
    scores = MULTILABEL_MEASURES[name](np.vstack([probs, uniform]))
    assert scores[-1] >= scores.max() - TOL


@pytest.mark.parametrize("name", EXCLUSIVE)
@given(probs=exclusive_probs(), data=st.data())
def test_uncertainty_exclusive_one_hot_row_scores_zero(name, probs, data):
    n_labels = probs.shape[1]
    one_hot = np.eye(n_labels)[[data.draw(st.integers(0, n_labels - 1))]]
    scores = MEASURES[name](np.vstack([probs, one_hot]))
    assert scores[-1] == 0.0
    assert scores[-1] <= scores.min()


@pytest.mark.parametrize("name", MULTILABEL)
@given(probs=multilabel_probs())
def test_uncertainty_multilabel_certain_row_scores_zero(name, probs):
    certain = np.ones((1, probs.shape[1]))
    certain[0, ::2] = 0.0  # a mix of confident yes and confident no
    scores = MULTILABEL_MEASURES[name](np.vstack([probs, certain]))
    assert scores[-1] == 0.0
    assert scores[-1] <= scores.min()


@pytest.mark.parametrize("measure", [*MEASURES.values(), *MULTILABEL_MEASURES.values()])
@given(probs=exclusive_probs(), data=st.data())
def test_uncertainty_label_order_does_not_change_scores(measure, probs, data):
    order = data.draw(st.permutations(range(probs.shape[1])))
    assert np.allclose(measure(probs[:, order]), measure(probs), atol=TOL)


@pytest.mark.parametrize(
    "probs,expected",
    [
        ([[0.7, 0.2, 0.1]], {"least_confidence": 0.3, "margin": 0.5}),
        ([[0.5, 0.5]], {"least_confidence": 0.5, "margin": 1.0}),
        ([[0.25] * 4], {"least_confidence": 0.75, "margin": 1.0}),
    ],
)
def test_uncertainty_exclusive_known_values(probs, expected):
    assert least_confidence(probs)[0] == pytest.approx(expected["least_confidence"])
    assert margin(probs)[0] == pytest.approx(expected["margin"])
    assert entropy(probs)[0] == pytest.approx(
        -sum(p * math.log(p) for p in probs[0] if p > 0)
    )


@pytest.mark.parametrize("name", EXCLUSIVE)
@given(p=arrays(np.float64, (5, 1), elements=unit))
def test_uncertainty_single_column_is_binary(name, p):
    assert np.allclose(MEASURES[name](p), MEASURES[name](np.hstack([p, 1 - p])))


def test_uncertainty_multilabel_known_values():
    probs = [[0.9, 0.5, 0.0], [0.8, 0.1, 1.0]]
    assert np.allclose(uncertainty.multilabel_least_confidence(probs), [0.5, 0.2])
    assert np.allclose(uncertainty.multilabel_margin(probs), [1.0, 0.4])
    h = lambda p: -p * math.log(p) - (1 - p) * math.log(1 - p)  # noqa: E731
    assert np.allclose(
        uncertainty.multilabel_entropy(probs),
        [(h(0.9) + math.log(2)) / 3, (h(0.8) + h(0.1)) / 3],
    )


def test_uncertainty_float32_softmax_is_accepted():
    logits = np.random.default_rng(0).normal(size=(20, 7)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = entropy(probs)
    assert scores.dtype == np.float64
    assert np.allclose(scores, entropy(probs.astype(np.float64)), atol=1e-6)


# --- committee and BALD --------------------------------------------------


@pytest.mark.parametrize("name", COMMITTEE)
@given(member_probs=committee_probs())
def test_uncertainty_committee_scores_are_finite_and_bounded(name, member_probs):
    n_members, n, n_labels = member_probs.shape
    scores = COMMITTEE_MEASURES[name](member_probs)
    bound = math.log(n_members) if name == "kl_max_disagreement" else math.log(n_labels)
    assert scores.shape == (n,)
    assert np.isfinite(scores).all()
    assert (scores >= 0).all()
    assert (scores <= bound + TOL).all()


@given(samples=committee_probs())
def test_uncertainty_bald_is_finite_and_bounded(samples):
    n_samples, n, n_labels = samples.shape
    scores = bald(samples)
    assert scores.shape == (n,)
    assert np.isfinite(scores).all()
    assert (scores >= 0).all()
    assert (scores <= min(math.log(n_samples), math.log(n_labels)) + TOL).all()


@pytest.mark.parametrize("measure", [*COMMITTEE_MEASURES.values(), bald])
@given(member_probs=committee_probs(), data=st.data())
def test_uncertainty_committee_order_does_not_change_scores(
    measure, member_probs, data
):
    labels = data.draw(st.permutations(range(member_probs.shape[2])))
    members = data.draw(st.permutations(range(member_probs.shape[0])))
    shuffled = member_probs[members][:, :, labels]
    assert np.allclose(measure(shuffled), measure(member_probs), atol=TOL)


@given(probs=exclusive_probs(), n_members=st.integers(1, 5))
def test_uncertainty_identical_members_do_not_disagree(probs, n_members):
    members = np.stack([probs] * n_members)
    assert np.allclose(kl_max_disagreement(members), 0.0, atol=TOL)
    assert np.allclose(bald(members), 0.0, atol=TOL)
    assert np.allclose(consensus_entropy(members), entropy(probs), atol=TOL)
    untied = (probs == probs.max(axis=1, keepdims=True)).sum(axis=1) == 1
    assert np.allclose(vote_entropy(members)[untied], 0.0)


@pytest.mark.parametrize("measure", [vote_entropy, consensus_entropy])
@given(member_probs=committee_probs())
def test_uncertainty_uniform_committee_scores_highest(measure, member_probs):
    n_members, _, n_labels = member_probs.shape
    uniform = np.full((n_members, 1, n_labels), 1 / n_labels)
    scores = measure(np.concatenate([member_probs, uniform], axis=1))
    assert scores[-1] >= scores.max() - TOL
    assert scores[-1] == pytest.approx(math.log(n_labels))


def test_uncertainty_committee_known_values():
    # Three members: two vote label 0, one votes label 1.
    members = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.2, 0.8]]])
    assert vote_entropy(members)[0] == pytest.approx(
        -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    )
    assert consensus_entropy(members)[0] == pytest.approx(
        entropy([[17 / 30, 13 / 30]])[0]
    )
    mean = members.mean(axis=0)[0]
    kls = [
        sum(p * math.log(p / q) for p, q in zip(m[0], mean, strict=True))
        for m in members
    ]
    assert kl_max_disagreement(members)[0] == pytest.approx(max(kls))


def test_uncertainty_bald_of_confident_disagreement_is_log2():
    samples = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert bald(samples)[0] == pytest.approx(math.log(2))
    # Both passes equally unsure: uncertain, but no disagreement.
    assert bald(np.full((2, 1, 2), 0.5))[0] == pytest.approx(0.0)


# --- validation ----------------------------------------------------------

SINGLE_MODEL = [*MEASURES.values(), *MULTILABEL_MEASURES.values()]
STACKED = [*COMMITTEE_MEASURES.values(), bald]


@pytest.mark.parametrize("measure", SINGLE_MODEL)
@pytest.mark.parametrize(
    "bad", [np.array([0.5, 0.5]), np.full((2, 2, 2), 0.5), np.zeros((3, 0))]
)
def test_uncertainty_single_model_bad_shape_raises(measure, bad):
    with pytest.raises(ValueError, match=r"E201.*shape \(n, n_labels\)"):
        measure(bad)


@pytest.mark.parametrize("measure", STACKED)
@pytest.mark.parametrize(
    "bad", [np.full((2, 2), 0.5), np.zeros((0, 2, 2)), np.zeros((2, 3, 0))]
)
def test_uncertainty_stacked_bad_shape_raises(measure, bad):
    with pytest.raises(ValueError, match=r"E202.*numpy.stack"):
        measure(bad)


@pytest.mark.parametrize("measure", SINGLE_MODEL)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -0.5, 2.5])
def test_uncertainty_out_of_range_raises(measure, bad_value):
    with pytest.raises(ValueError, match=r"E203.*not logits"):
        measure([[0.5, 0.5], [bad_value, 0.5]])


@pytest.mark.parametrize("measure", [*MEASURES.values(), *STACKED])
def test_uncertainty_exclusive_rows_must_sum_to_one(measure):
    probs = np.array([[0.5, 0.5], [0.9, 0.8]])
    if measure in STACKED:
        probs = probs[None]
    with pytest.raises(ValueError, match=r"E204.*sums to 1.7000.*multilabel=True"):
        measure(probs)


def test_uncertainty_empty_batch_gives_empty_scores():
    assert entropy(np.zeros((0, 3))).shape == (0,)
    assert bald(np.zeros((4, 0, 3))).shape == (0,)


@pytest.mark.parametrize("name", EXCLUSIVE)
@pytest.mark.parametrize("multilabel", [False, True])
def test_uncertainty_get_measure_by_name(name, multilabel):
    table = MULTILABEL_MEASURES if multilabel else MEASURES
    assert get_measure(name, multilabel=multilabel) is table[name]


@pytest.mark.parametrize("name", ["bald", "vote_entropy", "Margin"])
def test_uncertainty_get_measure_unknown_lists_valid_names(name):
    with pytest.raises(ValueError, match=r"E205.*least_confidence, margin, entropy"):
        get_measure(name, multilabel=False)


@settings(max_examples=30)
@given(probs=exclusive_probs())
def test_uncertainty_margin_ranks_closer_calls_higher(probs):
    """Sorting by margin puts the smallest top-two gap first."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    assert np.allclose(margin(probs), 1 - gap)
