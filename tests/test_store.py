from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_al.corpus import get_input_hash, get_input_key, get_task_hash
from spacy_al.store import AnswerError, Store, metadata, validate_answer

POSTGRES_URL = os.environ.get("SPACY_AL_TEST_POSTGRES_URL")
BACKENDS: list[Any] = ["sqlite"]
if POSTGRES_URL:
    BACKENDS.append(
        pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres")
    )


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'answers.db'}"
        return
    _reset_postgres(request.param)
    yield request.param
    _reset_postgres(request.param)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as db:
        yield db


def _answers(texts: list[str], answer: str = "accept", **fields: Any) -> list[dict]:
    return [{"text": text, "answer": answer, **fields} for text in texts]


def test_store_round_trip(store: Store) -> None:
    before = int(time.time())
    tasks = [
        {"text": "Goal!", "label": "SPORTS", "answer": "accept", "meta": {"id": 1}},
        {"text": "Tax cut", "label": "SPORTS", "answer": "reject", "meta": {"id": 2}},
        {
            "text": "Vote",
            "options": [{"id": "POLITICS", "text": "Politics"}],
            "accept": ["POLITICS"],
            "answer": "accept",
        },
    ]
    ids = store.add_answers("news", tasks, annotator="alice", model_version=7)
    after = int(time.time())
    got = store.get_answers("news")
    assert [a["_id"] for a in got] == ids == sorted(ids)
    assert [a["text"] for a in got] == ["Goal!", "Tax cut", "Vote"]
    assert [a["answer"] for a in got] == ["accept", "reject", "accept"]
    assert got[0]["label"] == "SPORTS" and got[0]["meta"] == {"id": 1}
    assert got[2]["accept"] == ["POLITICS"] and got[2]["options"] == tasks[2]["options"]
    for task, answer in zip(tasks, got, strict=True):
        assert answer["_input_hash"] == get_input_hash(task)
        assert answer["_task_hash"] == get_task_hash(task)
        assert answer["_annotator_id"] == "alice"
        assert answer["_session_id"] == "news-alice"
        assert answer["_model_version"] == 7
        assert before <= answer["_timestamp"] <= after + 1
    assert "_timestamp" not in tasks[0]  # the caller's dicts are left alone


def test_store_keeps_given_hashes(store: Store) -> None:
    task = {"text": "x", "answer": "accept", "_input_hash": 11, "_task_hash": -12}
    store.add_answers("d", [task], annotator="a")
    (got,) = store.get_answers("d")
    assert (got["_input_hash"], got["_task_hash"]) == (11, -12)


def test_store_answer_without_text_needs_input_hash(store: Store) -> None:
    task = {"image": "cat.png", "answer": "accept", "_input_hash": 5}
    store.add_answers("images", [task], annotator="a")
    assert store.get_answers("images")[0]["image"] == "cat.png"


def test_store_upsert_replaces(store: Store) -> None:
    task = {"text": "Goal!", "label": "SPORTS"}
    (first,) = store.add_answers("news", [{**task, "answer": "accept"}], annotator="al")
    (edit,) = store.add_answers("news", [{**task, "answer": "reject"}], annotator="al")
    store.add_answers("news", [{**task, "answer": "accept"}], annotator="bo")
    got = store.get_answers("news")
    assert [(a["_annotator_id"], a["answer"]) for a in got] == [
        ("al", "reject"),
        ("bo", "accept"),
    ]
    assert edit > first  # an edit is a new row, so since_id readers see it
    assert store.get_answers("news", since_id=first)[0]["_id"] == edit
    assert store.count_answers("news") == 2


