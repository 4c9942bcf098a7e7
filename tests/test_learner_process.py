"""A learner process and several servers on one database (#13).

The learner (``python -m spacy_al learner``) selects and learns; the servers
(``textcat.teach ... --learner remote --api``) serve its queue and commit
answers. Real processes on SQLite and PostgreSQL (when
``SPACY_AL_TEST_POSTGRES_URL`` is set), with 10 annotator threads split between
two servers, kill -9 of the learner and of a server mid-run: every acknowledged
answer is stored once, no example is answered twice at overlap 1, and the model
version goes on after the learner restarts. One learner per dataset; databases
made before the learner's tables get them when opened. The in-process tests
check overlap 2 and undo across two followers.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from spacy_al.benchmarks.processes import CliProcess, ServerProcess, free_port, request
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve.feed import Feed
from spacy_al.serve.launcher import build_components
from spacy_al.serve.learner import (
    DatasetDropped,
    LearnerBusy,
    LearnerLock,
    open_learner,
)
from spacy_al.store import Store

SUPPORT = corpus_path("support.jsonl")
POSTGRES_URL = os.environ.get("SPACY_AL_TEST_POSTGRES_URL")
CLIENTS = 10  # annotator threads, split between the two servers
SECONDS = 60.0  # labelling time at most
ENOUGH = 150  # answers: stop once this many were acknowledged
KILL_LEARNER_AT = 40  # acknowledged answers when the learner is killed
KILL_SERVER_AT = 90  # ... and when server 0 is


def _options(db: str, dataset: str) -> list[str]:
    return [dataset, str(SUPPORT), "--label", LABELS, "--db", db, "--batch-size", "5"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"SPACY_AL_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def _learner(db: str, dataset: str, tmp_path: Path, name: str = "learner") -> Any:
    return CliProcess(
        ["learner", *_options(db, dataset)],
        log=tmp_path / f"{name}.log",
        env=_env(tmp_path),
    )


def _holder(db: str, dataset: str) -> dict | None:
    with Store(db) as store:
        state = store.learner_state(dataset)
    if state is None or state["expires"] <= time.time():
        return None
    return state


def _wait_for(check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    return None


def _log(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


# --- several processes ----------------------------------------------------------------


class Team:
    """Annotator threads answering through two servers, while a chaos thread
    kills the learner and then a server (kill -9) and starts them again."""

    def __init__(
        self, servers: list[ServerProcess], learner: CliProcess, db: str, dataset: str
    ):
        self.servers = servers
        self.learner = learner
        self.db = db
        self.dataset = dataset
        self.acked: dict[tuple[str, int], int] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.version_at_kill: int | None = None
        self.deadline = time.monotonic() + SECONDS

    def _ask(self, port: int, path: str, body: dict) -> tuple[int, Any]:
        """One request, again until the server answers (it may be restarting).

        A server killed while it sends its reply breaks the read with an
        ``http.client.HTTPException`` (``IncompleteRead``), not an OSError: the
        answer may be stored, and asking again must give back the same id."""
        while time.monotonic() < self.deadline + 60:
            try:
                return request(port, "POST", path, body, timeout=30.0)
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
        raise TimeoutError(f"{path} got no reply")

    def client(self, i: int) -> None:
        who = f"annotator{i}"
        port = self.servers[i % len(self.servers)].port
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            status, reply = self._ask(port, "/next", {"annotator": who, "wait": 1.0})
            if status != 200:
                with self.lock:
                    self.errors.append(f"/next {status}: {reply}")
                return
            task = reply["task"]
            if task is None:
                continue
            answer = {"_input_key": task["_input_key"], "answer": "accept"}
            status, reply = self._ask(
                port, "/answer", {"annotator": who, "task": answer}
            )
            with self.lock:
                if status != 200:
                    self.errors.append(f"/answer {status}: {reply}")
                    return
                self.acked[(who, int(task["_input_key"]))] = reply["id"]
                if len(self.acked) >= ENOUGH:
                    self.stop.set()

    def chaos(self) -> None:
        def reach(n: int) -> bool:
            while len(self.acked) < n:
                if self.stop.wait(0.05):
                    return False
            return True

        if not reach(KILL_LEARNER_AT):
            return
        state = _holder(self.db, self.dataset)
        self.version_at_kill = None if state is None else state["version"]
        self.learner.kill()
        self.learner.start()
        if not reach(KILL_SERVER_AT):
            return
        server = self.servers[0]
        server.kill()
        server.start()
        if not server.wait_ready():
            with self.lock:
                self.errors.append("server 0 didn't come back")

    def run(self) -> None:
        threads = [
            threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)
        ]
        threads.append(threading.Thread(target=self.chaos))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_learner_process_two_servers_survive_kill_9(database, tmp_path):
    db, dataset = database
    servers = [
        ServerProcess(
            ["textcat.teach", *_options(db, dataset), "--learner", "remote"],
            port=free_port(),
            log=tmp_path / f"server{i}.log",
            env=_env(tmp_path),
        )
        for i in range(2)
    ]
    learner = _learner(db, dataset, tmp_path)
    try:
        for server in servers:
            server.start()
        for i, server in enumerate(servers):
            assert server.wait_ready(), _log(tmp_path / f"server{i}.log")
        learner.start()
        team = Team(servers, learner, db, dataset)
        team.run()
        assert team.errors == []
        assert len(team.acked) >= ENOUGH, _log(tmp_path / "learner.log")
        # The restarted learner goes on from the version it had reached.
        assert team.version_at_kill is not None and team.version_at_kill > 0
        later = _wait_for(
            lambda: (
                (s := _holder(db, dataset))
                and s["version"] > team.version_at_kill
                and s
            )
        )
        assert later, _log(tmp_path / "learner.log")
        assert learner.alive()
    finally:
        learner.close()
        for server in servers:
            server.close()
    with Store(db) as store:
        stored = store.get_answers(dataset)
    # Every acknowledged answer is stored, once; nothing else is.
    assert sorted(eg["_id"] for eg in stored) == sorted(team.acked.values())
    # At overlap 1 no example was answered twice, across servers and restarts.
    assert max(Counter(eg["_input_key"] for eg in stored).values()) == 1
    assert {eg["_annotator_id"] for eg in stored} == {
        f"annotator{i}" for i in range(CLIENTS)
    }


def test_learner_process_one_per_dataset(tmp_path):
    db, dataset = f"sqlite:///{tmp_path / 'answers.db'}", "one_learner"
    first = _learner(db, dataset, tmp_path, "first")
    second = _learner(db, dataset, tmp_path, "second")
    try:
        first.start()
        holder = _wait_for(lambda: _holder(db, dataset))
        assert holder, _log(tmp_path / "first.log")
        # --no-wait refuses, with the coded message and no traceback.
        refused = subprocess.run(
            [sys.executable, "-m", "spacy_al", "learner", *_options(db, dataset)]
            + ["--no-wait"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **_env(tmp_path)},
        )
        out = refused.stdout + refused.stderr
        assert refused.returncode == 1, out
        assert "E1100" in out and holder["learner"] in out
        assert "Traceback" not in out
        # Without it, the second waits, and takes over once the first stops.
        second.start()
        assert _wait_for(lambda: "Waiting" in _log(tmp_path / "second.log"))
        assert _holder(db, dataset)["learner"] == holder["learner"]
        assert first.stop() == 0
        taken = _wait_for(
            lambda: (
                (s := _holder(db, dataset)) and s["learner"] != holder["learner"] and s
            )
        )
        assert taken, _log(tmp_path / "second.log")
    finally:
        first.close()
        second.close()


def test_learner_process_started_beside_the_server(tmp_path):
    db, dataset = f"sqlite:///{tmp_path / 'answers.db'}", "beside"
    server = ServerProcess(
        ["textcat.teach", *_options(db, dataset), "--learner", "process"],
        port=free_port(),
        log=tmp_path / "server.log",
        env=_env(tmp_path),
    )
    try:
        server.start()
        assert server.wait_ready(), _log(tmp_path / "server.log")
        # The server serves what its learner process selected, and shows the
        # version it learnt. The first task waits for the learner process to
        # start and select (seconds; more on a loaded machine, where it runs
        # at a lower priority than everything else).
        deadline = time.monotonic() + 90
        for i in range(12):
            while True:
                status, reply = request(
                    server.port, "POST", "/next", {"annotator": "al", "wait": 10.0}
                )
                assert status == 200, reply
                if reply["task"] is not None or i or time.monotonic() > deadline:
                    break
            assert reply["task"] is not None, (reply, _log(tmp_path / "server.log"))
            answer = {"_input_key": reply["task"]["_input_key"], "answer": "reject"}
            status, _ = request(
                server.port, "POST", "/answer", {"annotator": "al", "task": answer}
            )
            assert status == 200

        def learnt() -> bool:
            _, stats = request(server.port, "GET", "/stats?annotator=al")
            return stats["version"] >= 1 and stats["error"] is None

        assert _wait_for(learnt, 30), _log(tmp_path / "server.log")
        # The learner beside the server runs at a lower CPU priority: on one
        # machine the server's requests come first.
        holder = _holder(db, dataset)
        assert holder is not None
        learner_pid = int(holder["learner"].split(":")[1])
        ours = os.getpriority(os.PRIO_PROCESS, 0)  # the server's too (inherited)
        assert os.getpriority(os.PRIO_PROCESS, learner_pid) == min(ours + 10, 19)
        # Stopping the server stops its learner, which frees the lock.
        assert server.stop() == 0
        assert _holder(db, dataset) is None
        assert "Learner of beside is running" in _log(tmp_path / "server.log")
    finally:
        server.close()


# --- the lock and the schema ------------------------------------------------------------


def test_learner_process_lock_runs_out_and_fences_the_old_holder(tmp_path):
    with Store(tmp_path / "a.db") as store:
        store.create_dataset("news")
        now = time.time()
        assert store.acquire_learner("news", "a", seconds=10, now=now)["acquired"]
        busy = store.acquire_learner("news", "b", seconds=10, now=now + 5)
        assert busy == {"acquired": False, "holder": "a", "expires": now + 10}
        task = {"_input_key": 1, "text": "x"}
        assert store.publish_queue(
            "news", "a", version=3, tasks=[task], replace=True, exhausted=False
        )
        # a's heartbeat ran out: b takes over and the version goes on.
        assert store.acquire_learner("news", "b", seconds=10, now=now + 11)["acquired"]
        assert store.learner_state("news")["queue_version"] == 3
        # a can neither renew nor publish any more.
        assert not store.renew_learner("news", "a", seconds=10)
        assert not store.publish_queue(
            "news", "a", version=4, tasks=[], replace=True, exhausted=False
        )
        assert [row["input_key"] for row in store.read_queue("news")] == [1]


def test_learner_process_lock_of_a_killed_process_is_free_at_once(tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(tmp_path / "a.db") as store:
            store.acquire_learner("live", f"{host}:{alive.pid}:x", seconds=60)
            with pytest.raises(LearnerBusy, match="E1100"):
                LearnerLock(store, "live").acquire(wait=False)
            # The holder's process ended (kill -9): free at once, not in 60 s.
            store.acquire_learner("killed", f"{host}:{dead.pid}:x", seconds=60)
            lock = LearnerLock(store, "killed")
            assert lock.acquire(wait=False)
            assert store.learner_state("killed")["learner"] == lock.learner
            lock.release()
    finally:
        alive.kill()
        alive.wait()


def _without_learner_tables(url: str) -> None:
    """A database as the servers before #13 made it: no learners, no queue."""
    with Store(url) as store:
        store.add_answers(
            "news", [{"text": "Goal!", "answer": "accept"}], annotator="al"
        )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE queue")
        conn.exec_driver_sql("DROP TABLE learners")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("SPACY_AL_TEST_POSTGRES_URL is not set")
    schema = f"learner_migrate_{os.getpid()}"  # a schema of its own
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}"
    yield url + f"options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    engine.dispose()


