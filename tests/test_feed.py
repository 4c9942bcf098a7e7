"""The shared feed: leases, overlap, several annotators, commits, the trainer."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import srsly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy_al.recipes.ner import correct as ner_correct
from spacy_al.recipes.ner import teach as ner_teach
from spacy_al.recipes.textcat import correct, teach

from spacy_al.corpus import Source
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.errors import SourceError
from spacy_al.pool import Pool
from spacy_al.serve.feed import (
    Feed,
    LeaseError,
    ServingStopped,
    check_annotator,
    make_tokens,
    parse_annotators,
)
from spacy_al.store import Store

SUPPORT = Path(corpus_path("support.jsonl"))
GOLD = {eg["text"]: eg["label"] for eg in srsly.read_jsonl(SUPPORT)}
WAIT = 30.0  # seconds to wait for the background threads, at most


class FakeClock:
    """Lease time that tests move on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def components(db_url: str, *, source: Path = SUPPORT, recipe=teach, **kwargs) -> dict:
    kwargs.setdefault("batch_size", 4)
    return recipe(dataset="feed_test", source=source, label=LABELS, db=db_url, **kwargs)


@pytest.fixture
def make_feed(db_url):
    feeds: list[Feed] = []

    def make(
        *, source: Path = SUPPORT, recipe=teach, recipe_kwargs=None, **kwargs
    ) -> Feed:
        comps = components(
            db_url, source=source, recipe=recipe, **(recipe_kwargs or {})
        )
        feed = Feed.from_components(comps, **kwargs)
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()


@pytest.fixture
def small_source(tmp_path) -> Path:
    path = tmp_path / "small.jsonl"
    texts = [
        "Where is my parcel?",
        "I was charged twice.",
        "The app crashes on start.",
        "How do I reset my password?",
        "The courier left it outside.",
        "Please send an invoice.",
    ]
    srsly.write_jsonl(path, [{"text": t} for t in texts])
    return path


