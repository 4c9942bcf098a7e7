import pytest

from spacy_al.corpus import set_hashes
from spacy_al.textcat.targets import answers_to_textcat_targets, gold_cats_for_export

LABELS3 = ["SPORTS", "POLITICS", "TECH"]


def answer(text, label=None, answer="accept", accept=None):
    eg = {"text": text, "answer": answer}
    if label is not None:
        eg["label"] = label
    if accept is not None:
        eg["accept"] = accept
    return set_hashes(eg)


def test_targets_accept_is_gold_for_exclusive():
    (t,) = answers_to_textcat_targets([answer("a", "TECH")], LABELS3, exclusive=True)
    assert t.cats == {"SPORTS": 0.0, "POLITICS": 0.0, "TECH": 1.0}
    assert t.is_gold


def test_targets_reject_of_three_is_partial_not_wrong_gold():
    (t,) = answers_to_textcat_targets(
        [answer("a", "SPORTS", "reject")], LABELS3, exclusive=True
    )
    assert t.cats == {"SPORTS": 0.0}
    assert not t.is_gold


def test_targets_reject_of_two_names_the_other_label():
    (t,) = answers_to_textcat_targets(
        [answer("a", "spam", "reject")], ["ham", "spam"], exclusive=True
    )
    assert t.cats == {"ham": 1.0, "spam": 0.0}
    assert t.is_gold


def test_targets_rejects_accumulate_until_one_label_is_left():
    answers = [answer("a", "SPORTS", "reject"), answer("a", "TECH", "reject")]
    (t,) = answers_to_textcat_targets(answers, LABELS3, exclusive=True)
    assert t.cats == {"SPORTS": 0.0, "POLITICS": 1.0, "TECH": 0.0}
    assert t.is_gold


def test_targets_reject_then_correct_in_one_step_is_gold():
    eg = answer("a", "SPORTS", "reject", accept=["TECH"])
    (t,) = answers_to_textcat_targets([eg], LABELS3, exclusive=True)
    assert t.cats["TECH"] == 1.0 and t.is_gold


def test_targets_multilabel_binary_answers_are_partial():
    answers = [answer("a", "SPORTS"), answer("a", "TECH", "reject")]
    (t,) = answers_to_textcat_targets(answers, LABELS3, exclusive=False)
    assert t.cats == {"SPORTS": 1.0, "TECH": 0.0}
    assert not t.is_gold


def test_targets_ignore_says_nothing():
    assert (
        answers_to_textcat_targets(
            [answer("a", "TECH", "ignore")], LABELS3, exclusive=True
        )
        == []
    )


def test_targets_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match=r"E402.*'SCIENCE'"):
        answers_to_textcat_targets([answer("a", "SCIENCE")], LABELS3, exclusive=True)


@pytest.mark.parametrize("exclusive,kept", [(True, 1), (False, 2)])
def test_targets_export_leaves_out_partial_exclusive_targets(exclusive, kept):
    targets = answers_to_textcat_targets(
        [answer("a", "TECH"), answer("b", "SPORTS", "reject")],
        LABELS3,
        exclusive=exclusive,
    )
    out, dropped = gold_cats_for_export(targets, exclusive=exclusive)
    assert len(out) == kept and dropped == 2 - kept
