"""Stored answers → training targets and spaCy corpora.

What ``train`` and ``data-to-spacy`` share: the answers to learn from (after each
dataset's consensus, reviewers' answers standing for their examples), turned into
targets, checked one answer at a time so that an answer that can't be used (a
span that cuts a word, entities that overlap) is named by its dataset and id and
left out instead of stopping the run, and merged per text into the Docs that
``spacy train`` reads.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from spacy_al.errors import Errors
from spacy_al.ner.model import INCORRECT_SPANS_KEY
from spacy_al.ner.targets import NERTarget, answers_to_ner_targets, reference_doc
from spacy_al.spans import make_ner_doc
from spacy_al.store import Store
from spacy_al.team.consensus import (
    Consensus,
    is_review,
    review_answers,
    review_datasets,
)
from spacy_al.textcat.targets import TextcatTarget, answers_to_textcat_targets

#: The key that tells which dataset an answer was read from, while it is loaded.
DATASET_KEY = "_dataset"
#: Unusable answers named one by one in :meth:`Loaded.notes`.
MAX_SHOWN = 10


@dataclass(frozen=True)
class Skipped:
    """A stored answer that can't be used, and why."""

    dataset: str
    answer_id: int | None
    error: str

    def __str__(self) -> str:
        return Errors.E965.format(
            id=self.answer_id, dataset=self.dataset, err=self.error
        )


@dataclass
class Consensed:
    """The answers to learn from, and what the datasets' consensus held back.

    ``answers``: per dataset, those its consensus lets the model learn (the
    ``overlap`` in its meta), reviewers' answers last. ``n_conflicts``: examples
    the annotators disagree on; ``n_waiting``: examples with fewer answers than
    the overlap; ``n_reviewed``: examples a reviewer's answer stands for (from
    the ``reviewers`` datasets).
    """

    answers: list[dict[str, Any]] = field(default_factory=list)
    n_conflicts: int = 0
    n_waiting: int = 0
    n_reviewed: int = 0
    reviewers: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    """Targets loaded from datasets: ``labels``, ``exclusive`` (textcat),
    ``consensus`` (what was held back) and ``skipped`` (unusable answers)."""

    targets: list[Any]
    labels: list[str]
    consensus: Consensed
    skipped: list[Skipped] = field(default_factory=list)
    exclusive: bool = True

    def notes(self, datasets: Sequence[str]) -> list[tuple[str, str]]:
        """What a command should tell its user, as (level, text) pairs (level:
        ``info``, ``warn`` or ``text``): what consensus held back, and every
        answer left out (at most ``max_shown`` named)."""
        found, notes = self.consensus, []
        if found.n_reviewed:
            names = ", ".join(found.reviewers) or "the named datasets"
            notes.append(
                (
                    "info",
                    f"Using the reviewer's answer on {found.n_reviewed} example(s) "
                    f"({names})",
                )
            )
        if found.n_conflicts:
            notes.append(
                (
                    "warn",
                    f"Left out {found.n_conflicts} example(s) the annotators "
                    f"disagree on. Adjudicate them with: python -m spacy_al review "
                    f"{datasets[0]}_review --input {','.join(datasets)}",
                )
            )
        if found.n_waiting:
            notes.append(
                (
                    "warn",
                    f"Left out {found.n_waiting} example(s) with fewer answers than "
                    f"the overlap asks for (--overlap of the labelling recipe).",
                )
            )
        if self.skipped:
            n = len(self.skipped)
            notes.append(("warn", f"Left out {n} answer(s) that can't be used:"))
            notes.extend(("text", f"  {s}") for s in self.skipped[:MAX_SHOWN])
            if n > MAX_SHOWN:
                notes.append(("text", f"  ... and {n - MAX_SHOWN} more"))
        return notes


def consensus_answers(store: Store, datasets: Sequence[str]) -> Consensed:
    """The answers to train on and export: per dataset, those its consensus lets
    the model learn, reviewers' answers last.

    Examples the annotators disagree on and examples with fewer answers than the
    overlap are held back (and counted); a reviewer's answer (the ``review``
    recipe) stands for its example. With overlap 1 and no reviews, every answer.
    Each answer carries the name of its dataset under :data:`DATASET_KEY`.
    """
    found = Consensed()
    reviews: list[dict[str, Any]] = []
    for name in datasets:
        overlap = int(store.dataset_meta(name).get("overlap") or 1)
        found.reviewers.extend(review_datasets(store, name))
        answers = [
            {**eg, DATASET_KEY: name}
            for eg in [*store.get_answers(name), *review_answers(store, name)]
        ]
        split = Consensus(overlap).split(answers)
        found.answers.extend(eg for eg in split.learn if not is_review(eg))
        reviews.extend(eg for eg in split.learn if is_review(eg))
        found.n_conflicts += len(split.conflicts)
        found.n_waiting += len(split.waiting)
        found.n_reviewed += split.n_reviewed
    found.answers.extend(reviews)
    found.reviewers = list(dict.fromkeys(found.reviewers))
    return found


def _skipped(eg: dict[str, Any], error: Exception) -> Skipped:
    answer_id = eg.get("_id")
    return Skipped(
        str(eg.get(DATASET_KEY, "?")),
        answer_id if isinstance(answer_id, int) else None,
        str(error),
    )