def wait_for(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def answer(feed: Feed, who: str, value: str = "accept", **extra) -> dict:
    task = feed.next_task(who)
    assert task is not None
    feed.answer(who, {**task, "answer": value, **extra})
    return task


def test_feed_annotators_get_different_examples_and_reload_gets_the_same(make_feed):
    feed = make_feed()
    first = {who: feed.next_task(who) for who in ("alice", "bob", "carol")}
    hashes = {task["_input_hash"] for task in first.values()}
    assert len(hashes) == 3
    again = {who: feed.next_task(who)["_input_hash"] for who in first}
    assert again == {who: task["_input_hash"] for who, task in first.items()}


def test_feed_task_shows_score_and_model_version(make_feed):
    task = make_feed().next_task("alice")
    assert task["label"] in LABELS.split(",")
    assert 0.0 <= task["meta"]["score"] <= 1.0
    assert task["_model_version"] == 0


def test_feed_expired_lease_goes_to_the_next_annotator(make_feed):
    clock = FakeClock()
    feed = make_feed(clock=clock, lease_seconds=60)
    held = feed.next_task("alice")
    assert feed.next_task("bob")["_input_hash"] != held["_input_hash"]
    feed.answer("bob", {**feed.next_task("bob"), "answer": "accept"})
    clock.advance(61)
    assert feed.next_task("bob")["_input_hash"] == held["_input_hash"]
    assert feed.next_task("alice")["_input_hash"] != held["_input_hash"]


def test_feed_touch_renews_a_lease(make_feed):
    clock = FakeClock()
    feed = make_feed(clock=clock, lease_seconds=60)
    held = feed.next_task("alice")
    clock.advance(45)
    feed.touch("alice")
    clock.advance(45)
    assert feed.next_task("bob")["_input_hash"] != held["_input_hash"]
    assert feed.next_task("alice")["_input_hash"] == held["_input_hash"]


def test_feed_answer_is_committed_before_it_returns(make_feed, db_url):
    feed = make_feed()
    task = feed.next_task("alice")
    answer_id = feed.answer(
        "alice", {**task, "answer": "reject", "accept": ["SHIPPING"]}
    )
    with Store(db_url) as store:  # a second connection sees the committed row
        stored = store.get_answers("feed_test")
    assert [eg["_id"] for eg in stored] == [answer_id]
    assert stored[0]["answer"] == "reject"
    assert stored[0]["accept"] == ["SHIPPING"]
    assert stored[0]["text"] == task["text"]
    assert stored[0]["_annotator_id"] == "alice"
    assert stored[0]["_model_version"] == 0


@pytest.mark.parametrize(
    "eg,code",
    [
        ({"answer": "maybe"}, "E960"),
        ({"answer": "reject", "accept": ["REFUNDS"]}, "E605"),
        ({"answer": "accept", "_input_key": 12345}, "E603"),
        ({"answer": "accept", "_input_key": [1]}, "E988"),
    ],
)
def test_feed_rejects_a_malformed_answer_and_stores_nothing(
    make_feed, db_url, eg, code
):
    feed = make_feed()
    task = feed.next_task("alice")
    with pytest.raises(ValueError, match=code):
        feed.answer("alice", {**task, **eg})
    with Store(db_url) as store:
        assert store.count_answers("feed_test") == 0


def test_feed_second_click_on_the_same_example_is_ignored(make_feed, db_url):
    feed = make_feed()
    task = feed.next_task("alice")
    assert feed.answer("alice", {**task, "answer": "accept"}) is not None
    assert feed.answer("alice", {**task, "answer": "reject"}) is None
    with Store(db_url) as store:
        assert [eg["answer"] for eg in store.get_answers("feed_test")] == ["accept"]


def test_feed_undo_serves_the_example_again_to_the_same_annotator(make_feed, db_url):
    feed = make_feed()
    task = answer(feed, "alice")
    following = feed.next_task("alice")
    undone = feed.undo("alice")
    assert undone["_input_hash"] == task["_input_hash"]
    assert feed.next_task("alice")["_input_hash"] == task["_input_hash"]
    assert feed.next_task("bob")["_input_hash"] not in {
        task["_input_hash"],
        following["_input_hash"],
    }
    with Store(db_url) as store:
        assert store.count_answers("feed_test") == 0
    assert feed.stats("alice")["you"] == {
        "answers": 0,
        "can_undo": False,
        "finished": False,
    }
    feed.answer("alice", {**undone, "answer": "reject"})
    assert feed.next_task("alice")["_input_hash"] == following["_input_hash"]


def test_feed_undo_takes_back_an_answer_the_model_learnt(make_feed, db_url):
    """Undo isn't stopped by a batch boundary: the learnt answer leaves the store,
    and the answer given instead is queued for the next batch."""
    feed = make_feed(recipe_kwargs={"batch_size": 2})
    answer(feed, "alice")
    second = answer(feed, "alice")
    assert wait_for(lambda: feed.stats()["version"] >= 1)
    assert feed.can_undo("alice")
    undone = feed.undo("alice")
    assert undone["_input_hash"] == second["_input_hash"]
    with Store(db_url) as store:
        assert store.count_answers("feed_test") == 1
    assert feed.stats()["pending"] == 0
    feed.answer("alice", {**undone, "answer": "reject"})
    assert feed.stats()["pending"] == 1
    with Store(db_url) as store:
        [eg] = [
            eg
            for eg in store.get_answers("feed_test")
            if eg["_input_hash"] == second["_input_hash"]
        ]
    assert eg["answer"] == "reject"


def test_feed_trainer_bumps_the_version_and_checkpoints(make_feed, tmp_path):
    feed = make_feed(checkpoint=tmp_path / "ckpt", checkpoint_seconds=0)
    versions = set()
    for i in range(4):
        task = feed.next_task("alice")
        versions.add(task["_model_version"])
        feed.answer("alice", {**task, "answer": "accept" if i % 2 else "reject"})
    assert versions == {0}
    assert wait_for(lambda: feed.stats()["version"] == 1)
    stats = feed.stats()
    assert stats["updates"] == 1 and stats["pending"] == 0
    assert stats["last_update"]["examples"] == 4

    def bob_gets_new_version() -> bool:
        task = feed.next_task("bob")
        if task["_model_version"] == 1:
            return True
        feed.answer("bob", {**task, "answer": "ignore"})  # chosen before the update
        return False

    assert wait_for(bob_gets_new_version)
    feed.close()
    assert srsly.read_json(tmp_path / "ckpt" / "state.json")["version"] == 1


def test_feed_curve_on_the_eval_file(make_feed):
    eval_path = corpus_path("support_eval.jsonl")
    feed = make_feed(recipe_kwargs={"eval_path": Path(eval_path)})
    assert wait_for(lambda: len(feed.stats()["curve"]) == 1)
    for _ in range(4):
        task = feed.next_task("alice")
        feed.answer(
            "alice", {**task, "answer": "reject", "accept": [GOLD[task["text"]]]}
        )
    assert wait_for(lambda: len(feed.stats()["curve"]) == 2)
    stats = feed.stats()
    assert stats["curve_kind"] == "eval"
    assert [p["version"] for p in stats["curve"]] == [0, 1]
    assert [p["answers"] for p in stats["curve"]] == [0, 4]
    assert all(0.0 <= p["score"] <= 1.0 for p in stats["curve"])


def test_feed_progressive_curve_without_eval_file(make_feed):
    feed = make_feed()
    for _ in range(16):  # whatever the batches, at least 13 get learnt
        task = feed.next_task("alice")
        feed.answer(
            "alice", {**task, "answer": "reject", "accept": [GOLD[task["text"]]]}
        )
    assert wait_for(lambda: feed.stats()["curve"])
    stats = feed.stats()
    assert stats["curve_kind"] == "progressive"
    # A point needs 10 gold answers, each scored before the model learnt it.
    assert all(p["answers"] >= 10 and 0.0 <= p["score"] <= 1.0 for p in stats["curve"])
    assert stats["curve"][0]["version"] >= 2


def test_feed_overlap_collects_answers_from_different_annotators(
    make_feed, small_source, db_url
):
    feed = make_feed(source=small_source, overlap=2)
    people = ["alice", "bob", "carol"]
    for _ in range(6):
        for who in people:
            task = feed.next_task(who, timeout=1.0)
            if task is not None:
                feed.answer(who, {**task, "answer": "accept"})
    with Store(db_url) as store:
        rows = store.get_answers("feed_test")
    by_example = Counter(eg["_input_hash"] for eg in rows)
    pairs = Counter((eg["_input_hash"], eg["_annotator_id"]) for eg in rows)
    assert len(by_example) == 6
    assert set(by_example.values()) == {2}
    assert set(pairs.values()) == {1}
    assert all(feed.next_task(who, timeout=0.5) is None for who in people)
    assert feed.stats("alice")["you"]["finished"]


def test_feed_restart_resumes_counts_and_wanted_answers(db_url, small_source):
    first = Feed.from_components(components(db_url, source=small_source), overlap=2)
    task = answer(first, "alice")
    first.close()
    second = Feed.from_components(components(db_url, source=small_source), overlap=2)
    try:
        assert second.stats()["annotators"] == {"alice": 1}
        assert second.next_task("bob")["_input_hash"] == task["_input_hash"]
        assert second.next_task("alice")["_input_hash"] != task["_input_hash"]
    finally:
        second.close()


def test_feed_no_example_served_twice_under_concurrency(make_feed, db_url):
    feed = make_feed()
    served: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            served[who] = []
            for i in range(10):
                task = feed.next_task(who)
                served[who].append(task["_input_hash"])
                feed.answer(
                    who, {**task, "answer": ("accept", "reject", "ignore")[i % 3]}
                )
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"annotator{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = [key for keys in served.values() for key in keys]
    assert len(everything) == len(set(everything)) == 50
    with Store(db_url) as store:
        rows = store.get_answers("feed_test")
    assert sorted(eg["_input_hash"] for eg in rows) == sorted(everything)
    assert feed.stats()["annotators"] == {f"annotator{i}": 10 for i in range(5)}
    assert wait_for(lambda: feed.stats()["version"] >= 1)


def test_feed_next_task_never_scores_the_pool(make_feed):
    feed = make_feed(start=False)
    callers: list[str] = []
    select = feed.loop.select

    def recording_select(*args, **kwargs):
        callers.append(threading.current_thread().name)
        return select(*args, **kwargs)

    feed.loop.select = recording_select
    feed.start()
    for i in range(8):
        answer(feed, "alice", "accept" if i % 2 else "reject")
    # The first selection, and another for the new model version.
    assert wait_for(lambda: feed.stats()["version"] >= 1 and len(callers) >= 2)
    assert set(callers) == {"spacy_al-selector"}


def test_feed_correct_preselects_the_prediction(make_feed):
    feed = make_feed(recipe=correct)
    task = feed.next_task("alice")
    assert feed.view_id == "choice" and feed.preselect
    assert len(task["accept"]) == 1 and task["accept"][0] in LABELS.split(",")
    assert set(task["meta"]["scores"]) == set(LABELS.split(","))
    assert task["accept"][0] == max(
        task["meta"]["scores"], key=task["meta"]["scores"].get
    )


def test_feed_correct_preselects_from_the_selections_own_scores(make_feed, monkeypatch):
    # A selection is thousands of tasks: their labels come from the scores it
    # computed, not from running the model over them all again.
    import spacy_al.serve.selector as selector

    calls = []
    monkeypatch.setattr(
        selector, "serving_probs", lambda *a, **k: calls.append(a) or 1 / 0
    )
    feed = make_feed(recipe=correct)
    task = feed.next_task("alice")
    scores = task["meta"]["scores"]
    assert set(scores) == set(LABELS.split(",")) and not calls
    assert task["accept"] == [max(scores, key=scores.get)]


def test_feed_tokens_restrict_who_may_label(make_feed):
    tokens = make_tokens(["alice", "bob"])
    feed = make_feed(tokens=tokens)
    assert feed.restricted and feed.annotators == ["alice", "bob"]
    assert feed.check_token("alice", tokens["alice"])
    assert not feed.check_token("alice", tokens["bob"])
    assert not feed.check_token("alice", None)
    assert not feed.check_token("mallory", tokens["alice"])
    with pytest.raises(PermissionError, match="E602"):
        feed.next_task("mallory")
    assert feed.next_task("bob") is not None


def test_feed_annotators_from_the_recipe_get_tokens(db_url):
    comps = components(db_url, annotators="alice, bob")
    feed = Feed.from_components(comps, start=False)
    try:
        assert sorted(feed.tokens) == ["alice", "bob"]
        assert len(set(feed.tokens.values())) == 2
    finally:
        feed.close()


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there", None])
def test_feed_check_annotator_rejects_bad_names(name):
    with pytest.raises(ValueError, match="E601"):
        check_annotator(name)


def test_feed_parse_annotators_keeps_order_without_repeats():
    assert parse_annotators(" alice,bob,,alice ") == ["alice", "bob"]


@pytest.mark.parametrize(
    "kwargs", [{"overlap": 0}, {"lease_seconds": 0}, {"prefetch": 0}]
)
def test_feed_rejects_bad_settings(db_url, kwargs):
    with pytest.raises(ValueError, match="E606"):
        Feed.from_components(components(db_url), start=False, **kwargs)


@pytest.fixture(scope="module")
def prop_source(tmp_path_factory):
    """One loop for the property test (a feed per example would be slow)."""
    path = tmp_path_factory.mktemp("prop") / "pool.jsonl"
    srsly.write_jsonl(
        path, [{"text": f"message number {i} about things"} for i in range(40)]
    )
    return path


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(["next", "answer", "answer", "undo", "expire"]),
    ),
    min_size=5,
    max_size=40,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=ACTIONS, overlap=st.integers(1, 3))
