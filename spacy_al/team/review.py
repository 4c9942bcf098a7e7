"""The review queue: the examples annotators disagree on, served to a reviewer.

With ``--overlap 2`` or more a labelling server learns an example only once its
annotators agree (:mod:`spacy_al.team.consensus`); :func:`review_tasks` turns
the others into review tasks that show every annotator's answer, and
:class:`ReviewLoop` serves them through the feed as a labelling loop is served.
The reviewer's answers are stored as reviews (``_review: true``), which the
labelling servers, ``train`` and ``data-to-spacy`` then take as gold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from spacy_al.corpus import get_task_hash, get_task_key, input_key_of, task_key_of
from spacy_al.errors import Errors, SourceError
from spacy_al.modelless import ModellessLoop
from spacy_al.pool import Pool
from spacy_al.protocols import YieldPoint
from spacy_al.spans import validate_spans
from spacy_al.store import Store
from spacy_al.team.agreement import Rating, rated_answers, span_key
from spacy_al.team.consensus import REVIEW_KEY, REVIEW_VIEW, Consensus


class ReviewLoop(ModellessLoop):
    """The review queue, a ``spacy_al.protocols.Loop`` of the reviewed ``task``.

    Each task is an example to adjudicate, in dataset order; each answer is
    stored in ``dataset`` as a review (``_review: true``) of ``task``
    (``"textcat"`` or ``"ner"``) answers. The queue has no model: reviews are
    learnt by the labelling servers and ``train``, not here. So, as the Loop
    protocol says of a loop that learns nothing, its ``updater`` is None, its
    ``version`` is 0, it is never ``ready_to_learn``, nothing waits or conflicts
    in it, and a reviewer's answer is final on its own (overlap 1).
    """

    def __init__(
        self,
        tasks: Iterable[dict],
        *,
        store: Store,
        dataset: str,
        labels: Sequence[str],
        exclusive: bool,
        task: str = "textcat",
        batch_size: int = 10,
    ) -> None:
        answered = (
            store.answered_input_keys(dataset) if store.has_dataset(dataset) else ()
        )
        super().__init__(
            store=store,
            dataset=dataset,
            labels=labels,
            exclusive=exclusive,
            task=task,
            batch_size=batch_size,
        )
        self.pool = Pool(tasks, answered=answered)

    def set_yield_point(self, yield_point: YieldPoint | None) -> None:
        """Selecting reviews is quick (no scoring): there is nothing to give way."""

    # --- serving and answering ---------------------------------------------------

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]:
        """The next ``n`` examples to review, in order."""
        return [
            dict(self.pool.tasks[int(i)])
            for i in self.pool.remaining(exclude=exclude)[:n]
        ]

    def _as_review(self, eg: dict) -> dict:
        eg = {**eg, REVIEW_KEY: True}
        if eg.get("answer") != "accept":
            return eg
        if self.task == "ner":
            # The reviewer's spans are the text's complete analysis (gold).
            spans = eg.get("spans") or []
            try:
                validate_spans(eg["text"], spans, labels=self.labels)
            except SourceError as e:
                raise ValueError(Errors.E615.format(err=e)) from e
            tokens = eg.get("tokens") or []
            starts = {t["start"] for t in tokens}
            ends = {t["end"] for t in tokens}
            for span in spans if tokens else []:
                if span["start"] not in starts or span["end"] not in ends:
                    raise ValueError(Errors.E865.format(**span))
            eg["_view_id"] = "ner_manual"
        elif self.exclusive and len(eg.get("accept") or []) != 1:
            snippet = repr(eg.get("accept"))[:60]
            raise ValueError(
                Errors.E862.format(snippet=snippet, labels=list(self.labels))
            )
        return eg

    def answer(self, answers: Sequence[dict], *, annotator: str) -> list[int]:
        """Store the reviewer's answers (checked first: all of them, or none)."""
        reviews = [self._as_review(eg) for eg in answers]
        ids = self.store.add_answers(self.dataset, reviews, annotator=annotator)
        self.pool.mark(input_key_of(eg) for eg in reviews)
        return ids

    def undo(self, eg: dict, *, annotator: str) -> bool:
        """Take back a review; the example is served again."""
        self.store.remove_answer(
            self.dataset, task_key=task_key_of(eg), annotator=annotator
        )
        self.pool.mark([input_key_of(eg)], False)
        return True


