import catalogue
import numpy as np
import pytest

from spacy_al import registry
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.store import Store
from spacy_al.strategies import needs
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.patterns import PatternMatcher
from spacy_al.updater import Committee, Updater

LABELS = ["ham", "spam"]
HAM = [
    f"see you at {h} tonight, bring the {x}"
    for h in range(6, 12)
    for x in ("keys", "cake", "book")
]
SPAM = [
    f"WIN a {p} prize now, call 0800{n}"
    for p in ("cash", "car", "trip")
    for n in range(100, 106)
]


def gold(text):
    return "spam" if text in SPAM else "ham"


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def make_loop(store=None, strategy="margin", **kwargs):
    pool = Pool({"text": t} for t in HAM + SPAM)
    spec = StrategySpec.parse(strategy)
    model = TextcatModel(build_textcat(LABELS))
    updater = (
        Committee.build(model, size=3)
        if spec.uses_committee
        else Updater(model, seed=0)
    )
    return ActiveLoop(
        pool,
        updater,
        spec=spec,
        store=store,
        dataset="news" if store else None,
        **kwargs,
    )


def answer_all(tasks):
    return [
        {**t, "answer": "accept" if t["label"] == gold(t["text"]) else "reject"}
        for t in tasks
    ]


@pytest.mark.parametrize(
    "strategy",
    ["margin", "entropy", "random", "diverse", "balanced", "cost", "vote_entropy"],
)
def test_loop_select_returns_unique_tasks_with_scores(strategy):
    loop = make_loop(strategy=strategy)
    tasks = loop.select(5)
    assert len({t["_input_key"] for t in tasks}) == 5
    for task in tasks:
        assert task["label"] in LABELS
        assert 0.0 <= task["meta"]["score"] <= 1.0
        assert task["_model_version"] == 0
        assert task["meta"]["strategy"] == strategy


def test_loop_answers_are_stored_before_answer_returns(store):
    loop = make_loop(store, batch_size=4)
    tasks = loop.select(4)
    loop.answer(answer_all(tasks), annotator="alice")
    assert store.count_answers("news") == 4
    assert {a["_annotator_id"] for a in store.get_answers("news")} == {"alice"}
    assert loop.pool.n_done == 4
    # Answered texts are never served again.
    rest = loop.select(len(loop.pool))
    assert not {t["_input_key"] for t in tasks} & {t["_input_key"] for t in rest}


def test_loop_learns_after_a_batch_and_gets_better(store):
    loop = make_loop(store, batch_size=6)
    texts = HAM + SPAM
    before = loop.updater.serving()[0].predict_texts(texts)
    while loop.pool.n_done < len(loop.pool):
        loop.answer(answer_all(loop.select(6)), annotator="alice")
        assert loop.ready_to_learn
        loop.learn()
    served, version = loop.updater.serving()
    assert version >= 6
    after = served.predict_texts(texts)
    truth = np.array([gold(t) == "spam" for t in texts])
    assert ((after[:, 1] > 0.5) == truth).mean() > (
        (before[:, 1] > 0.5) == truth
    ).mean()
    assert ((after[:, 1] > 0.5) == truth).mean() == 1.0


def test_loop_undo_before_learning_serves_the_text_again(store):
    loop = make_loop(store, batch_size=10)
    (task,) = loop.select(1)
    (eg,) = answer_all([task])
    loop.answer([eg], annotator="alice")
    assert loop.undo(eg, annotator="alice")
    assert store.count_answers("news") == 0
    assert loop.pool.n_done == 0 and loop.n_pending == 0
    assert task["_input_key"] in {t["_input_key"] for t in loop.select(len(loop.pool))}


def test_loop_exclude_holds_back_examples():
    loop = make_loop()
    held = {t["_input_key"] for t in loop.select(30)}
    first = [t["_input_key"] for t in loop.select(5, exclude=held)]
    assert first == [t["_input_key"] for t in loop.select(5, exclude=held)]
    assert not held & {t["_input_key"] for t in loop.select(6, exclude=held)}


