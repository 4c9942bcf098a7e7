"""Named-entity recipes: ner.teach, ner.correct, ner.manual.

    python -m spacy_al ner.teach tweets ./tweets.jsonl --label PERSON,ORG --patterns p.jsonl
    python -m spacy_al ner.correct tweets_gold ./tweets.jsonl --label PERSON,ORG
    python -m spacy_al ner.manual tweets_gold ./tweets.jsonl --label PERSON,ORG

Each recipe wires the loop's parts together and *returns* them (as Prodigy's
recipes do); the CLI starts the labelling app with them, the simulator and the
tests drive the same components with an oracle. The components are those of the
textcat recipes: ``dataset``, ``view_id``, ``store``, ``loop`` (a
``spacy_al.ner.loop.NERLoop``, with ``ActiveLoop``'s API), ``labels``,
``exclusive`` (False), ``eval``, ``checkpoint``, ``source``, ``config``, plus
``task`` ("ner").

Tasks, for the app
------------------
Every task is a dict with::

    text          the text
    tokens        [{"text", "start", "end", "id", "ws"}] (character offsets, id =
                  token index) and, when the model scored the text, "entropy"
                  (nats, higher = more uncertain) and "p_entity" (probability that
                  the token is inside some entity): shade tokens by these
    spans         [{"start", "end", "token_start", "token_end", "label", "score"}]
                  character offsets (end exclusive), token_end inclusive (as in
                  Prodigy); "score" is the model's probability of that entity
    meta          {"strategy", "uncertainty", "score", "pattern", ...}
    _view_id      "ner" (ner.teach) or "ner_manual" (ner.correct, ner.manual)
    _input_hash, _task_hash, _model_version

* ``view_id == "ner"`` (ner.teach): ``spans`` holds exactly one entity and
  ``label`` its label. The answer is the task with ``answer`` = "accept" (this
  span is this label), "reject" (it is not) or "ignore".
* ``view_id == "ner_manual"``: ``spans`` holds the pre-filled entities (the
  model's analysis in ner.correct; pattern matches, or none, in ner.manual). The
  answer is the task with the edited ``spans`` (non-overlapping, labels from
  ``labels``) and ``answer`` = "accept" (the spans are all the entities: every
  other token is outside), "reject" (unusable text: nothing is learnt) or
  "ignore".

Offsets in answers are Python character offsets: a browser's UTF-16 offsets
must go through ``spacy_al.spans.utf16_spans_to_char`` first. Spans that don't
align with the tokens are refused by ``loop.answer`` (a ValueError naming the
offsets) before anything is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spacy_al.checkpoints import (
    learn_stored_answers,
    load_checkpoint,
    read_version_mark,
)
from spacy_al.corpus import Source
from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.ner.loop import NERLoop
from spacy_al.ner.model import (
    DEFAULT_BEAM_WIDTH,
    DEFAULT_LEARN_RATE,
    FACTORIES,
    NERModel,
    build_ner,
)
from spacy_al.ner.patterns import EntityPatterns
from spacy_al.ner.targets import answers_to_ner_targets
from spacy_al.pipelines import load_base
from spacy_al.pool import Pool
from spacy_al.registry import recipe
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from spacy_al.store import Store
from spacy_al.team.consensus import Consensus, review_answers
from spacy_al.updater import Updater

from ._options import (
    DEFAULT_DB,
    Annotators,
    Base,
    BatchSize,
    Dataset,
    Db,
    Eval,
    Host,
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
from .textcat import checkpoint_dir, report

Labels = Annotated[
    str | None, typer.Option("--label", "-l", help="Comma-separated entity labels")
]
Arch = Annotated[
    str, typer.Option("--arch", help=f"Entity recognizer: {', '.join(FACTORIES)}")
]
BeamWidth = Annotated[
    int,
    typer.Option("--beam-width", help="Beam width for training and scores (1: greedy)"),
]
Component = Annotated[
    str | None, typer.Option("--component", help="Name of the ner component to train")
]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="entity, mnlp, token-entropy, mean_token_entropy, "
        "sequence_least_confidence, random, sequential, or STRATEGY:MEASURE "
        "(e.g. diverse:mnlp, cost:mnlp)",
    ),
]
Patterns = Annotated[
    Path | None,
    typer.Option("--patterns", help="JSONL entity patterns (EntityRuler format)"),
]


def build_ner_components(
    dataset: str,
    source: Path,
    *,
    labels: list[str],
    mode: str,
    strategy: str,
    db: str = DEFAULT_DB,
    base: str = "blank:en",
    arch: str = "beam_ner",
    beam_width: int = DEFAULT_BEAM_WIDTH,
    component: str | None = None,
    batch_size: int = 10,
    patterns: Path | None = None,
    eval_path: Path | None = None,
    skip_invalid: bool = False,
    window: int | None = 2_000,
    settings: dict | None = None,
) -> dict:
    """The parts of an NER labelling session, ready to serve."""
    # 0. The labels are fixed now: adding one while the model is shared between
    #    the trainer and the scorer crashed the process. Without --label, the
    #    patterns' labels are used.
    if not labels and patterns is not None:
        labels = EntityPatterns.from_file(load_base(base), patterns).labels
    if not labels:
        raise ValueError(Errors.E535)
    view_id = "ner" if mode == "teach" else "ner_manual"
    # 1. The database: answers are committed here before the app moves on.
    store = Store(db)
    store.create_dataset(
        dataset,
        meta={
            "labels": labels,
            "view_id": view_id,
            "task": "ner",
            "mode": mode,
            "overlap": int((settings or {}).get("overlap") or 1),
        },
    )
    # 2. The pool: every text of the source, minus what this dataset has answered.
    source_reader = Source(source, skip_invalid=skip_invalid)
    answered = store.answered_input_hashes(dataset)
    #    After a second, a big source goes on being read in the background.
    pool = Pool(source_reader, answered=answered, foreground_seconds=1.0)
    # 3. The model: from a checkpoint of an earlier session, or a new one.
    ckpt = checkpoint_dir(db, dataset)
    # (None when there is none, or none readable: load_checkpoint warns.)
    updater = load_checkpoint(
        ckpt,
        model_class=NERModel,
        learn_rate=DEFAULT_LEARN_RATE,
        drop=0.1,
        use_averages=True,
    )
    resumed = updater is not None
    if updater is not None:
        if set(updater.labels) != set(labels):
            raise ValueError(
                Errors.E545.format(
                    path=ckpt,
                    saved=list(updater.labels),
                    labels=labels,
                    dataset=dataset,
                )
            )
    else:
        nlp = build_ner(
            labels,
            base=base,
            factory=arch,
            beam_width=max(beam_width, 2),
            component=component,
        )
        # Served snapshots hold the averaged weights: steadier suggestions.
        updater = Updater(
            NERModel(nlp, component=component, beam_width=beam_width),
            learn_rate=DEFAULT_LEARN_RATE,
            drop=0.1,
            use_averages=True,
            # The version continues after the last one served, even unsaved.
            version=read_version_mark(ckpt),
        )
    # 4. Earlier answers of this dataset: remembered for replay, and, when there was
    #    no checkpoint to resume, learnt from before the first question.
    #    With --overlap N, only examples N annotators agree on (or a reviewer
    #    adjudicated) are learnt; the others are held until they are.
    consensus = Consensus(int((settings or {}).get("overlap") or 1))
    previous = store.get_answers(dataset) if answered else []
    held = consensus.split([*previous, *review_answers(store, dataset)])
    if previous:
        targets = answers_to_ner_targets(held.learn, updater.labels)
        # Learnt now: all of them when there was no checkpoint, else those stored
        # after it was written (a crash loses no answer; the version goes on).
        learn_stored_answers(updater, targets, resumed=resumed, checkpoint=ckpt)
    # 5. Patterns: pre-highlighted in ner.manual, asked about first in ner.teach
    #    while a label has few accepted entities (the cold start).
    matcher = (
        EntityPatterns.from_file(updater.model.nlp, patterns, labels=updater.labels)
        if patterns
        else None
    )
    # 6. The loop: scores the pool, picks questions, stores answers, learns.
    loop = NERLoop(
        pool,
        updater,
        spec=StrategySpec.parse(strategy, task="ner"),
        mode=mode,
        store=store,
        dataset=dataset,
        batch_size=batch_size,
        window=window,
        patterns=matcher,
    )
    loop.consensus = consensus
    loop.hold(held.held)
    return {
        "dataset": dataset,
        "view_id": view_id,
        "task": "ner",
        "store": store,
        "loop": loop,
        "labels": list(updater.labels),
        "exclusive": False,
        "eval": str(eval_path) if eval_path else None,
        "checkpoint": str(ckpt),
        "source": {
            "path": str(source),
            "read": source_reader.n_read,
            "skipped": source_reader.n_skipped,
            "duplicates": source_reader.n_duplicates,
        },
        "config": {
            "batch_size": batch_size,
            "strategy": strategy,
            "mode": mode,
            "beam_width": beam_width,
            **(settings or {}),
        },
    }


@recipe("ner.teach")
def teach(
    dataset: Dataset,
    source: SourceArg,
    label: Labels = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "beam_ner",
    beam_width: BeamWidth = DEFAULT_BEAM_WIDTH,
    component: Component = None,
    strategy: Strategy = "entity",
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
    """Accept or reject single entities the model is unsure of.

    Each question is one span with one label: accept (it is that entity), reject
    (it isn't) or ignore. The model learns from these partial answers (nothing is
    assumed about the rest of the text) in the background after every batch.
    Patterns (--patterns) suggest entities before the model knows any.
    """
    components = build_ner_components(
        dataset,
        source,
        labels=split_commas(label),
        mode="teach",
        strategy=strategy,
        db=db,
        base=base,
        arch=arch,
        beam_width=beam_width,
        component=component,
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


@recipe("ner.correct")
def correct(
    dataset: Dataset,
    source: SourceArg,
    label: Labels = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "beam_ner",
    beam_width: BeamWidth = DEFAULT_BEAM_WIDTH,
    component: Component = None,
    strategy: Strategy = "mnlp",
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
    """Fix the model's entities in the texts it is least sure of.

    The model's full analysis is pre-filled; correct it and accept. Every answer
    is gold (every token not in a span is outside any entity), and the model
    learns from each batch.
    """
    components = build_ner_components(
        dataset,
        source,
        labels=split_commas(label),
        mode="correct",
        strategy=strategy,
        db=db,
        base=base,
        arch=arch,
        beam_width=beam_width,
        component=component,
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
        ),
    )
    report(components)
    return components


@recipe("ner.manual")
def manual(
    dataset: Dataset,
    source: SourceArg,
    label: Labels = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    patterns: Patterns = None,
    batch_size: BatchSize = 10,
    skip_invalid: SkipInvalid = False,
    host: Host = "127.0.0.1",
    port: Port = 8501,
    annotators: Annotators = None,
    overlap: Overlap = 1,
) -> dict:
    """Mark the entities of each text from scratch, in source order.

    Matches of --patterns are pre-highlighted. Answers are gold; a model still
    learns from them in the background (for ner.correct or train later).
    """
    components = build_ner_components(
        dataset,
        source,
        labels=split_commas(label),
        mode="manual",
        strategy="sequential",
        db=db,
        base=base,
        batch_size=batch_size,
        patterns=patterns,
        skip_invalid=skip_invalid,
        window=None,
        settings=session_settings(
            host=host,
            port=port,
            annotators=annotators,
            overlap=overlap,
        ),
    )
    report(components)
    return components