# --- the examples to review ---------------------------------------------------------


def _version(answer: dict, value: Rating, task: str) -> dict[str, Any]:
    """One answer as the reviewer sees it (the annotators are added by the caller)."""
    version: dict[str, Any] = {"answer": answer["answer"], "rating": str(value)}
    if task == "ner":
        version["spans"] = [
            {
                k: s[k]
                for k in ("start", "end", "label", "token_start", "token_end")
                if k in s
            }
            for s in answer.get("spans") or []
        ]
        version["binary"] = value.binary
    elif value.binary:
        version["label"] = answer.get("label")
    else:
        version["accept"] = list(value.labels)
    return version


def _preselect_labels(value: Rating | None) -> list[str] | None:
    if value is None or (value.binary and not value.accept):
        return None
    return list(value.labels)


def _preselect_spans(versions: list[dict]) -> list[dict]:
    """The entities every accepting version has (for a conflict: a start)."""
    accepted = [v for v in versions if v["answer"] == "accept"]
    if not accepted:
        return []
    common = set.intersection(*({span_key(s) for s in v["spans"]} for v in accepted))
    return [s for s in accepted[0]["spans"] if span_key(s) in common]


def review_tasks(
    answers: Iterable[dict],
    *,
    overlap: int = 2,
    all_examples: bool = False,
    task: str = "textcat",
) -> list[dict]:
    """One review task per example in conflict (``all_examples``: per example with
    answers from two or more annotators), with every annotator's answer.

    Each task has ``text``, ``meta``, ``conflict``, ``versions`` (one per distinct
    answer: ``annotators``, ``answer``, ``rating`` and ``accept`` / ``label``, or
    ``spans`` for NER), ``ignored_by`` (who skipped it), and what to pre-select:
    ``accept`` (the majority's labels, for ``all_examples``) or, for NER,
    ``spans`` and ``tokens``.
    """
    answers = list(answers)
    decisions = Consensus(max(overlap, 2)).split(answers).decisions
    by_input: dict[int, list[dict]] = {}
    for eg in answers:
        by_input.setdefault(input_key_of(eg), []).append(eg)
    tasks = []
    for key, decision in decisions.items():
        group = by_input[key]
        rated = rated_answers(group).get(key, {})
        if decision.kind == "wait" or (
            decision.kind == "learn" and not (all_examples and len(rated) >= 2)
        ):
            continue
        versions: dict[Rating, dict[str, Any]] = {}
        for name, (answer, value) in rated.items():
            version = versions.get(value)
            if version is None:
                version = versions[value] = {
                    "annotators": [],
                    **_version(answer, value, task),
                }
            version["annotators"].append(name)
        first = group[0]
        out: dict[str, Any] = {
            "text": first["text"],
            "meta": dict(first.get("meta") or {}),
            "conflict": decision.kind == "conflict",
            "versions": list(versions.values()),
            "ignored_by": sorted({eg["_annotator_id"] for eg in group} - set(rated)),
            "_input_hash": first["_input_hash"],
            "_task_hash": get_task_hash(
                {"_input_hash": first["_input_hash"], "label": REVIEW_VIEW}
            ),
            "_input_key": key,
            "_task_key": get_task_key({"_input_key": key, "label": REVIEW_VIEW}),
        }
        if task == "ner":
            out["spans"] = _preselect_spans(out["versions"])
            tokens = next((eg["tokens"] for eg in group if eg.get("tokens")), None)
            if tokens is not None:
                out["tokens"] = [
                    {k: t[k] for k in ("text", "start", "end", "id", "ws") if k in t}
                    for t in tokens
                ]
        else:
            chosen = _preselect_labels(decision.rating)
            if chosen is not None:
                out["accept"] = chosen
        tasks.append(out)
    return tasks
