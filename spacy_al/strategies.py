"""Query strategies: which examples to ask a person about next.

Strategies live in ``spacy_al.registry.strategies`` under versioned names
(``spacy_al.top_k.v1``). What is registered is a factory: it takes keyword
options and returns a ``Strategy``, which sees all scored ``Candidates`` at once
and returns ``n`` unique indices into them, most informative first.

A factory declares what the loop must compute for it with :func:`needs`:
``"scores"`` (an uncertainty measure per candidate, with the probabilities and
label counts that come with it), ``"vectors"`` (document vectors), both, or
nothing (random, sequential). A factory that declares nothing needs scores;
:func:`strategy_needs` reads the declaration. Strategies never compute scores:
the loop scores candidates with a measure from ``spacy_al.uncertainty``. The
CLI's short names pick a strategy and the measure the loop should use:

    short name              strategy                        measure
    random                  spacy_al.random.v1              none (unused)
    sequential              spacy_al.sequential.v1          none (source order)
    least_confidence        spacy_al.top_k.v1               least_confidence
    margin, uncertain, top_k  spacy_al.top_k.v1             margin
    entropy                 spacy_al.top_k.v1               entropy
    diverse                 spacy_al.diverse.v1             margin
    balanced                spacy_al.class_balanced.v1      margin
    cost                    spacy_al.cost_aware.v1          margin
    power                   spacy_al.power.v1               margin
    random-start            spacy_al.random_start.v1        margin

A full registered name implies no measure (the caller chooses). The module
holds every built-in strategy, each a small function, so that one contract test
runs over all of them (as small-text keeps its strategies together). Seed sets,
chosen before any model exists, are ``spacy_al.seed_sets``'.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import normalize

from spacy_al import registry
from spacy_al.errors import Errors


@dataclass(eq=False)
class Candidates:
    """The scored examples a pool strategy chooses from, one row each.

    ``scores`` come from an uncertainty measure (higher = more informative).
    The other fields are optional and needed only by the strategies that use
    them: ``probs`` and ``label_counts`` (labelled examples per label so far) by
    class_balanced, ``vectors`` (dense or scipy.sparse) by diverse, ``costs``
    (e.g. tokens, > 0) by cost_aware, ``keys`` (each row's position in the
    pool, >= 0) by random with a ``seed``. ``multilabel`` says whether the
    columns of ``probs`` are independent sigmoids rather than one distribution.
    """

    scores: np.ndarray
    probs: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    vectors: np.ndarray | sparse.spmatrix | sparse.sparray | None = None
    costs: np.ndarray | None = None
    label_counts: np.ndarray | None = None
    multilabel: bool = False
    keys: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.ndim != 1:
            raise ValueError(
                Errors.E210.format(
                    field="scores", expected="(m,)", shape=self.scores.shape
                )
            )
        m = len(self.scores)
        bad = ~np.isfinite(self.scores)
        if bad.any():
            raise ValueError(Errors.E211.format(n_bad=int(bad.sum()), m=m))
        self.labels = tuple(self.labels)
        if self.probs is not None:
            self.probs = np.asarray(self.probs, dtype=np.float64)
            shape = self.probs.shape
            if len(shape) != 2 or shape[0] != m or shape[1] < 1:
                raise ValueError(
                    Errors.E210.format(
                        field="probs",
                        expected=f"({m}, n_labels)",
                        shape=self.probs.shape,
                    )
                )
            if self.labels and len(self.labels) != self.probs.shape[1]:
                raise ValueError(
                    Errors.E212.format(
                        n_labels=len(self.labels),
                        labels=self.labels,
                        n_cols=self.probs.shape[1],
                    )
                )
        if self.vectors is not None:
            if sparse.issparse(self.vectors):
                self.vectors = self.vectors.tocsr()
                finite = np.isfinite(self.vectors.data).all()
            else:
                self.vectors = np.asarray(self.vectors)
                finite = np.isfinite(self.vectors).all()
            if self.vectors.ndim != 2 or self.vectors.shape[0] != m:
                raise ValueError(
                    Errors.E210.format(
                        field="vectors", expected=f"({m}, d)", shape=self.vectors.shape
                    )
                )
            if not finite:
                raise ValueError(Errors.E213)
        if self.costs is not None:
            self.costs = np.asarray(self.costs, dtype=np.float64)
            if self.costs.shape != (m,):
                raise ValueError(
                    Errors.E210.format(
                        field="costs", expected=f"({m},)", shape=self.costs.shape
                    )
                )
            bad = ~(np.isfinite(self.costs) & (self.costs > 0))
            if bad.any():
                raise ValueError(
                    Errors.E214.format(
                        n_bad=int(bad.sum()), m=m, example=self.costs[bad][0]
                    )
                )
        if self.label_counts is not None:
            self.label_counts = np.asarray(self.label_counts, dtype=np.float64)
            n_labels = (
                self.probs.shape[1] if self.probs is not None else len(self.labels)
            )
            if self.label_counts.ndim != 1 or (
                n_labels and self.label_counts.shape[0] != n_labels
            ):
                raise ValueError(
                    Errors.E210.format(
                        field="label_counts",
                        expected=f"({n_labels or 'n_labels'},)",
                        shape=self.label_counts.shape,
                    )
                )
            if not (np.isfinite(self.label_counts) & (self.label_counts >= 0)).all():
                raise ValueError(Errors.E215.format(values=self.label_counts.tolist()))
        if self.keys is not None:
            keys = np.asarray(self.keys)
            if keys.shape != (m,) or (m and keys.dtype.kind not in "iu"):
                raise ValueError(
                    Errors.E210.format(
                        field="keys", expected=f"({m},) integers", shape=keys.shape
                    )
                )
            if m and keys.min() < 0:
                raise ValueError(
                    Errors.E218.format(
                        option="keys",
                        value=int(keys.min()),
                        strategy="Candidates",
                        requirement="pool positions, >= 0",
                    )
                )
            self.keys = keys.astype(np.uint64)

    def __len__(self) -> int:
        return len(self.scores)


class Strategy(Protocol):
    """Chooses ``n`` unique indices into the candidates, most informative first."""

    def __call__(
        self, candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray: ...


#: What a strategy can need the loop to compute for its candidates.
NEEDS = ("scores", "vectors")
#: What a registered factory that declares nothing needs.
DEFAULT_NEEDS = frozenset({"scores"})

F = TypeVar("F", bound=Callable[..., Any])


def needs(*what: str) -> Callable[[F], F]:
    """Declare what a strategy factory's candidates must carry (see the module doc).

    ``@needs()`` for a strategy that ignores scores, ``@needs("scores",
    "vectors")`` for one that clusters the uncertain ones. Put it below the
    ``@registry.strategies(...)`` line, on the factory.
    """
    declared = frozenset(what)

    def declare(factory: F) -> F:
        unknown = declared - set(NEEDS)
        if unknown:
            raise ValueError(
                Errors.E901.format(
                    name=getattr(factory, "__name__", factory),
                    needs=sorted(unknown),
                    valid=", ".join(NEEDS),
                )
            )
        factory.needs = declared
        return factory

    return declare


# --- helpers -------------------------------------------------------------


def check_n(n: int, size: int) -> None:
    """Raise unless ``n`` is a count of rows that ``size`` rows can give."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise ValueError(Errors.E216.format(n=n))
    if n > size:
        raise ValueError(Errors.E217.format(n=n, size=size))