def test_learner_process_old_database_gets_the_learner_tables(old_url):
    _without_learner_tables(old_url)
    engine = sa.create_engine(old_url)
    assert not sa.inspect(engine).has_table("learners")
    engine.dispose()
    with Store(old_url) as store:
        assert [a["text"] for a in store.get_answers("news")] == ["Goal!"]
        assert store.learner_state("news") is None
        assert store.acquire_learner("news", "a", seconds=10)["acquired"]
        assert store.publish_queue(
            "news",
            "a",
            version=1,
            tasks=[{"_input_key": 7, "text": "x"}],
            replace=True,
            exhausted=False,
        )
        assert store.read_queue("news")[0]["task"]["text"] == "x"


# --- in one process: overlap 2 and undo across two followers ---------------------------


def _kwargs(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": "team",
        "source": str(SUPPORT),
        "label": LABELS,
        "db": f"sqlite:///{tmp_path / 'team.db'}",
        "batch_size": 5,
        **extra,
    }


def _open_learner(kwargs: dict[str, Any], **settings: Any) -> Any:
    """The learner of ``kwargs``'s dataset (textcat.teach), with ``settings``."""
    return open_learner(
        lambda: build_components("textcat.teach", kwargs),
        db=kwargs["db"],
        dataset=kwargs["dataset"],
        **settings,
    )


