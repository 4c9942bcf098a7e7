"""Inter-annotator agreement and majority consensus over stored answers.

Works on answer dicts as :meth:`spacy_al.store.Store.get_answers` returns them. What
an answer says about its input is a :class:`Rating`:

* a choice answer (an ``accept`` list, accepted, or rejected with a correction) rates
  the input with the set of chosen labels or option ids (empty: "none of them");
* a binary (teach) answer rates it with its ``label`` accepted or rejected;
* ``ignore``, and a reject without a label or correction, say nothing;
* an NER answer (``_view_id`` "ner" or "ner_manual") rates it with its entities as
  ``"LABEL start:end"`` strings: the one span of a ``ner`` (teach) answer,
  accepted or rejected, or the complete set of an accepted ``ner_manual`` answer.

Each annotator's latest answer on an input counts (highest ``_id``, else the last
one given). Two ratings agree only if they are equal, so binary answers about
different labels of one input disagree: serve the same task to every annotator.

Kappa is undefined when both sides use one and the same category throughout
(chance agreement is 1); spacy_al then reports 1.0, since the raters agree perfectly.
Measures with nothing to compare are NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import cohen_kappa_score

from spacy_al.corpus import INPUT_KEYS, input_key_of
from spacy_al.errors import Errors

REFERENCES: tuple[str, ...] = ("others", "all")


@dataclass(frozen=True)
class Rating:
    """What one answer says about its input.

    ``labels`` are the chosen labels (a choice) or the one label asked about
    (``binary``, accepted or not).
    """

    labels: tuple[str, ...]
    accept: bool = True
    binary: bool = False

    def __str__(self) -> str:
        if self.binary:
            return self.labels[0] if self.accept else f"not {self.labels[0]}"
        return ", ".join(self.labels) or "(none)"


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa, the share of equal ratings (``observed``) and the pairs compared."""

    kappa: float
    observed: float
    n: int


@dataclass(frozen=True)
class RatingTable:
    """How many annotators gave each rating to each input.

    ``counts[i, j]`` counts ratings ``categories[j]`` of input ``input_keys[i]``.
    """

    counts: np.ndarray
    categories: list[Rating]
    input_keys: list[int]


# --- ratings ---------------------------------------------------------------------


NER_VIEWS: tuple[str, ...] = ("ner", "ner_manual")


def span_key(span: dict[str, Any]) -> str:
    """An entity as a category: ``"LABEL start:end"`` (character offsets)."""
    return f"{span.get('label')} {span.get('start')}:{span.get('end')}"


def rating(answer: dict[str, Any]) -> Rating | None:
    """The rating an answer gives its input, or None if it says nothing."""
    value = answer.get("answer")
    if value not in ("accept", "reject"):
        return None
    spans = answer.get("spans")
    if answer.get("_view_id") in NER_VIEWS and isinstance(spans, list):
        keys = tuple(sorted({span_key(s) for s in spans if isinstance(s, dict)}))
        if answer["_view_id"] == "ner":  # one entity, right or wrong
            if not keys:
                return None
            return Rating(keys[:1], accept=value == "accept", binary=True)
        # ner_manual: the accepted spans are every entity; a reject says nothing
        return Rating(keys) if value == "accept" else None
    chosen = answer.get("accept")
    if isinstance(chosen, list) and (value == "accept" or chosen):
        return Rating(tuple(sorted({str(c) for c in chosen})))
    label = answer.get("label")
    if isinstance(label, str):
        return Rating((label,), accept=value == "accept", binary=True)
    return None


_Rated = tuple[dict[str, Any], Rating]


def _latest(answers: Iterable[dict[str, Any]]) -> dict[int, dict[str, _Rated]]:
    """Each annotator's latest answer with a rating, per input, oldest first."""
    found: dict[int, dict[str, tuple[tuple[int, int], _Rated]]] = {}
    for i, answer in enumerate(answers):
        for field in ("_input_key", "_annotator_id"):
            if not isinstance(answer, dict) or (
                field not in answer
                # An answer without keys is known by its content.
                and not (field == "_input_key" and _has_input(answer))
            ):
                msg = Errors.E750.format(i=i, field=field, snippet=_snippet(answer))
                raise ValueError(msg)
        found_rating = rating(answer)
        if found_rating is None:
            continue
        order = answer.get("_id")
        key = (order if isinstance(order, int) else -1, i)
        mine = found.setdefault(input_key_of(answer), {})
        name = answer["_annotator_id"]
        if name not in mine or mine[name][0] < key:
            mine[name] = (key, (answer, found_rating))
    return {
        input_key: {
            name: rated
            for name, (_, rated) in sorted(by.items(), key=lambda item: item[1][0])
        }
        for input_key, by in found.items()
    }


def _has_input(answer: dict[str, Any]) -> bool:
    return "_input_hash" in answer or any(key in answer for key in INPUT_KEYS)


def rated_answers(
    answers: Iterable[dict[str, Any]],
) -> dict[int, dict[str, tuple[dict[str, Any], Rating]]]:
    """Each annotator's latest rated answer and its rating, per input.

    ``{input_key: {annotator: (answer, rating)}}``, annotators in the order of
    those answers. Raises ValueError as :func:`ratings` does.
    """
    return _latest(answers)


