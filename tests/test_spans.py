from __future__ import annotations

import random
from pathlib import Path

import pytest
import spacy
import srsly
from hypothesis import given
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.training import Example

from spacy_al.errors import SourceError
from spacy_al.spans import (
    align_span,
    check_answer_spans,
    make_ner_doc,
    make_ner_example,
    utf16_spans_to_char,
    utf16_to_char_offset,
    validate_spans,
)

TEXT = "I love New York , don't you? Yorkshire too."


@pytest.fixture(scope="module")
def nlp() -> spacy.language.Language:
    return spacy.blank("en")


@pytest.fixture(scope="module")
def doc(nlp) -> Doc:
    return nlp.make_doc(TEXT)


def _js_offset(text: str, index: int) -> int:
    """What JavaScript's String.prototype.indexOf would report for ``index``."""
    return len(text[:index].encode("utf-16-le")) // 2


# --- UTF-16 -----------------------------------------------------------------


def test_spans_utf16_emoji_shifts_offsets():
    text = "Hi 😀 Paris"
    assert utf16_to_char_offset(text, 6) == 5
    assert (
        text[utf16_to_char_offset(text, 6) : utf16_to_char_offset(text, 11)] == "Paris"
    )
    spans = utf16_spans_to_char(text, [{"start": 6, "end": 11, "label": "GPE", "x": 1}])
    assert spans == [{"start": 5, "end": 10, "label": "GPE", "x": 1}]


def test_spans_utf16_combining_characters_count_like_python():
    # Combining marks are separate code points in both encodings: no shift.
    text = "Cafe\u0301 Zoe\u0308 in 🇫🇷 Paris"
    start = text.index("Paris")
    js_start = _js_offset(text, start)
    assert js_start == start + 2  # the flag is two astral code points
    assert utf16_to_char_offset(text, js_start) == start
    assert utf16_to_char_offset(text, _js_offset(text, text.index("Zoe"))) == 6


@pytest.mark.parametrize(
    "offset,code,fragment",
    [
        (4, "E501", "surrogate pair"),
        (12, "E502", "11 UTF-16 code units"),
        (-1, "E502", "-1"),
        ("6", "E516", "'6'"),
    ],
)
def test_spans_utf16_bad_offset_raises(offset, code, fragment):
    with pytest.raises(ValueError, match=code) as info:
        utf16_to_char_offset("Hi 😀 Paris", offset)
    assert fragment in str(info.value)


_CHARS = st.one_of(
    st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)),
    st.characters(min_codepoint=0x10000, exclude_categories=("Cs",)),
)


@given(st.text(_CHARS, max_size=40))
def test_spans_utf16_every_boundary_round_trips(text):
    js = [_js_offset(text, i) for i in range(len(text) + 1)]
    assert [utf16_to_char_offset(text, offset) for offset in js] == list(
        range(len(text) + 1)
    )
    spans = [
        {"start": js[i], "end": js[j], "label": "X"}
        for i in range(len(text))
        for j in (i + 1, len(text))
    ]
    for span, converted in zip(spans, utf16_spans_to_char(text, spans), strict=True):
        units = text.encode("utf-16-le")[2 * span["start"] : 2 * span["end"]]
        assert text[converted["start"] : converted["end"]] == units.decode("utf-16-le")
    inside = set(range(js[-1] + 1)) - set(js)
    for offset in inside:
        with pytest.raises(ValueError, match="E501"):
            utf16_to_char_offset(text, offset)


# --- validate_spans ---------------------------------------------------------


def test_spans_validate_sorts_and_keeps_extra_keys():
    spans = [
        {"start": 29, "end": 38, "label": "GPE", "source": "x"},
        {"start": 7, "end": 15, "label": "GPE"},
    ]
    checked = validate_spans(TEXT, spans, labels=["GPE"])
    assert [(s["start"], s["end"]) for s in checked] == [(7, 15), (29, 38)]
    assert checked[1]["source"] == "x"


