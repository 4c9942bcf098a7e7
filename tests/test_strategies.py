from __future__ import annotations

import math

import catalogue
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse

from spacy_al import registry, uncertainty
from spacy_al.loop import StrategySpec
from spacy_al.seed_sets import diverse_seed
from spacy_al.strategies import (
    ALIASES,
    NEEDS,
    Candidates,
    class_balance_weights,
    get_strategy,
    needs,
    resolve,
    strategy_needs,
)

POOL_STRATEGIES = sorted(registry.strategies.get_all())

# What "most informative" means for each built-in strategy, when it is a key
# (class_balanced's key is checked by hand below).
RANK_KEY = {
    "spacy_al.top_k.v1": lambda pool: pool.scores,
    "spacy_al.cost_aware.v1": lambda pool: pool.scores / pool.costs,
    "spacy_al.diverse.v1": lambda pool: pool.scores,
}


def _only_what_it_needs(pool: Candidates, needed: frozenset[str]) -> Candidates:
    """The candidates as a loop builds them for a strategy with these needs:
    without scores (zeros, no probabilities) or vectors unless it needs them."""
    scored = "scores" in needed
    return Candidates(
        scores=pool.scores if scored else np.zeros(len(pool)),
        probs=pool.probs if scored else None,
        labels=pool.labels,
        vectors=pool.vectors if "vectors" in needed else None,
        costs=pool.costs,
        label_counts=pool.label_counts,
        multilabel=pool.multilabel,
    )


@st.composite
def pools(draw) -> Candidates:
    """Candidates with every optional field, dense or sparse vectors."""
    m = draw(st.integers(1, 40))
    n_labels = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    # Few distinct score values, so that ties are common.
    scores = draw(arrays(np.float64, m, elements=st.sampled_from([0.0, 0.2, 0.5, 0.9])))
    vectors = rng.normal(size=(m, 8))
    if draw(st.booleans()):
        vectors = sparse.csr_matrix(np.where(vectors > 0.5, vectors, 0.0))
    multilabel = draw(st.booleans())
    probs = (
        rng.random((m, n_labels))
        if multilabel
        else rng.dirichlet(np.ones(n_labels), size=m)
    )
    return Candidates(
        scores=scores,
        probs=probs,
        labels=tuple(f"L{i}" for i in range(n_labels)),
        vectors=vectors,
        costs=rng.integers(1, 60, size=m),
        label_counts=rng.integers(0, 30, size=n_labels),
        multilabel=multilabel,
    )


def test_strategies_registry_has_the_builtins():
    assert POOL_STRATEGIES == [
        "spacy_al.balanced_start.v1",
        "spacy_al.class_balanced.v1",
        "spacy_al.cost_aware.v1",
        "spacy_al.diverse.v1",
        "spacy_al.power.v1",
        "spacy_al.random.v1",
        "spacy_al.random_start.v1",
        "spacy_al.sequential.v1",
        "spacy_al.top_k.v1",
    ]


@pytest.mark.parametrize("name", POOL_STRATEGIES)
@settings(max_examples=25, deadline=None)
@given(pool=pools(), data=st.data())
def test_strategies_contract(name, pool, data):
    # Every strategy declares what it needs, and works from only that.
    needed = strategy_needs(name)
    assert needed <= set(NEEDS)
    pool = _only_what_it_needs(pool, needed)
    strategy = registry.strategies.get(name)()
    m = len(pool)
    n = data.draw(st.integers(0, m), label="n")
    seed = data.draw(st.integers(0, 2**16), label="seed")

    picked = strategy(pool, n, rng=np.random.default_rng(seed))
    # Exactly n unique integer indices into the pool.
    assert picked.shape == (n,)
    assert np.issubdtype(picked.dtype, np.integer)
    assert len(set(picked.tolist())) == n
    assert all(0 <= i < m for i in picked)
    # The same seed gives the same selection.
    again = strategy(pool, n, rng=np.random.default_rng(seed))
    assert np.array_equal(picked, again)
    # Most informative first.
    if name in RANK_KEY and n:
        key = RANK_KEY[name](pool)[picked]
        assert np.all(np.diff(key) <= 0)
        if name != "spacy_al.diverse.v1":
            assert key[0] == RANK_KEY[name](pool).max()
    # Asking for the whole pool returns a permutation of it.
    everything = strategy(pool, m, rng=np.random.default_rng(seed))
    assert sorted(everything.tolist()) == list(range(m))
    # Asking for more than the pool holds is a clear error.
    with pytest.raises(ValueError, match=rf"E217.*n={m + 1}.*pool of {m} .*lower n"):
        strategy(pool, m + 1, rng=np.random.default_rng(seed))


