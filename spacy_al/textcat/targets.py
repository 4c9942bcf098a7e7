"""Turn stored answers into training targets for text classification.

An answer says more or less depending on the question and the model:

* a choice (``accept: [labels]``, from ``textcat.manual``/``textcat.correct`` or a
  "reject → correct" in one step) is gold: for an exclusive model one label is true
  and all others false; for a multilabel model the chosen labels are true, the
  others false;
* a binary accept of a suggested ``label`` is gold for an exclusive model (that
  label, and therefore no other) but only says "this label is true" for a
  multilabel one;
* a binary reject says only "not this label". With two exclusive labels that means
  the other one; with three or more it is partial: the target holds a single 0 and
  every other label stays *missing*, so the loss is masked there (never turned into
  a wrong gold label, never dropped);
* ``ignore`` says nothing.

Answers on the same input are combined: the newest gold answer wins; rejections
accumulate, and when every label but one is rejected on an exclusive model, the
remaining one is inferred.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from spacy_al.corpus import input_key_of
from spacy_al.errors import Errors


@dataclass
class TextcatTarget:
    """What is known about one text: ``cats`` holds only the known labels."""

    text: str
    input_key: int
    cats: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    # True when every label's value is known (a gold label), False when partial.
    is_gold: bool = False


def _check_labels(labels: Iterable[str], known: Sequence[str], where: str) -> None:
    for label in labels:
        if label not in known:
            raise ValueError(
                Errors.E402.format(label=label, labels=list(known), where=where)
            )


def answers_to_textcat_targets(
    answers: Iterable[dict],
    labels: Sequence[str],
    *,
    exclusive: bool,
) -> list[TextcatTarget]:
    """Combine answers per input into one target each, in first-answer order."""
    labels = list(labels)
    by_input: dict[int, dict] = {}
    for eg in answers:
        if eg.get("answer") == "ignore":
            continue
        key = input_key_of(eg)
        state = by_input.setdefault(
            key,
            {"text": eg["text"], "gold": None, "pos": set(), "neg": set(), "meta": {}},
        )
        state["meta"] = dict(eg.get("meta") or {})
        where = f"answer on input {key}"
        chosen = eg.get("accept")
        if chosen is not None and (eg.get("answer") == "accept" or chosen):
            # A choice or a reject → correct: the chosen labels are the truth.
            _check_labels(chosen, labels, where)
            state["gold"] = list(chosen)
            continue
        label = eg.get("label")
        if label is None:
            continue
        _check_labels([label], labels, where)
        if eg.get("answer") == "accept":
            if exclusive:
                state["gold"] = [label]
            else:
                state["pos"].add(label)
                state["neg"].discard(label)
        elif eg.get("answer") == "reject":
            state["neg"].add(label)
            state["pos"].discard(label)
    targets = []
    for key, state in by_input.items():
        cats, complete = _resolve(state, labels, exclusive=exclusive)
        if cats:
            targets.append(
                TextcatTarget(state["text"], key, cats, state["meta"], complete)
            )
    return targets


def _resolve(
    state: dict, labels: list[str], *, exclusive: bool
) -> tuple[dict[str, float], bool]:
    gold = state["gold"]
    if gold is not None:
        if exclusive and len(gold) != 1:
            # An exclusive model can't learn "none" or "several" as one target.
            return {}, False
        return {label: float(label in gold) for label in labels}, True
    if exclusive:
        remaining = [label for label in labels if label not in state["neg"]]
        if len(remaining) == 1:
            return {label: float(label == remaining[0]) for label in labels}, True
        if not remaining:
            return {}, False
        return {label: 0.0 for label in state["neg"]}, False
    cats = {label: 1.0 for label in state["pos"]}
    cats.update({label: 0.0 for label in state["neg"]})
    return cats, len(cats) == len(labels)


def gold_cats_for_export(
    targets: Iterable[TextcatTarget], *, exclusive: bool
) -> tuple[list[TextcatTarget], int]:
    """Targets a plain ``spacy train`` run can learn from, and how many were left out.

    spaCy's exclusive ``textcat`` has no missing values: a partial target would train
    as "every unknown label is false", so partial targets are left out (and
    counted). ``textcat_multilabel`` masks absent labels, so all targets go in.
    """
    kept: list[TextcatTarget] = []
    dropped = 0
    for target in targets:
        if exclusive and not target.is_gold:
            dropped += 1
        else:
            kept.append(target)
    return kept, dropped
