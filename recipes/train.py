"""train: train a spaCy pipeline from annotated datasets and save it.

    python -m spacy_al train ./model --textcat news

Reads every answer of the datasets from the database, turns them into training
targets (binary answers become partial targets, choices become gold), holds out
a share of the gold targets for evaluation, trains with early stopping on them,
prints the scores per epoch, and saves the best pipeline to OUTPUT, loadable with
``spacy.load(OUTPUT)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from spacy_al.metrics import textcat_score
from spacy_al.models import ARCHITECTURES, DEFAULT_LEARN_RATE, TextcatModel, build_textcat
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.targets import TextcatTarget, answers_to_textcat_targets
from spacy_al.training import train_textcat

DEFAULT_DB = "spacy_al.db"


def load_textcat_targets(
    store: Store, datasets: list[str], *, multilabel: bool | None = None
) -> tuple[list[TextcatTarget], list[str], bool]:
    """Targets, labels and exclusivity for the named datasets (merged per input)."""
    answers: list[dict] = []
    labels: list[str] = []
    exclusive_flags = set()
    for name in datasets:
        meta = store.dataset_meta(name)
        labels.extend(meta.get("labels") or [])
        if "exclusive" in meta:
            exclusive_flags.add(bool(meta["exclusive"]))
        answers.extend(store.get_answers(name))
    for eg in answers:
        labels.extend(eg.get("accept") or [])
        if eg.get("label"):
            labels.append(eg["label"])
    labels = list(dict.fromkeys(labels))
    if multilabel is not None:
        exclusive = not multilabel
    else:
        exclusive = exclusive_flags != {False}
    targets = answers_to_textcat_targets(answers, labels, exclusive=exclusive)
    return targets, labels, exclusive


def split_targets(
    targets: list[TextcatTarget], *, eval_split: float, seed: int = 0
) -> tuple[list[TextcatTarget], list[TextcatTarget]]:
    """Hold out a share of the *gold* targets; partial ones always train."""
    gold = [t for t in targets if t.is_gold]
    random.Random(seed).shuffle(gold)
    n_eval = int(round(len(gold) * eval_split))
    held_out = {t.input_hash for t in gold[:n_eval]}
    return [t for t in targets if t.input_hash not in held_out], gold[:n_eval]


@recipe("train")
def train(
    output: Annotated[Path, typer.Argument(help="Directory to save the pipeline to")],
    textcat: Annotated[
        str, typer.Option("--textcat", help="Comma-separated datasets for textcat")
    ],
    db: Annotated[str, typer.Option("--db", envvar="SPACY_AL_DB", help="Database")] = DEFAULT_DB,
    base: Annotated[str, typer.Option("--base", help="blank:LANG or a pipeline")] = "blank:en",
    arch: Annotated[
        str, typer.Option("--arch", help=f"Architecture: {', '.join(ARCHITECTURES)}")
    ] = "bow",
    multilabel: Annotated[
        bool | None,
        typer.Option("--multilabel/--exclusive", help="Override the datasets' setting"),
    ] = None,
    eval_split: Annotated[
        float, typer.Option("--eval-split", help="Share of gold answers held out")
    ] = 0.2,
    positive_label: Annotated[
        str | None, typer.Option("--positive-label", help="Report this label's F1")
    ] = None,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = 30,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train a text classifier on annotated datasets and save the pipeline."""
    store = Store(db)
    names = [name.strip() for name in textcat.split(",") if name.strip()]
    targets, labels, exclusive = load_textcat_targets(store, names, multilabel=multilabel)
    if not targets:
        msg.fail(f"No usable answers in {names}: label some examples first.", exits=1)
    train_targets, eval_targets = split_targets(targets, eval_split=eval_split, seed=seed)
    if not eval_targets:
        msg.fail(
            f"No gold answers to evaluate on ({len(targets)} targets, all partial or "
            f"too few). Lower --eval-split or add accept/choice answers.",
            exits=1,
        )
    msg.info(
        f"{len(train_targets)} training targets ({sum(not t.is_gold for t in train_targets)} "
        f"partial), {len(eval_targets)} held out; labels {labels}; "
        f"{'exclusive' if exclusive else 'multilabel'}"
    )
    model = TextcatModel(build_textcat(labels, exclusive=exclusive, base=base, architecture=arch))
    eval_docs = model.make_docs(t.text for t in eval_targets)
    eval_gold = [[x for x, v in t.cats.items() if v >= 0.5] for t in eval_targets]

    def evaluate(m: TextcatModel) -> float:
        return textcat_score(
            m.predict(eval_docs), eval_gold, labels, exclusive=exclusive,
            positive_label=positive_label,
        )

    metric = f"F1 ({positive_label})" if positive_label else "macro F1"
    rows: list[tuple] = []

    def on_epoch(epoch: int, loss: float, score: float) -> None:
        rows.append((epoch, round(loss, 3), round(score, 3)))
        msg.row([epoch, f"{loss:.3f}", f"{score:.3f}"], widths=(6, 10, 10))

    msg.row(["epoch", "loss", metric], widths=(6, 10, 10))
    result = train_textcat(
        model,
        train_targets,
        evaluate,
        max_epochs=max_epochs,
        learn_rate=DEFAULT_LEARN_RATE.get(arch, 0.01),
        seed=seed,
        on_epoch=on_epoch,
    )
    output.mkdir(parents=True, exist_ok=True)
    result.model.nlp.to_disk(output)
    msg.good(
        f"Best {metric} {result.best_score:.3f} (epoch {result.best_epoch}); "
        f"saved to {output}"
    )