def _answer(feed: Feed, who: str, *, timeout: float = 10.0) -> dict:
    task = feed.next_task(who, timeout=timeout)
    assert task is not None
    feed.answer(who, {**task, "answer": "accept"})
    return task


@contextmanager
def _two_servers(kwargs: dict[str, Any]) -> Iterator[tuple[Feed, Feed, Any]]:
    """Two serve-only servers of ``kwargs``'s dataset and its learner, learning
    in a thread; all closed after."""
    servers = [
        Feed.from_components(
            build_components("textcat.teach", {**kwargs, "learner": "remote"}),
            checkpoint=None,
        )
        for _ in range(2)
    ]
    learner = _open_learner(kwargs)
    stopped = threading.Event()
    thread = threading.Thread(target=learner.run, kwargs={"stopped": stopped})
    thread.start()
    try:
        yield servers[0], servers[1], learner
    finally:
        stopped.set()
        thread.join()
        learner.close()
        for server in servers:
            server.close()


def test_learner_process_overlap_2_and_undo_across_servers(tmp_path):
    kwargs = _kwargs(tmp_path, overlap=2)
    with _two_servers(kwargs) as (a, b, learner):
        # Before any update the servers show the learner's state, not an error.
        assert _wait_for(lambda: a.stats()["error"] is None, 10)
        first = _answer(a, "alice")
        # bob, on the other server, is asked about alice's example: it wants a
        # second answer, and who answered it comes from the store.
        key = first["_input_key"]
        assert _wait_for(lambda: key in b._active, 10)
        assert b.next_task("bob", timeout=5)["_input_key"] == key
        b.answer("bob", {"_input_key": key, "answer": "accept"})
        assert _wait_for(lambda: b.stats()["answers"] == a.stats()["answers"] == 2, 10)
        # Nobody else gets it: it has its two answers, across servers.
        task = a.next_task("carol", timeout=5)
        assert task is not None and task["_input_key"] != key
        # Undo on a follower takes the answer out of the store and serves it again.
        assert b.undo("bob")["_input_key"] == key
        with Store(kwargs["db"]) as store:
            assert {eg["_annotator_id"] for eg in store.get_answers("team")} == {
                "alice"
            }
        b.answer("bob", {"_input_key": key, "answer": "reject"})
        # The learner learns what the servers store, and they show its version.
        for _ in range(6):
            _answer(a, "alice")
            _answer(b, "bob")
        assert _wait_for(lambda: a.stats()["version"] > 0, 30)
        assert learner.loop.version == a.stats()["version"]
        # alice accepted, bob rejected: the learner holds it back until a
        # reviewer settles it, as in one process.
        assert _wait_for(lambda: key in learner.loop.conflicts, 10)
        with Store(kwargs["db"]) as store:
            store.create_dataset("team_review", meta={"review_of": ["team"]})
            review = {k: v for k, v in first.items() if not k.startswith("_")}
            store.add_answers(
                "team_review", [{**review, "answer": "accept"}], annotator="lead"
            )
        assert learner.poll_reviews() == 1
        assert key not in learner.loop.conflicts