@pytest.mark.parametrize(
    "spans,code,fragments",
    [
        (
            [{"start": 7, "end": 99, "label": "GPE"}],
            "E505",
            ["(7, 99, 'GPE')", "43 characters", "New York"],
        ),
        ([{"start": -2, "end": 3, "label": "GPE"}], "E504", ["(-2, 3, 'GPE')"]),
        ([{"start": 7, "end": 7, "label": "GPE"}], "E506", ["(7, 7, 'GPE')", "empty"]),
        ([{"start": 9, "end": 7, "label": "GPE"}], "E506", ["(9, 7, 'GPE')"]),
        (
            [{"start": 15, "end": 16, "label": "GPE"}],
            "E507",
            ["(15, 16, 'GPE')", "whitespace"],
        ),
        (
            [{"start": 7, "end": 15, "label": "CITY"}],
            "E508",
            ["'CITY'", "'New York'", "GPE, PERSON"],
        ),
        (
            [
                {"start": 7, "end": 15, "label": "GPE"},
                {"start": 11, "end": 18, "label": "GPE"},
            ],
            "E509",
            ["(7, 15, 'GPE') 'New York'", "(11, 18, 'GPE') 'York , '", "11-15"],
        ),
        ([{"start": "7", "end": 15, "label": "GPE"}], "E503", ["'start': '7'"]),
        ([{"start": 7, "end": 15}], "E503", ["integer 'start'"]),
        (["New York"], "E503", ["'New York'"]),
    ],
)
def test_spans_validate_bad_span_names_offsets_text_and_place(spans, code, fragments):
    with pytest.raises(SourceError, match=code) as info:
        validate_spans(TEXT, spans, labels=["GPE", "PERSON"], path="data.jsonl", line=7)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert "file data.jsonl, line 7, field 'spans'" in message
    assert (info.value.path, info.value.line, info.value.field) == (
        "data.jsonl",
        7,
        "spans",
    )


def test_spans_validate_overlap_allowed_for_rejected_spans():
    spans = [
        {"start": 7, "end": 15, "label": "GPE"},
        {"start": 7, "end": 15, "label": "ORG"},
    ]
    assert len(validate_spans(TEXT, spans, allow_overlap=True)) == 2


# --- align_span -------------------------------------------------------------


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (7, 15, "New York"),  # strict
        (6, 15, "New York"),  # leading whitespace stripped
        (7, 16, "New York"),  # trailing whitespace stripped
        (7, 17, "New York ,"),  # strict: the comma is its own token
        (7, 14, None),  # "New Yor": contract drops "Yor", expand adds "k"
        (8, 15, None),  # "ew York"
        (12, 15, None),  # "ork" inside a token
        (18, 21, None),  # "don": contract gives "do", expand "don't"
        (29, 33, None),  # "York" in "Yorkshire"
        (29, 38, "Yorkshire"),
    ],
)
def test_spans_align_table_from_notes(doc, start, end, expected):
    if expected is None:
        with pytest.raises(SourceError, match="E510"):
            align_span(doc, start, end, "GPE")
    else:
        span = align_span(doc, start, end, "GPE")
        assert (span.text, span.label_) == (expected, "GPE")


@pytest.mark.parametrize(
    "text,sub,expected",
    [
        ("ping @paulwalk now", "paulwalk", "@paulwalk"),  # expand adds "@"
        ("back to the U.S. today", "U.S", "U.S."),  # expand adds "."
        ("Apple Inc. sells", "Apple Inc", "Apple Inc."),
    ],
)
def test_spans_align_expands_across_punctuation(nlp, text, sub, expected):
    start = text.index(sub)
    assert (
        align_span(nlp.make_doc(text), start, start + len(sub), "ORG").text == expected
    )


def test_spans_align_contracts_across_punctuation(nlp):
    # '," is one token here, so "New York," can't align strictly.
    words = ["I", "love", "New", "York", ',"', "ok"]
    doc = Doc(nlp.vocab, words=words, spaces=[True, True, True, False, True, False])
    assert doc.text[7:16] == "New York,"
    span = align_span(doc, 7, 16, "GPE")
    assert (span.text, span.start_char, span.end_char) == ("New York", 7, 15)


def test_spans_align_failure_says_where_and_what_to_do(doc):
    with pytest.raises(SourceError) as info:
        align_span(doc, 29, 33, "GPE", path="in.jsonl", line=12)
    message = str(info.value)
    assert "(29, 33, 'GPE') 'York'" in message
    assert "inside the token 'Yorkshire' (29-38)" in message
    assert "(29, 38) 'Yorkshire'" in message
    assert "Move the span onto token boundaries" in message
    assert "file in.jsonl, line 12" in message


@pytest.mark.parametrize(
    "start,end,code", [(15, 16, "E507"), (40, 50, "E505"), (3, 3, "E506")]
)
def test_spans_align_never_returns_empty_span(doc, start, end, code):
    with pytest.raises(SourceError, match=code):
        align_span(doc, start, end, "GPE")


# --- make_ner_doc / make_ner_example ----------------------------------------

TASK = {
    "text": "Alice flew to New York .",
    "tokens": ["Alice", "flew", "to", "New", "York", "."],
    "spans": [{"start": 14, "end": 22, "label": "GPE"}],
}


@pytest.mark.parametrize("missing,other_iob", [(False, "O"), (True, "")])
def test_spans_make_ner_doc_gold_or_partial(nlp, missing, other_iob):
    doc = make_ner_doc(nlp, TASK, missing=missing)
    assert [(e.text, e.label_) for e in doc.ents] == [("New York", "GPE")]
    assert [t.ent_iob_ for t in doc] == [other_iob] * 3 + ["B", "I", other_iob]