def test_feed_serving_invariants_hold_for_any_order(
    tmp_path, prop_source, actions, overlap
):
    clock = FakeClock()
    db = f"sqlite:///{tmp_path / f'prop-{time.monotonic_ns()}.db'}"
    comps = components(db, source=prop_source, batch_size=1000)
    feed = Feed.from_components(comps, overlap=overlap, clock=clock, lease_seconds=60)
    answered: dict[str, list[int]] = {}
    try:
        for who, action in actions:
            if action == "expire":
                clock.advance(61)
                continue
            if action == "undo":
                undone = feed.undo(who)
                if undone is not None:
                    answered[who].remove(undone["_input_hash"])
                continue
            task = feed.next_task(who, timeout=2.0)
            assert task is not None
            # Never asked about what you answered; never more holders than overlap.
            assert task["_input_hash"] not in answered.get(who, [])
            holders = feed._leases.holders(task["_input_hash"])
            done = feed._answered_by.get(task["_input_hash"], set())
            assert len(holders) + len(done) <= overlap
            if action == "answer":
                feed.answer(who, {**task, "answer": "accept"})
                answered.setdefault(who, []).append(task["_input_hash"])
        with Store(db) as store:
            rows = store.get_answers("feed_test")
        pairs = Counter((eg["_input_hash"], eg["_annotator_id"]) for eg in rows)
        assert set(pairs.values()) <= {1}
        assert (
            max(Counter(eg["_input_hash"] for eg in rows).values(), default=0)
            <= overlap
        )
        assert len(rows) == sum(len(keys) for keys in answered.values())
    finally:
        feed.close()