def test_learner_process_undo_leases_the_example_back_before_another_server_can_claim_it(
    tmp_path, monkeypatch
):
    kwargs = _kwargs(tmp_path)  # overlap 1
    with _two_servers(kwargs) as (a, b, learner):
        # a's lease writer writes only when told: what is in the store after
        # undo was written by the undo itself.
        writes = threading.Event()
        flush = a._lease_writer.flush

        def gated(key: int | None = None) -> None:
            if writes.is_set():
                flush(key)

        monkeypatch.setattr(a._lease_writer, "flush", gated)
        key = _answer(a, "alice")["_input_key"]
        writes.set()
        a._lease_writer.flush()  # the answered lease's end, as the writer would
        writes.clear()
        with Store(kwargs["db"]) as store:
            assert key not in store.live_leases("team")
        assert a.undo("alice")["_input_key"] == key
        with Store(kwargs["db"]) as store:
            assert store.get_answers("team") == []
            assert store.live_leases("team").get(key) == {"alice"}
        # bob, on the other server, is never served it; alice gets it back.
        for _ in range(5):
            task = b.next_task("bob", timeout=5)
            assert task is not None and task["_input_key"] != key
            b.answer("bob", {**task, "answer": "accept"})
        assert a.next_task("alice", timeout=5)["_input_key"] == key


