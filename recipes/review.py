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

from typing import Annotated

import typer
from wasabi import msg

from spacy_al.errors import Errors
from spacy_al.protocols import Components
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.team.agreement import NER_VIEWS
from spacy_al.team.consensus import REVIEW_OF, REVIEW_VIEW
from spacy_al.team.review import ReviewLoop, review_tasks

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


def build_review(
    dataset: str,
    inputs: list[str],
    *,
    db: str = DEFAULT_DB,
    all_examples: bool = False,
    settings: dict | None = None,
) -> Components:
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
    # 5. The queue the feed serves: a loop without a model (reviews are stored,
    #    and learnt by the labelling servers and train, not here).
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
) -> Components:
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