# --- targeted behaviour -------------------------------------------------


def _blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three tight blobs in different directions; the first is the most uncertain."""
    centers = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    vectors = np.vstack([c + rng.normal(scale=0.3, size=(10, 3)) for c in centers])
    scores = np.concatenate(
        [0.90 + rng.random(10) * 0.05, 0.5 + rng.random(10) * 0.1, rng.random(10) * 0.1]
    )
    return vectors, scores


@pytest.mark.parametrize("as_sparse", [False, True])
def test_strategies_diverse_picks_one_per_blob(as_sparse):
    rng = np.random.default_rng(3)
    vectors, scores = _blobs(rng)
    pool = Candidates(
        scores=scores, vectors=sparse.csr_matrix(vectors) if as_sparse else vectors
    )
    top = get_strategy("top_k")(pool, 3, rng=rng)
    picked = get_strategy("diverse")(pool, 3, rng=rng)
    assert sorted(top // 10) == [0, 0, 0]
    assert sorted(picked // 10) == [0, 1, 2]
    # Each pick is the most uncertain of its blob, in score order.
    assert picked.tolist() == [
        int(np.argmax(scores[:10])),
        10 + int(np.argmax(scores[10:20])),
        20 + int(np.argmax(scores[20:])),
    ]


def test_strategies_diverse_seed_covers_every_blob():
    rng = np.random.default_rng(0)
    vectors, _ = _blobs(rng)
    picked = diverse_seed(vectors, 3, seed=0)
    assert sorted(picked // 10) == [0, 1, 2]
    assert len(set(diverse_seed(vectors, 30, seed=0).tolist())) == 30


def test_strategies_balanced_start_is_balanced_until_every_label_has_positives():
    cands = dict(
        scores=[0.9, 0.5], probs=[[0.9, 0.1], [0.2, 0.8]], label_counts=[10, 1]
    )
    rng = np.random.default_rng(0)
    start = get_strategy("balanced-start", min_positives=3)
    # label 1 has 1 positive: the candidate predicted as label 1 comes first
    assert start(Candidates(**cands), 1, rng=rng).tolist() == [1]
    # every label has 3: plain uncertainty
    cands["label_counts"] = [10, 3]
    assert start(Candidates(**cands), 1, rng=rng).tolist() == [0]


@pytest.mark.parametrize("seed", [None, 7])
def test_strategies_random_start_asks_what_random_asks_until_every_label_has_positives(
    seed,
):
    scores = np.linspace(0.0, 1.0, 50)
    cands = dict(scores=scores, keys=np.arange(100, 150), label_counts=[10, 4])
    start = get_strategy("random-start", seed=seed)
    random = get_strategy("random", seed=seed)
    # label 1 has 4 answers that say it is true: random's picks, same generator
    picked = start(Candidates(**cands), 5, rng=np.random.default_rng(3))
    assert (
        picked.tolist()
        == random(Candidates(**cands), 5, rng=np.random.default_rng(3)).tolist()
    )
    assert picked.tolist() != [49, 48, 47, 46, 45]
    # every label has 5: the top 5 by score
    cands["label_counts"] = [10, 5]
    picked = start(Candidates(**cands), 5, rng=np.random.default_rng(3))
    assert picked.tolist() == [49, 48, 47, 46, 45]


def test_strategies_diverse_only_clusters_the_top_candidates():
    rng = np.random.default_rng(4)
    vectors, scores = _blobs(rng)
    pool = Candidates(scores=scores, vectors=vectors)
    # 3 * 6 = 18 candidates: blobs 0 and 1 only.
    picked = get_strategy("diverse", candidate_factor=6)(pool, 3, rng=rng)
    assert set((picked // 10).tolist()) <= {0, 1}


def test_strategies_diverse_fills_up_when_vectors_repeat():
    pool = Candidates(scores=np.linspace(1, 0, 12), vectors=np.ones((12, 4)))
    picked = get_strategy("diverse")(pool, 5, rng=np.random.default_rng(0))
    assert picked.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "alpha,expected",
    [
        # counts (3, 0) smoothed to (4, 1): frequencies 0.8 and 0.2.
        # alpha 1: weights 1.25 and 5; 0.9 * 1.25 = 1.125 > 0.2 * 5 = 1.0
        (1.0, [0, 1]),
        # alpha 2: weights 1.5625 and 25; 0.9 * 1.5625 = 1.41 < 0.2 * 25 = 5.0
        (2.0, [1, 0]),
    ],
)
def test_strategies_class_balanced_weighs_scores_by_rarity(alpha, expected):
    pool = Candidates(
        scores=[0.9, 0.2],
        probs=[[0.8, 0.2], [0.3, 0.7]],  # predicted: the common label, the rare one
        label_counts=[3, 0],
    )
    picked = get_strategy("balanced", alpha=alpha)(pool, 2, rng=np.random.default_rng())
    assert picked.tolist() == expected


def test_strategies_class_balanced_prefers_rare_class():
    # Candidate 0 is a bit more uncertain, but predicted as the common label.
    pool = Candidates(
        scores=[0.9, 0.8, 0.1],
        probs=[[0.6, 0.4], [0.35, 0.65], [0.9, 0.1]],
        labels=("ham", "spam"),
        label_counts=[100, 2],
    )
    rng = np.random.default_rng(0)
    assert get_strategy("top_k")(pool, 1, rng=rng).tolist() == [0]
    assert get_strategy("balanced")(pool, 3, rng=rng).tolist() == [1, 0, 2]
    # alpha=0 switches the weighting off.
    assert get_strategy("balanced", alpha=0.0)(pool, 1, rng=rng).tolist() == [0]


def test_strategies_class_balanced_breaks_ties_by_rarity_at_cold_start():
    # An untrained model: every score 0, yet the rare prediction goes first.
    pool = Candidates(
        scores=np.zeros(3),
        probs=[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]],
        label_counts=[20, 0],
    )
    picked = get_strategy("balanced")(pool, 1, rng=np.random.default_rng(0))
    assert picked.tolist() == [2]


@pytest.mark.parametrize(
    "probs,expected",
    [
        # Rarest label with p >= 0.5 wins, even if a common label is likelier.
        ([[0.9, 0.6, 0.1]], "rare"),
        # No label reaches 0.5: the most probable label counts.
        ([[0.4, 0.2, 0.3]], "common"),
        ([[0.1, 0.2, 0.45]], "rarest"),
    ],
)
def test_strategies_class_balance_weights_multilabel(probs, expected):
    counts = np.array([50, 5, 0])
    label_weight = {"common": 51, "rare": 6, "rarest": 1}
    weight = class_balance_weights(probs, counts, multilabel=True)[0]
    assert weight == pytest.approx(sum(counts + 1) / label_weight[expected])


def test_strategies_cost_aware_prefers_cheap_candidate():
    pool = Candidates(scores=[0.9, 0.8, 0.2], costs=[100, 10, 10])
    rng = np.random.default_rng(0)
    assert get_strategy("top_k")(pool, 1, rng=rng).tolist() == [0]
    assert get_strategy("cost")(pool, 3, rng=rng).tolist() == [1, 2, 0]
    # power=0 ignores costs; no costs means equal costs.
    assert get_strategy("cost", power=0.0)(pool, 1, rng=rng).tolist() == [0]
    no_costs = Candidates(scores=pool.scores)
    assert get_strategy("cost")(no_costs, 3, rng=rng).tolist() == [0, 1, 2]


def test_strategies_power_draws_in_proportion_to_score():
    """power (beta 1) asks a candidate about as often as its share of the
    scores says, never one scored 0 while others are left, and a large beta
    is top_k."""
    scores = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    pool = Candidates(scores=scores)
    rng = np.random.default_rng(0)
    first = [int(get_strategy("power")(pool, 1, rng=rng)[0]) for _ in range(4000)]
    share = np.bincount(first, minlength=5) / len(first)
    assert share[0] == 0
    assert share[1:] == pytest.approx(scores[1:] / scores.sum(), abs=0.03)
    # Candidates scored 0 come last, and only when nothing else is left.
    assert sorted(get_strategy("power")(pool, 4, rng=rng).tolist()) == [1, 2, 3, 4]
    assert get_strategy("power")(pool, 5, rng=rng)[-1] == 0
    sharp = get_strategy("power", beta=200.0)(pool, 3, rng=rng)
    assert sharp.tolist() == [4, 3, 2]
    # beta 0: uniform over the candidates scored above 0.
    flat = [
        int(get_strategy("power", beta=0.0)(pool, 1, rng=rng)[0]) for _ in range(4000)
    ]
    assert np.bincount(flat, minlength=5)[1:] / 4000 == pytest.approx(
        [0.25] * 4, abs=0.03
    )


def test_strategies_top_k_ties_go_to_lower_index():
    pool = Candidates(scores=[0.5, 0.9, 0.5, 0.9, 0.1])
    picked = get_strategy("top_k")(pool, 4, rng=np.random.default_rng(0))
    assert picked.tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strategies_random_differs_between_seeds_and_ignores_scores(seed):
    pool = Candidates(scores=np.arange(100, dtype=float))
    picked = get_strategy("random")(pool, 10, rng=np.random.default_rng(seed))
    other = get_strategy("random")(pool, 10, rng=np.random.default_rng(seed + 100))
    assert not np.array_equal(picked, other)
    assert picked.tolist() != list(range(99, 89, -1))


def test_strategies_seeded_random_asks_the_pool_in_one_order_whatever_is_left():
    """With a seed, random is one fixed order of the pool: after any texts are
    asked, the next are the first unasked ones in that order, and the order
    doesn't depend on the loop's generator or on the candidates' order."""
    random = get_strategy("random", seed=7)
    keys = np.arange(500)
    full = keys[random(Candidates(scores=np.zeros(500), keys=keys), 500, rng=None)]
    assert sorted(full.tolist()) == keys.tolist()  # a permutation of the pool
    rest = np.random.default_rng(0).permutation(np.setdiff1d(keys, full[:40]))
    picked = random(
        Candidates(scores=np.zeros(len(rest)), keys=rest),
        10,
        rng=np.random.default_rng(99),
    )
    assert rest[picked].tolist() == full[40:50].tolist()
    other = get_strategy("random", seed=8)
    assert not np.array_equal(
        keys[other(Candidates(scores=np.zeros(500), keys=keys), 10, rng=None)],
        full[:10],
    )
    # uniform over positions: each tenth of the pool leads about equally often
    firsts = [
        get_strategy("random", seed=s)(
            Candidates(scores=np.zeros(500), keys=keys), 1, rng=None
        )[0]
        // 50
        for s in range(2000)
    ]
    assert np.bincount(firsts, minlength=10).min() > 140