def test_learner_process_publishes_its_queue_a_window_ahead_of_the_servers(tmp_path):
    # The learner keeps the rest of its ranking and publishes it as the servers
    # take from the queue: a new version's ranking is a small write, and the
    # servers are never told the queue is exhausted while some is unpublished.
    kwargs = _kwargs(tmp_path)
    learner = _open_learner(kwargs, prefetch=10)
    tasks = [{"_input_key": key, "text": f"text {key}"} for key in range(1, 201)]
    published: list[int] = []
    try:
        with Store(kwargs["db"]) as store:
            with learner._cond:  # a ranking of 200, nothing more to select
                learner._candidates = deque(tasks)
                learner._cand_version = 0
                learner._exhausted = True
            since = 0
            while True:
                learner._publish_queue()
                rows = store.read_queue("team", since_id=since)
                if not published:  # the first: a window, not the whole queue
                    assert 0 < len(rows) < len(tasks) / 2
                published += [row["input_key"] for row in rows]
                since = rows[-1]["id"] if rows else since
                exhausted = store.learner_state("team")["exhausted"]
                if len(published) == len(tasks):
                    break
                assert rows and not exhausted
                # The servers take what was published: the learner learns it.
                with learner._cond:
                    for key in published:
                        learner._answered_by[key].add("alice")
                    learner._drop_candidates()
        assert published == [task["_input_key"] for task in tasks]  # in order, once
        assert exhausted
    finally:
        learner.close()


