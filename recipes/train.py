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
trained one after the other, each on its own datasets). An answer that can't be
used (a span that cuts a word, say) is named and left out. The pipeline is
written beside OUTPUT and moved into place when complete: a crash never leaves a
broken pipeline, and the previous one stays until the new one is there.

The logic is :func:`spacy_al.training.train_pipeline`, callable from Python; this
recipe prints what it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from spacy_al.ner.model import FACTORIES
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.training import ComponentRun, save_pipeline, train_pipeline

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


@recipe("train")
def train(
    output: Annotated[Path, typer.Argument(help="Directory to save the pipeline to")],
    textcat: TextcatSets = None,
    ner: NerSets = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "linear",
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
    try:
        # 1. Train: load the answers, hold out gold ones, train with early stopping.
        #    The callbacks print what is trained and each epoch's scores.
        result = train_pipeline(
            Store(db),
            textcat=split_commas(textcat),
            ner=split_commas(ner),
            base=base,
            arch=arch,
            ner_arch=ner_arch,
            multilabel=multilabel,
            eval_split=eval_split,
            positive_label=positive_label,
            max_epochs=max_epochs,
            seed=seed,
            on_start=_print_start,
            on_epoch=_print_epoch,
            on_done=_print_done,
        )
        # 2. Save: written beside OUTPUT, then moved into place.
        save_pipeline(result.nlp, output)
    except (ValueError, FileNotFoundError) as e:
        msg.fail(str(e), exits=1)
    msg.good(f"Saved the pipeline ({', '.join(result.nlp.pipe_names)}) to {output}")


def _print_start(run: ComponentRun) -> None:
    # What consensus held back, and the answers that can't be used.
    for level, text in run.loaded.notes(run.datasets):
        getattr(msg, level)(text)
    if run.component == "textcat":
        kind = "exclusive" if run.loaded.exclusive else "multilabel"
        msg.info(
            f"textcat: {run.n_train} training targets ({run.n_partial} partial), "
            f"{run.n_eval} held out; labels {run.loaded.labels}; {kind}"
        )
    else:
        if run.eval_binary:
            msg.warn(
                "No gold (ner.correct / ner.manual) answers to evaluate on: the "
                "scores below are on held-out binary answers, which judge only the "
                "entities that were asked about."
            )
        msg.info(
            f"ner: {run.n_train} training targets ({run.n_partial} partial, "
            f"{run.n_rejected} rejected spans), {run.n_eval} held out; labels "
            f"{run.loaded.labels}"
        )
    msg.row(["epoch", "loss", run.metric], widths=(6, 10, 10))


def _print_epoch(epoch: int, loss: float, score: float) -> None:
    msg.row([epoch, f"{loss:.3f}", f"{score:.3f}"], widths=(6, 10, 10))


def _print_done(run: ComponentRun) -> None:
    msg.good(f"Best {run.metric} {run.best_score:.3f} (epoch {run.best_epoch})")
