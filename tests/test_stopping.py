from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from spacy_al.stopping import StabilizingPredictions, sample_stop_set

PREDS = np.array([0, 1, 2, 0, 1, 2, 0, 1])


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_stopping_identical_predictions_stop_after_window_plus_one(
    window: int,
) -> None:
    signal = StabilizingPredictions(window=window)
    assert signal.update(PREDS) is None  # nothing to compare the first model with
    for n_updates in range(2, window + 2):
        assert signal.should_stop is False
        assert signal.update(PREDS.copy()) == 1.0
        assert signal.n_updates == n_updates
    assert signal.should_stop is True
    assert signal.stop_index == window + 1 == signal.n_updates
    assert signal.history == [1.0] * window
    assert signal.mean_kappa == 1.0


def test_stopping_defaults_follow_the_paper() -> None:
    signal = StabilizingPredictions()
    assert (signal.window, signal.threshold) == (3, 0.99)
    for _ in range(3):
        signal.update(PREDS)
    assert signal.should_stop is False and signal.mean_kappa is None
    signal.update(PREDS)
    assert signal.should_stop is True and signal.stop_index == 4


def test_stopping_alternating_predictions_never_stop() -> None:
    signal = StabilizingPredictions()
    binary = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    for step in range(30):
        kappa = signal.update(binary if step % 2 == 0 else 1 - binary)
        assert signal.should_stop is False
    assert kappa == -1.0  # every label flips: complete disagreement
    assert signal.history == [-1.0] * 29
    assert signal.stop_index is None


def test_stopping_constant_predictions() -> None:
    signal = StabilizingPredictions(window=2)
    zeros, ones = np.zeros(5, dtype=int), np.ones(5, dtype=int)
    signal.update(zeros)
    # kappa is 0/0 for two identical constant predictions: counted as agreement 1.0
    assert signal.update(zeros) == 1.0
    # every example changes its label: no agreement at all
    assert signal.update(ones) == 0.0
    assert signal.update(ones) == 1.0
    assert signal.should_stop is False  # mean of [0.0, 1.0]
    assert signal.update(ones) == 1.0
    assert signal.should_stop is True and signal.stop_index == 5


def test_stopping_kappa_is_cohens_on_the_stop_set() -> None:
    signal = StabilizingPredictions()
    signal.update([0, 1, 0, 2, 1])
    assert signal.update([0, 1, 0, 2, 0]) == pytest.approx(0.6875)


def test_stopping_uses_the_mean_of_the_last_window() -> None:
    signal = StabilizingPredictions(window=3, threshold=0.9)
    changed = PREDS.copy()
    changed[:3] = [2, 2, 2]
    signal.update(PREDS)
    low = signal.update(changed)
    signal.update(changed)
    signal.update(changed)
    assert signal.history == [low, 1.0, 1.0] and low < 0.7
    assert signal.should_stop is ((low + 2) / 3 >= 0.9) is False
    signal.update(changed)  # the low kappa leaves the window
    assert signal.should_stop is True and signal.stop_index == 5
    signal.update(PREDS)  # a later change doesn't undo where it first stopped
    assert signal.should_stop is False and signal.stop_index == 5


def test_stopping_multilabel_rows_are_categories() -> None:
    flags = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    signal = StabilizingPredictions(window=1)
    signal.update(flags)
    assert signal.update(flags.copy()) == 1.0
    other = flags.copy()
    other[0] = [1, 1]  # one example's label set changes
    # 4 examples, 4 categories; po = 3/4, pe = (1*0 + 1*1 + 1*2 + 1*1) / 16 = 1/4
    assert signal.update(other) == pytest.approx((3 / 4 - 1 / 4) / (1 - 1 / 4))


def test_stopping_stop_set_must_stay_fixed() -> None:
    signal = StabilizingPredictions()
    signal.update(PREDS)
    with pytest.raises(ValueError, match=r"\[E757\].*cover 7 examples.*covered 8"):
        signal.update(PREDS[:7])
    assert signal.n_updates == 1 and signal.history == []


