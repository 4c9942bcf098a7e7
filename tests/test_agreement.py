from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from spacy_al.corpus import get_input_hash, get_input_key, get_task_hash, get_task_key
from spacy_al.store import Store
from spacy_al.team.agreement import (
    Rating,
    agreement_summary,
    annotators,
    cohen_kappa,
    consensus,
    consensus_agreement,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_agreement,
    rated_answers,
    rating,
    rating_table,
    ratings,
)

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters,
# 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# 4 observers, 12 units, nominal values with missing data; alpha = 0.743.
KRIPPENDORFF_DATA = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _counts(data: list[list[int | None]], n_categories: int) -> np.ndarray:
    counts = np.zeros((len(data[0]), n_categories), dtype=int)
    for row in data:
        for unit, value in enumerate(row):
            if value is not None:
                counts[unit, value - 1] += 1
    return counts


def teach(
    text: str, annotator: str, answer: str, *, label: str = "SPORTS", id_: int = 0
) -> dict[str, Any]:
    """A binary answer as the store returns it."""
    return {
        "text": text,
        "label": label,
        "answer": answer,
        "_input_hash": get_input_hash({"text": text}),
        "_task_hash": get_task_hash({"text": text, "label": label}),
        "_input_key": get_input_key({"text": text}),
        "_task_key": get_task_key({"text": text, "label": label}),
        "_annotator_id": annotator,
        "_id": id_,
    }


def choice(text: str, annotator: str, chosen: list[str], **extra: Any) -> dict:
    return {
        "text": text,
        "options": [{"id": "A", "text": "A"}, {"id": "B", "text": "B"}],
        "accept": chosen,
        "answer": "accept",
        "_input_hash": get_input_hash({"text": text}),
        "_task_hash": get_input_hash({"text": text}) + 1,
        "_input_key": get_input_key({"text": text}),
        "_task_key": get_input_key({"text": text}) + 1,
        "_annotator_id": annotator,
        **extra,
    }


# Three annotators, five texts, binary answers on one label. By hand:
#   text:  t1  t2  t3  t4  t5
#   a:     acc rej acc rej acc
#   b:     acc rej acc rej rej
#   c:     acc rej rej acc rej
THREE = [
    teach(text, name, answer, id_=i)
    for i, (text, name, answer) in enumerate(
        (text, name, answer)
        for text, row in zip(
            ["t1", "t2", "t3", "t4", "t5"],
            [
                ("accept", "accept", "accept"),
                ("reject", "reject", "reject"),
                ("accept", "accept", "reject"),
                ("reject", "reject", "accept"),
                ("accept", "reject", "reject"),
            ],
            strict=True,
        )
        for name, answer in zip("abc", row, strict=True)
    )
]
YES = Rating(("SPORTS",), accept=True, binary=True)
NO = Rating(("SPORTS",), accept=False, binary=True)


# --- Fleiss' kappa and Krippendorff's alpha --------------------------------------


def test_agreement_fleiss_kappa_textbook_example() -> None:
    kappa = fleiss_kappa(FLEISS_TABLE)
    assert round(kappa, 3) == 0.210
    assert kappa == pytest.approx(0.20993, abs=1e-5)


def test_agreement_fleiss_kappa_with_missing_ratings() -> None:
    # Rows rated by 2, 2, 3 and 1 annotators; the last can't show agreement.
    # P_i = 1, 0, 1 -> P-bar = 2/3; shares 3/7, 4/7 -> P_e = 25/49; kappa = 23/72.
    table = [[2, 0], [1, 1], [0, 3], [1, 0]]
    assert fleiss_kappa(table) == pytest.approx(float(Fraction(23, 72)))
    assert fleiss_kappa(table[:3]) == fleiss_kappa(table)


