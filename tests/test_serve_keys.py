"""A server that follows a learner process holds of the pool only its input keys
and done marks (spacy_al.scale.keys.KeyPool) and no model (ServingLoop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spacy_al.corpus import Source
from spacy_al.errors import SourceError
from spacy_al.pool import Pool
from spacy_al.scale.keys import KeyPool
from spacy_al.serve.follower import ServingLoop
from spacy_al.serve.launcher import build_components

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "corpora" / "support.jsonl"

MIXED = [
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 1}}\r\n',
    "\n",
    '{"text": "second line, CRLF ended"}\r\n',
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 2}}\n',  # a duplicate
    '{"text": "last, no newline at the end"}',
]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(lines).encode("utf-8"))
    return path


def test_serve_keys_pool_has_the_in_process_pools_keys(tmp_path):
    for path in (SUPPORT, _write(tmp_path, MIXED)):
        source = Source(path)
        pool = Pool(source)
        keys = KeyPool.read(path)
        assert len(keys) == len(pool)
        assert sorted(keys.keys.tolist()) == sorted(pool.index)
        assert (keys.n_read, keys.n_duplicates) == (
            source.n_read,
            source.n_duplicates,
        )
        assert all(k in keys.index for k in pool.index)
        assert 12345 not in keys.index and "12345" not in keys.index
        assert 2**70 not in keys.index  # no int64: not in the pool


def test_serve_keys_marks_done_by_key(tmp_path):
    tasks = list(Pool(Source(SUPPORT)).tasks)
    first, second = tasks[0]["_input_key"], tasks[1]["_input_key"]
    pool = KeyPool.read(SUPPORT, answered={first})
    assert pool.n_done == 1
    pool.mark([second, second, first, 999])  # repeats and strangers count once
    assert pool.n_done == 2 == int(pool.done.sum())
    pool.mark([first], False)
    assert pool.n_done == 1 == int(pool.done.sum())
    assert first in pool.index and 999 not in pool.index
    assert 2**64 not in pool.index  # no 64-bit key: in no pool, no overflow


def test_serve_keys_bad_line_names_file_and_line_as_in_process(tmp_path):
    path = _write(tmp_path, [*MIXED[:-1], "{not json}\n", '{"text": "after"}\n'])
    with pytest.raises(SourceError) as here:
        list(Source(path))
    with pytest.raises(SourceError) as there:
        KeyPool.read(path)
    assert str(there.value) == str(here.value) and there.value.line == 5
    skipped = KeyPool.read(path, skip_invalid=True)
    assert skipped.n_skipped == 1 and len(skipped) == 3


def _remote_components(dataset: str, db: str) -> dict:
    """The components of textcat.teach --learner remote on SUPPORT."""
    return build_components(
        "textcat.teach",
        {
            "dataset": dataset,
            "source": SUPPORT,
            "label": "billing,bug",
            "db": db,
            "learner": "remote",
        },
    )


def test_serve_keys_remote_server_builds_no_model_and_no_texts(tmp_path):
    components = _remote_components("tickets", f"sqlite:///{tmp_path / 'db.sqlite'}")
    loop = components["loop"]
    assert isinstance(loop, ServingLoop) and loop.updater is None
    assert isinstance(loop.pool, KeyPool) and len(loop.pool) > 300
    assert components["labels"] == ["billing", "bug"]
    assert components["source"]["read"] == len(loop.pool)
    with pytest.raises(RuntimeError, match="E1108"):
        loop.select(1)
    components["store"].close()


def test_serve_keys_remote_server_builds_no_spacy_pipeline(tmp_path, monkeypatch):
    import spacy.language

    built = []
    original = spacy.language.Language.__init__

    def spy(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(spacy.language.Language, "__init__", spy)
    components = _remote_components("tickets", f"sqlite:///{tmp_path / 'db.sqlite'}")
    components["store"].close()
    assert built == []


def _following_feed(tmp_path):
    """A feed of textcat.teach --learner remote on SUPPORT, with a queue
    published in its database as a learner publishes it."""
    from spacy_al.benchmarks.scale import SERVING_DATASET, publish_queue_as_learner
    from spacy_al.serve.feed import Feed

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    texts = list(dict.fromkeys(t["text"] for t in Source(SUPPORT)))
    publish_queue_as_learner(
        db, texts, pool_size=len(texts), labels=["billing", "bug"], n_tasks=50
    )
    components = _remote_components(SERVING_DATASET, db)
    return Feed.from_components(components, lease_seconds=600.0), db


def test_serve_keys_answer_then_next_takes_two_transactions(tmp_path):
    # On the request path of a server following a learner: the answer and the
    # claim of the next example, one transaction each (no check of the dataset
    # first, no write of the answered example's lease).
    import threading

    import sqlalchemy as sa

    feed, _ = _following_feed(tmp_path)
    begins = []

    def count(conn, *args):
        if threading.current_thread().name == "request":
            begins.append(1)

    try:
        task = feed.next_task("alice", timeout=10.0)
        assert task is not None

        def answer_then_next():
            feed.answer("alice", {"_input_key": task["_input_key"], "answer": "accept"})
            assert feed.next_task("alice", timeout=10.0) is not None

        sa.event.listen(sa.engine.Engine, "begin", count)
        try:
            thread = threading.Thread(target=answer_then_next, name="request")
            thread.start()
            thread.join()
        finally:
            sa.event.remove(sa.engine.Engine, "begin", count)
        assert len(begins) == 2
        assert feed.stats()["done"] == 1
    finally:
        feed.close()


def test_serve_keys_answer_after_the_dataset_was_dropped_stops_serving(tmp_path):
    from spacy_al.serve.feed import ServingStopped
    from spacy_al.store import Store

    feed, db = _following_feed(tmp_path)
    try:
        task = feed.next_task("alice", timeout=10.0)
        with Store(db) as store:
            store.drop_dataset(feed.dataset, force=True)
        with pytest.raises(ServingStopped, match="E986"):
            feed.answer("alice", {"_input_key": task["_input_key"], "answer": "accept"})
        with Store(db) as store:  # not created again without its settings
            assert not store.has_dataset(feed.dataset)
    finally:
        feed.close()
