"""The lease book: who holds which example until when, and its copy in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from spacy_al.recipes.textcat import teach

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve.feed import Feed, LeaseError, ServingStopped
from spacy_al.serve.leases import Leases
from spacy_al.store import Store

LEASE = 60.0
WALL_START = 1_700_000_000.0


class Clocks:
    """The feed's clock and the wall clock, moved on together by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = WALL_START

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


def task(key: int) -> dict:
    return {"text": f"message {key}", "label": "SHIPPING", "_input_hash": key}


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def store(db_url):
    with Store(db_url) as s:
        s.create_dataset("leased")
        yield s


def make_leases(store, clocks: Clocks, tasks: dict[int, dict] | None = None) -> Leases:
    return Leases(
        store,
        "leased",
        lease_seconds=LEASE,
        tasks={k: task(k) for k in (1, 2, 3)} if tasks is None else tasks,
        clock=clocks.monotonic,
        wall=clocks.time,
    )


def flush(leases: Leases) -> None:
    leases.write(leases.pending())


def stored(store: Store) -> dict[tuple[int, str], dict]:
    return {(x["input_hash"], x["annotator"]): x for x in store.get_leases("leased")}


def test_leases_queue_each_annotator_oldest_first(clocks):
    leases = make_leases(None, clocks)
    assert leases.first("alice") is None and leases.held_by("alice") == []
    for key in (1, 2, 3):
        leases.lease(key, "alice", clocks.now)
    leases.lease(2, "bob", clocks.now)
    assert leases.held_by("alice") == [1, 2, 3] and leases.first("alice") == 1
    assert dict(leases.holders(2)) == {"alice": 1060.0, "bob": 1060.0}
    # Leased again: last in the queue, or first (an undone answer is served next).
    leases.lease(1, "alice", clocks.now)
    assert leases.held_by("alice") == [2, 3, 1]
    leases.lease(3, "alice", clocks.now, first=True)
    assert leases.held_by("alice") == [3, 2, 1] and leases.first("alice") == 3


def test_leases_end_lease_seconds_after_the_last_renewal(clocks):
    leases = make_leases(None, clocks)
    leases.lease(1, "alice", clocks.now)
    leases.lease(2, "alice", clocks.now)
    leases.lease(3, "bob", clocks.now)
    clocks.advance(40)
    leases.renew(2, "alice", clocks.now)  # its place in the queue stays
    leases.touch("bob", clocks.now)
    assert leases.held_by("alice") == [1, 2]
    leases.expire(1059.9)
    assert leases.held_by("alice") == [1, 2]
    leases.expire(1060.0)  # alice's first lease ends on the dot
    assert leases.held_by("alice") == [2] and not leases.holders(1)
    leases.expire(1099.9)
    assert leases.held_by("alice") == [2] and leases.held_by("bob") == [3]
    leases.expire(1100.0)
    assert leases.held_by("alice") == [] and leases.held_by("bob") == []
    assert not leases.holders(2) and not leases.holders(3)


def test_leases_drop_ends_one_annotators_lease(clocks):
    leases = make_leases(None, clocks)
    leases.lease(1, "alice", clocks.now)
    leases.lease(1, "bob", clocks.now)
    leases.drop(1, "alice")
    assert leases.held_by("alice") == [] and dict(leases.holders(1)) == {"bob": 1060}
    leases.drop(1, "alice")  # not held: nothing happens
    leases.drop(1, "bob")
    assert not leases.holders(1) and leases.held_by("bob") == []


def test_leases_without_a_store_write_nothing(clocks):
    leases = make_leases(None, clocks)
    leases.lease(1, "alice", clocks.now)
    leases.drop(1, "alice")
    assert leases.pending() == {}
    leases.write({(1, "alice"): (WALL_START, task(1))})  # no store: no-op
    leases.load(lambda lease: True)
    assert leases.held_by("alice") == []


def test_leases_are_stored_with_wall_clock_ends_and_tasks(store, clocks):
    leases = make_leases(store, clocks)
    leases.lease(1, "alice", clocks.now)
    leases.lease(2, "bob", clocks.now)
    assert stored(store) == {}  # nothing written until the feed writes
    flush(leases)
    rows = stored(store)
    assert set(rows) == {(1, "alice"), (2, "bob")}
    assert rows[(1, "alice")]["expires"] == WALL_START + LEASE
    assert rows[(1, "alice")]["task"] == task(1)
    # Ended leases are deleted: answered (dropped) or expired.
    leases.drop(1, "alice")
    clocks.advance(LEASE)
    leases.expire(clocks.now)
    changes = leases.pending()
    assert changes == {(1, "alice"): None, (2, "bob"): None}
    leases.write(changes)
    assert stored(store) == {}
    leases.lease(3, "alice", clocks.now)
    leases.drop(3, "alice")
    leases.lease(3, "alice", clocks.now)
    flush(leases)
    assert set(stored(store)) == {(3, "alice")}
    assert leases.pending() == {}