def test_agreement_krippendorff_alpha_textbook_example() -> None:
    counts = _counts(KRIPPENDORFF_DATA, 5)
    assert round(krippendorff_alpha(counts), 3) == 0.743


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(2, 6).flatmap(
        lambda n_raters: st.lists(
            st.lists(st.integers(0, 2), min_size=n_raters, max_size=n_raters),
            min_size=2,
            max_size=12,
        )
    )
)
def test_agreement_alpha_is_fleiss_corrected_for_sample_size(
    rows: list[list[int]],
) -> None:
    # With every input rated by the same m annotators (n = N * m ratings), nominal
    # alpha and Fleiss' kappa differ only by a small-sample factor:
    # 1 - alpha = (1 - kappa) * (n - 1) / n.
    table = [np.bincount(row, minlength=3) for row in rows]
    kappa, alpha = fleiss_kappa(table), krippendorff_alpha(table)
    n = int(np.sum(table))
    used = np.flatnonzero(np.sum(table, axis=0))
    if len(used) == 1:
        assert kappa == alpha == 1.0
    else:
        assert 1 - alpha == pytest.approx((1 - kappa) * (n - 1) / n, abs=1e-9)
        assert -1.0 <= kappa <= 1.0


@pytest.mark.parametrize("measure", [fleiss_kappa, krippendorff_alpha])
def test_agreement_n_annotator_measures_edge_cases(measure: Any) -> None:
    assert measure([[3, 0], [0, 3], [2, 0]]) == 1.0  # all agree
    assert measure([[3, 0], [3, 0]]) == 1.0  # all agree, on one category
    assert math.isnan(measure([[1, 0], [0, 1]]))  # nothing rated twice
    assert measure([[1, 1], [1, 1]]) < 0  # always split: worse than chance


@pytest.mark.parametrize(
    "table",
    [[1, 2, 3], [[1, -1]], [[0.5, 1.5]], [["a", "b"]], [[np.nan, 1]], [[[1]]]],
    ids=["1-D", "negative", "fractional", "strings", "nan", "3-D"],
)
@pytest.mark.parametrize("measure", [fleiss_kappa, krippendorff_alpha])
def test_agreement_count_table_is_checked(measure: Any, table: Any) -> None:
    with pytest.raises(ValueError, match=r"\[E753\].*count table"):
        measure(table)


# --- Cohen's kappa -----------------------------------------------------------------


def test_agreement_cohen_kappa_known_value() -> None:
    first = ["negative", "positive", "negative", "neutral", "positive"]
    second = ["negative", "positive", "negative", "neutral", "negative"]
    assert cohen_kappa(first, second) == pytest.approx(0.6875)


@pytest.mark.parametrize(
    "first,second,expected",
    [
        (["x", "x", "x"], ["x", "x", "x"], 1.0),  # 0/0 in theory: identical
        (["x", "x"], ["y", "y"], 0.0),
        (["x", "y"], ["y", "x"], -1.0),
        ([YES, NO], [YES, NO], 1.0),
    ],
)
def test_agreement_cohen_kappa_edge_cases(
    first: list, second: list, expected: float
) -> None:
    assert cohen_kappa(first, second) == expected


def test_agreement_cohen_kappa_errors() -> None:
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match=r"\[E754\].*2 ratings.*1 from"):
        cohen_kappa(["a", "b"], ["a"])


@settings(max_examples=80, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("abc")), min_size=1
    )
)
def test_agreement_cohen_kappa_matches_sklearn(pairs: list[tuple[str, str]]) -> None:
    first, second = (list(x) for x in zip(*pairs, strict=True))
    kappa = cohen_kappa(first, second)
    assert kappa == pytest.approx(cohen_kappa(second, first))
    if len(set(first) | set(second)) > 1:
        assert kappa == pytest.approx(cohen_kappa_score(first, second))
    else:
        assert kappa == 1.0


# --- ratings and consensus ---------------------------------------------------------


