from __future__ import annotations

import gc
import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
import srsly
import streamlit
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from spacy.tokens import Span
from spacy_al.recipes.ner import correct as ner_correct
from spacy_al.recipes.textcat import teach
from streamlit.testing.v1 import AppTest

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve import launcher as server
from spacy_al.serve.feed import Feed
from spacy_al.stopping import StabilizingPredictions, sample_stop_set, stop_set_labels
from spacy_al.updater import CommitteeModel

PREDS = np.array([0, 1, 2, 0, 1, 2, 0, 1])


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_stopping_identical_predictions_stop_after_window_plus_one(
    window: int,
) -> None:
    signal = StabilizingPredictions(window=window)
    assert signal.update(PREDS) is None  # nothing to compare the first model with
    for n_updates in range(2, window + 2):
        assert signal.should_stop is False
        assert signal.update(PREDS.copy()) == 1.0
        assert signal.n_updates == n_updates
    assert signal.should_stop is True
    assert signal.stop_index == window + 1 == signal.n_updates
    assert signal.history == [1.0] * window
    assert signal.mean_kappa == 1.0


def test_stopping_defaults_follow_the_paper() -> None:
    signal = StabilizingPredictions()
    assert (signal.window, signal.threshold) == (3, 0.99)
    for _ in range(3):
        signal.update(PREDS)
    assert signal.should_stop is False and signal.mean_kappa is None
    signal.update(PREDS)
    assert signal.should_stop is True and signal.stop_index == 4


def test_stopping_alternating_predictions_never_stop() -> None:
    signal = StabilizingPredictions()
    binary = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    for step in range(30):
        kappa = signal.update(binary if step % 2 == 0 else 1 - binary)
        assert signal.should_stop is False
    assert kappa == -1.0  # every label flips: complete disagreement
    assert signal.history == [-1.0] * 29
    assert signal.stop_index is None


def test_stopping_constant_predictions_never_stop() -> None:
    signal = StabilizingPredictions(window=2)
    zeros, ones = np.zeros(5, dtype=int), np.ones(5, dtype=int)
    signal.update(zeros)
    # kappa is 0/0 for two identical constant predictions: counted as agreement 1.0
    assert signal.update(zeros) == 1.0
    # every example changes its label: no agreement at all
    assert signal.update(ones) == 0.0
    assert signal.update(ones) == 1.0
    assert signal.should_stop is False  # mean of [0.0, 1.0]
    for _ in range(5):  # one label for everything: the model tells nothing apart
        assert signal.update(ones) == 1.0
    assert signal.mean_kappa == 1.0 and signal.varied is False
    assert signal.should_stop is False and signal.stop_index is None
    mixed = np.array([1, 1, 0, 1, 1])
    assert signal.update(mixed) == 0.0  # all "1" vs mostly "1": chance agreement
    assert signal.update(mixed) == 1.0
    assert signal.should_stop is False  # the change to mixed is in the window
    assert signal.update(mixed) == 1.0
    assert signal.should_stop is True and signal.stop_index == signal.n_updates == 12


def test_stopping_kappa_is_cohens_on_the_stop_set() -> None:
    signal = StabilizingPredictions()
    signal.update([0, 1, 0, 2, 1])
    assert signal.update([0, 1, 0, 2, 0]) == pytest.approx(0.6875)


def test_stopping_uses_the_mean_of_the_last_window() -> None:
    signal = StabilizingPredictions(window=3, threshold=0.9)
    changed = PREDS.copy()
    changed[:3] = [2, 2, 2]
    signal.update(PREDS)
    low = signal.update(changed)
    signal.update(changed)
    signal.update(changed)
    assert signal.history == [low, 1.0, 1.0] and low < 0.7
    assert signal.should_stop is ((low + 2) / 3 >= 0.9) is False
    signal.update(changed)  # the low kappa leaves the window
    assert signal.should_stop is True and signal.stop_index == 5
    signal.update(PREDS)  # a later change doesn't undo where it first stopped
    assert signal.should_stop is False and signal.stop_index == 5


