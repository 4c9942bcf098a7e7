"""Scoring a pool on the cluster, with the same picks as in one process.

Each worker scores its partitions of the window (the examples the loop would
score in-process) with the model of the current version and returns its own
best ``n`` by the strategy; the learner merges them, in file order, and lets the
strategy pick ``n`` again. That gives the in-process picks exactly when the
strategy ranks each example by its own scores (and the label counts, the same
everywhere), breaking ties by position: the best ``n`` of the whole window are
among the best ``n`` of their partitions, and file order is the window's order
(the loop sorts its window, so ties go to the earlier text either way). So
strategies run on the cluster are those (``RANKED``) and those that need no
scores at all (random, sequential: picked here, only the picks are scored).
``diverse`` clusters the whole window's vectors, which no merge of partition
results reproduces: it is refused with a clear error, as are ``bald`` (its
dropout samples are drawn per call over all the docs) and patterns (matched
over the whole window in this process).

The model reaches each worker once per version (:meth:`Cluster.ship`) and is
loaded there once, rebuilt from its config (never ``spacy.blank``), with the
served weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import srsly

from spacy_al.errors import Errors
from spacy_al.protocols import Served
from spacy_al.scale.source import Partition, records_at
from spacy_al.strategies import Candidates, get_strategy, strategy_needs
from spacy_al.textcat.scoring import make_scorer, score_stream

#: Strategies that rank each candidate by its own scores (ties by position).
RANKED = frozenset(
    {
        "spacy_al.top_k.v1",
        "spacy_al.class_balanced.v1",
        "spacy_al.cost_aware.v1",
        "spacy_al.balanced_start.v1",
    }
)
#: Models loaded on this worker, by shipped key (the last few versions).
_LOADED: OrderedDict[str, Served] = OrderedDict()
_KEEP = 3


def check_spec(name: str, strategy: str, measure: str) -> None:
    """Raise if the strategy or the measure can't be scored on the cluster."""
    from spacy_al.strategies import ALIASES

    needs = strategy_needs(strategy)
    if needs and strategy not in RANKED:
        why = (
            "it clusters the document vectors of the whole window, which the "
            "partitions' results can't reproduce."
            if "vectors" in needs
            else "it isn't known to rank each example by its own scores, so the "
            "best of each partition might not hold the best of all."
        )
        free = sorted(k for k, a in ALIASES.items() if not strategy_needs(a.strategy))
        ranked = sorted(k for k, a in ALIASES.items() if a.strategy in RANKED)
        raise ValueError(
            Errors.E1204.format(
                name=name,
                strategy=strategy,
                why=why,
                free=", ".join(free),
                ranked=", ".join(ranked),
            )
        )
    if needs and measure == "bald":
        raise ValueError(
            Errors.E1206.format(
                measure=measure,
                why="its dropout samples are drawn in one call over all the docs.",
            )
        )


# --- the model, to and from bytes ---------------------------------------------


def model_bytes(served: Served) -> bytes:
    """A served text classifier (or a committee of them) as bytes: each member's
    pipeline config, its pipeline and its own weights (a snapshot's weights
    differ from its pipeline's)."""
    members = list(served.members)
    return srsly.msgpack_dumps(
        {
            "committee": type(served).__name__ == "CommitteeModel",
            "members": [
                {
                    "config": model.nlp.config.to_str(),
                    "nlp": model.nlp.to_bytes(),
                    "component": model.component,
                    "weights": model.thinc_model.to_bytes(),
                }
                for model in members
            ],
        }
    )


def load_model(data: bytes) -> Served:
    """The served model of :func:`model_bytes`."""
    from spacy.util import load_model_from_config
    from thinc.api import Config

    from spacy_al.textcat.model import TextcatModel
    from spacy_al.updater import CommitteeModel

    state = srsly.msgpack_loads(data)
    members = []
    for member in state["members"]:
        nlp = load_model_from_config(Config().from_str(member["config"]))
        nlp.from_bytes(member["nlp"])
        weights = nlp.get_pipe(member["component"]).model
        weights.from_bytes(member["weights"])
        members.append(
            TextcatModel(nlp, component=member["component"], thinc_model=weights)
        )
    return CommitteeModel(members) if state["committee"] else members[0]


def _served(key: str, data: bytes) -> Served:
    served = _LOADED.get(key)
    if served is None:
        served = load_model(data)
        _LOADED[key] = served
        while len(_LOADED) > _KEEP:
            _LOADED.popitem(last=False)
    return served


# --- on a worker -------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSpec:
    """How a worker scores and picks: the loop's settings for one selection."""

    measure: str
    multilabel: bool
    strategy: str
    strategy_config: dict
    labels: tuple[str, ...]
    label_counts: np.ndarray
    n: int


