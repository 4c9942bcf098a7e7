"""data-to-spacy: export annotated datasets as corpora that ``spacy train`` takes.

    python -m spacy_al data-to-spacy ./corpus --textcat news --ner news_ents
    python -m spacy train ./corpus/config.cfg --paths.train ./corpus/train.spacy \\
        --paths.dev ./corpus/dev.spacy --output ./model_out

Writes ``train.spacy`` and ``dev.spacy`` (DocBin) and a ``config.cfg`` made by
spaCy's own ``init config`` for the right components, so the command above runs
unchanged. Answers on the same text are merged into one Doc (its ``cats`` and its
entities). As in ``train``, examples whose annotators disagree (``--overlap``) are
left out until reviewed, and a reviewer's answer (``review``) is the one exported. NER annotations are written the way spaCy's ner expects them:

* gold answers (ner.correct, ner.manual): the entities, every other token
  outside (O);
* binary answers (ner.teach): accepted entities, every other token *missing*
  (the ner's loss ignores it), and rejected spans in
  ``doc.spans["incorrect_spans"]``, the ``incorrect_spans_key`` the exported
  config gives the ner, so it learns what an entity is *not*.

dev.spacy holds a share of the texts whose every annotation is gold.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from spacy.cli.init_config import init_config
from wasabi import msg

from spacy_al.export import (
    load_ner_targets,
    load_textcat_targets,
    merge_records,
    split_records,
    write_records,
)
from spacy_al.ner.model import INCORRECT_SPANS_KEY
from spacy_al.ner.targets import NERTarget
from spacy_al.pipelines import load_base
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.textcat.targets import TextcatTarget, gold_cats_for_export

from ._options import (
    DEFAULT_DB,
    Db,
    MultilabelOverride,
    NerSets,
    Seed,
    TextcatSets,
    split_commas,
)


@recipe("data-to-spacy")
def data_to_spacy(
    output: Annotated[
        Path, typer.Argument(help="Directory for train.spacy, dev.spacy, config.cfg")
    ],
    textcat: TextcatSets = None,
    ner: NerSets = None,
    db: Db = DEFAULT_DB,
    lang: Annotated[
        str, typer.Option("--lang", help="Language of the pipeline")
    ] = "en",
    multilabel: MultilabelOverride = None,
    eval_split: Annotated[
        float, typer.Option("--eval-split", help="Share of gold answers for dev.spacy")
    ] = 0.2,
    optimize: Annotated[
        str,
        typer.Option("--optimize", help="efficiency or accuracy (spaCy's init config)"),
    ] = "efficiency",
    seed: Seed = 0,
) -> None:
    """Export datasets as train.spacy, dev.spacy and config.cfg for spacy train."""
    textcat_names, ner_names = split_commas(textcat), split_commas(ner)
    if not textcat_names and not ner_names:
        msg.fail(
            "Name the datasets to export: --textcat NAMES and/or --ner NAMES.", exits=1
        )
    pipeline: list[str] = []
    cat_targets: list[TextcatTarget] = []
    ent_targets: list[NERTarget] = []
    exclusive = True
    # The blank pipeline whose tokens the exported Docs have.
    nlp = load_base(f"blank:{lang}")
    try:
        store = Store(db)
        if textcat_names:
            cats = load_textcat_targets(store, textcat_names, multilabel=multilabel)
        if ner_names:
            ents = load_ner_targets(store, ner_names, nlp=nlp)
    except ValueError as e:
        msg.fail(str(e), exits=1)
    if textcat_names:
        # What consensus held back, and the answers that can't be used.
        for level, text in cats.notes(textcat_names):
            getattr(msg, level)(text)
        cat_targets, labels, exclusive = cats.targets, cats.labels, cats.exclusive
        # spaCy's exclusive textcat can't learn "not X" alone: those are left out.
        cat_targets, dropped = gold_cats_for_export(cat_targets, exclusive=exclusive)
        if dropped:
            msg.warn(
                f"Left out {dropped} partial answer(s) (a reject of one of {len(labels)} "
                f"exclusive labels): spaCy's exclusive textcat would read the other labels "
                f"as false. Use --multilabel, or correct them in textcat.correct."
            )
        pipeline.append("textcat" if exclusive else "textcat_multilabel")
    if ner_names:
        for level, text in ents.notes(ner_names):
            getattr(msg, level)(text)
        ent_targets = ents.targets
        pipeline.append("ner")
    records = list(merge_records(cat_targets, ent_targets).values())
    if not records:
        msg.fail(f"No exportable answers in {textcat_names + ner_names}.", exits=1)
    if textcat_names and ner_names and exclusive:
        n_no_cats = sum(1 for r in records if r.cats is None)
        if n_no_cats:
            msg.warn(
                f"{n_no_cats} text(s) have entities but no category: spaCy's exclusive "
                f"textcat has no missing values and reads them as 'no category'. "
                f"Label them in textcat.correct, or use --multilabel."
            )
    train_records, dev_records = split_records(
        records, eval_split=eval_split, seed=seed
    )
    if not dev_records and not textcat_names:
        # Only binary NER answers: dev holds some of them; spaCy's scorer skips the
        # tokens whose annotation is missing.
        random.Random(seed).shuffle(records)
        n_dev = int(round(len(records) * eval_split))
        train_records, dev_records = records[n_dev:], records[:n_dev]
        if dev_records:
            msg.warn(
                "No gold answers for dev.spacy: it holds binary (ner.teach) answers, "
                "so its scores judge only the entities that were asked about."
            )
    if not dev_records:
        msg.fail(
            "No gold answers for dev.spacy: lower --eval-split or add answers.", exits=1
        )
    output.mkdir(parents=True, exist_ok=True)
    n_train = write_records(nlp, train_records, output / "train.spacy")
    n_dev = write_records(nlp, dev_records, output / "dev.spacy")
    config = init_config(lang=lang, pipeline=pipeline, optimize=optimize, gpu=False)
    if "ner" in pipeline:
        # Rejected spans (ner.teach) train the ner through this span group.
        config["components"]["ner"]["incorrect_spans_key"] = INCORRECT_SPANS_KEY
    config.to_disk(output / "config.cfg")
    msg.good(
        f"Wrote {n_train} training and {n_dev} dev docs to {output} ({', '.join(pipeline)})"
    )
    # One unwrapped line (wasabi wraps to the terminal), so it can be pasted as is.
    typer.echo(
        f"python -m spacy train {output / 'config.cfg'} --paths.train "
        f"{output / 'train.spacy'} --paths.dev {output / 'dev.spacy'} "
        f"--output {output.parent / (output.name + '_model')}"
    )