# --- NER ---------------------------------------------------------------------------

NER_LABELS = "PERSON,ORG"
NER_NAMES = ("Alice Smith", "Bob Jones", "Carol White", "Dan Brown")
NER_ORGS = ("Acme", "Globex", "Initech", "Umbrella")


def ner_gold(text: str) -> list[dict]:
    """The gold entities of a text of :func:`ner_source` (character offsets)."""
    spans = []
    for names, label in ((NER_NAMES, "PERSON"), (NER_ORGS, "ORG")):
        for name in names:
            start = text.find(name)
            if start >= 0:
                spans.append({"start": start, "end": start + len(name), "label": label})
    return sorted(spans, key=lambda s: s["start"])


@pytest.fixture
def ner_source(tmp_path) -> Path:
    path = tmp_path / "ner.jsonl"
    rows = [
        {"text": f"{NER_NAMES[i % 4]} joined {NER_ORGS[(i // 4) % 4]} in week {i}."}
        for i in range(24)
    ]
    srsly.write_jsonl(path, rows)
    return path


@pytest.fixture
def make_ner_feed(db_url):
    feeds: list[Feed] = []

    def make(source: Path, recipe=ner_correct, **kwargs) -> Feed:
        comps = recipe(
            dataset="feed_ner",
            source=source,
            label=NER_LABELS,
            db=db_url,
            batch_size=4,
            **kwargs,
        )
        feed = Feed.from_components(comps)
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()