@pytest.mark.parametrize(
    "predictions",
    [[], [[[0]]], [0.5, 1.0], ["a", "b"], [np.nan, 1.0], 3],
    ids=["empty", "3-D", "fractional", "strings", "nan", "scalar"],
)
def test_stopping_rejects_bad_predictions(predictions: Any) -> None:
    with pytest.raises(ValueError, match=r"\[E756\]"):
        StabilizingPredictions().update(predictions)


def test_stopping_accepts_whole_float_and_bool_predictions() -> None:
    signal = StabilizingPredictions(window=1)
    signal.update(np.array([0.0, 1.0, 1.0]))
    assert signal.update(np.array([False, True, True])) == 1.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.99"}, "threshold"),
    ],
)
def test_stopping_checks_its_settings(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\[E755\] '{name}'"):
        StabilizingPredictions(**kwargs)


def test_stopping_state_survives_a_restart() -> None:
    signal = StabilizingPredictions(window=2)
    changed = PREDS.copy()
    changed[0] = 2
    for preds in (PREDS, changed, changed):
        signal.update(preds)
    state = json.loads(json.dumps(signal.to_dict()))
    restored = StabilizingPredictions.from_dict(state)
    assert restored.history == signal.history and restored.n_updates == 3
    assert restored.update(changed) == signal.update(changed) == 1.0
    assert restored.should_stop is signal.should_stop is True
    assert restored.stop_index == signal.stop_index == 4
    with pytest.raises(ValueError, match=r"\[E758\]"):
        StabilizingPredictions.from_dict({"window": 3})


def test_stopping_state_keeps_multilabel_predictions() -> None:
    flags = np.array([[1, 0], [0, 1]])
    signal = StabilizingPredictions(window=1)
    signal.update(flags)
    restored = StabilizingPredictions.from_dict(
        json.loads(json.dumps(signal.to_dict()))
    )
    assert restored.update(flags) == 1.0 and restored.should_stop


def test_stopping_sample_stop_set() -> None:
    first = sample_stop_set(10_000, size=2000, seed=3)
    assert len(first) == len(set(first.tolist())) == 2000
    assert first.tolist() == sorted(first.tolist()) and first.max() < 10_000
    assert np.array_equal(first, sample_stop_set(10_000, size=2000, seed=3))
    assert not np.array_equal(first, sample_stop_set(10_000, size=2000, seed=4))
    assert sample_stop_set(5, size=2000).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"\[E755\] 'size'"):
        sample_stop_set(10, size=0)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.integers(0, 2), min_size=6, max_size=6), min_size=1, max_size=12
    ),
    window=st.integers(1, 4),
    threshold=st.floats(0.0, 1.0),
)
def test_stopping_signal_is_the_windowed_mean(
    runs: list[list[int]], window: int, threshold: float
) -> None:
    signal = StabilizingPredictions(window=window, threshold=threshold)
    first_stop = None
    for n, preds in enumerate(runs, start=1):
        kappa = signal.update(preds)
        assert (kappa is None) is (n == 1)
        assert kappa is None or -1.0 <= kappa <= 1.0
        last = signal.history[-window:]
        expected = len(last) == window and float(np.mean(last)) >= threshold
        assert signal.should_stop is expected
        if expected and first_stop is None:
            first_stop = n
    assert len(signal.history) == len(runs) - 1
    assert signal.stop_index == first_stop


def test_stopping_a_learning_model_stabilizes() -> None:
    # A real learner: logistic regression on ever more labelled examples of two
    # overlapping Gaussian classes, predicting a fixed unlabelled stop set.
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [1.5, 1.0]])
    y = rng.integers(0, 2, size=3000)
    x = centers[y] + rng.normal(size=(3000, 2))
    stop_set = sample_stop_set(3000, size=1000, seed=1)
    train = np.setdiff1d(np.arange(3000), stop_set)
    signal = StabilizingPredictions()
    sizes = list(range(10, 2001, 10))
    for size in sizes:
        model = LogisticRegression().fit(x[train[:size]], y[train[:size]])
        signal.update(model.predict(x[stop_set]))
        if signal.should_stop:
            break
    assert signal.should_stop, "predictions never stabilized"
    assert signal.stop_index is not None and signal.stop_index < len(sizes)
    assert np.mean(signal.history[:3]) < np.mean(signal.history[-3:])
