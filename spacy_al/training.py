"""Full training: a text classifier to convergence, and the ``train`` command's logic.

:func:`train_textcat` trains epochs with early stopping on a dev set; ``simulate``
uses it for its full-data reference, which must be trained to convergence (an
under-trained reference flatters every labels-to-target ratio).
:func:`train_pipeline` is what ``python -m spacy_al train`` runs: stored answers →
targets → a pipeline with a text classifier and/or an entity recognizer;
:func:`save_pipeline` saves it without ever leaving a broken folder behind.
"""

from __future__ import annotations

import copy
import glob
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spacy.language import Language
from thinc.api import Adam

from spacy_al.errors import Errors
from spacy_al.export import (
    Loaded,
    load_ner_targets,
    load_textcat_targets,
    split_any,
    split_targets,
)
from spacy_al.metrics import textcat_score
from spacy_al.ner.fit import train_ner
from spacy_al.ner.model import DEFAULT_LEARN_RATE as NER_LEARN_RATE
from spacy_al.ner.model import NERModel, build_ner
from spacy_al.ner.targets import reference_doc
from spacy_al.pipelines import load_base
from spacy_al.store import Store
from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
from spacy_al.textcat.targets import TextcatTarget

#: Scores a model on held-out data; higher is better.
Evaluate = Callable[[TextcatModel], float]


@dataclass
class TrainResult:
    model: TextcatModel
    best_score: float
    best_epoch: int
    history: list[tuple[int, float, float]] = field(
        default_factory=list
    )  # epoch, loss, score


