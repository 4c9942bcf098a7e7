import pytest

from spacy_al.simulate import (
    _median_or_none,
    gold_set,
    labels_to_target,
    oracle_answer,
)


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


def test_simulate_labels_to_target_is_the_first_crossing():
    curve = [(20, 0.1), (30, 0.5), (40, 0.9), (50, 0.7), (60, 0.95)]
    assert labels_to_target(curve, 0.85) == 40
    assert labels_to_target(curve, 0.99) is None


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
