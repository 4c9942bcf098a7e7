"""The answer format and its one validator (issue #10, "the answer format")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import srsly

from spacy_al.answers import (
    ANSWERS,
    AnswerError,
    check_accept,
    check_answer_value,
    validate_answer,
)
from spacy_al.corpus import Source, get_input_key, get_task_key
from spacy_al.errors import SourceError
from spacy_al.ner.targets import answers_to_ner_targets
from spacy_al.store import Store


def test_answers_validate_sets_keys_and_hashes() -> None:
    answer = {"text": "Goal!", "label": "SPORTS", "answer": "accept"}
    checked = validate_answer(answer)
    assert checked["_input_key"] == get_input_key({"text": "Goal!"})
    assert checked["_task_key"] == get_task_key({"text": "Goal!", "label": "SPORTS"})
    assert isinstance(checked["_input_hash"], int)
    assert "_input_key" not in answer  # a copy


@pytest.mark.parametrize("value", ["maybe", None, 1, "Accept"])
def test_answers_one_message_for_a_wrong_answer_value(value: Any) -> None:
    with pytest.raises(AnswerError) as info:
        check_answer_value(value)
    assert "E960" in str(info.value) and repr(value) in str(info.value)
    assert info.value.field == "answer"


def test_answers_every_part_refuses_a_wrong_value_with_the_same_code(
    tmp_path: Path,
) -> None:
    """The store, a source file, a filter and the NER targets all say E960,
    each naming where the value came from and what to do."""
    with Store(tmp_path / "a.db") as store:
        with pytest.raises(AnswerError, match="E960.*'answer'.*'yes'"):
            store.add_answers("d", [{"text": "x", "answer": "yes"}], annotator="a")
        store.add_answers("d", [{"text": "x", "answer": "accept"}], annotator="a")
        with pytest.raises(ValueError, match="E960.*'answers'.*'acept'.*Filter"):
            store.get_answers("d", answers=["acept"])
    path = tmp_path / "in.jsonl"
    srsly.write_jsonl(path, [{"text": "x", "answer": "maybe"}])
    with pytest.raises(SourceError, match="E960.*--skip-invalid") as info:
        list(Source(path))
    assert (info.value.line, info.value.field) == (1, "answer")
    with pytest.raises(ValueError, match="E960"):
        answers_to_ner_targets([{"text": "x", "answer": "nope"}], ["PERSON"])
    assert ANSWERS == ("accept", "reject", "ignore")


def test_answers_accept_is_checked_against_the_labels() -> None:
    check_accept(["A"], labels=["A", "B"])
    check_accept([1, "x"])  # option ids, no label set given
    with pytest.raises(AnswerError, match="E605") as info:
        check_accept(["C"], labels=["A", "B"])
    assert info.value.field == "accept"
    with pytest.raises(AnswerError, match="E108"):
        check_accept("A")
    with pytest.raises(AnswerError, match="E605"):
        validate_answer(
            {"text": "x", "answer": "accept", "accept": ["C"]}, labels=["A"]
        )


def test_answers_input_key_must_be_the_contents() -> None:
    task = validate_answer({"text": "x", "answer": "accept"})
    validate_answer(task)  # its own key is fine
    with pytest.raises(AnswerError, match="E961") as info:
        validate_answer({**task, "text": "y"})
    assert info.value.field == "_input_key"