def test_stopping_multilabel_rows_are_categories() -> None:
    flags = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    signal = StabilizingPredictions(window=1)
    signal.update(flags)
    assert signal.update(flags.copy()) == 1.0
    other = flags.copy()
    other[0] = [1, 1]  # one example's label set changes
    # 4 examples, 4 categories; po = 3/4, pe = (1*0 + 1*1 + 1*2 + 1*1) / 16 = 1/4
    assert signal.update(other) == pytest.approx((3 / 4 - 1 / 4) / (1 - 1 / 4))


def test_stopping_stop_set_must_stay_fixed() -> None:
    signal = StabilizingPredictions()
    signal.update(PREDS)
    with pytest.raises(ValueError, match=r"\[E757\].*cover 7 examples.*covered 8"):
        signal.update(PREDS[:7])
    assert signal.n_updates == 1 and signal.history == []


@pytest.mark.parametrize(
    "predictions",
    [[], [[[0]]], [0.5, 1.0], ["a", "b"], [np.nan, 1.0], 3],
    ids=["empty", "3-D", "fractional", "strings", "nan", "scalar"],
)
def test_stopping_rejects_bad_predictions(predictions: Any) -> None:
    with pytest.raises(ValueError, match=r"\[E756\]"):
        StabilizingPredictions().update(predictions)


def test_stopping_accepts_whole_float_and_bool_predictions() -> None:
    signal = StabilizingPredictions(window=1)
    signal.update(np.array([0.0, 1.0, 1.0]))
    assert signal.update(np.array([False, True, True])) == 1.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.99"}, "threshold"),
    ],
)
def test_stopping_checks_its_settings(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\[E755\] '{name}'"):
        StabilizingPredictions(**kwargs)


def test_stopping_state_survives_a_restart() -> None:
    signal = StabilizingPredictions(window=2)
    changed = PREDS.copy()
    changed[0] = 2
    for preds in (PREDS, changed, changed):
        signal.update(preds)
    state = json.loads(json.dumps(signal.to_dict()))
    restored = StabilizingPredictions.from_dict(state)
    assert restored.history == signal.history and restored.n_updates == 3
    assert restored.update(changed) == signal.update(changed) == 1.0
    assert restored.should_stop is signal.should_stop is True
    assert restored.stop_index == signal.stop_index == 4
    with pytest.raises(ValueError, match=r"\[E758\]"):
        StabilizingPredictions.from_dict({"window": 3})


def test_stopping_state_keeps_multilabel_predictions() -> None:
    flags = np.array([[1, 0], [0, 1]])
    signal = StabilizingPredictions(window=1)
    signal.update(flags)
    restored = StabilizingPredictions.from_dict(
        json.loads(json.dumps(signal.to_dict()))
    )
    assert restored.update(flags) == 1.0 and restored.should_stop


def test_stopping_sample_stop_set() -> None:
    first = sample_stop_set(10_000, size=2000, seed=3)
    assert len(first) == len(set(first.tolist())) == 2000
    assert first.tolist() == sorted(first.tolist()) and first.max() < 10_000
    assert np.array_equal(first, sample_stop_set(10_000, size=2000, seed=3))
    assert not np.array_equal(first, sample_stop_set(10_000, size=2000, seed=4))
    assert sample_stop_set(5, size=2000).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"\[E755\] 'size'"):
        sample_stop_set(10, size=0)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.integers(0, 2), min_size=6, max_size=6), min_size=1, max_size=12
    ),
    window=st.integers(1, 4),
    threshold=st.floats(0.0, 1.0),
)
def test_stopping_signal_is_the_windowed_mean(
    runs: list[list[int]], window: int, threshold: float
) -> None:
    signal = StabilizingPredictions(window=window, threshold=threshold)
    first_stop = None
    for n, preds in enumerate(runs, start=1):
        kappa = signal.update(preds)
        assert (kappa is None) is (n == 1)
        assert kappa is None or -1.0 <= kappa <= 1.0
        last = signal.history[-window:]
        varied = len(set(preds)) > 1
        expected = len(last) == window and float(np.mean(last)) >= threshold and varied
        assert signal.should_stop is expected
        if expected and first_stop is None:
            first_stop = n
    assert len(signal.history) == len(runs) - 1
    assert signal.stop_index == first_stop


