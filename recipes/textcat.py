"""Text classification recipes: textcat.teach, textcat.correct, textcat.manual.

Each recipe wires the loop's parts together and *returns* them, as Prodigy's
recipes do: the dataset, the store, the loop (pool, model, strategy, updater), and
the view the labelling app should show. The CLI starts the app with them; the
simulator and the tests drive the same components with an oracle instead.
"""

from __future__ import annotations

from pathlib import Path

from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.registry import recipe
from spacy_al.scale.pool import FIRST_WINDOW
from spacy_al.serve.follower import ServingLoop
from spacy_al.session import Session, open_session
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
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
    Dask,
    Dataset,
    Db,
    Eval,
    Host,
    LearnerMode,
    Multilabel,
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
from ._options import TextcatLabels as Labels
from ._options import TextcatPatterns as Patterns
from ._options import TextcatStrategy as Strategy


def build_components(
    dataset: str,
    source: Path,
    *,
    labels: list[str],
    view_id: str,
    strategy: str,
    db: str = DEFAULT_DB,
    base: str = "blank:en",
    arch: str = "linear",
    multilabel: bool = False,
    batch_size: int = 10,
    patterns: Path | None = None,
    eval_path: Path | None = None,
    skip_invalid: bool = False,
    window: int | None = 20_000,
    committee_size: int = 3,
    settings: dict | None = None,
    learner: str = "thread",
    dask: str | None = None,
) -> dict:
    """The parts of a text-classification labelling session, ready to serve.

    With ``learner`` "process" or "remote" a learner process selects and learns
    (python -m spacy_al learner): this server's model then learns nothing, not
    even the stored answers at the start (the learner does). With ``dask`` (a
    scheduler's address or local:N) the pool is indexed and scored on that Dask
    cluster, the whole pool at each selection (no window) but the first (a
    random sample of ``FIRST_WINDOW`` texts); its texts stay in the source file.
    """
    if learner not in ("thread", "process", "remote"):
        raise ValueError(Errors.E1105.format(value=learner))
    overlap = int((settings or {}).get("overlap") or 1)
    serve_only = learner != "thread"
    spec = StrategySpec.parse(strategy)
    learn_rate = DEFAULT_LEARN_RATE.get(arch, 0.01)

    def new_model() -> TextcatModel:
        return TextcatModel(
            build_textcat(
                labels, exclusive=not multilabel, base=base, architecture=arch
            )
        )

    def new_updater(version: int) -> Updater | Committee:
        # A committee (vote_entropy, bald) trains K members on bootstrap samples;
        # it isn't checkpointed, but its version goes on too.
        if spec.uses_committee:
            return Committee.build(
                new_model(), size=committee_size, learn_rate=learn_rate, version=version
            )
        return Updater(new_model(), learn_rate=learn_rate, version=version)

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
            "exclusive": not multilabel,
            "task": "textcat",
            "overlap": overlap,
        },
        new_updater=new_updater,
        load_updater=None
        if spec.uses_committee or serve_only
        else lambda checkpoints: checkpoints.load(learn_rate=learn_rate),
        to_targets=lambda answers, labels: (
            []
            if serve_only
            else answers_to_textcat_targets(answers, labels, exclusive=not multilabel)
        ),
        overlap=overlap,
        skip_invalid=skip_invalid,
        # A server that only serves scores nothing: its learner process does
        # (started with the same --dask). It builds no model, and holds of the
        # pool only its keys and done marks.
        dask=None if serve_only else dask,
        serve_only=serve_only,
    )
    updater = session.updater
    if updater is None:
        # 2-3. Serving only: the learner's queue is served (spacy_al.serve.follower).
        return serving_components(
            dataset,
            session,
            view_id=view_id,
            labels=labels,
            multilabel=multilabel,
            batch_size=batch_size,
            eval_path=eval_path,
            config={"batch_size": batch_size, "strategy": strategy, "learner": learner},
            settings=settings,
        )
    # 2. Patterns (the cold start): while a label has fewer than 5 answers that
    #    say it is true, half of each batch is random texts its patterns match.
    matcher = (
        PatternMatcher.from_file(updater.model.nlp, patterns) if patterns else None
    )
    # 3. The loop: scores the pool, picks questions, stores answers, learns.
    loop = ActiveLoop(
        session.pool,
        updater,
        spec=spec,
        store=session.store,
        dataset=dataset,
        batch_size=batch_size,
        window=None if dask else window,
        patterns=matcher,
        # On a cluster the whole pool is scored at each selection, but the first
        # one scores a random sample of it: the first question comes in seconds.
        first_window=FIRST_WINDOW if dask else None,
    )
    loop.consensus = session.consensus
    # A choice asks about no one label: its tasks and answers carry no ``label``.
    loop.asks_label = view_id == "classification"
    loop.hold(session.held)
    return {
        "dataset": dataset,
        "view_id": view_id,
        "store": session.store,
        "loop": loop,
        "labels": list(updater.labels),
        "exclusive": not multilabel,
        "eval": str(eval_path) if eval_path else None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {
            "batch_size": batch_size,
            "strategy": strategy,
            "learner": learner,
            **(settings or {}),
        },
    }