def test_strategies_seeded_random_needs_the_pool_positions():
    with pytest.raises(ValueError, match=r"E219.*needs Candidates\.keys"):
        get_strategy("random", seed=1)(
            Candidates(scores=[0.1, 0.2]), 1, rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match=r"E218.*seed"):
        get_strategy("random", seed="1")


# --- errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,missing,pool",
    [
        ("diverse", "vectors", Candidates(scores=[0.1, 0.2])),
        ("balanced", "probs", Candidates(scores=[0.1, 0.2], label_counts=[1, 1])),
        ("balanced", "label_counts", Candidates(scores=[0.1], probs=[[0.3, 0.7]])),
        ("random-start", "label_counts", Candidates(scores=[0.1, 0.2])),
    ],
)
def test_strategies_missing_field_raises(name, missing, pool):
    with pytest.raises(ValueError, match=rf"E219.*needs Candidates\.{missing}"):
        get_strategy(name)(pool, 1, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name", ["balanced", "cost", "power"])
def test_strategies_weighting_needs_nonnegative_scores(name):
    pool = Candidates(
        scores=[-0.5, 0.2], probs=[[0.5, 0.5]] * 2, label_counts=[0, 0], costs=[1, 2]
    )
    with pytest.raises(ValueError, match=r"E220.*minimum -0.5"):
        get_strategy(name)(pool, 1, rng=np.random.default_rng(0))


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_strategies_invalid_n_raises(n):
    pool = Candidates(scores=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"E216"):
        get_strategy("top_k")(pool, n, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"scores": [[0.1, 0.2]]}, "scores"),
        ({"scores": [0.1, 0.2], "probs": [[0.5, 0.5]]}, "probs"),
        ({"scores": [0.1, 0.2], "vectors": np.ones((3, 4))}, "vectors"),
        ({"scores": [0.1, 0.2], "costs": [1.0]}, "costs"),
        ({"scores": [0.1, 0.2], "keys": [0.5, 1.5]}, "keys"),
        (
            {"scores": [0.1], "probs": [[0.5, 0.5]], "label_counts": [1, 2, 3]},
            "label_counts",
        ),
    ],
)
def test_strategies_candidates_shape_mismatch_raises(kwargs, field):
    with pytest.raises(ValueError, match=rf"E210.*Candidates\.{field} must have shape"):
        Candidates(**kwargs)


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"scores": [0.1, math.nan]}, "E211"),
        ({"scores": [0.1], "probs": [[0.5, 0.5]], "labels": ("a",)}, "E212"),
        ({"scores": [0.1], "vectors": [[np.inf, 0.0]]}, "E213"),
        ({"scores": [0.1, 0.2], "costs": [3, 0]}, "E214"),
        ({"scores": [0.1], "label_counts": [-1, 2]}, "E215"),
    ],
)
def test_strategies_candidates_bad_values_raise(kwargs, code):
    with pytest.raises(ValueError, match=code):
        Candidates(**kwargs)


