"""What keeps a session fast: a pool read in the background, scoring in streamed
batches, and a feed that serves what it has while the selector is busy."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import srsly

from spacy_al.corpus import set_hashes
from spacy_al.errors import SourceError
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.serve.feed import Feed
from spacy_al.store import Store
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.scoring import ModelScorer, Scores, make_scorer, score_stream
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.updater import Committee, Updater

LABELS = ["ham", "spam"]
TEXTS = [f"text number {i} about {w}" for i in range(60) for w in ("cats", "cash")]
WAIT = 30.0


class SmallPool(Pool):
    chunk_size = 8


def gated(texts: list[str], gate: threading.Event, after: int) -> Iterator[dict]:
    """Records of ``texts``; the ``after``-th and later wait for ``gate``."""
    for i, text in enumerate(texts):
        if i == after:
            assert gate.wait(WAIT)
        yield {"text": text}


def make_loop(pool: Pool, *, strategy: str = "margin", **kwargs) -> ActiveLoop:
    spec = StrategySpec.parse(strategy)
    model = TextcatModel(build_textcat(LABELS))
    updater = Committee.build(model, size=3) if spec.uses_committee else Updater(model)
    return ActiveLoop(pool, updater, spec=spec, **kwargs)


# --- the pool, read in the background ---------------------------------------------


def test_loop_pool_serves_what_is_read_while_reading_goes_on():
    gate = threading.Event()
    answered = set_hashes({"text": TEXTS[-1]})["_input_key"]
    pool = SmallPool(
        gated(TEXTS, gate, after=16), answered=[answered], foreground_seconds=0.0
    )
    loop = make_loop(pool)
    assert pool.loading and len(pool) in (8, 16)
    early = loop.select(5)
    assert len(early) == 5
    assert {t["text"] for t in early} <= set(TEXTS[:16])
    gate.set()
    assert pool.wait(WAIT) and not pool.loading and pool.error is None
    assert [t["text"] for t in pool.tasks] == TEXTS
    # the answer given before the text was read counts once it is
    assert pool.n_done == 1 and len(pool.remaining()) == len(TEXTS) - 1
    assert len(loop.select(len(TEXTS))) == len(TEXTS) - 1


def test_loop_pool_marks_answers_made_while_reading():
    gate = threading.Event()
    pool = SmallPool(gated(TEXTS, gate, after=8), foreground_seconds=0.0)
    first = pool.tasks[0]["_input_key"]
    late = set_hashes({"text": TEXTS[50]})["_input_key"]
    pool.mark([first, late])
    gate.set()
    assert pool.wait(WAIT)
    done = {pool.tasks[i]["text"] for i in np.flatnonzero(pool.done)}
    assert done == {TEXTS[0], TEXTS[50]}


def test_loop_pool_reads_small_sources_at_once():
    pool = Pool(({"text": t} for t in TEXTS), foreground_seconds=0.0)
    assert not pool.loading and len(pool) == len(TEXTS)


def test_loop_pool_nobody_uses_stops_reading():
    gate = threading.Event()
    read: list[str] = []

    def source() -> Iterator[dict]:
        for record in gated(TEXTS, gate, after=8):
            read.append(record["text"])
            yield record

    pool = SmallPool(source(), foreground_seconds=0.0)
    thread = pool._thread
    assert thread is not None and thread.is_alive()
    del pool
    gc.collect()
    gate.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(read) < len(TEXTS)


def test_loop_pool_error_in_the_background_stops_reading_and_is_raised():
    def broken() -> Iterator[dict]:
        yield from ({"text": t} for t in TEXTS[:20])
        raise SourceError("bad record", path="pool.jsonl", line=21, field="text")

    pool = SmallPool(broken(), foreground_seconds=0.0)
    assert pool.wait(WAIT)
    assert len(pool) == 20  # every good record, even of the chunk that failed
    loop = make_loop(pool)
    with pytest.raises(SourceError, match="pool.jsonl.*line 21"):
        loop.select(3)


def test_loop_pool_error_in_the_foreground_propagates():
    def broken() -> Iterator[dict]:
        yield {"text": "one"}
        raise SourceError("bad record", path="pool.jsonl", line=2)

    with pytest.raises(SourceError, match="line 2"):
        Pool(broken(), foreground_seconds=10.0)


# --- scoring in streamed batches --------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A bow model that has learnt something, and docs to score."""
    model = TextcatModel(build_textcat(LABELS))
    updater = Updater(model)
    targets = [
        TextcatTarget(
            text=t,
            input_key=i,
            cats={"ham": float("cats" in t), "spam": float("cash" in t)},
            is_gold=True,
        )
        for i, t in enumerate(TEXTS[:40])
    ]
    updater.update(targets)
    served, _ = updater.serving()
    return served, served.make_docs(TEXTS)


