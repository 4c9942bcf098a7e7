import numpy as np
import pytest
import srsly

from spacy_al.simulate import simulate
from spacy_al.simulate.ner import _ner_labels, ner_gold_set, run_one_ner
from spacy_al.simulate.runner import (
    SimulationConfig,
    _median_or_none,
    paired_bootstrap,
    stop_summary,
)
from spacy_al.simulate.textcat import (
    gold_set,
    labels_to_target,
    oracle_answer,
)
from spacy_al.stopping import StabilizingPredictions, sample_stop_set


@pytest.mark.parametrize(
    "values,median",
    [
        (
            [None, 420, 760, 440, 830],
            760.0,
        ),  # one run missed: the median is still known
        ([None, None, None, 100, 200], None),  # most runs missed: not reached
        ([170, 130, 220], 170.0),
        ([], None),
    ],
)
def test_simulate_median_counts_missed_runs_as_longest(values, median):
    assert _median_or_none(values) == median


def test_simulate_labels_to_target_counts_only_a_curve_that_stays():
    # Touches 0.85 at 40, falls back at 50: reached (and stayed) only from 60.
    curve = [(20, 0.1), (30, 0.5), (40, 0.9), (50, 0.7), (60, 0.95)]
    assert labels_to_target(curve, 0.85) == 60
    assert labels_to_target(curve, 0.99) is None


def test_simulate_labels_to_target_a_curve_ending_below_never_reached():
    curve = [(20, 0.9), (30, 0.95), (40, 0.96), (50, 0.8)]
    assert labels_to_target(curve, 0.85) is None


