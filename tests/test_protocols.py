"""The written contracts between the core parts (spacy_al.protocols) hold."""

from __future__ import annotations

import numpy as np
import pytest

from spacy_al.loop import StrategySpec
from spacy_al.ner.loop import NERLoop
from spacy_al.ner.model import NERModel, build_ner
from spacy_al.pool import Pool
from spacy_al.protocols import LearningLoop, Loop, Model, Served, Updater
from spacy_al.serve.feed import Feed
from spacy_al.store import Store
from spacy_al.team.review import ReviewLoop
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Committee, CommitteeModel
from spacy_al.updater import Updater as OnlineUpdater

LABELS = ["ham", "spam"]
TEXTS = [f"see you at {h} tonight" for h in range(6, 12)] + [
    f"WIN a prize now, call 0800{n}" for n in range(100, 106)
]


@pytest.fixture(scope="module")
def textcat_model() -> TextcatModel:
    return TextcatModel(build_textcat(LABELS))


@pytest.fixture(scope="module")
def ner_model() -> NERModel:
    return NERModel(build_ner(["PERSON"], seed=0))


@pytest.fixture
def review_loop(db_url):
    store = Store(db_url)
    tasks = [
        {"text": t, "_input_hash": i, "_task_hash": i} for i, t in enumerate(TEXTS)
    ]
    loop = ReviewLoop(
        tasks, store=store, dataset="news_review", labels=LABELS, exclusive=True
    )
    yield loop
    store.close()


def test_protocols_models_and_what_they_serve(textcat_model, ner_model):
    for model in (textcat_model, ner_model):
        assert isinstance(model, Model) and isinstance(model.snapshot(), Model)
        assert model.task in ("textcat", "ner")
        assert model.members == (model,)
    committee = CommitteeModel([textcat_model, textcat_model.snapshot()])
    assert isinstance(committee, Served) and not isinstance(committee, Model)
    # NER's training defaults are declared, not missing: neither taper nor weights.
    assert ner_model.taper == 0 and ner_model.class_weight == 0.0
    assert ner_model.balance_weights([], [], power=1.0) is None


def test_protocols_updaters(textcat_model):
    single = OnlineUpdater(textcat_model)
    committee = Committee.build(textcat_model, size=2)
    for updater in (single, committee):
        assert isinstance(updater, Updater)
    assert (single.n_members, committee.n_members) == (1, 2)
    served, _ = committee.serving()
    assert isinstance(served, CommitteeModel) and len(served.members) == 2
    docs = served.make_docs(TEXTS)
    mean = np.mean([m.predict(docs) for m in served.members], axis=0)
    np.testing.assert_array_equal(served.predict(docs), mean)


def test_protocols_loops(textcat_model, ner_model, review_loop):
    spec = StrategySpec.parse("margin")
    textcat = ActiveLoop(
        Pool({"text": t} for t in TEXTS), OnlineUpdater(textcat_model), spec=spec
    )
    ner = NERLoop(
        Pool({"text": t} for t in TEXTS),
        OnlineUpdater(ner_model),
        spec=StrategySpec.parse("mnlp", task="ner"),
    )
    assert (textcat.task, ner.task) == ("textcat", "ner")
    for loop in (textcat, ner, review_loop):
        assert isinstance(loop, Loop)
    assert isinstance(textcat, LearningLoop) and isinstance(ner, LearningLoop)
    assert not isinstance(review_loop, LearningLoop)


def test_protocols_review_loop_learns_nothing_by_contract(review_loop):
    # No model: version 0, never ready to learn, nothing pending, waiting or in
    # conflict. The feed serves it and takes answers; no curve, no signal.
    loop = review_loop
    assert loop.updater is None and loop.task == "textcat"
    assert (loop.version, loop.n_pending, loop.ready_to_learn) == (0, 0, False)
    feed = Feed(loop, view_id="review", start=False)
    try:
        assert not feed.progress.enabled
        assert feed.poll_reviews() == 0
        tasks = loop.select(2)
        assert [t["text"] for t in tasks] == TEXTS[:2]
        ids = loop.answer(
            [{**tasks[0], "answer": "accept", "accept": ["ham"]}], annotator="lead"
        )
        assert len(ids) == 1 and loop.pool.n_done == 1
        assert loop.pop_targets() == [] and not loop.ready_to_learn
        (stored,) = loop.store.get_answers("news_review")
        assert stored["_review"] is True
    finally:
        feed.close()
