"""Online training: one thread trains a model, every thread serves its snapshot.

``Updater`` owns the training model, keeps a serving snapshot that is swapped
under a lock after each update (scoring never waits for training) and stamps a
model version; ``Committee`` trains several on bootstrap samples for committee
measures, and serves them as one ``CommitteeModel``. Both satisfy
``spacy_al.protocols.Updater``; the model they train, ``spacy_al.protocols.Model``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from spacy.tokens import Doc
from thinc.api import Adam, Optimizer

from spacy_al.errors import Errors
from spacy_al.protocols import Model, Served, Target, YieldPoint


@dataclass
class UpdateStats:
    version: int
    loss: float
    n_new: int
    n_replayed: int
    seconds: float
    retrained: bool = False


class Updater:
    """Trains one model online and serves snapshots of it.

    After each batch of answers: ``update_steps`` gradient steps, each on the new
    targets plus ``replay`` earlier ones drawn at random (so that the model doesn't
    forget what it learnt first), then a new snapshot is made off the lock and
    swapped in under it, and the version goes up by one. Every ``retrain_every``
    updates (0: never) the model is instead retrained from scratch on everything
    known, for ``retrain_epochs`` epochs, which undoes the drift of many small
    online steps.

    While few targets are known, three steps leave a model far from what its few
    labels can teach it (SMS spam: F1 0.31 after 50 labels where a retrained
    linear SVM has 0.67), so the number of steps tapers: with ``n`` targets known,
    ``update_steps * taper / n`` steps, at least ``update_steps`` and at most
    ``max_update_steps`` (``taper`` 150, steps 3, at most 10: 10 steps up to 45
    targets, 4 at 100, 3 from 150 on). ``taper=0`` turns it off. More steps for
    longer (a larger ``taper``) over-fit the newest batches: on TREC-6 they made
    margin sampling worse.

    ``class_weight`` (a power, 0 for none) weighs every target by how rare its
    class is among the known targets (the model's ``balance_weights``), so that
    a rare class is predicted at all from its first few examples. ``None`` (the
    default for both) takes the model's own defaults (``model.taper`` and
    ``model.class_weight``; NER's are 0: neither).

    A model that ``refits`` (``linear``: logistic regression solved to
    convergence) is instead refit on every known target after each batch, and
    on ``retrain``, while a refit takes at most ``refit_seconds``; once it takes
    longer, one update in ``refit_every`` refits and the others take the online
    steps above. Its restart path (``retrain``) is the same refit.

    ``minibatch`` is the number of targets per gradient step's call to the
    model. ``yield_point`` (see ``set_yield_point``; None: the model's own, if
    any) is called before each.

    With ``use_averages`` (and ``snapshots``) the snapshot holds the optimizer's
    moving average of the weights instead of the last step's (as ``spacy train``
    evaluates); the NER recipes use it, since single online steps make a ner's
    predictions swing from one batch to the next.

    The updater is not itself thread-safe for training: one thread (the loop's
    trainer) calls ``update``; any number of threads call ``serving``.
    """

    def __init__(
        self,
        model: Model,
        *,
        learn_rate: float = 0.01,
        update_steps: int = 3,
        replay: int = 30,
        taper: int | None = None,
        max_update_steps: int = 10,
        class_weight: float | None = None,
        retrain_every: int = 0,
        retrain_epochs: int = 10,
        minibatch: int = 32,
        drop: float = 0.0,
        seed: int = 0,
        version: int = 0,
        snapshots: bool = True,
        use_averages: bool = False,
        yield_point: YieldPoint | None = None,
        refit_seconds: float = 2.0,
        refit_every: int = 10,
    ) -> None:
        self.model = model
        self.refit_seconds = refit_seconds
        self.refit_every = max(1, refit_every)
        self._last_refit_seconds = 0.0
        self.use_averages = use_averages
        self.learn_rate = learn_rate
        self.update_steps = update_steps
        self.replay = replay
        self.taper = model.taper if taper is None else taper
        self.max_update_steps = max(max_update_steps, update_steps)
        self.class_weight = model.class_weight if class_weight is None else class_weight
        self.retrain_every = retrain_every
        self.retrain_epochs = retrain_epochs
        self.minibatch = minibatch
        self.drop = drop
        self.snapshots = snapshots
        self.optimizer = self._new_optimizer()
        self._rng = random.Random(seed)
        self._targets: dict[int, Target] = {}
        self._docs: dict[int, Doc] = {}
        self._lock = threading.Lock()
        self._version = version
        self._n_updates = 0
        self._serving = model.snapshot() if snapshots else model
        self.history: list[UpdateStats] = []
        # Set by load: {input key: target_digest} of what the checkpoint had
        # learnt (None for a checkpoint that didn't record it).
        self.learnt: dict[int, str] | None = None
        # None: the model's own (a model built with one keeps it).
        self.yield_point: YieldPoint | None = model.yield_point
        if yield_point is not None:
            self.set_yield_point(yield_point)

    def set_yield_point(self, yield_point: YieldPoint | None) -> None:
        """Call ``yield_point`` between training steps, and have the model (and
        its snapshots) call it between prediction batches; None: never."""
        self.yield_point = yield_point
        self.model.yield_point = yield_point
        with self._lock:
            self._serving.yield_point = yield_point

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def n_targets(self) -> int:
        return len(self._targets)

    @property
    def n_members(self) -> int:
        """One model (a committee has more)."""
        return 1

    def serving(self) -> tuple[Served, int]:
        """The current serving model and its version; safe from any thread."""
        with self._lock:
            return self._serving, self._version

    def _doc(self, target: Target) -> Doc:
        doc = self._docs.get(target.input_key)
        if doc is None or doc.text != target.text:
            doc = self.model.target_doc(target)
            self._docs[target.input_key] = doc
        return doc

    def _new_optimizer(self) -> Optimizer:
        # thinc's Adam keeps a moving average of every weight by default, which
        # costs more than the Adam step itself on bow's 262k-row table: keep it
        # only when it is served.
        return Adam(self.learn_rate, use_averages=self.use_averages)

    def steps_for(self, n_targets: int) -> int:
        """Gradient steps for an update when ``n_targets`` are known (the taper)."""
        if not self.taper or n_targets <= 0:
            return self.update_steps
        steps = round(self.update_steps * self.taper / n_targets)
        return max(self.update_steps, min(self.max_update_steps, steps))

    def _step(self, targets: Sequence[Target]) -> float:
        weights = None
        if self.class_weight:
            weights = self.model.balance_weights(
                targets, self._targets.values(), power=self.class_weight
            )
        loss = 0.0
        for i in range(0, len(targets), self.minibatch):
            batch = targets[i : i + self.minibatch]
            if self.yield_point is not None:
                self.yield_point()  # e.g. an annotator's request goes first
            docs = [self._doc(t) for t in batch]
            loss += self.model.update(
                docs,
                batch,
                sgd=self.optimizer,
                drop=self.drop,
                weights=None if weights is None else weights[i : i + self.minibatch],
            )
        return loss

    def add_targets(self, targets: Iterable[Target]) -> list[Target]:
        """Remember targets for replay (newest wins per input); return the new ones."""
        new = []
        for target in targets:
            self._targets[target.input_key] = target
            new.append(target)
        return new

    def update(self, targets: Sequence[Target]) -> UpdateStats:
        """Learn from newly answered targets; swap in a new serving snapshot."""
        start = time.perf_counter()
        new = self.add_targets(targets)
        self._n_updates += 1
        retrain = bool(self.retrain_every) and self._n_updates % self.retrain_every == 0
        if self._refits and (retrain or self._refit_cheap()):
            # A model refit on every known target (``linear``): while a refit
            # fits the batch -> model budget, refit; beyond, online steps.
            loss, n_replayed = self._refit(), len(self._targets)
        elif retrain:
            loss, n_replayed = self._retrain(), len(self._targets)
        else:
            new_keys = {t.input_key for t in new}
            old = [t for k, t in self._targets.items() if k not in new_keys]
            loss = 0.0
            n_replayed = 0
            for _ in range(self.steps_for(len(self._targets))):
                replayed = self._rng.sample(old, min(self.replay, len(old)))
                batch = list(new) + replayed
                self._rng.shuffle(batch)
                loss += self._step(batch)
                n_replayed += len(replayed)
        self._publish()
        stats = UpdateStats(
            version=self.version,
            loss=loss,
            n_new=len(new),
            n_replayed=n_replayed,
            seconds=time.perf_counter() - start,
            retrained=retrain,
        )
        self.history.append(stats)
        return stats

    def retrain(self, targets: Iterable[Target] = ()) -> UpdateStats:
        """Train a fresh model on everything known (plus ``targets``) and serve it."""
        start = time.perf_counter()
        self.add_targets(targets)
        loss = self._retrain()
        self._publish()
        stats = UpdateStats(
            self.version, loss, 0, len(self._targets), time.perf_counter() - start, True
        )
        self.history.append(stats)
        return stats

    @property
    def _refits(self) -> bool:
        return bool(getattr(self.model, "refits", False))

    def _refit_cheap(self) -> bool:
        """Refit while the last refit took at most ``refit_seconds``; beyond,
        one update in ``refit_every`` refits and the others take online steps."""
        if self._last_refit_seconds <= self.refit_seconds:
            return True
        return self._n_updates % self.refit_every == 0

    def _refit(self) -> float:
        # The refit's own CPU time (this thread's): other processes on a busy
        # machine don't switch the learner to online steps, so a simulation
        # learns the same way however loaded the machine is.
        start = time.thread_time()
        loss = self.model.fit(list(self._targets.values()))
        self._last_refit_seconds = time.thread_time() - start
        return loss

    def _retrain(self) -> float:
        if self._refits:  # the same learner on a restart: refit, never a plain retrain
            return self._refit()
        self.model = self.model.reset()  # the reset model keeps the yield point
        self._docs.clear()
        self.optimizer = self._new_optimizer()
        everything = list(self._targets.values())
        loss = 0.0
        for _ in range(self.retrain_epochs):
            self._rng.shuffle(everything)
            loss = self._step(everything)
        return loss

    def _publish(self) -> None:
        if self.snapshots and self.use_averages and self.optimizer.averages:
            # Serve the optimizer's moving average of the weights, as spacy train
            # evaluates: far steadier than the last step's weights (NER).
            with self.model.nlp.use_params(self.optimizer.averages):
                snapshot = self.model.snapshot()
        else:
            snapshot = self.model.snapshot() if self.snapshots else self.model
        with self._lock:
            self._serving = snapshot
            self._version += 1


class CommitteeModel:
    """What a committee serves: its members' snapshots, answering as one model.

    ``predict`` gives the members' mean probabilities, so that everything that
    predicts with a served model (the learning curve, the stopping signal,
    preselected labels, a single-model measure) takes the committee's mean;
    the committee measures read each member's through ``members``.
    """

    def __init__(self, members: Sequence[Served]) -> None:
        if not members:
            raise ValueError(Errors.E309.format(n=0))
        self.members: tuple[Served, ...] = tuple(members)
        first = self.members[0]
        self.task: str = first.task
        self.labels: tuple[str, ...] = first.labels
        self.exclusive: bool = first.exclusive

    def make_docs(self, texts: Iterable[str]) -> list[Doc]:
        return self.members[0].make_docs(texts)

    def predict(self, docs: Sequence[Doc], **kwargs) -> np.ndarray:
        """The members' mean probabilities, shape (n_docs, n_labels)."""
        return np.mean(
            [model.predict(docs, **kwargs) for model in self.members], axis=0
        )

    def predict_texts(self, texts: Iterable[str]) -> np.ndarray:
        return self.predict(self.make_docs(texts))


