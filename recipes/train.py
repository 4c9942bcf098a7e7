"""train: train a spaCy pipeline from annotated datasets and save it.

    python -m spacy_al train ./model --textcat news
    python -m spacy_al train ./model --ner tweets_teach,tweets_gold
    python -m spacy_al train ./model --textcat news --ner news_ents

Reads every answer of the datasets from the database, turns them into training
targets (binary answers become partial targets, choices and manual NER answers
become gold), holds out a share of the gold targets for evaluation, trains with
early stopping on them, prints the scores per epoch, and saves the best pipeline
to OUTPUT, loadable with ``spacy.load(OUTPUT)``. With ``--overlap`` datasets, only
examples the annotators agree on are used, and a reviewer's answer (``review``)
stands for its example. With ``--textcat`` and ``--ner``
together, one pipeline gets both components (each has its own weights; they are
trained one after the other, each on its own datasets).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from spacy_al.metrics import textcat_score
from spacy_al.ner.model import DEFAULT_LEARN_RATE as NER_LEARN_RATE
from spacy_al.ner.model import FACTORIES, NERModel, build_ner, train_ner
from spacy_al.ner.targets import NERTarget, answers_to_ner_targets, reference_doc
from spacy_al.pipelines import load_base
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.team.consensus import (
    Consensus,
    is_review,
    review_answers,
    review_datasets,
)
from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
from spacy_al.textcat.targets import TextcatTarget, answers_to_textcat_targets
from spacy_al.training import train_textcat

from ._options import (
    DEFAULT_DB,
    Arch,
    Base,
    Db,
    MultilabelOverride,
    NerSets,
    Seed,
    TextcatSets,
    split_commas,
)


def consensus_answers(store: Store, datasets: list[str]) -> list[dict]:
    """The answers to train on and export: per dataset, those its consensus lets
    the model learn (the ``overlap`` in its meta), reviewers' answers last.

    Examples the annotators disagree on and examples with fewer answers than the
    overlap are held back (a warning says how many); a reviewer's answer (the
    ``review`` recipe) stands for its example. With overlap 1 and no reviews,
    every answer.
    """
    learn: list[dict] = []
    reviews: list[dict] = []
    n_conflicts = n_waiting = n_reviewed = 0
    reviewers: list[str] = []
    for name in datasets:
        overlap = int(store.dataset_meta(name).get("overlap") or 1)
        reviewers.extend(review_datasets(store, name))
        split = Consensus(overlap).split(
            [*store.get_answers(name), *review_answers(store, name)]
        )
        learn.extend(eg for eg in split.learn if not is_review(eg))
        reviews.extend(eg for eg in split.learn if is_review(eg))
        n_conflicts += len(split.conflicts)
        n_waiting += len(split.waiting)
        n_reviewed += split.n_reviewed
    if n_reviewed:
        names = ", ".join(dict.fromkeys(reviewers)) or "the named datasets"
        msg.info(f"Using the reviewer's answer on {n_reviewed} example(s) ({names})")
    if n_conflicts:
        msg.warn(
            f"Left out {n_conflicts} example(s) the annotators disagree on. Adjudicate "
            f"them with: python -m spacy_al review {datasets[0]}_review --input "
            f"{','.join(datasets)}"
        )
    if n_waiting:
        msg.warn(
            f"Left out {n_waiting} example(s) with fewer answers than the overlap asks "
            f"for (--overlap of the labelling recipe)."
        )
    return learn + reviews


def load_textcat_targets(
    store: Store, datasets: list[str], *, multilabel: bool | None = None
) -> tuple[list[TextcatTarget], list[str], bool]:
    """Targets, labels and exclusivity for the named datasets (merged per input,
    after consensus: see :func:`consensus_answers`)."""
    labels: list[str] = []
    exclusive_flags = set()
    for name in datasets:
        meta = store.dataset_meta(name)
        labels.extend(meta.get("labels") or [])
        if "exclusive" in meta:
            exclusive_flags.add(bool(meta["exclusive"]))
    answers = consensus_answers(store, datasets)
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


def load_ner_targets(
    store: Store, datasets: list[str]
) -> tuple[list[NERTarget], list[str]]:
    """NER targets and entity labels for the named datasets (merged per input,
    after consensus: see :func:`consensus_answers`)."""
    labels: list[str] = []
    for name in datasets:
        labels.extend(store.dataset_meta(name).get("labels") or [])
    answers = consensus_answers(store, datasets)
    for eg in answers:
        labels.extend(span["label"] for span in eg.get("spans") or [])
    labels = list(dict.fromkeys(labels))
    return answers_to_ner_targets(answers, labels), labels


def split_targets(
    targets: list, *, eval_split: float, seed: int = 0
) -> tuple[list, list]:
    """Hold out a share of the *gold* targets; partial ones always train."""
    gold = [t for t in targets if t.is_gold]
    random.Random(seed).shuffle(gold)
    n_eval = int(round(len(gold) * eval_split))
    held_out = {t.input_hash for t in gold[:n_eval]}
    return [t for t in targets if t.input_hash not in held_out], gold[:n_eval]


@recipe("train")
def train(
    output: Annotated[Path, typer.Argument(help="Directory to save the pipeline to")],
    textcat: TextcatSets = None,
    ner: NerSets = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "bow",
    ner_arch: Annotated[
        str,
        typer.Option("--ner-arch", help=f"Entity recognizer: {', '.join(FACTORIES)}"),
    ] = "beam_ner",
    multilabel: MultilabelOverride = None,
    eval_split: Annotated[
        float, typer.Option("--eval-split", help="Share of gold answers held out")
    ] = 0.2,
    positive_label: Annotated[
        str | None, typer.Option("--positive-label", help="Report this label's F1")
    ] = None,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = 30,
    seed: Seed = 0,
) -> None:
    """Train a text classifier and/or an entity recognizer and save the pipeline."""
    store = Store(db)
    textcat_names, ner_names = split_commas(textcat), split_commas(ner)
    if not textcat_names and not ner_names:
        msg.fail(
            "Name the datasets to train on: --textcat NAMES and/or --ner NAMES.",
            exits=1,
        )
    nlp = load_base(base)
    if textcat_names:
        nlp = _train_textcat(
            store,
            textcat_names,
            base=base,
            arch=arch,
            multilabel=multilabel,
            eval_split=eval_split,
            positive_label=positive_label,
            max_epochs=max_epochs,
            seed=seed,
        )
    if ner_names:
        nlp = _train_ner(
            nlp,
            store,
            ner_names,
            factory=ner_arch,
            eval_split=eval_split,
            max_epochs=max_epochs,
            seed=seed,
        )
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    msg.good(f"Saved the pipeline ({', '.join(nlp.pipe_names)}) to {output}")


def _epoch_printer(metric: str):
    msg.row(["epoch", "loss", metric], widths=(6, 10, 10))

    def on_epoch(epoch: int, loss: float, score: float) -> None:
        msg.row([epoch, f"{loss:.3f}", f"{score:.3f}"], widths=(6, 10, 10))

    return on_epoch


def _train_textcat(
    store: Store,
    names: list[str],
    *,
    base: str,
    arch: str,
    multilabel: bool | None,
    eval_split: float,
    positive_label: str | None,
    max_epochs: int,
    seed: int,
):
    targets, labels, exclusive = load_textcat_targets(
        store, names, multilabel=multilabel
    )
    if not targets:
        msg.fail(f"No usable answers in {names}: label some examples first.", exits=1)
    train_targets, eval_targets = split_targets(
        targets, eval_split=eval_split, seed=seed
    )
    if not eval_targets:
        msg.fail(
            f"No gold answers to evaluate on ({len(targets)} targets, all partial or "
            f"too few). Lower --eval-split or add accept/choice answers.",
            exits=1,
        )
    msg.info(
        f"textcat: {len(train_targets)} training targets "
        f"({sum(not t.is_gold for t in train_targets)} partial), {len(eval_targets)} "
        f"held out; labels {labels}; {'exclusive' if exclusive else 'multilabel'}"
    )
    model = TextcatModel(
        build_textcat(labels, exclusive=exclusive, base=base, architecture=arch)
    )
    eval_docs = model.make_docs(t.text for t in eval_targets)
    eval_gold = [[x for x, v in t.cats.items() if v >= 0.5] for t in eval_targets]

    def evaluate(m: TextcatModel) -> float:
        return textcat_score(
            m.predict(eval_docs),
            eval_gold,
            labels,
            exclusive=exclusive,
            positive_label=positive_label,
        )

    metric = f"F1 ({positive_label})" if positive_label else "macro F1"
    result = train_textcat(
        model,
        train_targets,
        evaluate,
        max_epochs=max_epochs,
        learn_rate=DEFAULT_LEARN_RATE.get(arch, 0.01),
        seed=seed,
        on_epoch=_epoch_printer(metric),
    )
    msg.good(f"Best {metric} {result.best_score:.3f} (epoch {result.best_epoch})")
    return result.model.nlp


def _train_ner(
    nlp,
    store: Store,
    names: list[str],
    *,
    factory: str,
    eval_split: float,
    max_epochs: int,
    seed: int,
):
    targets, labels = load_ner_targets(store, names)
    if not targets:
        msg.fail(
            f"No usable NER answers in {names}: annotate some texts first.", exits=1
        )
    if not labels:
        msg.fail(f"No entity label in {names}: accept some entities first.", exits=1)
    train_targets, eval_targets = split_targets(
        targets, eval_split=eval_split, seed=seed
    )
    if not eval_targets:
        # Only binary answers: hold out some of them. spaCy's scorer skips the
        # tokens nobody answered about, so the F1 counts only what was said.
        train_targets, eval_targets = _split_any(
            targets, eval_split=eval_split, seed=seed
        )
        msg.warn(
            "No gold (ner.correct / ner.manual) answers to evaluate on: the scores "
            "below are on held-out binary answers, which judge only the entities "
            "that were asked about."
        )
    if not eval_targets:
        msg.fail(f"Too few NER answers ({len(targets)}) to hold any out.", exits=1)
    msg.info(
        f"ner: {len(train_targets)} training targets "
        f"({sum(not t.is_gold for t in train_targets)} partial, "
        f"{sum(len(t.rejected) for t in train_targets)} rejected spans), "
        f"{len(eval_targets)} held out; labels {labels}"
    )
    nlp = build_ner(labels, base=nlp, factory=factory, seed=seed)
    model = NERModel(nlp)
    eval_docs = [
        reference_doc(nlp, t, incorrect_spans_key=None)[0] for t in eval_targets
    ]
    result = train_ner(
        model,
        train_targets,
        lambda m: float(m.evaluate(eval_docs)["ents_f"]),
        max_epochs=max_epochs,
        learn_rate=NER_LEARN_RATE,
        seed=seed,
        on_epoch=_epoch_printer("entity F1"),
    )
    msg.good(f"Best entity F1 {result.best_score:.3f} (epoch {result.best_epoch})")
    return result.model.nlp


def _split_any(targets: list, *, eval_split: float, seed: int) -> tuple[list, list]:
    order = list(targets)
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(order) * eval_split))
    return order[n_eval:], order[:n_eval]