@pytest.mark.parametrize(
    "answer,expected",
    [
        ({"label": "X", "answer": "accept"}, Rating(("X",), True, True)),
        ({"label": "X", "answer": "reject"}, Rating(("X",), False, True)),
        ({"label": "X", "answer": "ignore"}, None),
        ({"accept": ["B", "A"], "answer": "accept"}, Rating(("A", "B"))),
        ({"accept": [], "answer": "accept"}, Rating(())),
        ({"accept": [2, 1], "answer": "accept"}, Rating(("1", "2"))),
        ({"accept": ["B"], "answer": "reject", "label": "A"}, Rating(("B",))),
        ({"accept": [], "answer": "reject", "label": "A"}, Rating(("A",), False, True)),
        ({"accept": [], "answer": "reject"}, None),
        ({"accept": ["A"], "answer": "ignore"}, None),
        ({"answer": "accept"}, None),
    ],
)
def test_agreement_rating_of_an_answer(answer: dict, expected: Rating | None) -> None:
    assert rating(answer) == expected


def test_agreement_rating_reads_well() -> None:
    assert [str(r) for r in (YES, NO, Rating(("A", "B")), Rating(()))] == [
        "SPORTS",
        "not SPORTS",
        "A, B",
        "(none)",
    ]


def test_agreement_consensus_teach_answers() -> None:
    agreed, conflicts = consensus(THREE)
    by_text = {a["_input_key"]: a["text"] for a in THREE}
    assert {by_text[h]: r for h, r in agreed.items()} == {
        "t1": YES,
        "t2": NO,
        "t3": YES,
        "t4": NO,
        "t5": NO,
    }
    assert conflicts == {}


def test_agreement_consensus_reports_conflicts_with_their_answers() -> None:
    answers = [
        teach("split", "a", "accept", id_=1),
        teach("split", "b", "reject", id_=2),
        teach("agree", "a", "accept", id_=3),
        teach("agree", "b", "accept", id_=4),
        teach("alone", "a", "accept", id_=5),
    ]
    agreed, conflicts = consensus(answers)
    assert list(agreed.values()) == [YES]
    (conflict,) = conflicts.values()
    assert [(a["_annotator_id"], a["answer"]) for a in conflict] == [
        ("a", "accept"),
        ("b", "reject"),
    ]
    hashes = {a["text"]: a["_input_key"] for a in answers}
    assert set(agreed) == {hashes["agree"]} and set(conflicts) == {hashes["split"]}
    # "alone" has one answer: still open with min_answers=2, agreed with 1.
    assert consensus(answers, min_answers=1)[0][hashes["alone"]] == YES
    # Waiting for 3 annotators: nothing is decided yet.
    assert consensus(answers, min_answers=3) == ({}, {})


def test_agreement_consensus_needs_a_strict_majority() -> None:
    answers = [
        choice("t", "a", ["A"]),
        choice("t", "b", ["A"]),
        choice("t", "c", ["B"]),
        choice("t", "d", ["A", "B"]),
    ]
    assert consensus(answers[:3])[0] == {answers[0]["_input_key"]: Rating(("A",))}
    agreed, conflicts = consensus(answers)  # 2 of 4 is no majority
    assert agreed == {} and len(conflicts[answers[0]["_input_key"]]) == 4


def test_agreement_consensus_choice_order_doesnt_matter() -> None:
    answers = [choice("t", "a", ["B", "A"]), choice("t", "b", ["A", "B"])]
    agreed, _ = consensus(answers)
    assert list(agreed.values()) == [Rating(("A", "B"))]


def test_agreement_latest_answer_of_an_annotator_counts() -> None:
    answers = [
        teach("t", "a", "reject", id_=9),  # a's edit: the newest row
        teach("t", "a", "accept", id_=1),
        teach("t", "b", "reject", id_=5),
        teach("t", "c", "ignore", id_=10),  # says nothing
    ]
    assert ratings(answers) == {answers[0]["_input_key"]: {"b": NO, "a": NO}}
    agreed, conflicts = consensus(answers)
    assert list(agreed.values()) == [NO] and conflicts == {}
    assert annotators(answers) == ["b", "a"]


def test_agreement_needs_store_fields() -> None:
    answer = teach("t", "a", "accept")
    del answer["_annotator_id"]
    with pytest.raises(ValueError, match=r"\[E750\] Answer 1 .*'_annotator_id'"):
        consensus([teach("t", "b", "accept"), answer])
    with pytest.raises(ValueError, match=r"\[E750\] Answer 0 .*'_input_key'"):
        ratings(["accept"])  # type: ignore[list-item]