def test_leases_of_tasks_no_longer_served_are_not_stored(store, clocks):
    tasks = {1: task(1)}
    leases = make_leases(store, clocks, tasks)
    leases.lease(1, "alice", clocks.now)
    leases.lease(2, "alice", clocks.now)  # 2 isn't served (not in tasks)
    flush(leases)
    assert set(stored(store)) == {(1, "alice")}
    leases.drop(2, "alice")  # never stored: nothing to delete
    assert leases.pending() == {}


def test_leases_renewal_is_written_once_it_lags_a_quarter_lease(store, clocks):
    leases = make_leases(store, clocks)
    leases.lease(1, "alice", clocks.now)
    flush(leases)
    clocks.advance(LEASE / 4 - 1)
    leases.touch("alice", clocks.now)
    leases.renew(1, "alice", clocks.now)
    leases.lease(1, "alice", clocks.now)
    assert leases.pending() == {}
    assert stored(store)[(1, "alice")]["expires"] == WALL_START + LEASE
    # The real end is still held in memory (the stored one only lags).
    assert leases.holders(1)["alice"] == clocks.now + LEASE
    clocks.advance(1)  # now the stored end lags by a quarter of the lease
    leases.touch("alice", clocks.now)
    flush(leases)
    assert stored(store)[(1, "alice")]["expires"] == WALL_START + LEASE / 4 + LEASE


def test_leases_load_takes_back_what_each_annotator_held(store, clocks):
    first = make_leases(store, clocks)
    first.lease(1, "alice", clocks.now)
    first.lease(2, "alice", clocks.now)
    clocks.advance(30)
    first.lease(3, "bob", clocks.now)
    first.lease(1, "carol", clocks.now)
    flush(first)
    # The server stops; another starts 10 s later on a different monotonic clock.
    clocks.advance(10)
    clocks.now = 5.0
    offered: list[tuple[int, str]] = []

    def keep(lease: dict) -> bool:
        offered.append((lease["input_hash"], lease["annotator"]))
        assert lease["task"] == task(lease["input_hash"])
        return lease["annotator"] != "carol"

    second = make_leases(store, clocks)
    second.load(keep)
    assert sorted(offered) == [(1, "alice"), (1, "carol"), (2, "alice"), (3, "bob")]
    assert second.held_by("alice") == [1, 2] and second.held_by("bob") == [3]
    assert second.held_by("carol") == []
    # Each held until the same wall-clock end as before, on the new clock.
    assert second.holders(1)["alice"] == pytest.approx(5.0 + 20.0)
    assert second.holders(3)["bob"] == pytest.approx(5.0 + 50.0)
    assert set(stored(store)) == {(1, "alice"), (2, "alice"), (3, "bob")}
    # Loaded leases count as stored: a renewal that doesn't lag isn't written.
    second.renew(3, "bob", clocks.now)
    assert second.pending() == {}


def test_leases_load_deletes_ended_leases(store, clocks):
    first = make_leases(store, clocks)
    first.lease(1, "alice", clocks.now)
    clocks.advance(30)
    first.lease(2, "bob", clocks.now)
    flush(first)
    clocks.advance(LEASE - 30)  # alice's lease ends now, bob's in 30 s
    offered: list[int] = []
    second = make_leases(store, clocks)
    second.load(lambda lease: offered.append(lease["input_hash"]) is None)
    assert offered == [2]
    assert second.held_by("alice") == [] and second.held_by("bob") == [2]
    assert set(stored(store)) == {(2, "bob")}


# --- the feed records errors saving leases -------------------------------------------


def test_leases_failed_write_shows_as_the_feeds_error(tmp_path: Path):
    comps = teach(
        dataset="feed_leases",
        source=Path(corpus_path("support.jsonl")),
        label=LABELS,
        db=f"sqlite:///{tmp_path / 'feed.db'}",
        batch_size=4,
    )
    feed = Feed.from_components(comps)
    try:

        def broken(dataset, leases):
            raise OSError("disk full")

        feed.store.put_leases = broken
        feed.store.claim_lease = lambda *args, **kwargs: broken(None, None)
        task = feed.next_task("alice")
        assert task is not None  # serving goes on
        error = feed.stats()["error"]
        assert error == "Saving leases failed: OSError: disk full"
        assert feed._leases.held_by("alice") == [task["_input_key"]]
    finally:
        del feed.store.put_leases
        del feed.store.claim_lease
        feed.close()


# --- leases across processes, and drop (#11, fault 8) -------------------------------


