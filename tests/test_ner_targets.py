import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_al.corpus import set_hashes
from spacy_al.errors import SourceError
from spacy_al.ner.targets import NERTarget, answers_to_ner_targets, reference_doc

LABELS = ["GPE", "PERSON"]
TEXT = "Alice flew from Paris to Rome ."
ALICE = {"start": 0, "end": 5, "label": "PERSON"}
PARIS = {"start": 16, "end": 21, "label": "GPE"}
ROME = {"start": 25, "end": 29, "label": "GPE"}


def binary(span, answer, text=TEXT):
    return set_hashes(
        {"text": text, "spans": [span], "answer": answer, "_view_id": "ner"}
    )


def manual(spans, answer="accept", text=TEXT):
    return set_hashes(
        {"text": text, "spans": spans, "answer": answer, "_view_id": "ner_manual"}
    )


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def test_ner_targets_accept_is_partial(nlp):
    (target,) = answers_to_ner_targets([binary(PARIS, "accept")], LABELS)
    assert target.spans == [PARIS] and not target.rejected and not target.is_gold
    doc, _ = reference_doc(nlp, target, incorrect_spans_key="neg")
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "GPE")]
    # Every token outside the accepted span is unknown, not "outside".
    assert [t.ent_iob_ for t in doc] == ["", "", "", "B", "", "", ""]


def test_ner_targets_reject_goes_to_incorrect_spans(nlp):
    (target,) = answers_to_ner_targets([binary(ALICE, "reject")], LABELS)
    assert target.spans == [] and target.rejected == [ALICE]
    doc, rejected = reference_doc(nlp, target, incorrect_spans_key="neg")
    assert [(s.text, s.label_) for s in doc.spans["neg"]] == [("Alice", "PERSON")]
    assert [s.text for s in rejected] == ["Alice"]
    assert all(t.ent_iob_ == "" for t in doc)


def test_ner_targets_manual_accept_is_gold(nlp):
    (target,) = answers_to_ner_targets([manual([ALICE, ROME])], LABELS)
    assert target.is_gold and target.labels == ["PERSON", "GPE"]
    doc, _ = reference_doc(nlp, target, incorrect_spans_key="neg")
    assert [t.ent_iob_ for t in doc] == ["B", "O", "O", "O", "O", "B", "O"]


def test_ner_targets_manual_accept_without_spans_says_no_entity(nlp):
    (target,) = answers_to_ner_targets([manual([])], LABELS)
    doc, _ = reference_doc(nlp, target, incorrect_spans_key=None)
    assert target.is_gold and all(t.ent_iob_ == "O" for t in doc)


@pytest.mark.parametrize(
    "answers",
    [
        [manual([ALICE], answer="reject")],  # an unusable text
        [binary(ALICE, "ignore")],
        [manual([ALICE], answer="ignore")],
    ],
)
def test_ner_targets_ignore_and_manual_reject_say_nothing(answers):
    assert answers_to_ner_targets(answers, LABELS) == []


def test_ner_targets_binary_answers_accumulate_and_newest_wins():
    answers = [
        binary(PARIS, "accept"),
        binary(ALICE, "reject"),
        binary(ROME, "reject"),
        binary(ROME, "accept"),  # changed mind: Rome is a GPE after all
    ]
    (target,) = answers_to_ner_targets(answers, LABELS)
    assert target.spans == [PARIS, ROME]
    assert target.rejected == [ALICE]


def test_ner_targets_overlapping_accepts_keep_the_newest():
    wide = {"start": 16, "end": 29, "label": "GPE"}  # "Paris to Rome"
    (target,) = answers_to_ner_targets(
        [binary(PARIS, "accept"), binary(wide, "accept")], LABELS
    )
    assert target.spans == [wide]


def test_ner_targets_manual_answer_overrides_binary_ones():
    (target,) = answers_to_ner_targets(
        [binary(ALICE, "reject"), manual([PARIS])], LABELS
    )
    assert target.is_gold and target.spans == [PARIS] and target.rejected == []


@pytest.mark.parametrize(
    "view,answer,gold",
    [(None, "accept", True), (None, "reject", False), ("ner_teach", "accept", False)],
)
def test_ner_targets_view_decides_binary_or_gold(view, answer, gold):
    eg = set_hashes({"text": TEXT, "spans": [PARIS], "answer": answer})
    if view:
        eg["_view_id"] = view
    (target,) = answers_to_ner_targets([eg], LABELS)
    assert target.is_gold is gold


def test_ner_targets_keep_the_answer_tokens():
    eg = manual([PARIS])
    eg["tokens"] = [{"text": w} for w in TEXT.split()]
    (target,) = answers_to_ner_targets([eg], LABELS)
    assert target.tokens == TEXT.split()
    assert target.task()["tokens"] == TEXT.split()


def test_ner_targets_unknown_label_is_refused():
    with pytest.raises(ValueError, match=r"E530.*'ORG'"):
        answers_to_ner_targets([binary({**ALICE, "label": "ORG"}, "accept")], LABELS)


@pytest.mark.parametrize(
    "span,code",
    [
        ({"start": 16, "end": 99, "label": "GPE"}, "E505"),
        ({"start": 5, "end": 5, "label": "GPE"}, "E506"),
        ({"start": "0", "end": 5, "label": "GPE"}, "E503"),
    ],
)
def test_ner_targets_malformed_spans_are_refused(span, code):
    with pytest.raises(SourceError, match=code):
        answers_to_ner_targets([binary(span, "accept")], LABELS)


def test_ner_targets_overlapping_manual_spans_are_refused():
    wide = {"start": 16, "end": 29, "label": "GPE"}
    with pytest.raises(SourceError, match="E509"):
        answers_to_ner_targets([manual([PARIS, wide])], LABELS)


def test_ner_targets_bad_answer_value_is_refused():
    with pytest.raises(ValueError, match="E960"):
        answers_to_ner_targets([{**binary(PARIS, "accept"), "answer": "yes"}], LABELS)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ALICE, PARIS, ROME]), st.sampled_from(["accept", "reject"])
        ),
        min_size=1,
        max_size=8,
    )
)
def test_ner_targets_binary_answers_always_make_a_trainable_doc(pairs):
    # Whatever the order of answers, a triple is never both accepted and
    # rejected, accepted spans never overlap, and the reference Doc builds.
    answers = [binary(span, answer) for span, answer in pairs]
    (target,) = answers_to_ner_targets(answers, LABELS)
    triples = {(s["start"], s["end"], s["label"]) for s in target.spans}
    assert not triples & {(s["start"], s["end"], s["label"]) for s in target.rejected}
    last = {}
    for span, answer in pairs:
        last[(span["start"], span["end"], span["label"])] = answer
    assert triples == {t for t, a in last.items() if a == "accept"}
    doc, _ = reference_doc(spacy.blank("en"), target, incorrect_spans_key="neg")
    assert len(doc.ents) == len(target.spans)


def test_ner_targets_target_task_round_trip():
    target = NERTarget(TEXT, 1, [PARIS], [ALICE], None, {}, False)
    task = target.task()
    assert [s["answer"] for s in task["spans"]] == ["accept", "reject"]
    assert "tokens" not in task