def test_store_last_answer_in_batch_wins(store: Store) -> None:
    batch = [
        {"text": "a", "answer": "accept"},
        {"text": "b", "answer": "accept"},
        {"text": "a", "answer": "ignore"},
    ]
    ids = store.add_answers("d", batch, annotator="al")
    assert ids[0] == ids[2] != ids[1]
    got = {a["text"]: a["answer"] for a in store.get_answers("d")}
    assert got == {"a": "ignore", "b": "accept"}


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"text": "", "answer": "accept"}, "text"),
        ({"answer": "accept"}, "text"),
        ({"text": 3, "answer": "accept"}, "text"),
        ({"text": "x", "answer": "maybe"}, "answer"),
        ({"text": "x"}, "answer"),
        ({"text": "x", "answer": "accept", "label": 1}, "label"),
        ({"text": "x", "answer": "accept", "accept": "POS"}, "accept"),
        ({"text": "x", "answer": "accept", "accept": [None]}, "accept"),
        ({"text": "x", "answer": "accept", "_task_hash": "12"}, "_task_hash"),
        ({"text": "x", "answer": "accept", "_input_hash": 2**64}, "_input_hash"),
        ({"text": "x", "answer": "accept", "meta": {"when": object()}}, "meta"),
        ({"text": "x", "answer": "accept", "meta": {"score": float("nan")}}, "meta"),
        ("just text", None),
    ],
)
def test_store_batch_is_all_or_nothing(
    store: Store, bad: Any, field: str | None
) -> None:
    store.add_answers("d", _answers(["old"]), annotator="al")
    before = store.get_answers("d")
    batch = [
        *_answers(["new 1"]),
        bad,
        *_answers(["new 2", "old"], answer="reject"),
    ]
    with pytest.raises(AnswerError, match=r"Answer 1 of the batch") as info:
        store.add_answers("d", batch, annotator="al")
    assert (info.value.index, info.value.field) == (1, field)
    if field is not None:
        assert f"'{field}'" in str(info.value)
    assert store.get_answers("d") == before
    with pytest.raises(AnswerError):
        store.add_answers("fresh", batch, annotator="al")
    assert not store.has_dataset("fresh")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_answers("nope"),
        lambda s: s.iter_answers("nope"),
        lambda s: s.count_answers("nope"),
        lambda s: s.answered_input_keys("nope"),
        lambda s: s.stats("nope"),
        lambda s: s.drop_dataset("nope"),
        lambda s: s.remove_answer("nope", task_key=1, annotator="a"),
    ],
)
def test_store_unknown_dataset_error(store: Store, call: Any) -> None:
    store.add_answers("news", _answers(["a"]), annotator="al")
    store.create_dataset("reviews")
    with pytest.raises(ValueError, match="'nope'") as info:
        call(store)
    assert "'news', 'reviews'" in str(info.value)
    assert store.datasets() == ["news", "reviews"]


def test_store_concurrent_threads_lose_no_answers(store: Store) -> None:
    n_threads, n_each = 4, 50
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def annotate(worker: int) -> None:
        try:
            start.wait()
            for i in range(n_each):
                task = {"text": f"text {worker}-{i}", "answer": "accept"}
                store.add_answers("d", [task], annotator=f"annotator{worker}")
        except BaseException as e:  # handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(w,)) for w in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = store.get_answers("d")
    assert len(got) == n_threads * n_each == store.count_answers("d")
    assert len({a["_id"] for a in got}) == len(got)
    for worker in range(n_threads):
        mine = store.get_answers("d", annotator=f"annotator{worker}")
        assert sorted(a["text"] for a in mine) == sorted(
            f"text {worker}-{i}" for i in range(n_each)
        )


def test_store_concurrent_edits_keep_one_answer_per_task(store: Store) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def annotate(worker: int) -> None:
        answer = ("accept", "reject", "ignore")[worker % 3]
        try:
            start.wait()
            for step in range(10):
                tasks = _answers([f"t{i}" for i in range(step % 3, 8)], answer=answer)
                store.add_answers("d", tasks, annotator="al")
        except BaseException as e:  # handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = store.get_answers("d")
    assert sorted(a["text"] for a in got) == [f"t{i}" for i in range(8)]
    assert store.count_answers("d") == 8


def test_store_reopen_keeps_everything(store_url: str) -> None:
    with Store(store_url) as db:
        db.create_dataset("news", meta={"labels": ["SPORTS"]})
        db.add_answers("news", _answers(["a", "b"]), annotator="al", model_version=2)
        before = db.get_answers("news")
    with Store(store_url) as db:
        assert db.get_answers("news") == before
        assert db.dataset_meta("news") == {"labels": ["SPORTS"]}
        assert [a["text"] for a in before] == ["a", "b"]


def test_store_stats(store: Store) -> None:
    store.add_answers(
        "d",
        [
            {"text": "a", "label": "POS", "answer": "accept"},
            {"text": "b", "label": "POS", "answer": "reject"},
            {"text": "c", "accept": ["NEG", "POS"], "answer": "accept"},
            {"text": "d", "answer": "ignore", "accept": ["NEG"]},
        ],
        annotator="al",
    )
    store.add_answers(
        "d", [{"text": "a", "label": "NEG", "answer": "accept"}], annotator="bo"
    )
    stats = store.stats("d")
    assert stats["total"] == 5
    assert stats["answers"] == {"accept": 3, "reject": 1, "ignore": 1}
    assert stats["annotators"] == {"al": 4, "bo": 1}
    assert stats["labels"] == {
        "NEG": {"accept": 1, "reject": 0, "ignore": 0},
        "POS": {"accept": 1, "reject": 1, "ignore": 0},
    }
    assert stats["choices"] == {"NEG": 1, "POS": 1}
    assert stats["first_timestamp"] <= stats["last_timestamp"]
    assert stats["created"] <= stats["first_timestamp"]