@pytest.mark.parametrize(
    "name,config",
    [
        ("diverse", {"candidate_factor": 0}),
        ("balanced", {"alpha": -1.0}),
        ("cost", {"power": math.inf}),
        ("power", {"beta": -1.0}),
        ("power", {"beta": math.nan}),
    ],
)
def test_strategies_invalid_option_raises(name, config):
    option = next(iter(config))
    with pytest.raises(ValueError, match=rf"E218.*{option}="):
        get_strategy(name, **config)


def test_strategies_unknown_option_lists_valid_ones():
    with pytest.raises(ValueError, match=r"E223.*n_clusters.*candidate_factor"):
        get_strategy("diverse", n_clusters=3)


def test_strategies_unknown_name_lists_aliases_and_registered():
    with pytest.raises(ValueError, match=r"E222.*random.*spacy_al\.top_k\.v1"):
        get_strategy("smartest")


# --- lookup ---------------------------------------------------------------


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_strategies_aliases_resolve_to_registered_strategies(alias):
    strategy, measure = resolve(alias)
    assert strategy in registry.strategies.get_all()
    assert measure is None or measure in uncertainty.MEASURES
    assert (alias in ("random", "sequential")) == (measure is None)


@pytest.mark.parametrize("name", POOL_STRATEGIES)
def test_strategies_full_names_resolve_to_themselves(name):
    assert resolve(name) == (name, None)
    assert callable(get_strategy(name))


