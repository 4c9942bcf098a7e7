"""Concurrent writers in separate processes, on SQLite and (when configured) PostgreSQL.

Each process opens its own Store, as several servers or annotators' sessions would.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from spacy_al.store import Store, engine, metadata

POSTGRES_URL = os.environ.get("SPACY_AL_TEST_POSTGRES_URL")
BACKENDS: list[Any] = ["sqlite"]
if POSTGRES_URL:
    BACKENDS.append(
        pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres")
    )
N_WORKERS = 4
N_OWN = 30  # answers each worker gives to texts of its own
N_SHARED = 8  # texts every worker answers, under its own name and as "team"
CTX = multiprocessing.get_context("spawn")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # Connections other tests left open would hold locks that block the reset.
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                # only our own sessions (not the server's autovacuum workers)
                "AND usename = current_user"
            )
        )
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


def _annotate(url: str, worker: int, start: Any, results: Any) -> None:
    """One annotator's session; an error is reported so the test fails at once."""
    try:
        _annotate_session(url, worker, start, results)
    except Exception as e:
        results.put(("error", f"worker {worker}: {type(e).__name__}: {e}"))
        raise


def _annotate_session(url: str, worker: int, start: Any, results: Any) -> None:
    """One annotator's session: own texts in small batches, shared texts, edits."""
    acknowledged: list[int] = []
    with Store(url) as db:
        start.wait()
        i = 0
        while i < N_OWN:
            size = 1 + (i + worker) % 3
            batch = [
                {"text": f"own {worker}-{j}", "label": "X", "answer": "accept"}
                for j in range(i, min(i + size, N_OWN))
            ]
            acknowledged += db.add_answers("d", batch, annotator=f"w{worker}")
            i += size
        for j in range(N_SHARED):
            shared = {"text": f"shared {j}", "label": "X"}
            answer = ("accept", "reject")[(worker + j) % 2]
            acknowledged += db.add_answers(
                "d", [{**shared, "answer": answer}], annotator=f"w{worker}"
            )
            # Everyone edits the team's answer to the same task at once.
            db.add_answers("d", [{**shared, "answer": answer}], annotator="team")
        # A dataset nobody has created yet, created by all workers at once.
        db.create_dataset("race", meta={"by": worker})
        db.add_answers(
            "race", [{"text": "r", "answer": "accept"}], annotator=f"w{worker}"
        )
    results.put((worker, acknowledged))


def _poll(url: str, expected: int, start: Any, results: Any) -> None:
    try:
        _follow(url, expected, start, results)
    except Exception as e:
        results.put(("error", f"poller: {type(e).__name__}: {e}"))
        raise


def _follow(url: str, expected: int, start: Any, results: Any) -> None:
    """A reader following the dataset with since_id, as the trainer does."""
    seen: list[int] = []
    deadline = time.monotonic() + 120
    with Store(url) as db:
        db.create_dataset("d")
        start.wait()
        last: int | None = None
        while time.monotonic() < deadline:
            page = db.get_answers("d", since_id=last, annotator=None)
            mine = [a["_id"] for a in page if a["_annotator_id"] != "team"]
            seen += mine
            if page:
                last = page[-1]["_id"]
            if len(set(seen)) >= expected:
                break
            time.sleep(0.005)
    results.put(("poller", seen))


def test_store_concurrency_processes_lose_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned children re-run the parent's __main__ from its path; after Streamlit's
    # AppTest that is app.py. A bare __main__ keeps the children to this module.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    expected = N_WORKERS * (N_OWN + N_SHARED)
    with Store(store_url) as db:
        db.create_dataset("d")
    start = CTX.Barrier(N_WORKERS + 1)
    results = CTX.Queue()
    processes = [
        CTX.Process(target=_annotate, args=(store_url, w, start, results), daemon=True)
        for w in range(N_WORKERS)
    ]
    processes.append(
        CTX.Process(
            target=_poll, args=(store_url, expected, start, results), daemon=True
        )
    )
    for process in processes:
        process.start()
    got = {}
    for _ in processes:
        key, value = results.get(timeout=120)
        assert key != "error", value
        got[key] = value
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * len(processes)

    with Store(store_url) as db:
        answers = db.get_answers("d")
        race = db.get_answers("race")
        assert db.datasets() == ["d", "race"]
    acknowledged = [i for w in range(N_WORKERS) for i in got[w]]
    stored = {a["_id"]: a for a in answers if a["_annotator_id"] != "team"}
    # Every acknowledged answer is stored, once; nothing else is.
    assert len(acknowledged) == len(set(acknowledged)) == expected
    assert set(acknowledged) == set(stored)
    per_annotator = Counter(a["_annotator_id"] for a in answers)
    assert per_annotator == {
        **{f"w{w}": N_OWN + N_SHARED for w in range(N_WORKERS)},
        "team": N_SHARED,
    }
    # One row per (task, annotator), even for the team's concurrent edits.
    keys = [(a["_task_hash"], a["_annotator_id"]) for a in answers]
    assert len(keys) == len(set(keys))
    # The poller saw every answer exactly once, in increasing id order.
    seen = got["poller"]
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert set(seen) == set(stored)
    # The dataset all workers created at once exists once, with every answer.
    assert sorted(a["_annotator_id"] for a in race) == [
        f"w{w}" for w in range(N_WORKERS)
    ]