def _check_option(strategy: str, option: str, value: Any, ok: bool, must: str) -> None:
    if not ok:
        raise ValueError(
            Errors.E218.format(
                option=option, value=value, strategy=strategy, requirement=must
            )
        )


def _check_weight(strategy: str, option: str, value: Any) -> None:
    """Raise unless ``value`` is a finite number >= 0 (an exponent or weight)."""
    _check_option(
        strategy,
        option,
        value,
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0,
        "a finite number >= 0",
    )


def _require(candidates: Candidates, field: str, strategy: str) -> Any:
    value = getattr(candidates, field)
    if value is None:
        raise ValueError(Errors.E219.format(strategy=strategy, field=field))
    return value


def _nonnegative_scores(candidates: Candidates, strategy: str) -> np.ndarray:
    scores = candidates.scores
    negative = scores < 0
    if negative.any():
        raise ValueError(
            Errors.E220.format(
                strategy=strategy,
                n_bad=int(negative.sum()),
                minimum=float(scores.min()),
            )
        )
    return scores


def _descending(primary: np.ndarray, secondary: np.ndarray | None = None) -> np.ndarray:
    """Indices by ``primary`` descending, then ``secondary`` descending, then index."""
    keys = [-primary] if secondary is None else [-secondary, -primary]
    return np.lexsort(keys)


