"""data-to-spacy: export annotated datasets as corpora that ``spacy train`` takes.

    python -m spacy_al data-to-spacy ./corpus --textcat news
    python -m spacy train ./corpus/config.cfg --paths.train ./corpus/train.spacy \\
        --paths.dev ./corpus/dev.spacy

Writes ``train.spacy`` and ``dev.spacy`` (DocBin) and a ``config.cfg`` made by
spaCy's own ``init config`` for the right component, so the command above runs
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from spacy.cli.init_config import init_config
from spacy.tokens import DocBin
from wasabi import msg

from spacy_al.models import load_base
from spacy_al.registry import recipe
from spacy_al.store import Store
from spacy_al.targets import TextcatTarget, gold_cats_for_export

from .train import DEFAULT_DB, load_textcat_targets, split_targets


def write_docbin(nlp, targets: list[TextcatTarget], path: Path) -> int:
    """Docs with ``doc.cats`` for each target (only its known labels)."""
    db = DocBin(store_user_data=False)
    for target in targets:
        doc = nlp.make_doc(target.text)
        doc.cats = dict(target.cats)
        db.add(doc)
    db.to_disk(path)
    return len(targets)


@recipe("data-to-spacy")
def data_to_spacy(
    output: Annotated[Path, typer.Argument(help="Directory for train.spacy, dev.spacy, config.cfg")],
    textcat: Annotated[
        str, typer.Option("--textcat", help="Comma-separated datasets for textcat")
    ],
    db: Annotated[str, typer.Option("--db", envvar="SPACY_AL_DB", help="Database")] = DEFAULT_DB,
    lang: Annotated[str, typer.Option("--lang", help="Language of the pipeline")] = "en",
    multilabel: Annotated[
        bool | None,
        typer.Option("--multilabel/--exclusive", help="Override the datasets' setting"),
    ] = None,
    eval_split: Annotated[
        float, typer.Option("--eval-split", help="Share of gold answers for dev.spacy")
    ] = 0.2,
    optimize: Annotated[
        str, typer.Option("--optimize", help="efficiency or accuracy (spaCy's init config)")
    ] = "efficiency",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Export datasets as train.spacy, dev.spacy and config.cfg for spacy train."""
    store = Store(db)
    names = [name.strip() for name in textcat.split(",") if name.strip()]
    targets, labels, exclusive = load_textcat_targets(store, names, multilabel=multilabel)
    # spaCy's exclusive textcat can't learn "not X" alone: those answers are left out.
    targets, dropped = gold_cats_for_export(targets, exclusive=exclusive)
    if dropped:
        msg.warn(
            f"Left out {dropped} partial answer(s) (a reject of one of {len(labels)} "
            f"exclusive labels): spaCy's exclusive textcat would read the other labels "
            f"as false. Use --multilabel, or correct them in textcat.correct."
        )
    if not targets:
        msg.fail(f"No exportable answers in {names}.", exits=1)
    train_targets, dev_targets = split_targets(targets, eval_split=eval_split, seed=seed)
    if not dev_targets:
        msg.fail("No gold answers for dev.spacy: lower --eval-split or add answers.", exits=1)
    output.mkdir(parents=True, exist_ok=True)
    nlp = load_base(f"blank:{lang}")
    n_train = write_docbin(nlp, train_targets, output / "train.spacy")
    n_dev = write_docbin(nlp, dev_targets, output / "dev.spacy")
    component = "textcat" if exclusive else "textcat_multilabel"
    config = init_config(lang=lang, pipeline=[component], optimize=optimize, gpu=False)
    config.to_disk(output / "config.cfg")
    msg.good(f"Wrote {n_train} training and {n_dev} dev docs to {output} ({component})")
    msg.text(
        f"python -m spacy train {output / 'config.cfg'} --paths.train "
        f"{output / 'train.spacy'} --paths.dev {output / 'dev.spacy'}"
    )