def test_feed_ner_correct_without_eval_learns(make_ner_feed, ner_source, db_url):
    feed = make_ner_feed(ner_source)
    assert feed.view_id == "ner_manual" and not feed.preselect
    for _ in range(12):
        task = feed.next_task("alice")
        feed.answer(
            "alice", {**task, "spans": ner_gold(task["text"]), "answer": "accept"}
        )
    # 12 answers: three batches of 4, learnt in one to three updates
    assert wait_for(lambda: feed.stats()["pending"] == 0 and feed.stats()["curve"])
    stats = feed.stats()
    assert stats["error"] is None and stats["curve_kind"] == "progressive"
    assert stats["version"] >= 1 and stats["last_update"]["examples"] >= 4
    assert stats["curve_metric"] == "entity F1"
    assert all(0.0 <= p["score"] <= 1.0 for p in feed.stats()["curve"])
    with Store(db_url) as store:
        stored = store.get_answers("feed_ner")
    assert [s["label"] for s in stored[0]["spans"]] == [
        s["label"] for s in ner_gold(stored[0]["text"])
    ]


def test_feed_ner_curve_on_an_eval_file(make_ner_feed, ner_source, tmp_path):
    eval_path = tmp_path / "ner_eval.jsonl"
    texts = ["Bob Jones joined Initech in week 99.", "Carol White left Acme."]
    srsly.write_jsonl(eval_path, [{"text": t, "spans": ner_gold(t)} for t in texts])
    feed = make_ner_feed(ner_source, eval_path=eval_path)
    assert wait_for(lambda: len(feed.stats()["curve"]) == 1)
    for _ in range(4):
        task = feed.next_task("alice")
        feed.answer(
            "alice", {**task, "spans": ner_gold(task["text"]), "answer": "accept"}
        )
    assert wait_for(lambda: len(feed.stats()["curve"]) == 2)
    stats = feed.stats()
    assert stats["curve_kind"] == "eval" and stats["error"] is None
    assert [p["version"] for p in stats["curve"]] == [0, 1]