# --- pool strategies -----------------------------------------------------


@registry.strategies("spacy_al.random.v1")
@needs()
def random_sampling(seed: int | None = None) -> Strategy:
    """Uniform sample without replacement; ignores scores. The baseline.

    With ``seed``, the pool is asked in one fixed random order that the seed
    alone decides (:func:`pool_order`; the candidates must carry ``keys``):
    whatever was asked before, the next questions are the first unasked texts
    in that order. Two systems given the same seed over the same pool then ask
    the same texts, so a comparison of their learners from random questions is
    paired (common random numbers) rather than two independent draws. Without
    it, the loop's generator draws.
    """
    if seed is not None:
        _check_option(
            "spacy_al.random.v1",
            "seed",
            seed,
            isinstance(seed, numbers.Integral) and not isinstance(seed, bool),
            "an integer",
        )

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        if seed is None:
            return rng.choice(len(candidates), size=n, replace=False)
        keys = _require(candidates, "keys", "spacy_al.random.v1")
        return np.argsort(pool_order(keys, seed), kind="stable")[:n]

    return select


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def pool_order(keys: Sequence[int] | np.ndarray, seed: int) -> np.ndarray:
    """Each pool position's rank key in the random order ``seed`` decides.

    Sorting positions by it gives a uniformly random permutation of the pool
    (a 64-bit mix of position and seed, so no two positions tie in practice);
    one position's key doesn't depend on which others are asked with it, so
    any subset of the pool is ranked as the whole pool would rank it. The bench's
    peers rank their random questions by the same keys.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    salt = _mix64(np.array([seed & (2**64 - 1)], dtype=np.uint64)) + np.uint64(
        0x9E3779B97F4A7C15
    )
    return _mix64(keys + salt)


@registry.strategies("spacy_al.sequential.v1")
@needs()
def sequential() -> Strategy:
    """The first ``n`` candidates in pool order; ignores scores (``textcat.manual``)."""

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        return np.arange(n)

    return select


@registry.strategies("spacy_al.top_k.v1")
@needs("scores")
def top_k() -> Strategy:
    """The ``n`` highest scores. Ties go to the lower index, so it is deterministic."""

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        return _descending(candidates.scores)[:n]

    return select


@registry.strategies("spacy_al.diverse.v1")
@needs("scores", "vectors")
def diverse(*, candidate_factor: int = 10) -> Strategy:
    """Uncertain and unlike each other: the best of each cluster among the top.

    Takes the ``n * candidate_factor`` highest-scoring candidates, clusters their
    L2-normalized vectors (dense or sparse) with k-means into ``n`` clusters, and
    returns the highest-scoring member of each cluster, ordered by score. When
    there are fewer distinct vectors than ``n``, the rest are filled by score.
    Needs ``Candidates.vectors``.
    """
    name = "spacy_al.diverse.v1"
    _check_option(
        name,
        "candidate_factor",
        candidate_factor,
        isinstance(candidate_factor, numbers.Integral) and candidate_factor >= 1,
        "an integer >= 1",
    )

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        vectors = _require(candidates, "vectors", name)
        # `top` is ordered by score, so a position in it is a rank.
        top = _descending(candidates.scores)[: n * candidate_factor]
        if n <= 1 or n == len(top):
            return top[:n]
        kmeans = KMeans(
            n_clusters=n, n_init=3, random_state=int(rng.integers(2**31 - 1))
        )
        with warnings.catch_warnings():
            # Fewer distinct vectors than clusters: handled below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            clusters = kmeans.fit_predict(normalize(vectors[top]))
        _, best = np.unique(clusters, return_index=True)
        if len(best) < n:
            rest = np.setdiff1d(np.arange(len(top)), best)[: n - len(best)]
            best = np.concatenate([best, rest])
        return top[np.sort(best)]

    return select


def class_balance_weights(
    probs: np.ndarray,
    label_counts: np.ndarray,
    *,
    alpha: float = 1.0,
    multilabel: bool = False,
) -> np.ndarray:
    """Per-candidate weight favouring candidates predicted as rare labels.

    A label's weight is its smoothed frequency among the labelled examples,
    ``(count + 1) / sum(count + 1)``, to the power ``-alpha``. A candidate gets
    the weight of its predicted label: the argmax (the rarest of tied top
    labels) when exclusive; when multilabel, the rarest label with p >= 0.5, or
    the most probable label when none reaches 0.5.
    """
    smoothed = np.asarray(label_counts, dtype=np.float64) + 1.0
    label_weight = (smoothed / smoothed.sum()) ** -alpha
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs >= probs.max(axis=1, keepdims=True)
    if multilabel:
        positive = probs >= 0.5
        predicted = np.where(positive.any(axis=1, keepdims=True), positive, predicted)
    return np.where(predicted, label_weight, 0.0).max(axis=1)


@registry.strategies("spacy_al.class_balanced.v1")
@needs("scores")
def class_balanced(*, alpha: float = 1.0) -> Strategy:
    """Uncertain candidates predicted as rare labels first, against cold start.

    Ranks by score times ``class_balance_weights`` (``alpha`` = 0 is top_k;
    larger favours rare labels more), then by weight, then by index. Needs
    ``Candidates.probs`` and ``Candidates.label_counts`` and scores >= 0.
    """
    name = "spacy_al.class_balanced.v1"
    _check_weight(name, "alpha", alpha)

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        probs = _require(candidates, "probs", name)
        counts = _require(candidates, "label_counts", name)
        scores = _nonnegative_scores(candidates, name)
        weights = class_balance_weights(
            probs, counts, alpha=alpha, multilabel=candidates.multilabel
        )
        return _descending(scores * weights, weights)[:n]

    return select


@registry.strategies("spacy_al.cost_aware.v1")
@needs("scores")
def cost_aware(*, power: float = 1.0) -> Strategy:
    """Information per unit of annotation effort: ranks by score / cost**power.

    Costs default to 1 when ``Candidates.costs`` is None; ties go to the cheaper
    candidate, then the lower index. ``power`` = 0 is top_k. Needs scores >= 0.
    """
    name = "spacy_al.cost_aware.v1"
    _check_weight(name, "power", power)

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        scores = _nonnegative_scores(candidates, name)
        if candidates.costs is None:
            return _descending(scores)[:n]
        costs = candidates.costs
        return _descending(scores / costs**power, -costs)[:n]

    return select


@registry.strategies("spacy_al.power.v1")
@needs("scores")
def power_sampling(*, beta: float = 1.0) -> Strategy:
    """Drawn rather than ranked: ``n`` candidates sampled without replacement
    with probability proportional to ``score ** beta`` (power acquisition,
    Kirsch et al. 2023, "Stochastic Batch Acquisition: A Simple Baseline for
    Deep Active Learning").

    The top ``n`` by score are often near-duplicates of one another, all from
    where the model is unsure for one reason; drawing keeps a batch mostly
    uncertain yet varied, at no cost beyond the scores. ``beta`` = 0 draws
    uniformly among the candidates with a score above 0, and a large ``beta``
    approaches top_k. Sampled with the Gumbel-top-k trick (rank by ``beta *
    log(score)`` plus Gumbel noise from the loop's generator), so a run is
    reproducible from its seed. Candidates scored 0 come only after every
    other, by index. Needs scores >= 0.
    """
    name = "spacy_al.power.v1"
    _check_weight(name, "beta", beta)

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        scores = _nonnegative_scores(candidates, name)
        gumbel = rng.gumbel(size=len(scores))
        positive = scores > 0
        keys = np.full(len(scores), -np.inf)
        keys[positive] = beta * np.log(scores[positive]) + gumbel[positive]
        return _descending(keys)[:n]

    return select


@registry.strategies("spacy_al.balanced_start.v1")
@needs("scores")
def balanced_start(*, min_positives: int = 3, alpha: float = 1.0) -> Strategy:
    """Class-balanced until every label has ``min_positives`` answers that say
    it is true, then the top ``n`` by score.

    While a label is missing, a model that has hardly seen it can't be unsure
    about it, so plain uncertainty keeps asking about the labels it knows; once
    each has a few examples, uncertainty alone is what finds the boundary.
    """
    return _start_then_top_k(
        "spacy_al.balanced_start.v1", min_positives, class_balanced(alpha=alpha)
    )


def _start_then_top_k(name: str, min_positives: int, start: Strategy) -> Strategy:
    """``start`` while some label has fewer than ``min_positives`` answers
    that say it is true (``Candidates.label_counts``), then the top ``n``."""
    _check_option(
        name,
        "min_positives",
        min_positives,
        isinstance(min_positives, numbers.Integral) and min_positives >= 0,
        "an integer >= 0",
    )

    def select(
        candidates: Candidates, n: int, *, rng: np.random.Generator
    ) -> np.ndarray:
        check_n(n, len(candidates))
        counts = _require(candidates, "label_counts", name)
        if len(counts) and np.min(counts) < min_positives:
            return start(candidates, n, rng=rng)
        return _descending(candidates.scores)[:n]

    return select


@registry.strategies("spacy_al.random_start.v1")
@needs("scores")
def random_start(*, min_positives: int = 5, seed: int | None = None) -> Strategy:
    """Random until every label has ``min_positives`` answers that say it is
    true, then the top ``n`` by score.

    A model that has hardly seen a label ranks texts by noise, and with few
    answers, typical texts teach a model more than the ones it is unsure of
    (Hacohen et al. 2022, "Active Learning on a Budget"). Until then it asks
    what ``spacy_al.random.v1`` with the same ``seed`` asks, given the same
    candidates and generator, so a comparison with random on one seed differs
    only from where uncertainty takes over. Needs ``Candidates.label_counts``
    (NER: accepted entities per label). 5 is what ``ner.teach`` waits for
    before its model suggests entities.
    """
    return _start_then_top_k(
        "spacy_al.random_start.v1", min_positives, random_sampling(seed)
    )


# --- lookup --------------------------------------------------------------


class Alias(NamedTuple):
    """What a short name stands for: a registered strategy and a measure."""

    strategy: str
    measure: str | None


ALIASES: Mapping[str, Alias] = {
    "random": Alias("spacy_al.random.v1", None),
    "sequential": Alias("spacy_al.sequential.v1", None),
    "least_confidence": Alias("spacy_al.top_k.v1", "least_confidence"),
    "margin": Alias("spacy_al.top_k.v1", "margin"),
    "uncertain": Alias("spacy_al.top_k.v1", "margin"),
    "top_k": Alias("spacy_al.top_k.v1", "margin"),
    "entropy": Alias("spacy_al.top_k.v1", "entropy"),
    "diverse": Alias("spacy_al.diverse.v1", "margin"),
    "balanced": Alias("spacy_al.class_balanced.v1", "margin"),
    "balanced-start": Alias("spacy_al.balanced_start.v1", "margin"),
    "cost": Alias("spacy_al.cost_aware.v1", "margin"),
    "power": Alias("spacy_al.power.v1", "margin"),
    "random-start": Alias("spacy_al.random_start.v1", "margin"),
}


def resolve(name: str) -> Alias:
    """The registered strategy and implied measure for a short or full name."""
    if name in ALIASES:
        return ALIASES[name]
    if name in registry.strategies:
        return Alias(name, None)
    raise ValueError(
        Errors.E222.format(
            name=name,
            aliases=", ".join(ALIASES),
            names=", ".join(sorted(registry.strategies.get_all())),
        )
    )


def strategy_needs(name: str) -> frozenset[str]:
    """What the strategy ``name`` (short or full) needs: a subset of :data:`NEEDS`.

    Read from the :func:`needs` declaration on its registered factory; a factory
    without one (a user's, registered without it) needs scores.
    """
    factory = registry.strategies.get(resolve(name).strategy)
    declared = vars(factory).get("needs", DEFAULT_NEEDS)
    unknown = set(declared) - set(NEEDS)
    if unknown:
        raise ValueError(
            Errors.E901.format(name=name, needs=sorted(unknown), valid=", ".join(NEEDS))
        )
    return frozenset(declared)


def _build(name: str, config: Mapping[str, Any]) -> Any:
    full = resolve(name).strategy
    factory = registry.strategies.get(full)
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise ValueError(
                Errors.E223.format(
                    options=", ".join(unknown),
                    name=full,
                    valid=", ".join(params) or "no options",
                )
            )
    return factory(**config)


def get_strategy(name: str, **config: Any) -> Strategy:
    """Build the strategy ``name`` (short or full) with keyword options."""
    return _build(name, config)