def test_leases_claim_gives_each_example_to_overlap_annotators(store, clocks):
    def claim(who, *, overlap=1, key=1, now=WALL_START):
        return store.claim_lease(
            "leased",
            key,
            who,
            expires=now + LEASE,
            task=task(key),
            overlap=overlap,
            grace=LEASE / 4,
            now=now,
        )

    assert claim("alice")["claimed"]
    lost = claim("bob")
    assert not lost["claimed"] and lost["held"] == ["alice"]
    assert claim("alice")["claimed"]  # one's own lease is renewed
    assert claim("bob", overlap=2)["claimed"]  # overlap 2: a second annotator
    assert not claim("carol", overlap=2)["claimed"]
    # A lease counts until a quarter lease after its stored end (renewals lag).
    assert not claim("carol", overlap=2, now=WALL_START + LEASE + 1)["claimed"]
    assert claim("carol", overlap=2, now=WALL_START + 1.3 * LEASE)["claimed"]
    # An answered example isn't claimed again; nor by whoever answered it.
    ids = store.add_answers(
        "leased", [{"text": "answered", "answer": "accept"}], annotator="dave"
    )
    [answered] = store.get_answers("leased")
    assert ids == [answered["_id"]]
    found = claim("erin", key=answered["_input_key"])
    assert not found["claimed"] and found["answered"] == ["dave"]
    assert not claim("dave", overlap=2, key=answered["_input_key"])["claimed"]
    assert claim("erin", overlap=2, key=answered["_input_key"])["claimed"]
    assert store.claim_lease("nope", 1, "x", expires=0.0, task={}) is None


def test_leases_two_feeds_on_one_database_never_serve_one_example_twice(tmp_path):
    db = f"sqlite:///{tmp_path / 'two.db'}"
    feeds = [
        Feed.from_components(
            teach(
                dataset="shared",
                source=Path(corpus_path("support.jsonl")),
                label=LABELS,
                db=db,
                batch_size=4,
            )
        )
        for _ in range(2)
    ]
    try:
        # The two feeds select the same examples; each is leased once.
        served = [
            feeds[i % 2].next_task(f"annotator{i}", timeout=10.0) for i in range(12)
        ]
        keys = [t["_input_key"] for t in served if t is not None]
        assert len(keys) == 12 and len(set(keys)) == 12
        # Nobody answers on one server what another server's annotator holds.
        for i, t in enumerate(served):
            who = f"annotator{i}"
            with pytest.raises(LeaseError, match="E980"):
                feeds[i % 2].answer(f"other{i}", {**t, "answer": "accept"})
            assert feeds[i % 2].answer(who, {**t, "answer": "accept"}) is not None
        # Answered on one server: not served on the other.
        more = [feeds[i % 2].next_task(f"late{i}", timeout=10.0) for i in range(12)]
        assert not {t["_input_key"] for t in more if t} & set(keys)
    finally:
        for feed in feeds:
            feed.close()
    with Store(db) as store:
        assert store.count_answers("shared") == 12


def test_leases_drop_refuses_a_dataset_in_use_unless_forced(store, clocks):
    store.put_leases(
        "leased",
        [{"input_hash": 1, "annotator": "alice", "expires": WALL_START, "task": {}}],
    )
    with pytest.raises(ValueError, match="E985"):
        store.drop_dataset("leased", now=WALL_START - 1)  # a live lease
    store.beat("leased", "server-1", expires=WALL_START + 30)
    with pytest.raises(ValueError, match="E985"):
        store.drop_dataset("leased", now=WALL_START + 10)  # a server's heartbeat
    assert store.dataset_in_use("leased", now=WALL_START + 10) == {
        "leases": 0,
        "servers": 1,
    }
    store.end_beat("leased", "server-1")
    assert store.drop_dataset("leased", now=WALL_START + 10) == 0  # nobody uses it
    store.create_dataset("leased")
    store.beat("leased", "server-2", expires=WALL_START + 30)
    assert store.drop_dataset("leased", force=True, now=WALL_START) == 0
    assert not store.has_dataset("leased")


def test_leases_feed_stops_when_its_dataset_is_dropped_under_it(tmp_path):
    db = f"sqlite:///{tmp_path / 'drop.db'}"
    comps = teach(
        dataset="dropped",
        source=Path(corpus_path("support.jsonl")),
        label=LABELS,
        db=db,
        batch_size=4,
    )
    feed = Feed.from_components(comps)
    try:
        served = feed.next_task("alice")
        with Store(db) as store:
            with pytest.raises(ValueError, match="E985"):
                store.drop_dataset("dropped")  # the feed is serving it
            store.drop_dataset("dropped", force=True)
        with pytest.raises(ServingStopped, match="E986"):
            feed.answer("alice", {**served, "answer": "accept"})
        with pytest.raises(ServingStopped, match="E986"):
            feed.next_task("bob")
        with Store(db) as store:  # not created again without its settings
            assert not store.has_dataset("dropped")
    finally:
        feed.close()


def test_leases_ended_here_spare_a_lease_another_server_renewed(store, clocks):
    leases = make_leases(store, clocks)
    leases.lease(1, "alice", clocks.now)
    flush(leases)
    # alice goes on with the example on another server, which renews it.
    later = WALL_START + 10 * LEASE
    store.put_leases(
        "leased",
        [{"input_hash": 1, "annotator": "alice", "expires": later, "task": task(1)}],
    )
    clocks.advance(LEASE)
    leases.expire(clocks.now)
    flush(leases)
    assert stored(store)[(1, "alice")]["expires"] == later
    # A lease this server wrote last is deleted when it ends.
    leases.lease(2, "bob", clocks.now)
    flush(leases)
    leases.drop(2, "bob")
    flush(leases)
    assert set(stored(store)) == {(1, "alice")}