@pytest.mark.parametrize("min_answers", [0, -1, 1.5, True, "2"])
def test_agreement_consensus_checks_min_answers(min_answers: Any) -> None:
    with pytest.raises(ValueError, match=r"\[E755\] 'min_answers'"):
        consensus(THREE, min_answers=min_answers)


def test_agreement_consensus_on_store_answers(db_url: str) -> None:
    with Store(db_url) as db:
        for name, answers in [
            ("al", ["accept", "reject", "accept"]),
            ("bo", ["accept", "reject", "reject"]),
            ("cy", ["accept", "accept", "reject"]),
        ]:
            tasks = [
                {"text": text, "label": "SPAM", "answer": answer}
                for text, answer in zip(["a", "b", "c"], answers, strict=True)
            ]
            db.add_answers("d", tasks, annotator=name)
        # bo changes their mind on "a": a conflict for two annotators, not three.
        db.add_answers(
            "d", [{"text": "a", "label": "SPAM", "answer": "reject"}], annotator="bo"
        )
        answers = db.get_answers("d")
    agreed, conflicts = consensus(answers, min_answers=3)
    texts = {a["_input_key"]: a["text"] for a in answers}
    spam, ham = (Rating(("SPAM",), accept, True) for accept in (True, False))
    assert {texts[h]: r for h, r in agreed.items()} == {"a": spam, "b": ham, "c": ham}
    assert conflicts == {}
    two = [a for a in answers if a["_annotator_id"] != "cy"]
    agreed, conflicts = consensus(two)
    assert {texts[h] for h in conflicts} == {"a", "c"}
    assert {texts[h]: r for h, r in agreed.items()} == {"b": ham}


# --- per-annotator agreement --------------------------------------------------------


def test_agreement_pairwise_known_value() -> None:
    pairs = list(
        zip(
            ["negative", "positive", "negative", "neutral", "positive"],
            ["negative", "positive", "negative", "neutral", "negative"],
            strict=True,
        )
    )
    answers = [
        choice(f"t{i}", name, [label])
        for i, pair in enumerate(pairs)
        for name, label in zip("ab", pair, strict=True)
    ]
    answers.append(choice("only a", "a", ["neutral"]))
    found = pairwise_agreement(answers, "a", "b")
    assert (found.n, found.observed) == (5, 0.8)
    assert found.kappa == pytest.approx(0.6875)


def test_agreement_pairwise_unknown_annotator() -> None:
    with pytest.raises(ValueError, match=r"\[E751\].*'zoe'.*'a', 'b', 'c'"):
        pairwise_agreement(THREE, "a", "zoe")


def test_agreement_with_the_others_majority() -> None:
    # a: compared on t1, t2, t5 (t3, t4: b and c split): a = Y N Y, others = Y N N.
    #    po = 2/3, pe = 2/3 * 1/3 + 1/3 * 2/3 = 4/9 -> kappa = (2/9) / (5/9) = 0.4.
    # b: t1, t2 only (a and c split on t3, t4, t5): kappa 1.
    # c: t1-t4 (a and b split on t5): c = Y N N Y, others = Y N Y N -> kappa 0.
    found = consensus_agreement(THREE)
    assert found["a"].kappa == pytest.approx(0.4)
    assert (found["a"].n, found["a"].observed) == (3, pytest.approx(2 / 3))
    assert (found["b"].kappa, found["b"].n) == (1.0, 2)
    assert (found["c"].kappa, found["c"].n, found["c"].observed) == (0.0, 4, 0.5)


def test_agreement_with_the_majority_of_all() -> None:
    # a = Y N Y N Y against the majority of all = Y N Y N N: po = 4/5,
    # pe = 3/5 * 2/5 + 2/5 * 3/5 = 12/25 -> kappa = (8/25) / (13/25) = 8/13.
    found = consensus_agreement(THREE, reference="all")
    assert found["a"].kappa == pytest.approx(8 / 13)
    assert (found["a"].n, found["a"].observed) == (5, 0.8)
    with pytest.raises(ValueError, match=r"\[E752\].*'everyone'"):
        consensus_agreement(THREE, reference="everyone")