def test_store_stats_of_empty_dataset(store: Store) -> None:
    store.create_dataset("empty")
    stats = store.stats("empty")
    assert stats["total"] == 0
    assert (stats["first_timestamp"], stats["last_timestamp"]) == (None, None)
    assert store.dataset_counts() == {"empty": 0}


def test_store_filters(store: Store) -> None:
    store.add_answers("d", _answers(["a", "b"]), annotator="al")
    store.add_answers("d", _answers(["c"], answer="reject"), annotator="bo")
    store.add_answers("d", _answers(["d"], answer="ignore"), annotator="al")
    texts = lambda answers: [a["text"] for a in answers]  # noqa: E731
    assert texts(store.get_answers("d", annotator="al")) == ["a", "b", "d"]
    assert texts(store.get_answers("d", answers=["accept", "ignore"])) == [
        "a",
        "b",
        "d",
    ]
    assert texts(store.get_answers("d", answers="reject")) == ["c"]
    first = store.get_answers("d")[0]["_id"]
    assert texts(store.get_answers("d", since_id=first)) == ["b", "c", "d"]
    with pytest.raises(ValueError, match="'acept'"):
        store.get_answers("d", answers=["acept"])


@pytest.mark.parametrize("batch_size", [1, 3, 10, 1000])
def test_store_iter_answers_streams_everything(store: Store, batch_size: int) -> None:
    store.add_answers("d", _answers([f"t{i}" for i in range(10)]), annotator="al")
    store.add_answers("d", _answers(["t3"], answer="reject"), annotator="al")
    streamed = list(store.iter_answers("d", batch_size=batch_size))
    assert streamed == store.get_answers("d")
    assert len(streamed) == 10
    rejected = list(store.iter_answers("d", batch_size=batch_size, answers="reject"))
    assert [a["text"] for a in rejected] == ["t3"]


def test_store_answered_keys_per_annotator(store: Store) -> None:
    al = store.add_answers("d", _answers(["a", "b"], label="X"), annotator="al")
    store.add_answers("d", _answers(["b", "c"], label="X"), annotator="bo")
    by_id = {a["_id"]: a for a in store.get_answers("d")}
    al_tasks = {by_id[i]["_task_key"] for i in al}
    assert store.answered_task_keys("d", annotator="al") == al_tasks
    expected = {get_input_key({"text": t}) for t in "abc"}
    assert store.answered_input_keys("d") == expected
    assert len(store.answered_input_keys("d", annotator="bo")) == 2


def test_store_remove_answer_is_undo(store: Store) -> None:
    store.add_answers("d", _answers(["a", "b"]), annotator="al")
    task_key = store.get_answers("d")[0]["_task_key"]
    assert store.remove_answer("d", task_key=task_key, annotator="bo") is False
    assert store.remove_answer("d", task_key=task_key, annotator="al") is True
    assert [a["text"] for a in store.get_answers("d")] == ["b"]
    assert store.remove_answer("d", task_key=task_key, annotator="al") is False


def test_store_drop_dataset(store: Store) -> None:
    store.add_answers("a", _answers(["x", "y"]), annotator="al")
    store.add_answers("b", _answers(["x"]), annotator="al")
    assert store.drop_dataset("a") == 2
    assert store.datasets() == ["b"]
    assert store.count_answers("b") == 1
    store.add_answers("a", _answers(["z"]), annotator="al")
    assert [t["text"] for t in store.get_answers("a")] == ["z"]


def test_store_create_dataset_is_idempotent(store: Store) -> None:
    first = store.create_dataset("d", meta={"view_id": "classification"})
    assert store.create_dataset("d", meta={"other": 1}) == first
    assert store.dataset_meta("d") == {"view_id": "classification"}
    assert store.datasets() == ["d"] and store.has_dataset("d")
    assert store.add_answers("d", [], annotator="al") == []


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda s: s.create_dataset(""), "dataset name"),
        (lambda s: s.create_dataset("x" * 256), "dataset name"),
        (lambda s: s.create_dataset("d", meta=["a"]), "meta"),
        (lambda s: s.add_answers("d", [], annotator=" "), "annotator name"),
        (
            lambda s: s.add_answers("d", [], annotator="a", model_version="2"),
            "model_version",
        ),
        (lambda s: s.iter_answers("d", batch_size=0), "batch_size"),
        (lambda s: s.get_answers("d", since_id="3"), "since_id"),
    ],
)
def test_store_rejects_bad_arguments(store: Store, call: Any, match: str) -> None:
    store.create_dataset("d")
    with pytest.raises(ValueError, match=match):
        call(store)