def ratings(answers: Iterable[dict[str, Any]]) -> dict[int, dict[str, Rating]]:
    """Each annotator's rating of each input: ``{input_key: {annotator: rating}}``.

    Raises ValueError for an answer without an input or ``_annotator_id``.
    """
    return {
        input_key: {name: value for name, (_, value) in by.items()}
        for input_key, by in _latest(answers).items()
    }


def _majority(values: Sequence[Rating]) -> Rating | None:
    if not values:
        return None
    (top, count), *_ = Counter(values).most_common(1)
    return top if count * 2 > len(values) else None


def _check_min_answers(min_answers: Any) -> int:
    if not (isinstance(min_answers, int) and not isinstance(min_answers, bool)) or (
        min_answers < 1
    ):
        raise ValueError(
            Errors.E755.format(
                name="min_answers", requirement="an integer >= 1", value=min_answers
            )
        )
    return min_answers


def consensus(
    answers: Iterable[dict[str, Any]], *, min_answers: int = 2
) -> tuple[dict[int, Rating], dict[int, list[dict[str, Any]]]]:
    """Majority consensus per input: ``(agreed, conflicts)``.

    An input with at least ``min_answers`` annotators' ratings is agreed when more
    than half of them give the same rating (``agreed[input_key]``); otherwise its
    counted answers (one per annotator, oldest first) are a conflict to review.
    Inputs with fewer ratings are in neither (still open): pass the overlap as
    ``min_answers`` to wait for every annotator.
    """
    return _consensus(_latest(answers), _check_min_answers(min_answers))


def _consensus(
    latest: dict[int, dict[str, _Rated]], min_answers: int
) -> tuple[dict[int, Rating], dict[int, list[dict[str, Any]]]]:
    agreed: dict[int, Rating] = {}
    conflicts: dict[int, list[dict[str, Any]]] = {}
    for input_key, by in latest.items():
        if len(by) < min_answers:
            continue
        top = _majority([value for _, value in by.values()])
        if top is None:
            conflicts[input_key] = [answer for answer, _ in by.values()]
        else:
            agreed[input_key] = top
    return agreed, conflicts


# --- Cohen's kappa ------------------------------------------------------------------


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa between two raters' ratings of the same items, in order.

    Ratings are any hashable categories. 1.0 when both give one and the same
    category throughout (kappa is 0/0 there); NaN for no items.
    """
    if len(first) != len(second):
        raise ValueError(Errors.E754.format(n_first=len(first), n_second=len(second)))
    if not first:
        return float("nan")
    ids: dict[Hashable, int] = {}
    a = np.array([ids.setdefault(value, len(ids)) for value in first])
    b = np.array([ids.setdefault(value, len(ids)) for value in second])
    if len(ids) == 1:
        return 1.0
    return float(cohen_kappa_score(a, b))


def _agreement(first: Sequence[Rating], second: Sequence[Rating]) -> Agreement:
    n = len(first)
    same = sum(x == y for x, y in zip(first, second, strict=True))
    observed = same / n if n else float("nan")
    return Agreement(kappa=cohen_kappa(first, second), observed=observed, n=n)


def annotators(answers: Iterable[dict[str, Any]]) -> list[str]:
    """The annotators with at least one rating, in order of their first answer."""
    names: dict[str, None] = {}
    for by in _latest(answers).values():
        names.update(dict.fromkeys(by))
    return list(names)


def pairwise_agreement(
    answers: Iterable[dict[str, Any]], first: str, second: str
) -> Agreement:
    """Cohen's kappa between two annotators on the inputs both of them rated."""
    table = ratings(answers)
    known = {name for by in table.values() for name in by}
    for name in (first, second):
        if name not in known:
            names = ", ".join(map(repr, sorted(known))) or "none"
            raise ValueError(Errors.E751.format(name=name, names=names))
    shared = [by for by in table.values() if first in by and second in by]
    return _agreement([by[first] for by in shared], [by[second] for by in shared])


def consensus_agreement(
    answers: Iterable[dict[str, Any]], *, reference: str = "others"
) -> dict[str, Agreement]:
    """Each annotator's agreement (Cohen's kappa) with the consensus.

    With ``reference="others"`` an annotator is compared, on each input they rated,
    with the majority of the other annotators' ratings; with ``"all"``, with the
    majority of everyone's, their own included (which flatters them). Inputs without
    such a majority, or rated by nobody else, are left out; ``n`` counts the rest.
    """
    if reference not in REFERENCES:
        refs = ", ".join(map(repr, REFERENCES))
        raise ValueError(Errors.E752.format(reference=reference, references=refs))
    return _consensus_agreement(ratings(answers), reference)


def _consensus_agreement(
    table: dict[int, dict[str, Rating]], reference: str
) -> dict[str, Agreement]:
    pairs: dict[str, tuple[list[Rating], list[Rating]]] = {}
    for by in table.values():
        for name, mine in by.items():
            mine_list, reference_list = pairs.setdefault(name, ([], []))
            others = [r for other, r in by.items() if other != name]
            if not others:
                continue
            voters = others if reference == "others" else [mine, *others]
            top = _majority(voters)
            if top is not None:
                mine_list.append(mine)
                reference_list.append(top)
    return {name: _agreement(mine, ref) for name, (mine, ref) in pairs.items()}


