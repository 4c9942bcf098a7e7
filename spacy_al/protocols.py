"""The contracts between the core parts, written down as ``typing.Protocol``s.

    Model      what a task's model offers the updater and the loop (textcat, NER)
    Served     what the updater serves: a model's snapshot, or a committee's
    Updater    trains a model online and serves snapshots (``Updater``, ``Committee``)
    Loop       what the feed and the progress tracker use of a loop
               (``ActiveLoop``, ``NERLoop``, the review queue's ``ReviewLoop``)
    LearningLoop  a loop with a model, as the simulator and recipes drive it
    Components what an interactive recipe returns (a typed dict)

A part asks these questions of another, never ``hasattr`` or ``isinstance``: a
loop says which task it serves (``task``), a model declares its training
defaults (``taper``, ``class_weight``) and how it weighs and tokenizes targets,
a committee's served model predicts like any other model and names its
``members``. The protocols are structural: the classes that satisfy them don't
inherit from them. They are runtime-checkable, so a test can say that a class
has every member its protocol names (``isinstance(loop, Loop)``).

The ML core takes a :data:`YieldPoint` (or nothing) where it should give way to
other work; the serving layer passes the request-priority gate's ``pause``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Optimizer

if TYPE_CHECKING:  # the store and pool import heavy modules; names only
    from spacy_al.checkpoints import Checkpoints
    from spacy_al.pool import Pool
    from spacy_al.store import Store
    from spacy_al.team.consensus import Consensus
    from spacy_al.updater import UpdateStats

#: Called by long-running core work at safe points (between batches of docs
#: scored, between update steps): it may block while more urgent work runs.
YieldPoint = Callable[[], None]

#: The tasks a loop can serve: text classification or NER.
TASKS = ("textcat", "ner")


class Target(Protocol):
    """What an answer teaches about one input (``TextcatTarget``, ``NERTarget``)."""

    text: str
    input_key: int


@runtime_checkable
class Served(Protocol):
    """What an updater serves: a model to score and predict with.

    ``predict`` gives label probabilities, shape (n_docs, n_labels), for text
    classification, and the entities per Doc for NER. A committee's served
    model predicts its members' mean and lists them in ``members``; a single
    model's ``members`` is itself alone.
    """

    task: str
    labels: tuple[str, ...]
    exclusive: bool

    @property
    def members(self) -> Sequence[Served]: ...

    def make_docs(self, texts: Iterable[str]) -> list[Doc]: ...

    def predict(self, docs: Sequence[Doc], *, predict_batch: int = ...) -> Any: ...


@runtime_checkable
class Model(Served, Protocol):
    """A trainable model of one task (``TextcatModel``, ``NERModel``).

    ``taper`` and ``class_weight`` are the updater's defaults for this model
    (see ``spacy_al.updater.Updater``); ``balance_weights`` gives per-target
    weights that balance the classes (``None``: the model doesn't weigh
    targets); ``target_doc`` is the Doc a target trains on; ``make_doc`` the
    Doc of a pool task. ``update`` is one gradient step; ``snapshot`` a copy to
    serve while this one trains; ``reset`` the model as built.
    """

    nlp: Language
    component: str
    taper: int
    class_weight: float
    yield_point: YieldPoint | None

    def make_doc(self, task: dict[str, Any]) -> Doc: ...

    def target_doc(self, target: Any) -> Doc: ...

    def update(
        self,
        docs: Sequence[Doc],
        targets: Sequence[Any],
        *,
        sgd: Optimizer,
        drop: float = ...,
        weights: np.ndarray | None = ...,
    ) -> float: ...

    def balance_weights(
        self, targets: Sequence[Any], known: Iterable[Any], *, power: float
    ) -> np.ndarray | None: ...

    def snapshot(self) -> Model: ...

    def reset(self) -> Model: ...

    def checkpoint_state(self) -> dict[str, Any]: ...


@runtime_checkable
class Updater(Protocol):
    """Trains a model online; serves snapshots of it (``Updater``, ``Committee``).

    ``serving`` is safe from any thread; ``update``, ``retrain`` and
    ``add_targets`` are called by one trainer thread. ``n_members`` is 1 for a
    single model and the committee's size for a committee. ``learnt`` holds what
    a resumed checkpoint had learnt ({input key: target digest}), or None.
    """

    @property
    def version(self) -> int: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def n_targets(self) -> int: ...

    @property
    def n_members(self) -> int: ...

    @property
    def model(self) -> Model: ...

    learnt: dict[int, str] | None

    def serving(self) -> tuple[Served, int]: ...

    def update(self, targets: Sequence[Any]) -> UpdateStats: ...

    def retrain(self, targets: Iterable[Any] = ()) -> UpdateStats: ...

    def add_targets(self, targets: Iterable[Any]) -> list: ...

    def set_yield_point(self, yield_point: YieldPoint | None) -> None: ...


@runtime_checkable
class Loop(Protocol):
    """What the feed, the progress tracker and the simulator use of a loop.

    ``task`` is one of :data:`TASKS`: what its answers are about (labels, or
    entity spans). ``updater`` is None for a loop that learns nothing (the
    review queue): its ``version`` stays 0 and it is never ``trained`` (whether
    the model has learnt anything: an untrained one's suggestions are noise,
    so the app doesn't show them), it is never ``ready_to_learn``, has
    no targets to pop and nothing waiting or in conflict. ``batch_size`` is the
    annotation batch: answers learnt per update.
    """

    task: str
    labels: tuple[str, ...]
    exclusive: bool
    batch_size: int
    pool: Pool
    store: Store | None
    dataset: str | None
    consensus: Consensus
    updater: Updater | None

    @property
    def version(self) -> int: ...

    @property
    def trained(self) -> bool: ...

    @property
    def n_pending(self) -> int: ...

    @property
    def ready_to_learn(self) -> bool: ...

    @property
    def conflicts(self) -> dict[int, tuple[dict, ...]]: ...

    @property
    def n_waiting(self) -> int: ...

    def select(self, n: int, *, exclude: Collection[int] = ()) -> list[dict]: ...

    def answer(self, answers: Sequence[dict], *, annotator: str) -> list[int]: ...

    def undo(self, eg: dict, *, annotator: str) -> bool: ...

    def adjudicate(self, reviews: Iterable[dict]) -> int: ...

    def pop_targets(self) -> list: ...

    def set_yield_point(self, yield_point: YieldPoint | None) -> None: ...


@runtime_checkable
class LearningLoop(Loop, Protocol):
    """A loop with a model (``BaseLoop``'s), as the simulator and the recipes
    drive it: ``learn`` in line, ``hold`` earlier answers on resuming, ``docs``
    of pool indices (tokenized as the model does)."""

    updater: Updater

    def hold(self, answers: Iterable[dict]) -> None: ...

    def learn(self) -> UpdateStats | None: ...

    def docs(self, indices: Sequence[int]) -> list[Doc]: ...


class Components(TypedDict, total=False):
    """What an interactive recipe returns: the parts a labelling server runs.

    ``dataset``, ``view_id``, ``store`` and ``loop`` are always there; ``eval``
    (a labelled file for the learning curve), ``checkpoint`` (the dataset's
    :class:`~spacy_al.checkpoints.Checkpoints`, or a folder: where the trainer
    saves the model, the version and the progress), ``source`` (where the pool was read from: ``path``,
    ``read``, ``skipped``, ``duplicates``) and ``config`` (the recipe's
    settings: overlap, preselect, the stopping signal's, host and port ...) when
    the recipe has them. ``task`` is the loop's task; ``review_of`` the datasets
    a review session adjudicates.
    """

    dataset: str
    view_id: str
    store: Store
    loop: Loop
    labels: Sequence[str]
    exclusive: bool
    eval: str | Path | None
    checkpoint: Checkpoints | str | Path | None
    source: dict[str, Any]
    config: dict[str, Any]
    task: str
    review_of: list[str]