def test_learner_process_publishes_a_new_ranking_in_short_transactions(
    tmp_path, monkeypatch
):
    # Each publish holds SQLite's write lock, which the servers' answers wait
    # for: a new version's ranking goes in chunks, best first, and only the
    # last says the queue is exhausted.
    from spacy_al.serve import learner as learner_module

    kwargs = _kwargs(tmp_path)
    learner = _open_learner(kwargs, prefetch=500)
    tasks = [{"_input_key": key, "text": f"text {key}"} for key in range(1, 131)]
    calls: list[tuple[int, bool, bool]] = []
    publish = learner.store.publish_queue

    def recorded(*args: Any, **kw: Any) -> Any:
        calls.append((len(kw["tasks"]), kw["replace"], kw["exhausted"]))
        return publish(*args, **kw)

    monkeypatch.setattr(learner.store, "publish_queue", recorded)
    try:
        with learner._cond:
            learner._candidates = deque(tasks)
            learner._cand_version = 0
            learner._exhausted = True
        learner._publish_queue()
        chunk = learner_module.PUBLISH_CHUNK
        assert len(calls) > 1 and all(n <= chunk for n, _, _ in calls)
        assert [replace for _, replace, _ in calls] == [True] + [False] * (
            len(calls) - 1
        )
        assert [done for _, _, done in calls] == [False] * (len(calls) - 1) + [True]
        with Store(kwargs["db"]) as store:
            rows = store.read_queue("team")
            assert [row["input_key"] for row in rows] == list(range(1, 131))
            assert [row["rank"] for row in rows] == list(range(130))
            assert store.learner_state("team")["exhausted"]
    finally:
        learner.close()


def test_learner_process_bench_next_example_with_a_learner_process(tmp_path):
    from spacy_al.benchmarks import next_example, speed

    records = speed.read_labelled(SUPPORT)
    r = next_example.measure_next_example(
        records,
        pool_size=300,
        build=speed.SESSION,
        answers=25,
        annotators=3,
        think=(0.02, 0.05),
        workdir=tmp_path,
        learner="process",
    )
    assert r["learner"] == "process"
    # Every question came from the learner process's queue (this feed selects
    # nothing), and the learner stopped cleanly, saying its peak memory.
    assert r["answers"] == 26  # the 25 measured, and the warm-up's
    assert r["answer_then_next"]["n"] == 25
    assert r["learner_peak_rss_bytes"] > 0
    assert r["error"] is None


def test_learner_process_stops_when_its_dataset_is_dropped(tmp_path):
    kwargs = _kwargs(tmp_path)
    learner = _open_learner(kwargs)
    try:
        learner.step()
        with Store(kwargs["db"]) as store:
            store.drop_dataset("team", force=True)
        with pytest.raises(DatasetDropped, match="E986"):
            learner.run()
    finally:
        learner.close()
    with Store(kwargs["db"]) as store:  # the lock is free for the next learner
        assert store.learner_state("team")["expires"] == 0.0


def test_learner_process_closes_its_dask_cluster_when_it_stops(tmp_path, monkeypatch):
    # A learner started with --dask local:N stops its cluster's workers when
    # it stops (its session opened the cluster).
    from types import SimpleNamespace

    from spacy_al.recipes import learner as learner_recipe

    from spacy_al.cli import load_builtin_recipes

    load_builtin_recipes()
    closed = []
    cluster = SimpleNamespace(close=lambda: closed.append("cluster"))
    learn = SimpleNamespace(
        loop=SimpleNamespace(pool=SimpleNamespace(cluster=cluster)),
        lock=SimpleNamespace(learner="test"),
        run=lambda stopped: None,
        close=lambda: closed.append("learner"),
    )
    monkeypatch.setattr(learner_recipe, "open_learner", lambda build, **kw: learn)
    learner_recipe.learner(
        "dasked",
        Path(SUPPORT),
        "A,B",
        db=f"sqlite:///{tmp_path / 'db.sqlite'}",
        dask="local:1",
    )
    assert closed == ["learner", "cluster"]
