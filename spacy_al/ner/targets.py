"""Turn stored NER answers into training targets, partial or complete.

What an answer says depends on the view it was given in (``_view_id``, as in
Prodigy):

* binary (``ner``, from ``ner.teach``): each span of the task is a question.
  "accept" says *this span is this label*; "reject" says *not this span with this
  label* (spaCy's ner learns it from ``doc.spans[incorrect_spans_key]``); every
  other token stays **missing**, so the model is trained only on what was said;
* manual (``ner_manual``, from ``ner.correct`` and ``ner.manual``): "accept" is
  gold: the spans are the entities and every other token is **outside** (O). A
  manual "reject" marks the text as unusable and says nothing about entities;
* "ignore" says nothing.

An answer without ``_view_id`` (imported data) is read as manual when accepted and
as binary when rejected. Answers on the one input combine: the newest manual
accept wins outright; binary answers accumulate, a newer answer on the same
(start, end, label) replaces an older one, and an accepted span drops older
accepted spans it overlaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from spacy_al.answers import check_answer_value
from spacy_al.corpus import input_key_of
from spacy_al.errors import Errors
from spacy_al.spans import make_ner_example, validate_spans

BINARY_VIEWS = ("ner", "ner_teach")
MANUAL_VIEWS = ("ner_manual", "spans_manual")


@dataclass
class NERTarget:
    """What is known about the entities of one text (character offsets).

    ``spans`` are the accepted entities, ``rejected`` the (start, end, label)
    triples known to be wrong. ``is_gold``: every other token is outside (a
    complete annotation); otherwise every other token is unknown.
    """

    text: str
    input_key: int
    spans: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    tokens: list[str] | None = None
    meta: dict = field(default_factory=dict)
    is_gold: bool = False

    @property
    def labels(self) -> list[str]:
        """The labels of the accepted spans."""
        return [span["label"] for span in self.spans]

    def task(self) -> dict[str, Any]:
        """The target as one task with per-span answers (for ``make_ner_example``)."""
        spans = [{**s, "answer": "accept"} for s in self.spans]
        spans += [{**s, "answer": "reject"} for s in self.rejected]
        task: dict[str, Any] = {"text": self.text, "spans": spans}
        if self.tokens:
            task["tokens"] = list(self.tokens)
        return task


def _span(span: Mapping[str, Any]) -> dict[str, Any]:
    return {"start": span["start"], "end": span["end"], "label": span["label"]}


def _tokens(eg: Mapping[str, Any]) -> list[str] | None:
    tokens = eg.get("tokens")
    if not tokens:
        return None
    return [t["text"] if isinstance(t, Mapping) else str(t) for t in tokens]


def _is_manual(eg: Mapping[str, Any]) -> bool:
    view = eg.get("_view_id")
    if view in MANUAL_VIEWS:
        return True
    if view in BINARY_VIEWS:
        return False
    return eg.get("answer") == "accept"


def _check_labels(
    spans: Sequence[Mapping[str, Any]], labels: Sequence[str], key: int
) -> None:
    for span in spans:
        if span["label"] not in labels:
            raise ValueError(
                Errors.E530.format(
                    label=span["label"],
                    labels=list(labels),
                    where=f"the answer on input {key}",
                )
            )


def answers_to_ner_targets(
    answers: Iterable[Mapping[str, Any]], labels: Sequence[str]
) -> list[NERTarget]:
    """Combine answers per input into one target each, in first-answer order.

    Raises ValueError for a label not in ``labels`` and SourceError for a
    malformed span (past the text, empty, overlapping in a manual answer).
    """
    labels = list(labels)
    states: dict[int, dict[str, Any]] = {}
    for eg in answers:
        answer = eg.get("answer")
        key = input_key_of(eg)
        check_answer_value(answer)
        if answer == "ignore":
            continue
        state = states.setdefault(
            key,
            {"text": eg["text"], "gold": None, "pos": {}, "neg": {}, "tokens": None},
        )
        state["meta"] = dict(eg.get("meta") or {})
        state["tokens"] = _tokens(eg) or state["tokens"]
        spans = eg.get("spans") or []
        if _is_manual(eg):
            if answer == "accept":
                spans = validate_spans(eg["text"], spans)
                _check_labels(spans, labels, key)
                state["gold"] = [_span(s) for s in spans]
            continue
        spans = validate_spans(eg["text"], spans, allow_overlap=True)
        _check_labels(spans, labels, key)
        for span in spans:
            triple = (span["start"], span["end"], span["label"])
            if span.get("answer", answer) == "accept":
                state["neg"].pop(triple, None)
                state["pos"] = {
                    t: s
                    for t, s in state["pos"].items()
                    if t[1] <= span["start"] or t[0] >= span["end"]
                }
                state["pos"][triple] = _span(span)
            else:
                state["pos"].pop(triple, None)
                state["neg"][triple] = _span(span)
    targets = []
    for key, state in states.items():
        common = {
            "text": state["text"],
            "input_key": key,
            "tokens": state["tokens"],
            "meta": state["meta"],
        }
        if state["gold"] is not None:
            targets.append(NERTarget(spans=state["gold"], is_gold=True, **common))
        elif state["pos"] or state["neg"]:
            pos = sorted(state["pos"].values(), key=lambda s: (s["start"], s["end"]))
            neg = sorted(state["neg"].values(), key=lambda s: (s["start"], s["end"]))
            targets.append(NERTarget(spans=pos, rejected=neg, **common))
    return targets


def reference_doc(
    nlp: Language | Vocab,
    target: NERTarget,
    *,
    incorrect_spans_key: str | None,
) -> tuple[Doc, list[Span]]:
    """The reference Doc of a target, as spaCy's ner trains on it.

    Accepted spans are the entities; the other tokens are outside (gold) or
    missing (partial); rejected spans go to ``doc.spans[incorrect_spans_key]``
    when a key is given (and are returned either way).
    """
    return make_ner_example(
        nlp,
        target.task(),
        missing=not target.is_gold,
        incorrect_spans_key=incorrect_spans_key,
    )