def train_textcat(
    model: TextcatModel,
    targets: Sequence[TextcatTarget],
    evaluate: Evaluate,
    *,
    max_epochs: int = 30,
    patience: int = 4,
    learn_rate: float = 0.01,
    batch_size: int = 32,
    drop: float = 0.0,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place and keep the weights of its best dev epoch.

    Stops after ``patience`` epochs without a better dev score, or at
    ``max_epochs``; the returned model has the best epoch's weights. A model
    that ``refits`` (``linear``) is instead solved to convergence once, its idf
    from the training texts.
    """
    if getattr(model, "refits", False):
        model.fit_idf(t.text for t in targets)
        loss = model.fit(list(targets), max_iter=2000)
        score = evaluate(model)
        if on_epoch is not None:
            on_epoch(0, loss, score)
        return TrainResult(model, score, 0, [(0, loss, score)])
    rng = random.Random(seed)
    optimizer = Adam(learn_rate)
    docs = {t.input_key: model.nlp.make_doc(t.text) for t in targets}
    order = list(targets)
    best_score, best_epoch = float("-inf"), -1
    best_weights = None
    history: list[tuple[int, float, float]] = []
    for epoch in range(max_epochs):
        rng.shuffle(order)
        loss = 0.0
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            loss += model.update(
                [docs[t.input_key] for t in batch], batch, sgd=optimizer, drop=drop
            )
        score = evaluate(model)
        history.append((epoch, loss, score))
        if on_epoch is not None:
            on_epoch(epoch, loss, score)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_weights = copy.deepcopy(model.thinc_model)
        elif epoch - best_epoch >= patience:
            break
    if best_weights is not None:
        model.thinc_model.from_bytes(best_weights.to_bytes())
    return TrainResult(model, best_score, best_epoch, history)


# --- the train command's logic ---------------------------------------------------------


@dataclass
class ComponentRun:
    """One component trained by :func:`train_pipeline`.

    Filled before its training starts (what it trains on: ``loaded``, the
    counts, ``eval_binary`` when the held-out answers are binary ones) and after
    (``best_score``, ``best_epoch``).
    """

    component: str  # "textcat" or "ner"
    datasets: list[str]
    metric: str
    loaded: Loaded
    n_train: int
    n_partial: int
    n_eval: int
    n_rejected: int = 0
    eval_binary: bool = False
    best_score: float = float("nan")
    best_epoch: int = -1


@dataclass
class TrainedPipeline:
    """What :func:`train_pipeline` made: the pipeline and one run per component."""

    nlp: Language
    runs: list[ComponentRun]


OnEpoch = Callable[[int, float, float], None]


def train_pipeline(
    store: Store,
    *,
    textcat: Sequence[str] = (),
    ner: Sequence[str] = (),
    base: str = "blank:en",
    arch: str = "linear",
    ner_arch: str = "beam_ner",
    multilabel: bool | None = None,
    eval_split: float = 0.2,
    positive_label: str | None = None,
    max_epochs: int = 30,
    seed: int = 0,
    on_start: Callable[[ComponentRun], None] | None = None,
    on_epoch: OnEpoch | None = None,
    on_done: Callable[[ComponentRun], None] | None = None,
) -> TrainedPipeline:
    """Train a text classifier and/or an entity recognizer from stored answers.

    The logic of the ``train`` command: the answers of the ``textcat`` and
    ``ner`` datasets (after consensus; unusable answers left out and named in
    each run's ``loaded.skipped``) become targets; a share of the gold targets
    is held out, and each component trains with early stopping on it (one after
    the other, into one pipeline). ``on_start`` gets each run before it trains,
    ``on_epoch`` (epoch, loss, score) each epoch, ``on_done`` each run when
    trained. Raises ValueError when there
    is nothing to train or to evaluate on. Save the result with
    :func:`save_pipeline`.
    """
    textcat, ner = list(textcat), list(ner)
    if not textcat and not ner:
        raise ValueError(Errors.E967)
    nlp = load_base(base)
    runs: list[ComponentRun] = []
    if textcat:
        nlp, run = _train_textcat(
            store,
            textcat,
            base=base,
            arch=arch,
            multilabel=multilabel,
            eval_split=eval_split,
            positive_label=positive_label,
            max_epochs=max_epochs,
            seed=seed,
            on_start=on_start,
            on_epoch=on_epoch,
        )
        runs.append(run)
        if on_done is not None:
            on_done(run)
    if ner:
        nlp, run = _train_ner(
            nlp,
            store,
            ner,
            factory=ner_arch,
            eval_split=eval_split,
            max_epochs=max_epochs,
            seed=seed,
            on_start=on_start,
            on_epoch=on_epoch,
        )
        runs.append(run)
        if on_done is not None:
            on_done(run)
    return TrainedPipeline(nlp, runs)


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
    on_start: Callable[[ComponentRun], None] | None,
    on_epoch: OnEpoch | None,
) -> tuple[Language, ComponentRun]:
    loaded = load_textcat_targets(store, names, multilabel=multilabel)
    targets, labels, exclusive = loaded.targets, loaded.labels, loaded.exclusive
    if not targets:
        raise ValueError(Errors.E968.format(names=names))
    train_targets, eval_targets = split_targets(
        targets, eval_split=eval_split, seed=seed
    )
    if not eval_targets:
        raise ValueError(Errors.E969.format(n=len(targets)))
    metric = f"F1 ({positive_label})" if positive_label else "macro F1"
    run = ComponentRun(
        "textcat",
        names,
        metric,
        loaded,
        n_train=len(train_targets),
        n_partial=sum(not t.is_gold for t in train_targets),
        n_eval=len(eval_targets),
    )
    if on_start is not None:
        on_start(run)
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

    result = train_textcat(
        model,
        train_targets,
        evaluate,
        max_epochs=max_epochs,
        learn_rate=DEFAULT_LEARN_RATE.get(arch, 0.01),
        seed=seed,
        on_epoch=on_epoch,
    )
    run.best_score, run.best_epoch = result.best_score, result.best_epoch
    return result.model.nlp, run


def _train_ner(
    nlp: Language,
    store: Store,
    names: list[str],
    *,
    factory: str,
    eval_split: float,
    max_epochs: int,
    seed: int,
    on_start: Callable[[ComponentRun], None] | None,
    on_epoch: OnEpoch | None,
) -> tuple[Language, ComponentRun]:
    loaded = load_ner_targets(store, names, nlp=nlp)
    targets, labels = loaded.targets, loaded.labels
    if not targets:
        raise ValueError(Errors.E970.format(names=names))
    if not labels:
        raise ValueError(Errors.E971.format(names=names))
    train_targets, eval_targets = split_targets(
        targets, eval_split=eval_split, seed=seed
    )
    eval_binary = False
    if not eval_targets:
        # Only binary answers: hold out some of them. spaCy's scorer skips the
        # tokens nobody answered about, so the F1 counts only what was said.
        train_targets, eval_targets = split_any(
            targets, eval_split=eval_split, seed=seed
        )
        eval_binary = True
    if not eval_targets:
        raise ValueError(Errors.E972.format(n=len(targets)))
    run = ComponentRun(
        "ner",
        names,
        "entity F1",
        loaded,
        n_train=len(train_targets),
        n_partial=sum(not t.is_gold for t in train_targets),
        n_eval=len(eval_targets),
        n_rejected=sum(len(t.rejected) for t in train_targets),
        eval_binary=eval_binary,
    )
    if on_start is not None:
        on_start(run)
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
        on_epoch=on_epoch,
    )
    run.best_score, run.best_epoch = result.best_score, result.best_epoch
    return result.model.nlp, run


# --- saving without destroying the previous pipeline -----------------------------------

_TMP, _OLD = ".tmp-", ".old-"


def _beside(output: Path, kind: str) -> Path:
    return output.parent / f".{output.name}{kind}{os.getpid()}"


def _leftovers(output: Path, kind: str) -> list[Path]:
    return sorted(output.parent.glob(f".{glob.escape(output.name)}{kind}*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_pipeline(path: Path) -> bool:
    return (path / "config.cfg").is_file() or (path / "meta.json").is_file()


def save_pipeline(nlp: Language, output: str | Path) -> Path:
    """Save ``nlp`` to ``output`` so that a crash at any moment leaves a loadable
    pipeline there (the previous one, or the new one).

    The pipeline is written to a temporary folder beside ``output`` and renamed
    into place once complete; the previous pipeline is moved aside first and
    removed only after. A run killed between the two renames leaves the
    previous pipeline beside ``output``: the next save puts it back first.
    ``output`` must be a new or empty folder or an earlier pipeline (a folder
    with config.cfg or meta.json): anything else is refused, never replaced.
    """
    output = Path(output)
    parent = output.parent
    parent.mkdir(parents=True, exist_ok=True)
    _tidy(output)
    if output.exists() and not (
        output.is_dir() and (_is_pipeline(output) or not any(output.iterdir()))
    ):
        raise ValueError(Errors.E973.format(path=output))
    tmp = _beside(output, _TMP)
    try:
        nlp.to_disk(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError | ValueError):
            raise ValueError(Errors.E966.format(path=output, err=e)) from e
        raise
    old = _beside(output, _OLD)
    if output.exists():
        os.rename(output, old)
    os.rename(tmp, output)
    if old.exists():
        shutil.rmtree(old)
    return output


def _tidy(output: Path) -> None:
    """Undo what a killed save left beside ``output``: put the previous pipeline
    back if the new one never arrived, and remove unfinished writes of processes
    that are gone."""
    for kind in (_OLD, _TMP):
        for path in _leftovers(output, kind):
            pid = path.name.rsplit(kind, 1)[-1]
            if not pid.isdigit() or _alive(int(pid)) and int(pid) != os.getpid():
                continue
            if kind == _OLD and not output.exists():
                os.rename(path, output)
            else:
                shutil.rmtree(path, ignore_errors=True)
