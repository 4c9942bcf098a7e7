"""The first command to try: ``python -m spacy_al demo``.

It starts ``textcat.teach`` on customer support messages shipped with spacy_al
(corpora/support.jsonl, four labels) with answers saved to an SQLite file, and
opens the labelling app: nothing else to install, download or start.

    python -m spacy_al demo                      # http://127.0.0.1:8501/?session=you
    python -m spacy_al demo --db demo.db --port 8600
"""

from __future__ import annotations

from typing import Annotated

import typer

from spacy_al import registry
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.registry import recipe

from ._options import Host, Port

__all__ = ["LABELS", "corpus_path", "demo"]


@recipe("demo")
def demo(
    db: Annotated[
        str,
        typer.Option("--db", help="SQLite file (or SQLAlchemy URL) for the answers"),
    ] = "spacy_al_demo.db",
    host: Host = "127.0.0.1",
    port: Port = 8501,
    dataset: Annotated[
        str, typer.Option("--dataset", help="Dataset to save the answers to")
    ] = "support_demo",
) -> dict:
    """Label customer support messages in the browser while a model learns.

    textcat.teach on the bundled corpus (322 messages, labels BILLING, SHIPPING,
    TECHNICAL and ACCOUNT) with a live learning curve on 80 held-out messages.
    """
    # textcat.teach, found by its name as the command line finds it.
    teach = registry.recipes.get("textcat.teach")
    # 1. The pool and the held-out set ship with spacy_al (see corpora/README.md).
    # 2. Everything else is textcat.teach: the model asks about the messages it is
    #    least sure of (margin), learns after every 10 answers, and the curve is
    #    macro F1 on the held-out messages after each update.
    return teach(
        dataset=dataset,
        source=corpus_path("support.jsonl"),
        label=LABELS,
        db=db,
        eval_path=corpus_path("support_eval.jsonl"),
        host=host,
        port=port,
    )