def test_loop_patterns_surface_the_rare_label_at_cold_start(tmp_path):
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text('{"label": "spam", "pattern": "prize"}\n')
    loop = make_loop(strategy="random", seed=3)
    loop.patterns = PatternMatcher.from_file(loop.updater.model.nlp, patterns)
    tasks = loop.select(10)
    from_patterns = [t for t in tasks if t["meta"].get("pattern")]
    assert len(from_patterns) == 5
    assert all(t["label"] == "spam" and t["text"] in SPAM for t in from_patterns)


def test_loop_pool_deduplicates_and_skips_answered():
    texts = ["a b", "a b", "c d"]
    pool = Pool({"text": t} for t in texts)
    assert len(pool) == 2
    skip = Pool({"text": t} for t in texts)
    skip.mark([pool.tasks[0]["_input_key"]])
    assert skip.remaining().tolist() == [1]


def test_loop_committee_measure_needs_a_committee():
    pool = Pool({"text": t} for t in HAM)
    updater = Updater(TextcatModel(build_textcat(LABELS)))
    with pytest.raises(ValueError, match="E409"):
        ActiveLoop(pool, updater, spec=StrategySpec.parse("vote_entropy"))


def test_loop_cold_start_suggests_every_label_not_just_the_first():
    pool = Pool({"text": t} for t in HAM + SPAM)
    model = TextcatModel(build_textcat(["a", "b", "c"]))
    loop = ActiveLoop(pool, Updater(model), spec=StrategySpec.parse("margin"), seed=0)
    suggested = {t["label"] for t in loop.select(30)}
    assert suggested == {"a", "b", "c"}


@pytest.mark.parametrize("strategy", ["margin", "vote_entropy"])
def test_loop_gives_way_at_the_yield_point_it_is_given(strategy):
    # The ML core knows nothing of serving: it calls the callable it is given
    # between docs selected, update steps and prediction batches (snapshots too).
    calls: list[str] = []
    loop = make_loop(strategy=strategy, batch_size=4)
    loop.set_yield_point(lambda: calls.append("yield"))
    tasks = loop.select(4)
    n_selecting = len(calls)
    assert n_selecting >= len(loop.pool)  # at least once per doc scored
    loop.answer(answer_all(tasks), annotator="alice")
    loop.learn()
    assert len(calls) > n_selecting  # the update steps gave way too
    served, _ = loop.updater.serving()
    n_before = len(calls)
    served.predict_texts(["a new text"])
    assert len(calls) > n_before  # the new snapshot kept the yield point
    loop.set_yield_point(None)
    n_before = len(calls)
    loop.select(4)
    loop.updater.retrain()
    assert len(calls) == n_before


@pytest.fixture
def spread_out():
    """A user's strategy that declares it needs vectors: the docs farthest apart."""
    name = "test_loop.spread_out.v1"

    @registry.strategies(name)
    @needs("vectors")
    def spread_out_strategy():
        def select(candidates, n, *, rng):
            assert candidates.vectors is not None  # the loop computed them
            return np.arange(n)

        return select

    yield name
    catalogue.REGISTRY.pop((*registry.strategies.namespace, name), None)


@pytest.mark.parametrize(
    "strategy,vectors",
    [("random", False), ("margin", False), ("diverse", True), ("spread_out", True)],
)
def test_loop_computes_what_the_strategy_declares(strategy, vectors, spread_out):
    # Vectors are computed only for a strategy that declares it needs them,
    # a user's registered strategy as well as a built-in one.
    name = spread_out if strategy == "spread_out" else strategy
    loop = make_loop(strategy=name)
    made: list[int] = []
    real = loop._vectors
    loop._vectors = lambda docs: made.append(1) or real(docs)
    assert len(loop.select(4)) == 4
    assert bool(made) == vectors
