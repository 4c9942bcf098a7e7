"""Text classification recipes: textcat.teach, textcat.correct, textcat.manual.

Each recipe wires the loop's parts together and *returns* them, as Prodigy's
recipes do: the dataset, the store, the loop (pool, model, strategy, updater), and
the view the labelling app should show. The CLI starts the app with them; the
simulator and the tests drive the same components with an oracle instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from spacy_al.checkpoints import (
    learn_stored_answers,
    load_checkpoint,
    read_version_mark,
)
from spacy_al.corpus import Source
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.registry import recipe
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from spacy_al.store import Store
from spacy_al.team.consensus import Consensus, review_answers
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
from spacy_al.textcat.patterns import PatternMatcher
from spacy_al.textcat.targets import answers_to_textcat_targets
from spacy_al.updater import Committee, Updater

from ._options import (
    DEFAULT_DB,
    Annotators,
    Arch,
    Base,
    BatchSize,
    Dataset,
    Db,
    Eval,
    Host,
    Multilabel,
    Overlap,
    Port,
    SkipInvalid,
    SourceArg,
    StopSetSize,
    StopThreshold,
    StopWindow,
    session_settings,
    split_commas,
)

# Options of the textcat recipes only; the shared ones are in ._options.
Labels = Annotated[str, typer.Option("--label", "-l", help="Comma-separated labels")]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="margin, entropy, least_confidence, diverse, balanced, cost, random, "
        "vote_entropy, bald, or STRATEGY:MEASURE",
    ),
]
Patterns = Annotated[
    Path | None, typer.Option("--patterns", help="JSONL patterns for the cold start")
]


def checkpoint_dir(db: str, dataset: str) -> Path:
    """Where a dataset's in-loop model is checkpointed: beside an SQLite file."""
    if "://" not in db or db.startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite:///"))
        return path.parent / f"{path.stem}.models" / dataset
    return Path(os.environ.get("SPACY_AL_HOME", ".spacy_al")) / "models" / dataset


def build_components(
    dataset: str,
    source: Path,
    *,
    labels: list[str],
    view_id: str,
    strategy: str,
    db: str = DEFAULT_DB,
    base: str = "blank:en",
    arch: str = "bow",
    multilabel: bool = False,
    batch_size: int = 10,
    patterns: Path | None = None,
    eval_path: Path | None = None,
    skip_invalid: bool = False,
    window: int | None = 20_000,
    committee_size: int = 3,
    settings: dict | None = None,
) -> dict:
    """The parts of a text-classification labelling session, ready to serve."""
    # 1. The database: answers are committed here before the app moves on.
    store = Store(db)
    store.create_dataset(
        dataset,
        meta={
            "labels": labels,
            "view_id": view_id,
            "exclusive": not multilabel,
            "task": "textcat",
            "overlap": int((settings or {}).get("overlap") or 1),
        },
    )
    # 2. The pool: every text of the source, minus what this dataset has answered.
    source_reader = Source(source, skip_invalid=skip_invalid)
    answered = store.answered_input_hashes(dataset)
    #    After a second, a big source goes on being read in the background.
    pool = Pool(source_reader, answered=answered, foreground_seconds=1.0)
    # 3. The model: from a checkpoint of an earlier session, or a new one.
    spec = StrategySpec.parse(strategy)
    ckpt = checkpoint_dir(db, dataset)
    learn_rate = DEFAULT_LEARN_RATE.get(arch, 0.01)
    if spec.uses_committee:
        model = TextcatModel(
            build_textcat(
                labels, exclusive=not multilabel, base=base, architecture=arch
            )
        )
        updater = Committee.build(
            model,
            size=committee_size,
            learn_rate=learn_rate,
            version=read_version_mark(ckpt),  # no checkpoint, but the version goes on
        )
    else:  # None when there is none, or none readable (with a warning)
        updater = load_checkpoint(ckpt, learn_rate=learn_rate)
    resumed = updater is not None
    if updater is None:
        model = TextcatModel(
            build_textcat(
                labels, exclusive=not multilabel, base=base, architecture=arch
            )
        )
        # The version continues after the last one served, even without a save.
        updater = Updater(model, learn_rate=learn_rate, version=read_version_mark(ckpt))
    # 4. Earlier answers of this dataset: remembered for replay, and, when there was
    #    no checkpoint to resume, learnt from before the first question.
    #    With --overlap N, only examples N annotators agree on (or a reviewer
    #    adjudicated) are learnt; the others are held until they are.
    consensus = Consensus(int((settings or {}).get("overlap") or 1))
    previous = store.get_answers(dataset) if answered else []
    held = consensus.split([*previous, *review_answers(store, dataset)])
    if previous:
        targets = answers_to_textcat_targets(
            held.learn, updater.labels, exclusive=not multilabel
        )
        # Learnt now: all of them when there was no checkpoint, else those stored
        # after it was written (a crash loses no answer; the version goes on).
        learn_stored_answers(updater, targets, resumed=resumed, checkpoint=ckpt)
    matcher = (
        PatternMatcher.from_file(updater.model.nlp, patterns) if patterns else None
    )
    # 5. The loop: scores the pool, picks questions, stores answers, learns.
    loop = ActiveLoop(
        pool,
        updater,
        spec=spec,
        store=store,
        dataset=dataset,
        batch_size=batch_size,
        window=window,
        patterns=matcher,
    )
    loop.consensus = consensus
    # A choice asks about no one label: its tasks and answers carry no ``label``.
    loop.asks_label = view_id == "classification"
    loop.hold(held.held)
    return {
        "dataset": dataset,
        "view_id": view_id,
        "store": store,
        "loop": loop,
        "labels": list(updater.labels),
        "exclusive": not multilabel,
        "eval": str(eval_path) if eval_path else None,
        "checkpoint": str(ckpt),
        "source": {
            "path": str(source),
            "read": source_reader.n_read,
            "skipped": source_reader.n_skipped,
            "duplicates": source_reader.n_duplicates,
        },
        "config": {"batch_size": batch_size, "strategy": strategy, **(settings or {})},
    }