def test_stopping_a_learning_model_stabilizes() -> None:
    # A real learner: logistic regression on ever more labelled examples of two
    # overlapping Gaussian classes, predicting a fixed unlabelled stop set.
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [1.5, 1.0]])
    y = rng.integers(0, 2, size=3000)
    x = centers[y] + rng.normal(size=(3000, 2))
    stop_set = sample_stop_set(3000, size=1000, seed=1)
    train = np.setdiff1d(np.arange(3000), stop_set)
    signal = StabilizingPredictions()
    sizes = list(range(10, 2001, 10))
    for size in sizes:
        model = LogisticRegression().fit(x[train[:size]], y[train[:size]])
        signal.update(model.predict(x[stop_set]))
        if signal.should_stop:
            break
    assert signal.should_stop, "predictions never stabilized"
    assert signal.stop_index is not None and signal.stop_index < len(sizes)
    assert np.mean(signal.history[:3]) < np.mean(signal.history[-3:])


# --- the signal in the labelling server's feed -----------------------------------

SUPPORT = Path(corpus_path("support.jsonl"))
GOLD = {eg["text"]: eg["label"] for eg in srsly.read_jsonl(SUPPORT)}
WAIT = 30.0


def _wait_for(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _feed(db_url: str, *, arch: str | None = None, **kwargs: Any) -> Feed:
    extra = {"arch": arch} if arch else {}
    comps = teach(
        dataset="stop_test",
        source=SUPPORT,
        label=LABELS,
        db=db_url,
        batch_size=4,
        **extra,
    )
    return Feed.from_components(comps, **kwargs)


def _answer_batch(feed: Feed) -> None:
    """Four careful answers (a reject names the right label): one update."""
    n_points = len(feed.stats()["stopping"]["points"])
    for _ in range(4):
        task = feed.next_task("alice")
        assert task is not None
        gold = GOLD[task["text"]]
        answer = "accept" if task["label"] == gold else "reject"
        feed.answer("alice", {**task, "answer": answer, "accept": [gold]})
    assert _wait_for(lambda: len(feed.stats()["stopping"]["points"]) > n_points)


def test_stopping_feed_says_stop_once_the_model_stops_changing(db_url) -> None:
    # The bag-of-words learns by gradient steps, so a learn rate of 0 freezes it.
    feed = _feed(db_url, arch="bow", stop_set_size=150)
    try:
        assert _wait_for(lambda: feed.stats()["stopping"]["stop_set_size"] == 150)
        for _ in range(4):  # the model learns: its predictions move
            _answer_batch(feed)
        stopping = feed.stats()["stopping"]
        assert (stopping["window"], stopping["threshold"]) == (3, 0.99)
        assert [p["version"] for p in stopping["points"]] == [1, 2, 3, 4]
        assert [p["answers"] for p in stopping["points"]] == [4, 8, 12, 16]
        assert min(p["kappa"] for p in stopping["points"]) < 0.99
        assert stopping["should_stop"] is False and stopping["stopped_at"] is None
        # From now on the updates change nothing (learn rate 0): the same
        # predictions on the stop set, kappa 1.0, and after 3 of them: stop.
        feed.loop.updater.optimizer.learn_rate = 0.0
        for _ in range(3):
            assert feed.stats()["stopping"]["should_stop"] is False
            _answer_batch(feed)
        stopping = feed.stats()["stopping"]
        assert [p["kappa"] for p in stopping["points"][-3:]] == [1.0, 1.0, 1.0]
        assert stopping["mean_kappa"] == 1.0 and stopping["should_stop"] is True
        assert stopping["stopped_at"] == {"version": 7, "answers": 28}
    finally:
        feed.close()


def test_stopping_feed_signal_survives_a_restart(db_url) -> None:
    feed = _feed(db_url, stop_set_size=50, checkpoint_seconds=0)
    assert _wait_for(lambda: feed.stats()["stopping"]["stop_set_size"] == 50)
    _answer_batch(feed)
    _answer_batch(feed)
    before = feed.stats()["stopping"]
    feed.close()
    again = _feed(db_url, stop_set_size=50)
    try:
        assert again.stats()["version"] == 2  # resumed from the checkpoint
        assert _wait_for(lambda: again.stats()["stopping"]["stop_set_size"] == 50)
        assert again.stats()["stopping"]["points"] == before["points"]
        _answer_batch(again)
        points = again.stats()["stopping"]["points"]
        assert [p["version"] for p in points] == [1, 2, 3]
    finally:
        again.close()
    other = _feed(db_url, stop_set_size=40)  # another stop set: a new signal
    try:
        assert _wait_for(lambda: other.stats()["stopping"]["stop_set_size"] == 40)
        assert other.stats()["stopping"]["points"] == []
    finally:
        other.close()


# --- the signal in the app's sidebar ------------------------------------------------

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _sidebar_html(at: AppTest) -> str:
    return "\n".join(element.proto.body for element in at.sidebar.get("html"))


def _answer_in_app(at: AppTest) -> None:
    """Answer the example shown as a careful annotator would, in the app."""
    body = "\n".join(element.proto.body for element in at.get("html"))
    text = html.unescape(body.split('class="sal-text">', 1)[1].split("</div>", 1)[0])
    suggested = body.split('class="sal-label">', 1)[1].split("<", 1)[0]
    gold = GOLD[text]
    if gold == suggested:
        at.button(key="accept").click().run()
    else:
        at.button(key=f"label-{LABELS.split(',').index(gold)}").click().run()


def _running_feed(dataset: str) -> Feed:
    """The feed the app built (in this process): AppTest runs the script here."""
    feeds = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, Feed) and obj.dataset == dataset and not obj._stop
    ]
    assert len(feeds) == 1
    return feeds[0]


