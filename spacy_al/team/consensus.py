"""Consensus-aware learning: what one input's answers let the model learn.

With ``overlap`` N, every example is answered by N annotators, and the model
learns from it only once they have all answered and agree:

* **wait**: fewer than N annotators have answered (an ``ignore`` counts as an
  answer: it says nothing, but that annotator is done);
* **learn**: more than half of the ratings given are equal (see
  :func:`spacy_al.team.agreement.consensus`); the answers that make up the majority
  are learnt from, one per annotator. If everyone ignored it, nothing is learnt;
* **conflict**: there is no such majority; nothing is learnt (nor exported as
  gold) until a reviewer adjudicates it.

A reviewer's answer (``_review: true``, from the ``review`` recipe) overrides
everything else: the input is learnt from that answer alone, the latest one
if it was reviewed twice, whatever the overlap. With ``overlap`` 1 and no
review, every answer is learnt from, combined as before.

The loop (live, answer by answer), the recipes at start-up and ``train`` /
``data-to-spacy`` all decide through :class:`Consensus`, so an example is
learnt by the same rule everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from spacy_al.corpus import input_key_of
from spacy_al.errors import Errors
from spacy_al.team.agreement import Rating, consensus, rated_answers

if TYPE_CHECKING:
    from spacy_al.store import Store

#: The key that marks a reviewer's (adjudicating) answer.
REVIEW_KEY = "_review"
#: The view the review recipe serves; its answers are reviews too.
REVIEW_VIEW = "review"
#: Dataset meta key of a review dataset: the datasets it adjudicates.
REVIEW_OF = "review_of"

Kind = Literal["wait", "learn", "conflict"]


def is_review(answer: dict[str, Any]) -> bool:
    """Whether ``answer`` is a reviewer's adjudication."""
    return answer.get(REVIEW_KEY) is True or answer.get("_view_id") == REVIEW_VIEW


@dataclass(frozen=True)
class Decision:
    """What one input's answers allow.

    ``answers``: for ``learn``, the answers to learn from (empty when they say
    nothing); for ``conflict``, each annotator's latest rated answer, oldest
    first; for ``wait``, the answers so far. ``rating`` is the agreed (or
    reviewed) rating, when there is one.
    """

    kind: Kind
    answers: tuple[dict[str, Any], ...] = ()
    rating: Rating | None = None
    reviewed: bool = False

    @property
    def learn(self) -> bool:
        return self.kind == "learn"


@dataclass
class Split:
    """A dataset's answers sorted by :meth:`Consensus.split`.

    ``learn``: the answers to learn from (reviews last, so they win where
    answers are merged); ``waiting`` / ``conflicts``: every answer of the inputs
    held back, by input key; ``decisions``: each input's decision.
    """

    learn: list[dict[str, Any]] = field(default_factory=list)
    waiting: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    conflicts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    decisions: dict[int, Decision] = field(default_factory=dict)

    @property
    def held(self) -> list[dict[str, Any]]:
        """Every answer of the inputs held back (waiting or in conflict)."""
        out = [eg for group in self.waiting.values() for eg in group]
        out.extend(eg for group in self.conflicts.values() for eg in group)
        return out

    @property
    def n_reviewed(self) -> int:
        return sum(d.reviewed for d in self.decisions.values())


class Consensus:
    """The rule that turns an input's answers into a :class:`Decision`.

    ``overlap`` is the number of annotators asked about each example (the
    recipes' ``--overlap``).
    """

    def __init__(self, overlap: int = 1) -> None:
        if not (isinstance(overlap, int) and not isinstance(overlap, bool)) or (
            overlap < 1
        ):
            raise ValueError(Errors.E860.format(value=overlap))
        self.overlap = overlap

    def __repr__(self) -> str:
        return f"Consensus(overlap={self.overlap})"

    def decide(self, answers: Sequence[dict[str, Any]]) -> Decision:
        """The decision on one input's answers (each with ``_annotator_id``)."""
        reviews = [eg for eg in answers if is_review(eg)]
        if reviews:
            rated = rated_answers(reviews)
            if rated:  # a review that only ignores leaves the others to decide
                (by,) = rated.values()
                answer, value = _newest(list(by.values()))
                return Decision("learn", (answer,), value, reviewed=True)
        plain = [eg for eg in answers if not is_review(eg)]
        if self.overlap == 1:
            return Decision("learn", tuple(plain))
        if len({eg.get("_annotator_id") for eg in plain}) < self.overlap:
            return Decision("wait", tuple(plain))
        agreed, conflicts = consensus(plain, min_answers=1)
        if conflicts:
            (conflicting,) = conflicts.values()
            return Decision("conflict", tuple(conflicting))
        if not agreed:  # nobody said anything (every answer an ignore)
            return Decision("learn")
        (top,) = agreed.values()
        (by,) = rated_answers(plain).values()
        majority = tuple(answer for answer, value in by.values() if value == top)
        return Decision("learn", majority, top)

    def split(self, answers: Iterable[dict[str, Any]]) -> Split:
        """Decide every input of ``answers`` (e.g. a dataset read from the store)."""
        groups: dict[int, list[dict[str, Any]]] = {}
        for eg in answers:
            groups.setdefault(input_key_of(eg), []).append(eg)
        out = Split()
        reviewed: list[dict[str, Any]] = []
        for key, group in groups.items():
            decision = self.decide(group)
            out.decisions[key] = decision
            if decision.kind == "wait":
                out.waiting[key] = group
            elif decision.kind == "conflict":
                out.conflicts[key] = group
            elif decision.reviewed:
                reviewed.extend(decision.answers)
            else:
                out.learn.extend(decision.answers)
        out.learn.extend(reviewed)
        return out


def review_datasets(store: Store, dataset: str) -> list[str]:
    """The datasets whose meta says they review ``dataset`` (``review_of``)."""
    found = []
    for name in store.datasets():
        if name == dataset:
            continue
        reviewed = store.dataset_meta(name).get(REVIEW_OF)
        if isinstance(reviewed, list) and dataset in reviewed:
            found.append(name)
    return found


def review_answers(store: Store, dataset: str) -> list[dict[str, Any]]:
    """Every reviewer's answer on ``dataset``'s examples, marked as reviews."""
    return [
        {**eg, REVIEW_KEY: True}
        for name in review_datasets(store, dataset)
        for eg in store.get_answers(name)
    ]


def _newest(
    rated: list[tuple[dict[str, Any], Rating]],
) -> tuple[dict[str, Any], Rating]:
    """The latest of several answers: highest ``_id``, else the last given."""
    best = max(
        range(len(rated)),
        key=lambda i: (
            rated[i][0].get("_id") if isinstance(rated[i][0].get("_id"), int) else -1,
            i,
        ),
    )
    return rated[best]