N_KEYS = 40  # examples every claimer tries to lease


def _claim(url: str, worker: int, overlap: int, start: Any, results: Any) -> None:
    """One server's annotator claiming every example, as fast as it can."""
    try:
        won = []
        with Store(url) as db:
            start.wait()
            for key in range(N_KEYS):
                found = db.claim_lease(
                    "c",
                    key,
                    f"w{worker}",
                    expires=time.time() + 60,
                    task={"text": f"t{key}"},
                    overlap=overlap,
                )
                if found and found["claimed"]:
                    won.append(key)
        results.put((worker, won))
    except Exception as e:
        results.put(("error", f"claimer {worker}: {type(e).__name__}: {e}"))
        raise


@pytest.mark.parametrize("overlap", [1, 2])
def test_store_concurrency_claims_give_each_example_to_overlap_annotators(
    store_url: str, monkeypatch: pytest.MonkeyPatch, overlap: int
) -> None:
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    with Store(store_url) as db:
        db.create_dataset("c")
    start = CTX.Barrier(N_WORKERS)
    results = CTX.Queue()
    processes = [
        CTX.Process(
            target=_claim, args=(store_url, w, overlap, start, results), daemon=True
        )
        for w in range(N_WORKERS)
    ]
    for process in processes:
        process.start()
    won: dict[int, list[int]] = {}
    for _ in processes:
        key, value = results.get(timeout=120)
        assert key != "error", value
        won[key] = value
    for process in processes:
        process.join(timeout=60)
    per_key = Counter(key for keys in won.values() for key in keys)
    # Every example leased to exactly ``overlap`` of the racing processes.
    assert per_key == {key: overlap for key in range(N_KEYS)}
    with Store(store_url) as db:
        stored = Counter(lease["input_hash"] for lease in db.get_leases("c"))
    assert stored == per_key


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another writer (as another process would be) holding SQLite's write lock."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_store_writer_waits_for_another_writers_lock_and_keeps_the_busy_timeout(
    tmp_path: Path,
) -> None:
    """A write that finds SQLite's lock taken (the learner process publishing,
    another server answering) waits for it and is stored once it is free; the
    connection's busy timeout is the store's again afterwards."""
    path = tmp_path / "answers.db"
    with Store(f"sqlite:///{path}") as db:
        db.create_dataset("d")
        other = _hold_write_lock(path)
        stored: list[list[int]] = []
        done = threading.Event()

        def answer() -> None:
            stored.append(
                db.add_answers("d", [{"text": "t", "answer": "accept"}], annotator="a")
            )
            done.set()

        writer = threading.Thread(target=answer, daemon=True)
        writer.start()
        assert not done.wait(0.3)  # held: the answer waits, it isn't lost or failed
        other.execute("COMMIT")
        other.close()
        assert done.wait(30)
        writer.join(30)
        assert len(stored) == 1 and len(stored[0]) == 1
        assert [a["text"] for a in db.get_answers("d")] == ["t"]
        with db._engine.connect() as conn:
            timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert timeout == engine.BUSY_TIMEOUT_MS


def test_store_writer_gives_up_with_the_database_error_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held past the busy timeout fails the write with SQLAlchemy's
    "database is locked" error (what the server reports), nothing half-stored."""
    path = tmp_path / "answers.db"
    with Store(f"sqlite:///{path}") as db:
        db.create_dataset("d")
        monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
        other = _hold_write_lock(path)
        try:
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                db.add_answers("d", [{"text": "t", "answer": "accept"}], annotator="a")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert db.get_answers("d") == []
        db.add_answers("d", [{"text": "t", "answer": "accept"}], annotator="a")
        assert [a["text"] for a in db.get_answers("d")] == ["t"]


def _commit_setting(conn: sa.Connection) -> str:
    if conn.dialect.name == "postgresql":
        return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
    level = int(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    return {1: "off", 2: "on"}[level]  # NORMAL: no sync at commit; FULL: synced


def test_store_answers_are_synced_to_disk_and_leases_are_not(store_url):
    """An answer's commit waits for the disk; a lease's (coordination the
    servers write again as they go on) doesn't: an answer -> next example
    waits for one disk sync, not two."""
    with Store(store_url) as db:
        db.create_dataset("d")
        seen = []

        def spy(conn: sa.Connection) -> None:
            seen.append(_commit_setting(conn))

        db._write(spy, n=0, dataset="d")
        db._write(spy, n=0, dataset="d", durable=False)
        db._write(spy, n=0, dataset="d")  # back to synced after a light write
        assert seen == ["on", "off", "on"]
        calls: list[bool] = []
        write = db._write

        def recorded(work: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("durable", True))
            return write(work, **kwargs)

        db._write = recorded  # type: ignore[method-assign]
        db.add_answers("d", [{"text": "t", "answer": "accept"}], annotator="a")
        assert calls == [True]
        db.claim_lease("d", 1, "b", expires=time.time() + 60, task={"text": "u"})
        assert calls == [True, False]