def test_simulate_paired_bootstrap_on_known_cases():
    # a constant difference: the interval is that difference
    d = paired_bootstrap([0.8, 0.7, 0.9], [0.7, 0.6, 0.8])
    assert d["diff"] == pytest.approx(0.1)
    assert d["low"] == pytest.approx(0.1) and d["high"] == pytest.approx(0.1)
    # differences 0 and 1: resampled means are 0, 0.5 or 1 (1/4, 1/2, 1/4)
    d = paired_bootstrap([1.0, 1.0], [1.0, 0.0])
    assert (d["diff"], d["low"], d["high"]) == (0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="E443"):
        paired_bootstrap([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    "suggested,mode,expected",
    [
        ("spam", "correct", {"answer": "accept"}),
        ("ham", "correct", {"answer": "reject", "accept": ["spam"]}),
        ("ham", "binary", {"answer": "reject"}),
    ],
)
def test_simulate_oracle_answers_like_a_careful_annotator(suggested, mode, expected):
    task = {"text": "WIN cash", "label": suggested}
    eg = oracle_answer(task, ["spam"], exclusive=True, mode=mode)
    assert {k: eg[k] for k in expected} == expected
    if mode == "binary":
        assert "accept" not in eg


def test_simulate_gold_set_dedupes_and_refuses_unlabelled():
    records = [
        {"text": "a", "label": "x"},
        {"text": "a", "label": "x"},
        {"text": "b", "label": "y"},
    ]
    gs = gold_set(records, what="TRAIN")
    assert [t["text"] for t in gs.tasks] == ["a", "b"] and gs.gold == [["x"], ["y"]]
    with pytest.raises(ValueError, match=r"E411.*Record 2 of TRAIN"):
        gold_set([{"text": "a", "label": "x"}, {"text": "c"}], what="TRAIN")


# --- the stopping signal ---------------------------------------------------------


def _signal(history_of_labels, **kwargs) -> StabilizingPredictions:
    signal = StabilizingPredictions(**kwargs)
    for labels in history_of_labels:
        signal.update(labels)
    return signal


def test_simulate_stop_summary_maps_the_signal_to_the_curve():
    a, b = [0, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0]
    curves = [
        [(20, 0.2), (30, 0.5), (40, 0.6), (50, 0.7), (60, 0.8), (70, 0.75)],
        [(20, 0.3), (30, 0.4), (40, 0.5), (50, 0.6), (60, 0.7), (70, 0.9)],
    ]
    # Seed 0: the models of points 2..5 predict the same: stop at the 5th (60).
    # Seed 1: every model changes its mind: no stop within the budget.
    signals = [
        _signal([b, a, a, a, a, a], window=3),
        _signal([a, b, a, b, a, b], window=3),
    ]
    stop = stop_summary(curves, signals, full_score=0.8)
    assert stop["labels"] == [60, None] and stop["score"] == [0.8, None]
    assert stop["labels_median"] is None  # half the runs never stopped
    assert stop["score_median"] == 0.8 and stop["final_score"] == [0.75, 0.9]
    assert stop["score_share_of_full"] == pytest.approx(1.0)
    assert stop["score_share_of_final"] == pytest.approx(0.8 / 0.825)
    # kappa of each model with the one before, at the labels of the later model
    assert [n for n, _ in stop["kappa_curve"]] == [30, 40, 50, 60, 70]
    # a and b differ in one of six: kappa (5/6 - 1/2) / (1 - 1/2) = 2/3
    assert stop["kappa_curve"][-1][1] == pytest.approx(np.median([1.0, 2 / 3]))


def _toy_records(n: int, offset: int = 0) -> list[dict]:
    """Spam and ham that a bag of words tells apart from the first few labels."""
    records = []
    for i in range(offset, offset + n):
        if i % 3 == 0:
            text = f"WIN a free prize {i} now, call {i * 7} to claim cash"
            records.append({"text": text, "label": "spam"})
        else:
            text = f"see you at the station at {i % 12} tonight, love {i}"
            records.append({"text": text, "label": "ham"})
    return records


def test_simulate_reports_where_the_signal_stops():
    config = SimulationConfig(
        strategies=("margin", "random"),
        seeds=1,
        budget=120,
        batch_size=10,
        positive_label="spam",
        max_epochs=2,
        stop_set_size=100,
    )
    results = simulate(_toy_records(240), _toy_records(60, offset=1000), config)
    assert results["config"]["stop_threshold"] == 0.99
    for entry in results["strategies"].values():
        stop = entry["stop"]
        assert stop["labels"][0] is not None, "the toy models never stabilized"
        n = stop["labels"][0]
        assert 20 + 3 * 10 <= n <= 120  # a window of 3 kappas after the seed model
        assert [stop["score"][0]] == [s for m, s in entry["curve"] if m == n]
        assert stop["labels_median"] == n and stop["score_median"] == stop["score"][0]
        assert stop["score_share_of_full"] == pytest.approx(
            stop["score"][0] / results["full_data_score"]
        )
        kappas = [k for m, k in stop["kappa_curve"] if m <= n]
        assert np.mean(kappas[-3:]) >= 0.99


def test_simulate_refuses_bad_stopping_settings():
    config = SimulationConfig(stop_threshold=2.0)
    with pytest.raises(ValueError, match=r"\[E755\] 'threshold'"):
        simulate(_toy_records(30), _toy_records(10, offset=100), config)


def test_simulate_ner_runs_feed_the_signal_token_tags(corpora_dir):
    records = list(srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"))
    train = ner_gold_set(records[:60], what="TRAIN")
    test = ner_gold_set(records[60:90], what="EVAL")
    config = SimulationConfig(
        task="ner",
        architecture="ner",
        beam_width=1,
        seed_size=10,
        batch_size=10,
        budget=40,
        stop_set_size=25,
        labels=_ner_labels(train, test),
    )
    signal = StabilizingPredictions()
    curve = run_one_ner(train, test, config, "random", 0, stopping=signal)
    assert [p[0] for p in curve] == [10, 20, 30, 40]
    assert signal.n_updates == len(curve) and len(signal.history) == len(curve) - 1
    assert all(-1.0 <= k <= 1.0 for k in signal.history)
    stop_set = sample_stop_set(len(train.tasks), size=25, seed=0)
    n_tokens = sum(len(train.tasks[i]["tokens"]) for i in stop_set)
    assert len(signal.to_dict()["previous"]) == n_tokens  # one BIO tag per token