def test_agreement_rating_table_counts_each_input() -> None:
    table = rating_table(THREE)
    assert table.categories == [YES, NO]
    assert table.counts.tolist() == [[3, 0], [0, 3], [2, 1], [1, 2], [1, 2]]
    assert len(table.input_keys) == 5


def test_agreement_summary() -> None:
    summary = agreement_summary(THREE)
    # Fleiss: P-bar = (1 + 1 + 1/3 * 3) / 5 = 0.6; shares 7/15, 8/15 ->
    # P_e = 113/225; kappa = (0.6 - 113/225) / (112/225) = 22/112.
    assert summary["fleiss_kappa"] == pytest.approx(22 / 112)
    assert summary["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha(rating_table(THREE).counts)
    )
    assert {k: summary[k] for k in ("n_examples", "n_annotators", "n_shared")} == {
        "n_examples": 5,
        "n_annotators": 3,
        "n_shared": 5,
    }
    assert (summary["n_agreed"], summary["n_conflicts"]) == (5, 0)
    assert summary["annotators"]["c"] == {"kappa": 0.0, "observed": 0.5, "n": 4}
    json.dumps(summary, allow_nan=False)  # the app and stats can serve it as is


def test_agreement_summary_with_one_annotator_is_undefined_not_an_error() -> None:
    summary = agreement_summary([teach("t", "a", "accept")])
    assert summary["fleiss_kappa"] is None and summary["krippendorff_alpha"] is None
    assert summary["annotators"] == {"a": {"kappa": None, "observed": None, "n": 0}}
    assert (summary["n_examples"], summary["n_shared"]) == (1, 0)


# --- NER ratings ---------------------------------------------------------------


def ner(who: str, view: str, spans: list[dict], value: str = "accept") -> dict:
    return {
        "text": "Ada met Bob",
        "spans": spans,
        "answer": value,
        "_view_id": view,
        "_input_hash": 7,
        "_input_key": 7,
        "_annotator_id": who,
    }


ADA = {"start": 0, "end": 3, "label": "PERSON"}
BOB = {"start": 8, "end": 11, "label": "PERSON"}


def test_agreement_ner_manual_rating_is_the_set_of_entities() -> None:
    one = rating(ner("a", "ner_manual", [BOB, ADA]))
    assert one == rating(ner("b", "ner_manual", [ADA, BOB]))
    assert one == Rating(("PERSON 0:3", "PERSON 8:11"))
    assert rating(ner("a", "ner_manual", [])) == Rating(())  # "no entities" is a rating
    assert rating(ner("a", "ner_manual", [ADA], "reject")) is None


def test_agreement_ner_teach_rating_is_one_entity_right_or_wrong() -> None:
    assert rating(ner("a", "ner", [ADA])) == Rating(("PERSON 0:3",), binary=True)
    assert str(rating(ner("a", "ner", [ADA], "reject"))) == "not PERSON 0:3"
    assert rating(ner("a", "ner", [])) is None


def test_agreement_ner_conflict_and_kappa() -> None:
    answers = [ner("a", "ner_manual", [ADA]), ner("b", "ner_manual", [ADA, BOB])]
    agreed, conflicts = consensus(answers, min_answers=2)
    assert agreed == {} and list(conflicts) == [7]
    summary = agreement_summary(answers)
    assert summary["n_conflicts"] == 1 and summary["annotators"]["a"]["observed"] == 0


def test_agreement_rated_answers_keeps_each_annotators_latest() -> None:
    first = {**ner("a", "ner_manual", [ADA]), "_id": 1}
    later = {**ner("a", "ner_manual", [BOB]), "_id": 2}
    other = {**ner("b", "ner_manual", [BOB]), "_id": 3}
    found = rated_answers([later, other, first])
    assert list(found[7]) == ["a", "b"]
    assert found[7]["a"][0] is later and found[7]["a"][1] == Rating(("PERSON 8:11",))