@pytest.mark.parametrize("batch_size", [1, 7, 512])
@pytest.mark.parametrize("measure", ["margin", "entropy", "least_confidence"])
def test_scoring_score_stream_gives_the_scores_of_one_call(
    trained, measure, batch_size
):
    served, docs = trained
    scorer = make_scorer(measure)
    whole = scorer(served, docs)
    streamed = score_stream(scorer, served, iter(docs), predict_batch=batch_size)
    np.testing.assert_allclose(streamed.probs, whole.probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(streamed.scores, whole.scores, rtol=1e-5, atol=1e-7)
    assert len(np.unique(whole.scores)) > 1  # the model tells docs apart


def test_scoring_score_stream_of_nothing_has_the_right_shape(trained):
    served, _ = trained
    out = score_stream(ModelScorer("margin"), served, iter([]))
    assert out.probs.shape == (0, len(LABELS)) and out.scores.shape == (0,)


def test_scoring_score_stream_gives_unbatchable_scorers_every_doc_at_once(trained):
    served, docs = trained
    calls: list[int] = []

    class WholeSet:
        measure = "whole"
        batchable = False

        def __call__(self, served, docs):
            calls.append(len(docs))
            return Scores(np.zeros((len(docs), 2)), np.arange(len(docs), dtype=float))

    out = score_stream(WholeSet(), served, iter(docs), predict_batch=7)
    assert calls == [len(docs)] and len(out.scores) == len(docs)


@pytest.mark.parametrize("strategy", ["margin", "diverse", "cost", "vote_entropy"])
def test_loop_select_picks_the_same_whatever_the_stream_batch(monkeypatch, strategy):
    def picks(batch_size: int) -> list[tuple]:
        monkeypatch.setattr(
            score_stream, "__kwdefaults__", {"predict_batch": batch_size}
        )
        loop = make_loop(Pool({"text": t} for t in TEXTS), strategy=strategy, seed=3)
        return [
            (t["_input_key"], t["label"], t["meta"]["uncertainty"])
            for t in loop.select(10)
        ]

    assert picks(5) == picks(512)


# --- the feed serves while the selector is busy --------------------------------


def test_feed_serves_the_previous_ranking_while_the_selector_is_busy(tmp_path):
    path = tmp_path / "pool.jsonl"
    srsly.write_jsonl(path, ({"text": t} for t in TEXTS))
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    pool = Pool(srsly.read_jsonl(path))
    loop = make_loop(pool, store=store, dataset="speed", batch_size=4)
    feed = Feed(loop, prefetch=12, start=False, close_store=True)
    select = loop.select
    calls: list[int] = []
    busy, release = threading.Event(), threading.Event()

    def slow_after_the_first(n, *, exclude=()):
        calls.append(n)
        if len(calls) == 1:  # the first ranking: a queue of 12
            return select(12, exclude=exclude)
        if len(calls) == 2:  # the new version's ranking: only one new example
            return select(1, exclude=exclude)
        busy.set()
        release.wait(WAIT)  # the selector stays busy until the test ends
        return []

    loop.select = slow_after_the_first
    feed.start()
    try:
        first = []
        for _ in range(4):  # a batch: the trainer learns, the version goes up
            first.append(feed.next_task("alice", timeout=WAIT))
            feed.answer("alice", {**first[-1], "answer": "accept"})
        # the trainer learns and the selector re-ranks: one new example
        deadline = time.monotonic() + WAIT
        while feed._cand_version < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) == 2 and feed._cand_version == 1
        served = []
        start = time.monotonic()
        for _ in range(6):
            task = feed.next_task("alice", timeout=0.5)
            assert task is not None, "waited for the busy selector"
            served.append(task)
            feed.answer("alice", {**task, "answer": "reject"})
        assert time.monotonic() - start < 3.0
        assert busy.is_set()  # the queue ran low: the selector was busy meanwhile
        versions = [t["_model_version"] for t in served]
        assert versions[0] == 1 and set(versions[1:]) == {0}  # fresh, then stale
        keys = [t["_input_key"] for t in first + served]
        assert len(set(keys)) == len(keys)
    finally:
        release.set()
        feed.close()