def serving_components(
    dataset: str,
    session: Session,
    *,
    view_id: str,
    labels: list[str],
    multilabel: bool,
    batch_size: int,
    eval_path: Path | None,
    config: dict,
    settings: dict | None,
) -> dict:
    """The components of a server that follows a learner process: a
    ServingLoop (no model) on the session's pool."""
    loop = ServingLoop(
        session.pool,
        store=session.store,
        dataset=dataset,
        labels=labels,
        exclusive=not multilabel,
        batch_size=batch_size,
    )
    loop.consensus = session.consensus
    loop.asks_label = view_id == "classification"
    return {
        "dataset": dataset,
        "view_id": view_id,
        "store": session.store,
        "loop": loop,
        "labels": list(labels),
        "exclusive": not multilabel,
        "eval": str(eval_path) if eval_path else None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {**config, **(settings or {})},
    }


#: Flags of the learner command whose names differ from the recipe's arguments.
_LEARNER_FLAGS = {"label": "--label", "eval_path": "--eval"}


def learner_argv(recipe_name: str, options: dict) -> list[str]:
    """The arguments of ``python -m spacy_al learner`` for a server started with
    ``--learner process``: the same dataset, source and options, and the
    recipe whose components it builds. ``options`` are the recipe's arguments
    (the serving ones, such as ``host``, are left out)."""
    argv = [str(options["dataset"]), str(Path(options["source"]).resolve())]
    argv += ["--recipe", recipe_name]
    skip = {"dataset", "source", "host", "port", "annotators", "learner"}
    for name, value in options.items():
        if name in skip or value is None or value is False:
            continue
        flag = _LEARNER_FLAGS.get(name, "--" + name.replace("_", "-"))
        argv += [flag] if value is True else [flag, str(value)]
    return argv


@recipe("textcat.teach")
def teach(
    dataset: Dataset,
    source: SourceArg,
    label: Labels,
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "linear",
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
    learner: LearnerMode = "thread",
    dask: Dask = None,
) -> dict:
    """Label the texts the model is least sure of: accept, reject or correct.

    The model suggests a label for each text; accept it, reject it (optionally
    choosing the right label in the same step), or ignore the text. The model
    updates in the background after every batch of answers (with --learner
    process, in a learner process beside the server).
    """
    options = dict(locals())
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
            learner_argv=learner_argv("textcat.teach", options)
            if learner == "process"
            else None,
        ),
        learner=learner,
        dask=dask,
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
    arch: Arch = "linear",
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
    learner: LearnerMode = "thread",
    dask: Dask = None,
) -> dict:
    """Choose the right label(s), with the model's prediction pre-selected.

    Every answer is gold (all labels known), and the model still picks which texts
    to ask about and learns from each batch.
    """
    options = dict(locals())
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
            learner_argv=learner_argv("textcat.correct", options)
            if learner == "process"
            else None,
        ),
        learner=learner,
        dask=dask,
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