# --- N annotators: Fleiss' kappa, Krippendorff's alpha -------------------------------


def rating_table(answers: Iterable[dict[str, Any]]) -> RatingTable:
    """Count each input's ratings per category, for Fleiss' kappa or Krippendorff's alpha."""
    return _rating_table(ratings(answers))


def _rating_table(table: dict[int, dict[str, Rating]]) -> RatingTable:
    categories: dict[Rating, int] = {}
    for by in table.values():
        for value in by.values():
            categories.setdefault(value, len(categories))
    counts = np.zeros((len(table), len(categories)), dtype=np.int64)
    for i, by in enumerate(table.values()):
        for value in by.values():
            counts[i, categories[value]] += 1
    return RatingTable(counts, list(categories), list(table))


def _counts(counts: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(counts)
    ok = (
        arr.ndim == 2
        and arr.dtype.kind in "iuf"
        and bool(np.all(np.isfinite(arr)))
        and bool(np.all(arr >= 0))
        and bool(np.all(arr == np.round(arr)))
    )
    if not ok:
        raise ValueError(Errors.E753.format(what=what, snippet=_snippet(arr)))
    arr = arr.astype(np.float64)
    return arr[arr.sum(axis=1) >= 2]  # an input rated once can't show agreement


def fleiss_kappa(counts: ArrayLike) -> float:
    """Fleiss' kappa of a count table: one row per input, one column per category.

    Inputs may have different numbers of ratings (missing ratings): each input's
    agreement is the share of its pairs of ratings that agree, averaged over the
    inputs with two or more ratings, and chance agreement comes from the category
    shares over those inputs. With a constant number of ratings this is Fleiss (1971).
    NaN if no input has two ratings; 1.0 if they all use one category.
    """
    arr = _counts(counts, "fleiss_kappa")
    if not len(arr):
        return float("nan")
    n_i = arr.sum(axis=1)
    p_i = (arr * (arr - 1)).sum(axis=1) / (n_i * (n_i - 1))
    p_j = arr.sum(axis=0) / n_i.sum()
    p_e = float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        return 1.0
    return float((p_i.mean() - p_e) / (1 - p_e))


def krippendorff_alpha(counts: ArrayLike) -> float:
    """Krippendorff's alpha for nominal ratings, from a count table as for Fleiss.

    Missing ratings are allowed; inputs rated once are not pairable and left out.
    NaN if no input has two ratings; 1.0 if they all use one category.
    """
    arr = _counts(counts, "krippendorff_alpha")
    if not len(arr):
        return float("nan")
    m_u = arr.sum(axis=1)
    # Coincidences: each input adds n_uc * n_uk / (m_u - 1) (c == k: n_uc * (n_uc - 1)).
    weighted = arr / (m_u - 1)[:, None]
    coincidences = weighted.T @ arr - np.diag((weighted).sum(axis=0))
    n_c = coincidences.sum(axis=0)
    n = n_c.sum()
    disagree_observed = coincidences.sum() - np.trace(coincidences)
    disagree_expected = n**2 - (n_c**2).sum()
    if np.isclose(disagree_expected, 0.0):
        return 1.0
    return float(1 - (n - 1) * disagree_observed / disagree_expected)


# --- summary ---------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else value


def agreement_summary(
    answers: Iterable[dict[str, Any]], *, min_answers: int = 2
) -> dict[str, Any]:
    """Agreement figures for ``stats`` and the app, JSON-ready (None = undefined).

    Keys: ``n_examples`` (inputs rated), ``n_annotators``, ``n_shared`` (inputs
    rated by two or more), ``n_agreed`` / ``n_conflicts`` (see :func:`consensus`),
    ``fleiss_kappa``, ``krippendorff_alpha`` and ``annotators``: per annotator their
    ``kappa`` with the majority of the others, ``observed`` agreement and ``n``.
    """
    latest = _latest(answers)  # read once, for every figure below
    agreed, conflicts = _consensus(latest, _check_min_answers(min_answers))
    rated = {
        key: {name: value for name, (_, value) in by.items()}
        for key, by in latest.items()
    }
    table = _rating_table(rated)
    per_annotator = _consensus_agreement(rated, "others")
    return {
        "n_examples": len(table.input_keys),
        "n_annotators": len(per_annotator),
        "n_shared": int((table.counts.sum(axis=1) >= 2).sum()),
        "n_agreed": len(agreed),
        "n_conflicts": len(conflicts),
        "fleiss_kappa": _finite(fleiss_kappa(table.counts)),
        "krippendorff_alpha": _finite(krippendorff_alpha(table.counts)),
        "annotators": {
            name: {
                "kappa": _finite(found.kappa),
                "observed": _finite(found.observed),
                "n": found.n,
            }
            for name, found in per_annotator.items()
        },
    }


def _snippet(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