class Committee:
    """K updaters trained on bootstrap resamples of the same answers.

    Each member sees every new target a Poisson(1)-distributed number of times (the
    online form of bootstrapping), so members differ by data, not only by seed:
    ``bow`` members start from zero weights, so seeds alone would give near-identical
    members. ``serving`` returns the members' snapshots as one ``CommitteeModel``.
    """

    #: A committee isn't checkpointed, so it never resumes what one had learnt.
    learnt: dict[int, str] | None = None

    def __init__(self, members: Sequence[Updater], *, seed: int = 0) -> None:
        if len(members) < 2:
            raise ValueError(Errors.E309.format(n=len(members)))
        self.members = list(members)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._version = max(m.version for m in members)

    @classmethod
    def build(
        cls, model: Model, *, size: int = 3, seed: int = 0, **updater_kwargs
    ) -> Committee:
        members = [
            Updater(model.reset(), seed=seed + i, **updater_kwargs) for i in range(size)
        ]
        return cls(members, seed=seed)

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.members[0].labels

    @property
    def model(self) -> Model:
        return self.members[0].model

    @property
    def n_targets(self) -> int:
        return self.members[0].n_targets

    @property
    def n_members(self) -> int:
        return len(self.members)

    def set_yield_point(self, yield_point: YieldPoint | None) -> None:
        """As ``Updater.set_yield_point``, for every member."""
        for member in self.members:
            member.set_yield_point(yield_point)

    def serving(self) -> tuple[CommitteeModel, int]:
        with self._lock:
            return CommitteeModel([m.serving()[0] for m in self.members]), self._version

    def add_targets(self, targets: Iterable[Target]) -> list[Target]:
        """Remember targets for replay in every member; return them."""
        targets = list(targets)
        for member in self.members:
            member.add_targets(targets)
        return targets

    def update(self, targets: Sequence[Target]) -> UpdateStats:
        start = time.perf_counter()
        losses = []
        for member in self.members:
            counts = self._rng.poisson(1.0, size=len(targets))
            resampled = [
                t for t, c in zip(targets, counts, strict=True) for _ in range(c)
            ]
            losses.append(member.update(resampled).loss)
        with self._lock:
            self._version += 1
            version = self._version
        return UpdateStats(
            version,
            float(np.mean(losses)),
            len(targets),
            0,
            time.perf_counter() - start,
        )

    def retrain(self, targets: Iterable[Target] = ()) -> UpdateStats:
        targets = list(targets)
        start = time.perf_counter()
        for member in self.members:
            member.retrain(targets)
        with self._lock:
            self._version += 1
            version = self._version
        return UpdateStats(version, 0.0, 0, 0, time.perf_counter() - start, True)