@dataclass
class Picks:
    """A partition's best candidates (in file order), or all of them merged."""

    offsets: np.ndarray  # int64, into the file
    scores: np.ndarray
    probs: np.ndarray
    costs: np.ndarray

    @classmethod
    def merge(cls, parts: Sequence[Picks], n_labels: int) -> Picks:
        if not parts:
            return cls(
                np.zeros(0, np.int64),
                np.zeros(0),
                np.zeros((0, n_labels), np.float32),
                np.zeros(0),
            )
        return cls(
            np.concatenate([p.offsets for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.probs for p in parts]),
            np.concatenate([p.costs for p in parts]),
        )


def costs_of(tasks: Sequence[dict], n_tokens: np.ndarray) -> np.ndarray:
    """As the loop's ``_window_costs``: a task's meta cost, else its tokens (>= 1)."""
    costs = np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    for j, task in enumerate(tasks):
        cost = (task.get("meta") or {}).get("cost")
        if cost is not None:
            costs[j] = float(cost)
    return costs


def score_partition(
    data: bytes, key: str, part: Partition, rel_offsets: np.ndarray, spec: ScoreSpec
) -> Picks:
    """On a worker: score the records at ``part.start + rel_offsets`` with the
    model shipped as ``data`` and keep the strategy's best ``spec.n``."""
    served = _served(key, data)
    offsets = np.asarray(rel_offsets, dtype=np.int64) + part.start
    # Validated when the pool was indexed (the file is the same size): parsed only.
    tasks = records_at(part, offsets, validate=False)
    make_doc = served.members[0].make_doc
    n_tokens = np.empty(len(tasks))

    def stream():
        for j, task in enumerate(tasks):
            doc = make_doc(task)
            n_tokens[j] = len(doc)
            yield doc

    scorer = make_scorer(spec.measure, multilabel=spec.multilabel)
    scored = score_stream(scorer, served, stream())
    costs = costs_of(tasks, n_tokens)
    k = min(spec.n, len(tasks))
    strategy = get_strategy(spec.strategy, **spec.strategy_config)
    picked = strategy(
        Candidates(
            scores=scored.scores,
            probs=scored.probs,
            labels=spec.labels,
            costs=costs,
            label_counts=spec.label_counts,
            multilabel=spec.multilabel,
        ),
        k,
        rng=np.random.default_rng(0),  # RANKED strategies draw nothing
    )
    picked = np.sort(np.asarray(picked, dtype=np.int64))
    return Picks(
        offsets[picked], scored.scores[picked], scored.probs[picked], costs[picked]
    )


# --- on the learner ----------------------------------------------------------


def pick_on_cluster(
    pool: Any,
    served: Served,
    version: int,
    indices: np.ndarray,
    n: int,
    *,
    name: str,
    spec: ScoreSpec,
    strategy: Callable[..., np.ndarray],
    rng: np.random.Generator,
    make_doc: Callable[[dict], Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """The loop's picks among the sorted pool ``indices``, scored on the cluster.

    Returns the chosen pool indices (most informative first), their
    probabilities and scores, and their tasks (read from the file).
    """
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    cluster = pool.cluster
    if not strategy_needs(spec.strategy):
        # Random or sequential: picked here; only the picks are scored.
        picked = strategy(
            Candidates(scores=np.zeros(len(indices)), keys=indices), n, rng=rng
        )
        chosen = indices[np.asarray(picked, dtype=np.int64)]
        tasks = pool.tasks_at(chosen)
        scorer = make_scorer(spec.measure, multilabel=spec.multilabel)
        scored = score_stream(scorer, served, (make_doc(t) for t in tasks))
        return chosen, scored.probs, scored.scores, tasks
    data, key = cluster.ship(name, version, lambda: model_bytes(served))
    futures = []
    for part, group in pool.split(indices):
        rel = pool.offsets[group] - part.start
        rel = rel.astype(np.uint32 if part.end - part.start < 2**32 else np.int64)
        futures.append(cluster.submit(score_partition, data, key, part, rel, spec))
    merged = Picks.merge(cluster.gather(futures), len(spec.labels))
    candidates = Candidates(
        scores=merged.scores,
        probs=merged.probs,
        labels=spec.labels,
        costs=merged.costs,
        label_counts=spec.label_counts,
        multilabel=spec.multilabel,
        keys=np.searchsorted(pool.offsets, merged.offsets),
    )
    picked = np.asarray(strategy(candidates, n, rng=rng), dtype=np.int64)
    chosen = candidates.keys[picked].astype(np.int64)
    tasks = pool.tasks_at(chosen)
    return chosen, merged.probs[picked], merged.scores[picked], tasks