def _usable(
    answers: list[dict[str, Any]], check: Callable[[dict[str, Any]], None]
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """The answers ``check`` accepts, and the others named."""
    kept: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for eg in answers:
        try:
            check(eg)
        except ValueError as e:  # SourceError is a ValueError
            skipped.append(_skipped(eg, e))
        else:
            kept.append(eg)
    return kept, skipped


def load_textcat_targets(
    store: Store, datasets: Sequence[str], *, multilabel: bool | None = None
) -> Loaded:
    """Targets, labels and exclusivity for the named datasets (merged per input,
    after consensus: see :func:`consensus_answers`)."""
    labels: list[str] = []
    exclusive_flags = set()
    for name in datasets:
        meta = store.dataset_meta(name)
        labels.extend(meta.get("labels") or [])
        if "exclusive" in meta:
            exclusive_flags.add(bool(meta["exclusive"]))
    found = consensus_answers(store, datasets)
    for eg in found.answers:
        labels.extend(eg.get("accept") or [])
        if eg.get("label"):
            labels.append(eg["label"])
    labels = list(dict.fromkeys(labels))
    if multilabel is not None:
        exclusive = not multilabel
    else:
        exclusive = exclusive_flags != {False}
    answers, skipped = _usable(
        found.answers,
        lambda eg: answers_to_textcat_targets([eg], labels, exclusive=exclusive),
    )
    targets = answers_to_textcat_targets(answers, labels, exclusive=exclusive)
    return Loaded(targets, labels, found, skipped, exclusive)


def load_ner_targets(
    store: Store, datasets: Sequence[str], *, nlp: Language | None = None
) -> Loaded:
    """NER targets and entity labels for the named datasets (merged per input,
    after consensus: see :func:`consensus_answers`).

    Every answer is checked alone first: with ``nlp``, its spans must also align
    with that pipeline's tokens (as the Docs written or trained on will have
    them). An answer that fails is left out and named in ``skipped``.
    """
    labels: list[str] = []
    for name in datasets:
        labels.extend(store.dataset_meta(name).get("labels") or [])
    found = consensus_answers(store, datasets)
    for eg in found.answers:
        for span in eg.get("spans") or []:
            if isinstance(span, dict) and isinstance(span.get("label"), str):
                labels.append(span["label"])
    labels = list(dict.fromkeys(labels))

    def check(eg: dict[str, Any]) -> None:
        for target in answers_to_ner_targets([eg], labels):
            if nlp is not None:
                reference_doc(nlp, target, incorrect_spans_key=None)

    answers, skipped = _usable(found.answers, check)
    targets = answers_to_ner_targets(answers, labels)
    if nlp is not None:
        # Answers that are fine alone can still clash once merged per text.
        by_key = {}
        for eg in answers:
            by_key.setdefault(eg.get("_input_key"), []).append(eg)
        kept = []
        for target in targets:
            try:
                reference_doc(nlp, target, incorrect_spans_key=None)
            except ValueError as e:
                skipped.extend(
                    _skipped(eg, e) for eg in by_key.get(target.input_key, [])
                )
            else:
                kept.append(target)
        targets = kept
    return Loaded(targets, labels, found, skipped)


def split_targets(
    targets: list, *, eval_split: float, seed: int = 0
) -> tuple[list, list]:
    """Hold out a share of the *gold* targets; partial ones always train."""
    gold = [t for t in targets if t.is_gold]
    random.Random(seed).shuffle(gold)
    n_eval = int(round(len(gold) * eval_split))
    held_out = {t.input_key for t in gold[:n_eval]}
    return [t for t in targets if t.input_key not in held_out], gold[:n_eval]


def split_any(targets: list, *, eval_split: float, seed: int = 0) -> tuple[list, list]:
    """Hold out a share of all targets (when none is gold)."""
    order = list(targets)
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(order) * eval_split))
    return order[n_eval:], order[:n_eval]


# --- corpora for spacy train ----------------------------------------------------------


@dataclass
class Record:
    """Everything known about one text: its categories and/or its entities."""

    text: str
    cats: TextcatTarget | None = None
    ents: NERTarget | None = None

    @property
    def is_gold(self) -> bool:
        return all(t.is_gold for t in (self.cats, self.ents) if t is not None)

    def doc(self, nlp: Language) -> Doc:
        if self.ents is not None:
            doc, _ = reference_doc(
                nlp, self.ents, incorrect_spans_key=INCORRECT_SPANS_KEY
            )
        else:
            doc = make_ner_doc(nlp, {"text": self.text}, missing=True)
        if self.cats is not None:
            doc.cats = dict(self.cats.cats)
        return doc


def merge_records(
    cats: list[TextcatTarget], ents: list[NERTarget]
) -> dict[int, Record]:
    """One record per input key, in first-seen order."""
    records: dict[int, Record] = {}
    for target in cats:
        records.setdefault(target.input_key, Record(target.text)).cats = target
    for target in ents:
        records.setdefault(target.input_key, Record(target.text)).ents = target
    return records


def split_records(
    records: list[Record], *, eval_split: float, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Hold out a share of the all-gold records for dev; the rest train."""
    gold = [r for r in records if r.is_gold]
    random.Random(seed).shuffle(gold)
    n_eval = int(round(len(gold) * eval_split))
    held = {id(r) for r in gold[:n_eval]}
    return [r for r in records if id(r) not in held], gold[:n_eval]


def write_records(nlp: Language, records: list[Record], path: Path) -> int:
    """Write the records' Docs to a ``.spacy`` file; return how many."""
    db = DocBin(store_user_data=False)
    for record in records:
        db.add(record.doc(nlp))
    db.to_disk(path)
    return len(records)


def write_docbin(nlp: Language, targets: list[TextcatTarget], path: Path) -> int:
    """Docs with ``doc.cats`` for each target (only its known labels)."""
    db = DocBin(store_user_data=False)
    for target in targets:
        doc = nlp.make_doc(target.text)
        doc.cats = dict(target.cats)
        db.add(doc)
    db.to_disk(path)
    return len(targets)
