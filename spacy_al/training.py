"""Train a text classifier to convergence: epochs with early stopping on a dev set.

Used by the ``train`` recipe and by ``simulate`` for its full-data reference, which
must be trained to convergence: an under-trained reference flatters every
labels-to-target ratio.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from thinc.api import Adam

from spacy_al.textcat.model import TextcatModel
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
    ``max_epochs``; the returned model has the best epoch's weights.
    """
    rng = random.Random(seed)
    optimizer = Adam(learn_rate)
    docs = {t.input_hash: model.nlp.make_doc(t.text) for t in targets}
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
                [docs[t.input_hash] for t in batch], batch, sgd=optimizer, drop=drop
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
