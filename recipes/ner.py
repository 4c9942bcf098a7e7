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
    _input_key, _task_key (identity), _input_hash, _task_hash (Prodigy), _model_version

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

import math
from pathlib import Path
from typing import Annotated

import typer
from spacy.pipeline import EntityRecognizer
from tqdm import tqdm
from wasabi import msg

from spacy_al.checkpoints import Checkpoints
from spacy_al.corpus import Source
from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.ner.fit import SESSION_FIT_EXAMPLES, SESSION_FIT_SECONDS
from spacy_al.ner.loop import NERLoop
from spacy_al.ner.model import (
    DEFAULT_BEAM_WIDTH,
    DEFAULT_LEARN_RATE,
    FACTORIES,
    SESSION_FACTORY,
    NERModel,
    build_ner,
)
from spacy_al.ner.patterns import EntityPatterns
from spacy_al.ner.scores import DEFAULT_NER_STRATEGY
from spacy_al.ner.targets import answers_to_ner_targets
from spacy_al.pipelines import load_base
from spacy_al.pretraining import DEFAULT_PRETRAIN, PRETRAIN_CHOICES, prepare_tok2vec
from spacy_al.registry import recipe
from spacy_al.representations import (
    MIN_POOL_TOKENS,
    VECTOR_CHOICES,
    prepare_vectors,
)
from spacy_al.session import open_session
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
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
    report,
    session_settings,
    split_commas,
)


def vectors_progress(stage: str, done: float) -> None:
    """Show the pool vectors' training (minutes on 2 cores for a big pool)."""
    if stage == "train" and done == 0.0:
        msg.text("Training floret vectors on the source's texts ...")


