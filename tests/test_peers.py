import dataclasses
import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import srsly
from hypothesis import given, settings
from hypothesis import strategies as st

import spacy_al.simulate.textcat as simulate_module
from spacy_al.benchmarks import peers
from spacy_al.benchmarks.peers import (
    PEERS,
    LabelSpace,
    available_peers,
    full_data_score_peer,
    run_peer,
    seed_indices,
)
from spacy_al.simulate.runner import SimulationConfig
from spacy_al.simulate.textcat import gold_set, infer_labels, run_one

AVAILABLE = [name for name, reason in available_peers().items() if reason is None]
# One peer per model (LinearSVC through small-text; LogisticRegression refit by us)
ONE_PER_MODEL = [
    n for n in ("small-text-breaking-ties", "modal-margin") if n in AVAILABLE
]
SEED_SIZE, BATCH_SIZE, BUDGET = 20, 10, 60


@pytest.fixture(scope="module")
def sms(corpora_dir):
    """400 pool texts and 200 test texts of SMS spam, deduplicated as simulate does."""
    corpus = corpora_dir / "sms_spam"
    train = gold_set(
        list(itertools.islice(srsly.read_jsonl(corpus / "train.jsonl"), 400)),
        what="TRAIN",
    )
    test = gold_set(
        list(itertools.islice(srsly.read_jsonl(corpus / "test.jsonl"), 200)),
        what="EVAL",
    )
    return train, test, list(infer_labels(train, test))


def _args(sms):
    train, test, labels = sms
    return (
        [t["text"] for t in train.tasks],
        train.gold,
        [t["text"] for t in test.tasks],
        test.gold,
        labels,
    )


@pytest.mark.parametrize("name", AVAILABLE)
def test_peers_curve_runs_from_seed_set_to_budget(sms, name):
    args = _args(sms)
    idx = seed_indices(len(args[0]), SEED_SIZE, 0)
    curve = run_peer(
        name,
        *args,
        seed_indices=idx,
        batch_size=BATCH_SIZE,
        budget=BUDGET,
        positive_label="spam",
    )
    assert [n for n, _ in curve] == list(range(SEED_SIZE, BUDGET + 1, BATCH_SIZE))
    assert all(0.0 <= score <= 1.0 for _, score in curve)


@pytest.mark.parametrize("name", ONE_PER_MODEL)
def test_peers_budget_not_a_multiple_of_batch_size_stops_at_budget(sms, name):
    args = _args(sms)
    curve = run_peer(
        name,
        *args,
        seed_indices=seed_indices(len(args[0]), 20, 1),
        batch_size=15,
        budget=42,
    )
    assert [n for n, _ in curve] == [20, 35, 42]


@pytest.mark.parametrize("name", AVAILABLE)
def test_peers_start_from_the_seed_set_given(sms, name):
    """All-ham seeds can't find spam (F1 0); a mixed seed set of the same size can."""
    train, _, _ = sms
    args = _args(sms)
    ham = [i for i, g in enumerate(train.gold) if g == ["ham"]][:20]
    spam = [i for i, g in enumerate(train.gold) if g == ["spam"]][:10]
    first = {
        kind: run_peer(
            name,
            *args,
            seed_indices=idx,
            batch_size=10,
            budget=20,
            positive_label="spam",
        )
        for kind, idx in (("ham", ham), ("mixed", ham[:10] + spam))
    }
    assert first["ham"] == [(20, 0.0)]
    assert first["mixed"][0][0] == 20 and first["mixed"][0][1] > 0.0


def test_peers_seed_indices_are_the_seed_set_simulate_uses(sms, monkeypatch):
    train, test, labels = sms
    answered = []
    seed_answer = simulate_module.seed_answer

    def record(task, gold):
        answered.append(task["_input_hash"])
        return seed_answer(task, gold)

    monkeypatch.setattr(simulate_module, "seed_answer", record)
    config = SimulationConfig(
        strategies=("random",),
        seed_size=SEED_SIZE,
        budget=SEED_SIZE,
        seeds=1,
        labels=tuple(labels),
        positive_label="spam",
    )
    curve = run_one(train, test, config, "random", 3)
    ours = [
        train.tasks[i]["_input_hash"]
        for i in seed_indices(len(train.tasks), SEED_SIZE, 3)
    ]
    assert answered == ours
    assert curve[0][0] == SEED_SIZE


@pytest.mark.parametrize("name", ONE_PER_MODEL)
def test_peers_full_data_score_is_a_score(sms, name):
    score = full_data_score_peer(name, *_args(sms), positive_label="spam")
    assert 0.0 <= score <= 1.0


def test_peers_missing_package_is_reported_not_raised(monkeypatch):
    missing = dataclasses.replace(
        PEERS["modal-margin"], module="no_such_module_for_spacy_al"
    )
    monkeypatch.setitem(peers.PEERS, "modal-margin", missing)
    status = available_peers()
    assert "[E701]" in status["modal-margin"]
    assert "pip install" in status["modal-margin"]
    assert status["sklearn-random"] is None


def test_peers_running_a_missing_peer_raises_import_error(sms, monkeypatch):
    missing = dataclasses.replace(
        PEERS["modal-margin"], module="no_such_module_for_spacy_al"
    )
    monkeypatch.setitem(peers.PEERS, "modal-margin", missing)
    with pytest.raises(ImportError, match="E701"):
        run_peer(
            "modal-margin", *_args(sms), seed_indices=[0, 1], batch_size=1, budget=3
        )


