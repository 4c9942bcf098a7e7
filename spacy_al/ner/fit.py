"""How an NER model learns from its answers: the fit after every batch, and
training to convergence.

``spacy_al.ner.model.NERModel`` is what predicts and takes a gradient step;
this module decides which steps it takes:

* :class:`FitSchedule`: after every batch the in-loop model trains on every
  answer known so far, many epochs while answers are few, one epoch or a
  sample (the newest answers always in) once they are many, optionally within
  a time cap (the batch -> model budget of the recipes);
* :func:`train_ner`: epochs to convergence with early stopping on a dev score
  (the full-data reference of ``simulate``, and ``train``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc
from thinc.api import Adam, Optimizer

from spacy_al.ner.targets import NERTarget

if TYPE_CHECKING:
    from spacy_al.ner.model import NERModel

DEFAULT_LEARN_RATE = 0.001
DEFAULT_FIT_MAX_EPOCHS = 10
#: The newest answers every fit trains on when it samples the rest.
FIT_NEWEST = 50
#: The labelling recipes' fit (ner.teach, ner.correct): about this many
#: examples after every batch, at most SESSION_FIT_SECONDS: within the
#: batch -> model budget of 15 s even on a loaded machine.
SESSION_FIT_EXAMPLES = 2000
SESSION_FIT_SECONDS = 8.0
#: The settings a checkpoint keeps (``NERModel`` takes them by these names).
FIT_SETTINGS = (
    "fit_examples",
    "fit_max_epochs",
    "fit_seconds",
    "learn_rate",
    "drop",
    "seed",
)


class FitSchedule:
    """The fit after every batch: about ``examples`` examples on all answers.

    ``examples`` 0 means no fit (the updater's online steps instead);
    ``max_epochs`` caps the epochs over the first few answers; ``seconds``
    (None: no cap) caps a fit's time. The schedule keeps what fits share: its
    own optimizer (whose averaged weights a snapshot serves), the sampling
    random state, the Docs of the targets, and the time the last fit took per
    example.
    """

    def __init__(
        self,
        *,
        examples: int = 0,
        max_epochs: int = DEFAULT_FIT_MAX_EPOCHS,
        seconds: float | None = None,
        learn_rate: float = DEFAULT_LEARN_RATE,
        drop: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.examples = int(examples)
        self.max_epochs = max(1, int(max_epochs))
        self.seconds = seconds
        self.learn_rate = learn_rate
        self.drop = drop
        self.seed = seed
        self.optimizer: Optimizer | None = None
        self.seconds_per_example: float | None = None
        self._rng = random.Random(seed)
        self._docs: dict[int, Doc] = {}

    def settings(self) -> dict[str, Any]:
        """The settings, by the names ``NERModel`` and checkpoints use."""
        return {
            "fit_examples": self.examples,
            "fit_max_epochs": self.max_epochs,
            "fit_seconds": self.seconds,
            "learn_rate": self.learn_rate,
            "drop": self.drop,
            "seed": self.seed,
        }

    def plan(self, n_targets: int) -> tuple[int, int]:
        """Epochs and examples per epoch of a :meth:`fit` on ``n_targets``.

        About ``examples`` examples per fit: many epochs over the first
        answers (at most ``max_epochs``), one epoch once ``examples`` are
        known, then a sample of that size (the newest answers always in).
        With ``seconds`` the examples are also capped by the time the last
        fits took per example, and a fit stops once it has taken that long,
        so that it keeps to the batch -> model budget on a slow or loaded
        machine (simulations leave it None: reproducible runs).
        """
        budget = self.examples
        if self.seconds is not None and self.seconds_per_example:
            budget = min(budget, int(self.seconds / self.seconds_per_example))
        budget = max(budget, 1)
        if n_targets <= 0:
            return 0, 0
        epochs = max(1, min(self.max_epochs, budget // n_targets))
        return epochs, min(n_targets, max(budget // epochs, 1))

    def _out_of_time(self, start: float) -> bool:
        """Whether a fit that began at ``start`` has used its ``seconds``."""
        return self.seconds is not None and time.perf_counter() - start >= self.seconds

    def _doc(self, model: NERModel, target: NERTarget) -> Doc:
        doc = self._docs.get(target.input_key)
        if doc is None or doc.text != target.text:
            doc = model.target_doc(target)
            self._docs[target.input_key] = doc
        return doc

    def fit(
        self, model: NERModel, targets: Sequence[NERTarget], *, minibatch: int = 16
    ) -> float:
        """Train ``model`` on every known answer (see :meth:`plan`), continuing
        from its current weights with this schedule's optimizer; returns the
        summed loss.

        While answers are few this is many passes over all of them (what a
        retrain on them would do, without starting over); later, one pass, or
        a sample with the newest answers in: replay of everything learnt.
        """
        targets = list(targets)
        epochs, per_epoch = self.plan(len(targets))
        if not epochs:
            return 0.0
        if self.optimizer is None:
            self.optimizer = Adam(self.learn_rate)
        start = time.perf_counter()
        newest = targets[-min(len(targets), FIT_NEWEST) :]
        older = targets[: len(targets) - len(newest)]
        loss, seen = 0.0, 0
        for _ in range(epochs):
            if self._out_of_time(start):
                break
            if per_epoch >= len(targets):
                order = list(targets)
            else:
                k = max(per_epoch - len(newest), 0)
                order = newest[:per_epoch] + self._rng.sample(older, k)
            self._rng.shuffle(order)
            if self.seconds is not None and not seen:
                # A fit that may stop early learns the newest answers first.
                keys = {t.input_key for t in newest}
                order = [t for t in order if t.input_key in keys] + [
                    t for t in order if t.input_key not in keys
                ]
            for i in range(0, len(order), minibatch):
                if i and self._out_of_time(start):
                    break
                batch = order[i : i + minibatch]
                if model.yield_point is not None:
                    model.yield_point()
                loss += model.update(
                    [self._doc(model, t) for t in batch],
                    batch,
                    sgd=self.optimizer,
                    drop=self.drop,
                )
                seen += len(batch)
        self.seconds_per_example = (time.perf_counter() - start) / max(seen, 1)
        return loss


@dataclass
class NERTrainResult:
    model: NERModel
    best_score: float
    best_epoch: int
    history: list[tuple[int, float, float]] = field(
        default_factory=list
    )  # epoch, loss, score


def train_ner(
    model: NERModel,
    targets: Sequence[NERTarget],
    evaluate: Callable[[NERModel], float],
    *,
    max_epochs: int = 30,
    patience: int = 4,
    learn_rate: float = DEFAULT_LEARN_RATE,
    minibatch: int = 32,
    drop: float = 0.1,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> NERTrainResult:
    """Train ``model`` in place to convergence; keep its best dev epoch.

    As ``spacy_al.training.train_textcat`` (epochs, early stopping after
    ``patience`` epochs without a better ``evaluate`` score), but the model is
    evaluated, and kept, with the optimizer's averaged weights, as ``spacy
    train`` does: a ner's last-step weights swing too much between batches for
    early stopping to mean anything.
    """
    rng = random.Random(seed)
    optimizer = Adam(learn_rate)
    docs = {id(t): model.target_doc(t) for t in targets}
    order = list(targets)
    best_score, best_epoch = float("-inf"), -1
    best: dict[str, bytes] = {}
    history: list[tuple[int, float, float]] = []
    for epoch in range(max_epochs):
        rng.shuffle(order)
        loss = 0.0
        for i in range(0, len(order), minibatch):
            batch = order[i : i + minibatch]
            loss += model.update(
                [docs[id(t)] for t in batch], batch, sgd=optimizer, drop=drop
            )
        with model.nlp.use_params(optimizer.averages):
            score = evaluate(model)
            if score > best_score:
                best_score, best_epoch = score, epoch
                best = {
                    name: model.nlp.get_pipe(name).model.to_bytes()
                    for name in model._trainable
                }
        history.append((epoch, loss, score))
        if on_epoch is not None:
            on_epoch(epoch, loss, score)
        if epoch - best_epoch >= patience:
            break
    for name, weights in best.items():
        model.nlp.get_pipe(name).model.from_bytes(weights)
    return NERTrainResult(model, best_score, best_epoch, history)