class PretrainProgressBar:
    """A progress bar of the tok2vec's pretraining on the pool (minutes on 2
    cores for a big pool: the time it takes is shown as it goes)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: float) -> None:
        if stage != "pretrain":
            return
        if self.bar is None:
            self.bar = tqdm(
                total=100, desc="Pretraining tok2vec on the source", unit="%"
            )
        self.bar.update(round(done * 100) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


Labels = Annotated[
    str | None, typer.Option("--label", "-l", help="Comma-separated entity labels")
]
Arch = Annotated[
    str,
    typer.Option(
        "--arch",
        help=f"Entity recognizer: {', '.join(FACTORIES)} (ner: greedy, its "
        "uncertainty scored with a beam of --beam-width; what the WNUT-17 "
        "measurements ran)",
    ),
]
BeamWidth = Annotated[
    int,
    typer.Option(
        "--beam-width",
        help="Beam width of the scores (and of training, with --arch beam_ner); "
        "1: greedy scores",
    ),
]
Component = Annotated[
    str | None, typer.Option("--component", help="Name of the ner component to train")
]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="entity, sequence_least_confidence, greedy_mnlp, any_entity, "
        "token-entropy, mean_token_entropy, mnlp, random, sequential, or "
        "STRATEGY:MEASURE (e.g. diverse:sequence_least_confidence, "
        "power:sequence_least_confidence, random-start:any_entity)",
    ),
]

VectorsOpt = Annotated[
    str,
    typer.Option(
        "--vectors",
        help="auto: floret vectors trained on the source's texts (when it has "
        f"{MIN_POOL_TOKENS:,}+ tokens and --base has none; cached beside the "
        "dataset), pool: always, base: the --base pipeline's, none",
    ),
]

PretrainOpt = Annotated[
    str,
    typer.Option(
        "--pretrain",
        help=f"{', '.join(PRETRAIN_CHOICES)}: pretrain the ner's tok2vec on the "
        "source's texts (spacy pretrain, characters objective; minutes on 2 "
        "cores, with a progress bar, cached beside the dataset). auto: when the "
        "source has 20,000+ tokens and --base has no ner or tok2vec of its own",
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
    arch: str = SESSION_FACTORY,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    component: str | None = None,
    batch_size: int = 10,
    patterns: Path | None = None,
    eval_path: Path | None = None,
    skip_invalid: bool = False,
    window: int | None = 2_000,
    vectors: str = "auto",
    pretrain: str = DEFAULT_PRETRAIN,
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
    overlap = int((settings or {}).get("overlap") or 1)
    # Whether the base pipeline brings a trained entity recognizer: then the
    # model's suggestions mean something before the first update.
    pretrained = {"value": False}

    def load_updater(checkpoints: Checkpoints) -> Updater | None:
        # (None when there is none, or none readable: it warns.) A checkpoint of
        # other labels can't be resumed: the user must choose.
        updater = checkpoints.load(
            model_class=NERModel,
            learn_rate=DEFAULT_LEARN_RATE,
            drop=0.1,
            use_averages=True,
            refit_seconds=math.inf,  # the model's fit keeps to SESSION_FIT_SECONDS
        )
        if updater is not None and set(updater.labels) != set(labels):
            raise ValueError(
                Errors.E545.format(
                    path=checkpoints.model_path,
                    saved=list(updater.labels),
                    labels=labels,
                    dataset=dataset,
                )
            )
        return updater

    def new_updater(version: int) -> Updater:
        base_nlp = load_base(base)
        pretrained["value"] = any(
            name == component
            or (component is None and isinstance(pipe, EntityRecognizer))
            for name, pipe in base_nlp.pipeline
        )
        # Representations from the pool: floret subword vectors of the source's
        # texts (a new model only: a checkpoint keeps its vectors), trained once
        # and cached in the dataset's checkpoint folder.
        texts: list[str] | None = None
        folder = Checkpoints.for_db(db, dataset).folder
        if vectors in ("auto", "pool"):
            texts = [eg["text"] for eg in Source(source, skip_invalid=True)]
            found = prepare_vectors(
                base_nlp, texts, vectors, folder=folder, on_progress=vectors_progress
            )
            if found is not None:
                how = "read from the cache" if found.cached else "trained"
                msg.good(
                    f"floret vectors of {found.n_texts:,} texts {how} in "
                    f"{found.seconds:.0f} s ({found.path})"
                )
        elif vectors not in VECTOR_CHOICES:
            raise ValueError(
                Errors.E548.format(vectors=vectors, min_tokens=MIN_POOL_TOKENS)
            )
        # ... and a tok2vec pretrained on them (over those vectors, if any):
        # spacy pretrain's characters objective, cached beside the vectors.
        tok2vec = None
        if pretrain == "pool" and pretrained["value"]:  # fail before minutes of it
            raise ValueError(Errors.E1233.format(name=component or "ner"))
        if pretrain != "none":
            if texts is None:
                texts = [eg["text"] for eg in Source(source, skip_invalid=True)]
            bar = PretrainProgressBar()
            try:
                tok2vec = prepare_tok2vec(
                    base_nlp, texts, pretrain, folder=folder, on_progress=bar
                )
            finally:
                bar.close()
            if tok2vec is not None:
                how = "read from the cache" if tok2vec.cached else "pretrained"
                msg.good(
                    f"tok2vec {how} on {tok2vec.n_texts:,} texts in "
                    f"{tok2vec.seconds:.0f} s ({tok2vec.path})"
                )
        nlp = build_ner(
            labels,
            base=base_nlp,
            factory=arch,
            beam_width=max(beam_width, 2),
            component=component,
            static_vectors=None if vectors != "none" else False,
            tok2vec=tok2vec,
        )
        # After every batch the model fits on all answers so far (many epochs
        # while they are few, within SESSION_FIT_SECONDS); served snapshots hold the
        # averaged weights: steadier suggestions.
        return Updater(
            NERModel(
                nlp,
                component=component,
                beam_width=beam_width,
                fit_examples=SESSION_FIT_EXAMPLES,
                fit_seconds=SESSION_FIT_SECONDS,
            ),
            learn_rate=DEFAULT_LEARN_RATE,
            drop=0.1,
            use_averages=True,
            refit_seconds=math.inf,
            version=version,
        )

    # 1. The session: the source (read and checked first), the database (answers
    #    are committed there before the app moves on), and the model, resumed from
    #    this dataset's checkpoint when there is one. Earlier answers are learnt
    #    now if the checkpoint didn't know them; with --overlap N only those N
    #    annotators agree on are learnt, the others are held back until they do.
    session = open_session(
        dataset,
        source,
        db=db,
        meta={
            "labels": labels,
            "view_id": view_id,
            "task": "ner",
            "mode": mode,
            "overlap": overlap,
        },
        new_updater=new_updater,
        load_updater=load_updater,
        to_targets=answers_to_ner_targets,
        overlap=overlap,
        skip_invalid=skip_invalid,
    )
    updater = session.updater
    # 2. Patterns: pre-highlighted in ner.manual (and in ner.correct while the
    #    model is untrained), asked about first in ner.teach while a label has
    #    few accepted entities (the cold start).
    matcher = (
        EntityPatterns.from_file(updater.model.nlp, patterns, labels=updater.labels)
        if patterns
        else None
    )
    # 3. The loop: scores the pool, picks questions, stores answers, learns. An
    #    untrained model's entities aren't suggested (ner.correct pre-fills
    #    nothing, or the pattern matches).
    loop = NERLoop(
        session.pool,
        updater,
        spec=StrategySpec.parse(strategy, task="ner"),
        mode=mode,
        store=session.store,
        dataset=dataset,
        batch_size=batch_size,
        window=window,
        patterns=matcher,
        pretrained=pretrained["value"],
        # ner.teach without patterns and an untrained model asks for whole
        # analyses (the manual view) until each label has been marked a few
        # times, instead of suggesting junk; the feed stores each answer in the
        # view its task was served in.
        cold_start=True,
    )
    loop.consensus = session.consensus
    loop.hold(session.held)
    return {
        "dataset": dataset,
        "view_id": view_id,
        "task": "ner",
        "store": session.store,
        "loop": loop,
        "labels": list(updater.labels),
        "exclusive": False,
        "eval": str(eval_path) if eval_path else None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
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
    vectors: VectorsOpt = "auto",
    pretrain: PretrainOpt = DEFAULT_PRETRAIN,
    arch: Arch = SESSION_FACTORY,
    beam_width: BeamWidth = DEFAULT_BEAM_WIDTH,
    component: Component = None,
    strategy: Strategy = DEFAULT_NER_STRATEGY,
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
        vectors=vectors,
        pretrain=pretrain,
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
    vectors: VectorsOpt = "auto",
    pretrain: PretrainOpt = DEFAULT_PRETRAIN,
    arch: Arch = SESSION_FACTORY,
    beam_width: BeamWidth = DEFAULT_BEAM_WIDTH,
    component: Component = None,
    strategy: Strategy = DEFAULT_NER_STRATEGY,
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
    """Fix the model's entities in the texts it is least sure of.

    The model's full analysis is pre-filled; correct it and accept. Every answer
    is gold (every token not in a span is outside any entity), and the model
    learns from each batch. Until its first update the model knows nothing, so
    nothing is pre-filled but the matches of --patterns, if given.
    """
    components = build_ner_components(
        dataset,
        source,
        labels=split_commas(label),
        mode="correct",
        strategy=strategy,
        db=db,
        base=base,
        vectors=vectors,
        pretrain=pretrain,
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


@recipe("ner.manual")
def manual(
    dataset: Dataset,
    source: SourceArg,
    label: Labels = None,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    vectors: VectorsOpt = "auto",
    pretrain: PretrainOpt = DEFAULT_PRETRAIN,
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
        vectors=vectors,
        pretrain=pretrain,
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