def test_stopping_app_sidebar_shows_the_signal(monkeypatch, db_url) -> None:
    args = {
        "dataset": "stop_app",
        "source": str(SUPPORT),
        "label": LABELS,
        "db": db_url,
        "batch_size": 4,
        "arch": "bow",  # learns by gradient steps: a learn rate of 0 freezes it
    }
    for key, value in server.app_env("textcat.teach", args, base={}).items():
        monkeypatch.setenv(key, value)
    streamlit.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=WAIT)
        at.query_params["session"] = "alice"
        at.run()
        feed = _running_feed("stop_app")
        for n_points in range(1, 5):
            for _ in range(4):
                _answer_in_app(at)
            assert _wait_for(
                lambda n=n_points: len(feed.stats()["stopping"]["points"]) == n
            )
        at.run()
        specs = [json.loads(c.proto.spec) for c in at.sidebar.get("vega_lite_chart")]
        titles = [spec["title"] for spec in specs]
        # the learning curve (on the new gold answers), then the signal beside it
        assert titles[-1]["text"] == ["Do predictions still change?"]
        assert len(titles) == 2
        spec = specs[-1]
        kappas = feed.stats()["stopping"]["points"]
        assert [v["kappa"] for v in spec["layer"][0]["data"]["values"]] == [
            p["kappa"] for p in kappas
        ]
        mean = feed.stats()["stopping"]["mean_kappa"]
        assert f"Predictions are still changing: {mean:.3f} of 0.99." in (
            _sidebar_html(at)
        )
        assert "consider stopping" not in _sidebar_html(at)
        # The model stops changing: three updates later the sidebar says stop.
        feed.loop.updater.optimizer.learn_rate = 0.0
        for n_points in range(5, 8):
            for _ in range(4):
                _answer_in_app(at)
            assert _wait_for(
                lambda n=n_points: len(feed.stats()["stopping"]["points"]) == n
            )
        at.run()
        assert (
            "Predictions have stopped changing: consider stopping (1.000 of 0.99). "
            "Agreement between successive models&#x27; predictions on 322 texts, "
            "averaged over the last 3 updates."
        ) in _sidebar_html(at)
    finally:
        streamlit.cache_resource.clear()  # closes the app's feed