@recipe("textcat.teach")
def teach(
    dataset: Dataset,
    source: SourceArg,
    label: Labels,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "bow",
    multilabel: Multilabel = False,
    strategy: Strategy = "margin",
    batch_size: BatchSize = 10,
    patterns: Patterns = None,
    eval_path: Eval = None,
    skip_invalid: SkipInvalid = False,
    host: Host = "127.0.0.1",
    port: Port = 8501,
    annotators: Annotators = None,
    overlap: Overlap = 1,
    stop_window: StopWindow = DEFAULT_WINDOW,
    stop_threshold: StopThreshold = DEFAULT_THRESHOLD,
    stop_set_size: StopSetSize = DEFAULT_STOP_SET_SIZE,
) -> dict:
    """Label the texts the model is least sure of: accept, reject or correct.

    The model suggests a label for each text; accept it, reject it (optionally
    choosing the right label in the same step), or ignore the text. The model
    updates in the background after every batch of answers.
    """
    components = build_components(
        dataset,
        source,
        labels=split_commas(label),
        view_id="classification",
        strategy=strategy,
        db=db,
        base=base,
        arch=arch,
        multilabel=multilabel,
        batch_size=batch_size,
        patterns=patterns,
        eval_path=eval_path,
        skip_invalid=skip_invalid,
        settings=session_settings(
            host=host,
            port=port,
            annotators=annotators,
            overlap=overlap,
            stop_window=stop_window,
            stop_threshold=stop_threshold,
            stop_set_size=stop_set_size,
        ),
    )
    report(components)
    return components


@recipe("textcat.correct")
def correct(
    dataset: Dataset,
    source: SourceArg,
    label: Labels,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "bow",
    multilabel: Multilabel = False,
    strategy: Strategy = "margin",
    batch_size: BatchSize = 10,
    eval_path: Eval = None,
    skip_invalid: SkipInvalid = False,
    host: Host = "127.0.0.1",
    port: Port = 8501,
    annotators: Annotators = None,
    overlap: Overlap = 1,
    stop_window: StopWindow = DEFAULT_WINDOW,
    stop_threshold: StopThreshold = DEFAULT_THRESHOLD,
    stop_set_size: StopSetSize = DEFAULT_STOP_SET_SIZE,
) -> dict:
    """Choose the right label(s), with the model's prediction pre-selected.

    Every answer is gold (all labels known), and the model still picks which texts
    to ask about and learns from each batch.
    """
    components = build_components(
        dataset,
        source,
        labels=split_commas(label),
        view_id="choice",
        strategy=strategy,
        db=db,
        base=base,
        arch=arch,
        multilabel=multilabel,
        batch_size=batch_size,
        eval_path=eval_path,
        skip_invalid=skip_invalid,
        settings=session_settings(
            host=host,
            port=port,
            annotators=annotators,
            overlap=overlap,
            stop_window=stop_window,
            stop_threshold=stop_threshold,
            stop_set_size=stop_set_size,
            preselect=True,
        ),
    )
    report(components)
    return components


@recipe("textcat.manual")
def manual(
    dataset: Dataset,
    source: SourceArg,
    label: Labels,
    db: Db = DEFAULT_DB,
    multilabel: Multilabel = False,
    skip_invalid: SkipInvalid = False,
    host: Host = "127.0.0.1",
    port: Port = 8501,
    annotators: Annotators = None,
    overlap: Overlap = 1,
) -> dict:
    """Choose the label(s) of each text, in source order, from scratch."""
    components = build_components(
        dataset,
        source,
        labels=split_commas(label),
        view_id="choice",
        strategy="sequential",
        db=db,
        multilabel=multilabel,
        skip_invalid=skip_invalid,
        window=None,
        settings=session_settings(
            host=host,
            port=port,
            annotators=annotators,
            overlap=overlap,
            preselect=False,
        ),
    )
    report(components)
    return components


def report(components: dict) -> None:
    """One line on what is about to be served, and a warning for skipped lines."""
    src = components["source"]
    loop = components["loop"]
    msg.info(
        f"{components['dataset']}: {len(loop.pool)} texts from {src['path']}, "
        f"{loop.pool.n_done} already answered, labels {components['labels']} "
        f"({components['view_id']})"
    )
    if src["skipped"]:
        msg.warn(f"Skipped {src['skipped']} malformed line(s) of {src['path']}")