def test_peers_unknown_peer_names_the_known_ones(sms):
    with pytest.raises(ValueError, match=r"E700.*small-text-entropy"):
        run_peer("prodigy", *_args(sms), seed_indices=[0, 1], batch_size=1, budget=3)


@pytest.mark.parametrize("idx", [[], [0, 0, 1], [-1, 2], [10_000], [0.5, 1.0]], ids=str)
def test_peers_bad_seed_indices_are_rejected(sms, idx):
    with pytest.raises(ValueError, match="E704"):
        run_peer(
            "sklearn-random", *_args(sms), seed_indices=idx, batch_size=1, budget=3
        )


def test_peers_multilabel_gold_is_rejected(sms):
    texts, gold, eval_texts, eval_gold, labels = _args(sms)
    gold = [["ham", "spam"]] + gold[1:]
    with pytest.raises(ValueError, match="E702"):
        run_peer(
            "sklearn-random",
            texts,
            gold,
            eval_texts,
            eval_gold,
            labels,
            seed_indices=[0, 1],
            batch_size=1,
            budget=3,
        )


@settings(max_examples=15, deadline=None)
@given(
    y=st.lists(st.integers(0, 3), min_size=2, max_size=12),
    data_seed=st.integers(0, 2**16),
)
def test_peers_label_space_gives_every_label_a_column(y, data_seed):
    """Probabilities are (n, n_classes) rows summing to 1, 0 for unseen labels."""
    rng = np.random.default_rng(data_seed)
    X = sp.csr_matrix(rng.random((len(y), 6)) * (rng.random((len(y), 6)) > 0.5))
    X_new = sp.csr_matrix(rng.random((5, 6)))
    model = LabelSpace(
        peers._base_estimator("logistic-regression", 0), 5, trim_features=True
    ).fit(X, y)
    probs = model.predict_proba(X_new)
    assert probs.shape == (5, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    unseen = sorted(set(range(5)) - set(y))
    assert np.all(probs[:, unseen] == 0.0)
    if len(set(y)) == 1:
        assert np.all(model.predict(X_new) == y[0])


def test_peers_trimmed_features_give_the_same_model():
    rng = np.random.default_rng(0)
    X = sp.random(40, 30, density=0.1, random_state=1, format="csr")
    y = rng.integers(0, 3, size=40)
    X_new = sp.random(10, 30, density=0.5, random_state=2, format="csr")
    probs = [
        LabelSpace(
            peers._base_estimator("logistic-regression", 0), 3, trim_features=trim
        )
        .fit(X, y)
        .predict_proba(X_new)
        for trim in (False, True)
    ]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-4)


@pytest.mark.skipif("small-text-random" not in AVAILABLE, reason="small-text missing")
def test_peers_small_text_random_repeats_with_its_seed(sms):
    """small-text's random questions come from the run's seed, not numpy's
    global generator: the same seed gives the same curve, another seed another."""
    args = _args(sms)
    idx = seed_indices(len(args[0]), SEED_SIZE, 0)

    def curve(seed):
        np.random.seed(seed + 7)  # the global generator must not matter
        return run_peer(
            "small-text-random",
            *args,
            seed_indices=idx,
            batch_size=BATCH_SIZE,
            budget=BUDGET,
            positive_label="spam",
            seed=seed,
        )

    assert curve(3) == curve(3)
    assert curve(3) != curve(4)


@pytest.mark.parametrize(
    "name", [n for n in ("small-text-random", "sklearn-random") if n in AVAILABLE]
)
def test_peers_random_asks_the_texts_simulate_random_asks(sms, monkeypatch, name):
    """Our random and the peers' random, given one seed, ask the same texts in
    the same order, so the difference of their curves is the learners'."""
    train, test, labels = sms
    position = {t["_input_key"]: i for i, t in enumerate(train.tasks)}
    ours: list[int] = []
    oracle = simulate_module.oracle_answer

    def record(task, gold, **kwargs):
        ours.append(position[task["_input_key"]])
        return oracle(task, gold, **kwargs)

    monkeypatch.setattr(simulate_module, "oracle_answer", record)
    config = SimulationConfig(
        strategies=("random",),
        seed_size=SEED_SIZE,
        batch_size=BATCH_SIZE,
        budget=BUDGET,
        seeds=1,
        labels=tuple(labels),
        positive_label="spam",
    )
    run_one(train, test, config, "random", 3)
    theirs: list[int] = []
    make = peers._learner

    def recording(peer, data, seed):
        learner = make(peer, data, seed)
        query = learner.query

        def asked(n):
            picked = query(n)
            theirs.extend(int(i) for i in picked)
            return picked

        learner.query = asked
        return learner

    monkeypatch.setattr(peers, "_learner", recording)
    run_peer(
        name,
        *_args(sms),
        seed_indices=seed_indices(len(train.tasks), SEED_SIZE, 3),
        batch_size=BATCH_SIZE,
        budget=BUDGET,
        positive_label="spam",
        seed=3,
    )
    assert len(ours) == BUDGET - SEED_SIZE
    assert theirs == ours
    seed_set = set(seed_indices(len(train.tasks), SEED_SIZE, 3).tolist())
    assert not seed_set & set(ours)