@pytest.fixture
def user_strategy():
    """A strategy registered the way a user package would, removed afterwards."""
    name = "test_strategies.least_informative.v1"

    @registry.strategies(name)
    def least_informative():
        def select(candidates, n, *, rng):
            return np.argsort(candidates.scores, kind="stable")[:n]

        return select

    yield name
    catalogue.REGISTRY.pop((*registry.strategies.namespace, name), None)


def test_strategies_user_registered_strategy_is_found(user_strategy):
    pool = Candidates(scores=[0.3, 0.1, 0.2])
    picked = get_strategy(user_strategy)(pool, 2, rng=np.random.default_rng(0))
    assert picked.tolist() == [1, 2]


# --- what strategies need --------------------------------------------------


@pytest.mark.parametrize(
    "name,needed",
    [
        ("random", set()),
        ("sequential", set()),
        ("margin", {"scores"}),
        ("diverse", {"scores", "vectors"}),
        ("balanced", {"scores"}),
        ("cost", {"scores"}),
        ("power", {"scores"}),
        ("random-start", {"scores"}),
    ],
)
def test_strategies_builtins_declare_their_needs(name, needed):
    assert strategy_needs(name) == needed


def test_strategies_user_strategy_needs_scores_unless_it_says(user_strategy):
    assert strategy_needs(user_strategy) == {"scores"}
    assert StrategySpec.parse(user_strategy).needs_scores
    spec = StrategySpec.parse(user_strategy, task="ner")
    assert spec.measure == "sequence_least_confidence"


@pytest.fixture
def user_vector_strategy():
    """A user's strategy that reads only vectors: the loop must compute them."""
    name = "test_strategies.first_of_distinct.v1"

    @registry.strategies(name)
    @needs("vectors")
    def first_of_distinct():
        def select(candidates, n, *, rng):
            return np.arange(n)

        return select

    yield name
    catalogue.REGISTRY.pop((*registry.strategies.namespace, name), None)


def test_strategies_user_strategy_declares_vectors(user_vector_strategy):
    spec = StrategySpec.parse(user_vector_strategy)
    assert spec.needs_vectors and not spec.needs_scores
    assert StrategySpec.parse(user_vector_strategy, task="ner").measure == "none"


def test_strategies_unknown_need_is_refused():
    with pytest.raises(ValueError, match=r"E901.*'labels'.*scores, vectors"):
        needs("labels")(lambda: None)


def test_strategies_stream_names_are_gone():
    # The stream sorter never worked in a recipe (E224): its names went with it.
    for name in ("stream", "ema", "spacy_al.prefer_uncertain.v1"):
        with pytest.raises(ValueError, match="E222"):
            resolve(name)