@pytest.mark.parametrize(
    "spans,code",
    [
        ([{"start": 0, "end": 3, "label": "PLACE"}], "E615"),
        ([{"start": 0, "end": 500, "label": "PERSON"}], "E615"),
        (
            [
                {"start": 0, "end": 5, "label": "PERSON"},
                {"start": 2, "end": 8, "label": "ORG"},
            ],
            "E615",
        ),
        ("Alice", "E614"),
    ],
)
def test_feed_ner_rejects_bad_spans_and_stores_nothing(
    make_ner_feed, ner_source, db_url, spans, code
):
    feed = make_ner_feed(ner_source)
    task = feed.next_task("alice")
    with pytest.raises(ValueError, match=code):
        feed.answer("alice", {**task, "spans": spans, "answer": "accept"})
    with Store(db_url) as store:
        assert store.get_answers("feed_ner") == []


def test_feed_ner_teach_answer_is_about_one_span(
    make_ner_feed, ner_source, db_url, tmp_path
):
    # With patterns, ner.teach suggests single entities from the first question
    # (without them, an untrained model's cold start asks for whole analyses).
    patterns = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(patterns, [{"label": "ORG", "pattern": org} for org in NER_ORGS])
    feed = make_ner_feed(ner_source, recipe=ner_teach, patterns=patterns)
    task = feed.next_task("alice")
    assert feed.view_id == "ner" and len(task["spans"]) == 1
    with pytest.raises(ValueError, match="E616"):
        feed.answer("alice", {**task, "spans": [], "answer": "accept"})
    feed.answer("alice", {**task, "answer": "reject"})
    with Store(db_url) as store:
        [stored] = store.get_answers("feed_ner")
    assert stored["answer"] == "reject" and stored["spans"] == task["spans"]


# --- a bad line late in the source (#11, fault 4) ------------------------------------


@pytest.fixture
def late_bad_line(tmp_path, monkeypatch) -> tuple[Path, int]:
    """A source of 700 good lines and a bad one at the end, read in chunks of
    256 (the bad line's chunk holds 188 good lines)."""
    monkeypatch.setattr(Pool, "chunk_size", 256)
    path = tmp_path / "late.jsonl"
    lines = [json.dumps({"text": f"support message number {i}"}) for i in range(700)]
    path.write_text("\n".join([*lines, '{"text": "cut off']) + "\n", encoding="utf-8")
    return path, 700


def test_feed_pool_keeps_every_good_line_read_before_a_bad_one(late_bad_line):
    path, n_good = late_bad_line
    pool = Pool(Source(path), foreground_seconds=0.0)  # the rest in the background
    assert pool.wait(WAIT)
    assert len(pool) == n_good  # none of the bad line's chunk is lost
    assert isinstance(pool.error, SourceError) and pool.error.line == n_good + 1
    # --skip-invalid: skipped and counted, every good line kept.
    source = Source(path, skip_invalid=True)
    pool = Pool(source, foreground_seconds=0.0)
    assert pool.wait(WAIT) and pool.error is None
    assert len(pool) == n_good and source.n_skipped == 1


def test_feed_bad_line_in_the_source_stops_serving_with_its_line(
    make_feed, late_bad_line
):
    path, n_good = late_bad_line
    feed = make_feed()
    served = feed.next_task("alice")
    feed.loop.pool = Pool(Source(path), foreground_seconds=0.0)
    assert feed.loop.pool.wait(WAIT)
    with pytest.raises(ServingStopped, match="E987") as e:
        feed.next_task("bob")
    assert f"line {n_good + 1}" in str(e.value) and str(path) in str(e.value)
    # What was served can still be answered.
    feed.loop.pool = Pool(Source(SUPPORT))
    assert feed.answer("alice", {**served, "answer": "accept"}) is not None


def test_feed_late_answer_counts_unless_someone_else_took_the_example(
    make_feed, db_url
):
    clock = FakeClock()
    feed = make_feed(clock=clock, lease_seconds=60)
    mine = feed.next_task("alice")
    clock.advance(61)  # alice's lease ran out, and nobody took her example
    assert feed.answer("alice", {**mine, "answer": "accept"}) is not None
    held = feed.next_task("alice")
    clock.advance(61)
    assert feed.next_task("bob")["_input_key"] == held["_input_key"]  # bob has it
    with pytest.raises(LeaseError, match="E980"):
        feed.answer("alice", {**held, "answer": "accept"})
    assert feed.answer("bob", {**held, "answer": "reject"}) is not None
    with Store(db_url) as store:
        stored = store.get_answers("feed_test")
    assert [(eg["_annotator_id"], eg["text"]) for eg in stored] == [
        ("alice", mine["text"]),
        ("bob", held["text"]),
    ]