@pytest.mark.parametrize("missing,other", [(False, "O"), (True, None)])
def test_spans_make_ner_doc_training_tags(nlp, missing, other):
    # None is what spaCy's ner leaves out of the loss.
    doc = make_ner_doc(nlp, TASK, missing=missing)
    eg = Example(nlp.make_doc(TASK["text"]), doc)
    assert eg.get_aligned_ner() == [other] * 3 + ["B-GPE", "L-GPE", other]


def test_spans_make_ner_doc_uses_task_tokens(nlp):
    task = {
        "text": "e-mail Ann at 5pm",
        "tokens": ["e-mail", "Ann", "at", "5pm"],
        "spans": [],
    }
    assert [t.text for t in nlp.make_doc(task["text"])] != task["tokens"]
    assert [t.text for t in make_ner_doc(nlp, task, missing=False)] == task["tokens"]


def test_spans_make_ner_doc_prodigy_token_dicts_and_odd_whitespace(nlp):
    text = "  Hello  New York\n!"
    tokens = [{"text": w, "id": i} for i, w in enumerate(["Hello", "New", "York", "!"])]
    task = {
        "text": text,
        "tokens": tokens,
        "spans": [{"start": 9, "end": 17, "label": "GPE"}],
    }
    doc = make_ner_doc(nlp.vocab, task, missing=False)
    assert doc.text == text
    assert [t.text for t in doc if not t.is_space] == ["Hello", "New", "York", "!"]
    assert [e.text for e in doc.ents] == ["New York"]


def test_spans_make_ner_doc_inconsistent_tokens(nlp):
    task = {**TASK, "tokens": ["Alice", "flew", "to", "Old", "York", "."]}
    doc = make_ner_doc(nlp, task, missing=False)  # falls back to the tokenizer
    assert doc.text == TASK["text"]
    assert [e.text for e in doc.ents] == ["New York"]
    with pytest.raises(SourceError, match="E512") as info:
        make_ner_doc(nlp.vocab, task, missing=False, path="t.jsonl", line=2)
    assert "token 3 'Old'" in str(info.value)
    assert info.value.field == "tokens"


@pytest.mark.parametrize("text", [None, "", "   "])
def test_spans_make_ner_doc_needs_text(nlp, text):
    with pytest.raises(SourceError, match="E511"):
        make_ner_doc(nlp, {"text": text, "spans": []}, missing=False)


def test_spans_make_ner_doc_spans_sharing_a_token_after_alignment(nlp):
    # Each span grows across punctuation only, onto the same token "?!".
    task = {
        "text": "what ?! no",
        "tokens": ["what", "?!", "no"],
        "spans": [
            {"start": 5, "end": 6, "label": "X"},
            {"start": 6, "end": 7, "label": "Y"},
        ],
    }
    with pytest.raises(SourceError, match="E513") as info:
        make_ner_doc(nlp, task, missing=False)
    assert "token 1 '?!'" in str(info.value)


def test_spans_make_ner_example_rejected_spans(nlp):
    task = {
        "text": "Alice flew to Paris .",
        "answer": "accept",
        "spans": [
            {"start": 0, "end": 5, "label": "PERSON"},
            {"start": 14, "end": 19, "label": "PERSON", "answer": "reject"},
            {"start": 14, "end": 19, "label": "ORG", "answer": "reject"},
        ],
    }
    doc, rejected = make_ner_example(nlp, task, incorrect_spans_key="neg")
    assert [(e.text, e.label_) for e in doc.ents] == [("Alice", "PERSON")]
    assert [(s.text, s.label_) for s in rejected] == [
        ("Paris", "PERSON"),
        ("Paris", "ORG"),
    ]
    assert [(s.text, s.label_) for s in doc.spans["neg"]] == [
        ("Paris", "PERSON"),
        ("Paris", "ORG"),
    ]
    assert doc[3].ent_iob_ == ""  # missing: Paris may still be something else


def test_spans_make_ner_example_task_level_reject(nlp):
    task = {**TASK, "answer": "reject"}
    doc, rejected = make_ner_example(nlp, task)
    assert list(doc.ents) == []
    assert [(s.text, s.label_) for s in rejected] == [("New York", "GPE")]


@pytest.mark.parametrize(
    "task,code",
    [
        ({**TASK, "answer": "ignore"}, "E515"),
        ({**TASK, "spans": [{**TASK["spans"][0], "answer": "maybe"}]}, "E515"),
        (
            {
                **TASK,
                "spans": [TASK["spans"][0], {**TASK["spans"][0], "answer": "reject"}],
            },
            "E514",
        ),
    ],
)
def test_spans_make_ner_example_bad_answers(nlp, task, code):
    with pytest.raises(ValueError, match=code):
        make_ner_example(nlp, task)


