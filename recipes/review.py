"""review: adjudicate the examples annotators disagree on; the reviewer's answer is gold.

    python -m spacy_al textcat.teach news ./news.jsonl --label A,B --overlap 2
    python -m spacy_al review news_review --input news
    python -m spacy_al train ./model --textcat news     # uses news_review's answers

Prodigy users know this as ``prodigy review``. With ``--overlap 2`` or more, the
labelling server learns an example only once its annotators agree (see
``spacy_al.team.consensus``); the examples they disagree on wait here. The review app
shows each one with every annotator's answer (their names and their labels, or
their entities for NER) and the reviewer picks or corrects the answer.

The reviewer's answers are stored in DATASET, marked ``_review: true``, and its
meta says which datasets it reviews (``review_of``). So:

* a labelling server still running on those datasets picks the reviews up within
  a few seconds (its team thread polls for them) and learns them with its next
  batch;
* ``train`` and ``data-to-spacy`` on those datasets use the reviewer's answer for
  each reviewed example, instead of the annotators' answers;
* ``stats`` on the reviewed dataset counts its conflicts.

``--all`` also serves the examples the annotators agreed on (with the majority's
answer pre-selected), to check them. Examples already reviewed in DATASET aren't
served again. Conflicts that appear later are served when review is started again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Annotated, Any

import typer
from wasabi import msg

from spacy_al.corpus import get_task_hash
from spacy_al.errors import Errors, SourceError
from spacy_al.pool import Pool
from spacy_al.registry import recipe
from spacy_al.spans import validate_spans
from spacy_al.store import Store
from spacy_al.team.agreement import NER_VIEWS, Rating, rated_answers, span_key
from spacy_al.team.consensus import REVIEW_KEY, REVIEW_OF, REVIEW_VIEW, Consensus

from ._options import DEFAULT_DB, Annotators, Db, Host, Port, split_commas

InputSets = Annotated[
    str, typer.Option("--input", "-i", help="Comma-separated datasets to review")
]
AllExamples = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Also review examples the annotators agreed on (not only conflicts)",
    ),
]


class ReviewLoop:
    """The review queue, served by the feed as a labelling loop is.

    Each task is an example to adjudicate, in dataset order; each answer is
    stored in ``dataset`` as a review (``_review: true``). Nothing is learnt
    here: the labelling servers and ``train`` learn the reviews.
    """

    batch_size = 10
    n_pending = 0
    ready_to_learn = False
    version = 0
    updater = None

    def __init__(
        self,
        tasks: Iterable[dict],
        *,
        store: Store,
        dataset: str,
        labels: Sequence[str],
        exclusive: bool,
        task: str = "textcat",
    ) -> None:
        answered = (
            store.answered_input_hashes(dataset) if store.has_dataset(dataset) else ()
        )
        self.pool = Pool(tasks, answered=answered)
        self.store = store
        self.dataset = dataset
        self.labels: tuple[str, ...] = tuple(labels)
        self.exclusive = exclusive
        self.task = task

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
        self.pool.mark(eg["_input_hash"] for eg in reviews)
        return ids

    def undo(self, eg: dict, *, annotator: str) -> bool:
        """Take back a review; the example is served again."""
        self.store.remove_answer(
            self.dataset, task_hash=eg["_task_hash"], annotator=annotator
        )
        self.pool.mark([eg["_input_hash"]], False)
        return True

    def pop_targets(self) -> list:
        return []


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
        by_input.setdefault(eg["_input_hash"], []).append(eg)
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
            "_input_hash": key,
            "_task_hash": get_task_hash({"_input_hash": key, "label": REVIEW_VIEW}),
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


def build_review(
    dataset: str,
    inputs: list[str],
    *,
    db: str = DEFAULT_DB,
    all_examples: bool = False,
    settings: dict | None = None,
) -> dict:
    """The components of a review session: the conflicts of ``inputs``, served."""
    if dataset in inputs or not inputs:
        suggestion = f"{inputs[0] if inputs else dataset}_review"
        raise ValueError(
            Errors.E863.format(inputs=inputs, dataset=dataset, suggestion=suggestion)
        )
    # 1. The database: the datasets to review must exist (E102 names the others).
    store = Store(db)
    metas = [store.dataset_meta(name) for name in inputs]
    tasks_kinds = {meta.get("task", "textcat") for meta in metas}
    if len(tasks_kinds) > 1:
        raise ValueError(Errors.E864.format(tasks=", ".join(sorted(tasks_kinds))))
    task = tasks_kinds.pop() if tasks_kinds else "textcat"
    # 2. Every answer of the datasets, and what the recipes were started with.
    answers = [eg for name in inputs for eg in store.get_answers(name)]
    if any(eg.get("_view_id") in NER_VIEWS for eg in answers):
        task = "ner"  # NER answers in a dataset without meta
    labels: list[str] = [label for meta in metas for label in meta.get("labels") or []]
    for eg in answers:
        if task == "ner":
            labels.extend(s["label"] for s in eg.get("spans") or [] if "label" in s)
        else:
            labels.extend(eg.get("accept") or [])
            if eg.get("label"):
                labels.append(eg["label"])
    labels = list(dict.fromkeys(labels))
    exclusive = task != "ner" and all(meta.get("exclusive", True) for meta in metas)
    overlap = max([int(meta.get("overlap") or 1) for meta in metas])
    # 3. The examples to review: conflicts (and with --all, every shared example).
    tasks = review_tasks(answers, overlap=overlap, all_examples=all_examples, task=task)
    if not tasks:
        reason = (
            "no example has answers from two or more annotators"
            if all_examples
            else "the annotators agree on every example they all answered"
        )
        raise ValueError(Errors.E861.format(inputs=inputs, reason=reason))
    # 4. The review dataset: its meta tells the labelling servers what it reviews.
    store.create_dataset(
        dataset,
        meta={
            REVIEW_OF: list(inputs),
            "labels": labels,
            "exclusive": exclusive,
            "task": task,
            "view_id": REVIEW_VIEW,
        },
    )
    loop = ReviewLoop(
        tasks,
        store=store,
        dataset=dataset,
        labels=labels,
        exclusive=exclusive,
        task=task,
    )
    return {
        "dataset": dataset,
        "view_id": REVIEW_VIEW,
        "store": store,
        "loop": loop,
        "labels": labels,
        "exclusive": exclusive,
        "task": task,
        "review_of": list(inputs),
        "config": {"overlap": 1, "preselect": False, **(settings or {})},
    }


@recipe("review")
def review(
    dataset: Annotated[
        str, typer.Argument(help="Dataset to save the reviewed (gold) answers to")
    ],
    input_sets: InputSets,
    db: Db = DEFAULT_DB,
    all_examples: AllExamples = False,
    host: Host = "127.0.0.1",
    port: Port = 8501,
    annotators: Annotators = None,
) -> dict:
    """Review the examples annotators disagree on; the reviewer's answer is gold.

    Shows each conflicting example of the --input datasets with every annotator's
    answer; the reviewer picks or corrects it. The answers are stored in DATASET
    and used by train, data-to-spacy and running labelling servers.
    """
    inputs = split_commas(input_sets)
    components = build_review(
        dataset,
        inputs,
        db=db,
        all_examples=all_examples,
        settings={"host": host, "port": port, "annotators": annotators},
    )
    loop = components["loop"]
    n_conflicts = sum(task["conflict"] for task in loop.pool.tasks)
    msg.info(
        f"{dataset}: reviewing {', '.join(inputs)} ({components['task']}): "
        f"{len(loop.pool)} examples ({n_conflicts} in conflict), "
        f"{loop.pool.n_done} already reviewed"
    )
    return components