def test_store_numpy_values_are_stored_as_json(store: Store) -> None:
    task = {
        "text": "a",
        "answer": "accept",
        "meta": {"score": np.float32(0.25), "probs": np.array([0.5, 0.5])},
    }
    store.add_answers("d", [task], annotator="al")
    assert store.get_answers("d")[0]["meta"] == {"score": 0.25, "probs": [0.5, 0.5]}


def test_store_plain_path_is_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "answers.db"
    with Store(path) as db:
        db.add_answers("d", _answers(["a"]), annotator="al")
        assert db.url == f"sqlite:///{path}"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT annotator, answer FROM answers").fetchall() == [
            ("al", "accept")
        ]


def test_store_memory_database_is_shared_between_threads() -> None:
    with Store(":memory:") as db:
        thread = threading.Thread(
            target=db.add_answers,
            args=("d", _answers(["a"])),
            kwargs={"annotator": "t"},
        )
        thread.start()
        thread.join()
        assert [a["text"] for a in db.get_answers("d")] == ["a"]


@pytest.mark.parametrize("url", ["nosuchdialect://host/db", "://"])
def test_store_bad_url_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"\[E101\]"):
        Store(url)


def test_store_validate_answer_returns_hashed_copy() -> None:
    task = {"text": "a", "answer": "accept", "label": "X"}
    checked = validate_answer(task)
    assert checked["_task_hash"] == get_task_hash(task)
    assert "_task_hash" not in task


_texts = st.sampled_from(["a", "b", "c", "d"])
_batches = st.lists(
    st.tuples(
        st.sampled_from(["al", "bo"]),
        st.lists(
            st.tuples(_texts, st.sampled_from(["accept", "reject", "ignore"])),
            max_size=4,
        ),
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(batches=_batches)
def test_store_holds_the_last_answer_per_task_and_annotator(
    batches: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    expected: dict[tuple[str, str], str] = {}
    with Store(":memory:") as db:
        db.create_dataset("d")
        for annotator, answers in batches:
            tasks = [{"text": text, "answer": answer} for text, answer in answers]
            db.add_answers("d", tasks, annotator=annotator)
            for text, answer in answers:
                expected.pop((annotator, text), None)  # keeps insertion order = ids
                expected[(annotator, text)] = answer
        got = db.get_answers("d")
    assert [(a["_annotator_id"], a["text"]) for a in got] == list(expected)
    assert [a["answer"] for a in got] == list(expected.values())


# --- leases (kept so that a restarted server serves what each annotator held) ------


def test_store_leases_round_trip_replace_and_drop(store: Store) -> None:
    store.create_dataset("leased")
    task = {"text": "Goal!", "label": "SPORTS", "_input_hash": 7}
    store.put_leases(
        "leased",
        [
            {"input_hash": 7, "annotator": "alice", "expires": 100.0, "task": task},
            {"input_hash": 8, "annotator": "bob", "expires": 50.0, "task": task},
        ],
    )
    # The same (input, annotator) again replaces the lease: a renewal.
    store.put_leases(
        "leased",
        [{"input_hash": 7, "annotator": "alice", "expires": 200.0, "task": task}],
    )
    leases = {(x["input_hash"], x["annotator"]): x for x in store.get_leases("leased")}
    assert set(leases) == {(7, "alice"), (8, "bob")}
    assert leases[(7, "alice")]["expires"] == 200.0
    assert leases[(7, "alice")]["task"] == task
    assert store.drop_leases("leased", expired_before=60.0) == 1  # bob's ended
    assert store.drop_leases("leased", [(7, "alice")]) == 1
    assert store.get_leases("leased") == []
    # Unknown datasets hold no leases, and recording one there is a no-op.
    assert store.get_leases("nope") == []
    store.put_leases(
        "nope", [{"input_hash": 1, "annotator": "a", "expires": 1.0, "task": {}}]
    )
    assert store.get_leases("nope") == [] and not store.has_dataset("nope")


def test_store_drop_dataset_drops_its_leases(store: Store) -> None:
    store.add_answers("gone", _answers(["a"]), annotator="alice")
    store.put_leases(
        "gone", [{"input_hash": 1, "annotator": "bob", "expires": 1e12, "task": {}}]
    )
    store.drop_dataset("gone", force=True)  # its lease is live: in use
    store.create_dataset("gone")
    assert store.get_leases("gone") == []


def test_store_answer_id_finds_the_stored_answer(store: Store) -> None:
    [answer_id] = store.add_answers("ids", _answers(["hello"]), annotator="alice")
    task_key = store.get_answers("ids")[0]["_task_key"]
    assert store.answer_id("ids", task_key=task_key, annotator="alice") == answer_id
    assert store.answer_id("ids", task_key=task_key, annotator="bob") is None
    assert store.answer_id("ids", task_key=2**70, annotator="alice") is None
    assert store.answer_id("nope", task_key=task_key, annotator="alice") is None