def _rejection_update(
    incorrect_spans_key: str | None,
) -> tuple[list[str], float, list[str]]:
    """Ents before, loss of, and ents after 25 updates on one rejected span."""
    spacy.util.fix_random_seed(0)
    random.seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("ner", config={"incorrect_spans_key": incorrect_spans_key})
    gold = [
        Example(
            nlp.make_doc(t),
            make_ner_doc(
                nlp,
                {"text": t, "spans": [{"start": s, "end": s + 5, "label": "GPE"}]},
                missing=False,
            ),
        )
        for t, s in [
            ("I live in Paris now", 10),
            ("We met in Paris today", 10),
            ("Paris is big", 0),
        ]
    ]
    optimizer = nlp.initialize(lambda: gold)
    for _ in range(15):
        nlp.update(gold, sgd=optimizer)
    task = {
        "text": "She moved to Paris",
        "answer": "reject",
        "spans": [{"start": 13, "end": 18, "label": "GPE"}],
    }
    ref, _ = make_ner_example(
        nlp, task, incorrect_spans_key=incorrect_spans_key or "neg"
    )
    before = [e.text for e in nlp(task["text"]).ents]
    losses: dict[str, float] = {}
    for _ in range(25):
        nlp.update(
            [Example(nlp.make_doc(task["text"]), ref)], sgd=optimizer, losses=losses
        )
    return before, losses["ner"], [e.text for e in nlp(task["text"]).ents]


def test_spans_rejected_spans_teach_the_ner():
    before, loss, after = _rejection_update("incorrect_spans")
    assert (before, after) == (["Paris"], [])
    assert loss > 0
    # Without the key the rejection carries no annotation and spaCy skips it.
    before, loss, after = _rejection_update(None)
    assert (before, loss, after) == (["Paris"], 0.0, ["Paris"])


# --- the real WNUT-17 training data ------------------------------------------


@pytest.fixture(scope="module")
def wnut17_train(corpora_dir: Path) -> list[dict]:
    return list(srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"))


@pytest.mark.parametrize("with_tokens", [True, False], ids=["tokens", "tokenizer"])
def test_spans_wnut17_train_aligns_strictly(nlp, wnut17_train, with_tokens):
    n_spans = 0
    for line, task in enumerate(wnut17_train, start=1):
        if not with_tokens:
            task = {key: value for key, value in task.items() if key != "tokens"}
        doc = make_ner_doc(
            nlp, task, missing=False, path="wnut17/train.jsonl", line=line
        )
        if with_tokens:
            assert [t.text for t in doc] == task["tokens"]
        got = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        assert got == [(s["start"], s["end"], s["label"]) for s in task["spans"]], line
        n_spans += len(got)
    assert (len(wnut17_train), n_spans) == (3394, 1975)


# --- answers checked before they are stored -------------------------------------


@pytest.mark.parametrize(
    "text,spans,view,code",
    [
        # "New" cuts the word "Newcastle"
        (
            "I love Newcastle",
            [{"start": 7, "end": 10, "label": "GPE"}],
            "ner_manual",
            "E510",
        ),
        (TEXT, [{"start": 8, "end": 15, "label": "GPE"}], "ner", "E510"),  # "ew York"
        (
            TEXT,
            [
                {"start": 7, "end": 15, "label": "GPE"},
                {"start": 11, "end": 15, "label": "GPE"},
            ],
            "ner_manual",
            "E509",
        ),
    ],
)
def test_spans_check_answer_spans_names_file_line_and_field(
    nlp, text, spans, view, code
):
    task = {"text": text, "spans": spans, "_view_id": view, "answer": "accept"}
    with pytest.raises(SourceError, match=code) as info:
        check_answer_spans(nlp, task, path="in.jsonl", line=4)
    assert (info.value.path, info.value.line, info.value.field) == (
        "in.jsonl",
        4,
        "spans",
    )


def test_spans_check_answer_spans_passes_what_export_can_use(nlp):
    good = [{"start": 7, "end": 15, "label": "GPE"}]
    check_answer_spans(nlp, {"text": TEXT, "spans": good, "_view_id": "ner_manual"})
    cut = [{"start": 8, "end": 15, "label": "GPE"}]
    # Ignored answers aren't learnt; a textcat card's spans are highlights only.
    check_answer_spans(nlp, {"text": TEXT, "spans": cut, "answer": "ignore"})
    check_answer_spans(nlp, {"text": TEXT, "spans": cut, "_view_id": "classification"})