def test_a_pool_read_to_its_end_during_an_empty_selection_is_served(tmp_path):
    # The race CI once hit: a selection finds nothing new, the reading ends
    # before it returns; the feed must select again, not report the pool done.
    gate = threading.Event()
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    pool = SmallPool(gated(TEXTS, gate, after=8), foreground_seconds=0.0)
    loop = make_loop(pool, store=store, dataset="speed", batch_size=100)
    select = loop.select

    def select_while_the_reading_ends(n, *, exclude=()):
        tasks = select(n, exclude=exclude)
        if not tasks and not gate.is_set():
            gate.set()
            assert pool.wait(WAIT)
        return tasks

    loop.select = select_while_the_reading_ends
    with Feed(loop, prefetch=4, close_store=True) as feed:
        for _ in range(8):
            task = feed.next_task("alice", timeout=WAIT)
            feed.answer("alice", {**task, "answer": "accept"})
        task = feed.next_task("alice", timeout=WAIT)
        assert task is not None and task["text"] in TEXTS[8:]


def test_feed_is_not_finished_while_the_pool_is_still_read(tmp_path):
    gate = threading.Event()
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    pool = SmallPool(gated(TEXTS, gate, after=8), foreground_seconds=0.0)
    loop = make_loop(pool, store=store, dataset="speed", batch_size=100)
    with Feed(loop, prefetch=4, close_store=True) as feed:
        for _ in range(8):  # everything read so far
            task = feed.next_task("alice", timeout=WAIT)
            feed.answer("alice", {**task, "answer": "accept"})
        assert feed.next_task("alice", timeout=0.3) is None
        assert not feed.stats()["finished"]
        gate.set()
        task = feed.next_task("alice", timeout=WAIT)
        assert task is not None and task["text"] in TEXTS[8:]


def test_feed_queue_never_runs_dry_under_a_burst_while_selections_are_slow(tmp_path):
    # Five annotators answer as fast as they can while the model learns; every
    # selection after the first (each new version's ranking) lasts until the
    # team took 300 examples since it began: it waits for them, so it is slow
    # whatever the machine's speed, as scoring a window is while requests run.
    # Nobody may wait for the selector while the pool has texts.
    texts = [f"message {i} about {w}" for i in range(2000) for w in ("cats", "cash")]
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    loop = make_loop(
        Pool({"text": t} for t in texts), store=store, dataset="burst", batch_size=10
    )
    feed = Feed(loop, start=False, close_store=True)  # the defaults
    select = loop.select
    sizes: list[int] = []
    slow = 300

    def select_slowly(n, *, exclude=()):
        start = feed._taken
        tasks = select(n, exclude=exclude)
        sizes.append(len(tasks))
        if len(sizes) > 1:
            with feed._cond:
                feed._cond.wait_for(
                    lambda: feed._taken >= start + slow or feed._stop, WAIT
                )
        return tasks

    loop.select = select_slowly
    feed.start()
    served: list[int] = []
    nones: list[str] = []
    lock = threading.Lock()

    def annotate(who: str) -> None:
        for _ in range(120):
            task = feed.next_task(who, timeout=WAIT)
            if task is None:
                with lock:
                    nones.append(who)
                return
            feed.answer(who, {**task, "answer": "accept"})
            with lock:
                served.append(task["_input_key"])

    try:
        assert feed.next_task("warmup", timeout=WAIT) is not None  # first ranking
        waited = feed.dry_waits  # for the first ranking: nothing was queued yet
        threads = [threading.Thread(target=annotate, args=(f"a{i}",)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(2 * WAIT)
        assert not nones
        assert len(served) == 600 and len(set(served)) == 600  # none twice
        assert len(sizes) >= 2 and feed.stats()["updates"] >= 1  # slow re-ranking
        assert feed.dry_waits == waited, "a request waited for the selector"
    finally:
        feed.close()