def test_stopping_feed_ner_compares_token_tags(db_url, tmp_path) -> None:
    people, orgs = ["Alice Smith", "Bob Jones"], ["Acme", "Initech"]
    path = tmp_path / "ner.jsonl"
    rows = [
        {"text": f"{people[i % 2]} joined {orgs[(i // 2) % 2]} in week {i}."}
        for i in range(20)
    ]
    srsly.write_jsonl(path, rows)

    def gold(text: str) -> list[dict]:
        spans = []
        for names, label in ((people, "PERSON"), (orgs, "ORG")):
            for name in names:
                start = text.find(name)
                if start >= 0:
                    end = start + len(name)
                    spans.append({"start": start, "end": end, "label": label})
        return sorted(spans, key=lambda s: s["start"])

    comps = ner_correct(
        dataset="stop_ner", source=path, label="PERSON,ORG", db=db_url, batch_size=4
    )
    feed = Feed.from_components(comps, stop_set_size=12)
    try:
        assert _wait_for(lambda: feed.stats()["stopping"]["stop_set_size"] == 12)
        for n_points in (1, 2):
            for _ in range(4):
                task = feed.next_task("alice")
                feed.answer(
                    "alice", {**task, "spans": gold(task["text"]), "answer": "accept"}
                )
            assert _wait_for(
                lambda n=n_points: len(feed.stats()["stopping"]["points"]) == n
            )
        stats = feed.stats()
        assert stats["error"] is None
        assert [p["version"] for p in stats["stopping"]["points"]] == [1, 2]
        assert all(-1.0 <= p["kappa"] <= 1.0 for p in stats["stopping"]["points"])
        # one BIO tag per token of the 12 stop-set texts
        n_tokens = sum(len(doc) for doc in feed.progress._stop_docs)
        assert len(feed.progress._stopping.to_dict()["previous"]) == n_tokens > 12
    finally:
        feed.close()


class _Fixed:
    """A stand-in serving model with fixed outputs (the shapes the real ones give)."""

    def __init__(self, *, task: str, out: Any, exclusive: bool = True) -> None:
        self.task, self.out, self.exclusive = task, out, exclusive
        self.labels = ("ORG", "PERSON")

    def predict(self, docs: list) -> np.ndarray:
        return np.asarray(self.out, dtype="f")

    def annotate(self, docs: list) -> list:
        return self.out


def test_stopping_stop_set_labels_textcat_and_committees() -> None:
    probs = [[0.2, 0.8], [0.6, 0.4], [0.55, 0.45]]
    assert stop_set_labels(_Fixed(task="textcat", out=probs), []).tolist() == [1, 0, 0]
    flags = stop_set_labels(_Fixed(task="textcat", out=probs, exclusive=False), [])
    assert flags.tolist() == [[0, 1], [1, 0], [1, 0]]
    other = _Fixed(task="textcat", out=[[0.9, 0.1], [0.1, 0.9], [0.35, 0.65]])
    committee = CommitteeModel([_Fixed(task="textcat", out=probs), other])  # mean
    assert stop_set_labels(committee, []).tolist() == [0, 1, 1]


def test_stopping_stop_set_labels_ner_are_bio_tags_per_token() -> None:
    nlp = spacy.blank("en")
    first = nlp("Alice Smith joined Acme .")
    first.ents = [Span(first, 0, 2, "PERSON"), Span(first, 3, 4, "ORG")]
    second = nlp("Nothing here")
    tags = stop_set_labels(_Fixed(task="ner", out=[first, second]), [])
    # O = 0; ORG: B = 1, I = 2; PERSON: B = 3, I = 4
    assert tags.tolist() == [3, 4, 0, 1, 0, 0, 0]
