"""Background work steps aside while a request runs (spacy_al.serve.priority)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from spacy_al.corpus import Source
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.serve import priority
from spacy_al.serve.feed import Feed
from spacy_al.serve.priority import Gate
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Updater

SUPPORT = Path(corpus_path("support.jsonl"))


def _pause_in_thread(gate: Gate) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        gate.pause()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_pause_returns_at_once_without_requests():
    gate = Gate(max_pause=30.0)
    _, done = _pause_in_thread(gate)
    assert done.wait(5.0)
    assert gate.busy == 0


def test_pause_waits_for_the_request_to_end():
    gate = Gate(max_pause=30.0)
    with gate.foreground():
        assert gate.busy == 1
        _, done = _pause_in_thread(gate)
        assert not done.wait(0.3)  # still paused while the request runs
    assert done.wait(5.0)  # and goes on once it ended
    assert gate.busy == 0


def test_pause_waits_for_every_request():
    gate = Gate(max_pause=30.0)
    first, second = gate.foreground(), gate.foreground()
    first.__enter__()
    second.__enter__()
    _, done = _pause_in_thread(gate)
    first.__exit__(None, None, None)
    assert not done.wait(0.3)  # one request still runs
    second.__exit__(None, None, None)
    assert done.wait(5.0)


def test_a_request_that_raises_still_ends():
    gate = Gate(max_pause=30.0)
    try:
        with gate.foreground():
            raise KeyError("boom")
    except KeyError:
        pass
    assert gate.busy == 0


def test_background_work_is_never_starved():
    # Under a request that never ends, a pause gives up after max_pause, and the
    # thread then works min_run seconds without pausing.
    gate = Gate(max_pause=0.05, min_run=30.0)
    with gate.foreground():
        _, done = _pause_in_thread(gate)
        assert done.wait(5.0)
        times = []

        def run() -> None:
            gate.pause()
            start = time.monotonic()
            for _ in range(20):
                gate.pause()
            times.append(time.monotonic() - start)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10.0)
        assert not thread.is_alive()
        assert times[0] < 0.05 * 20  # the 20 pauses in its run didn't wait


def test_a_request_never_pauses_for_itself():
    # Scoring or predicting inside a request (a pause point on the request's own
    # thread) goes straight on, even with other requests in flight.
    gate = Gate(max_pause=30.0)
    other = gate.foreground()
    other.__enter__()
    done = threading.Event()

    def request() -> None:
        with gate.foreground():
            gate.pause()
        done.set()

    threading.Thread(target=request, daemon=True).start()
    assert done.wait(5.0)
    other.__exit__(None, None, None)
    assert gate.busy == 0


def test_waiting_for_background_work_lets_it_run():
    # A request that waits for the selector must not make the selector wait.
    gate = Gate(max_pause=30.0)
    with gate.foreground():
        with gate.waiting():
            assert gate.busy == 0
            _, done = _pause_in_thread(gate)
            assert done.wait(5.0)
        assert gate.busy == 1
    assert gate.busy == 0


def _runs_only_after_the_request(work) -> object:
    """Start ``work`` in a thread during a request; check it waits for the
    request's end, then return what it returned."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    with priority.foreground():
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "background work ran on during the request"
    thread.join(60.0)
    assert not thread.is_alive()
    return out[0]


def test_selection_and_learning_wait_while_a_request_runs(monkeypatch):
    # The feed gives its loop the gate's pause as the yield point: a real
    # selection and a real update then wait for the request to end.
    monkeypatch.setattr(priority.GATE, "max_pause", 60.0)
    loop = ActiveLoop(
        Pool(Source(SUPPORT)),
        Updater(TextcatModel(build_textcat(LABELS))),
        spec=StrategySpec.parse("margin"),
        batch_size=4,
    )
    feed = Feed(loop, start=False)
    try:
        tasks = _runs_only_after_the_request(lambda: loop.select(4))
        assert len(tasks) == 4
        loop.answer(
            [
                {**t, "answer": "accept" if i % 2 else "reject"}
                for i, t in enumerate(tasks)
            ],
            annotator="alice",
        )
        targets = loop.pop_targets()
        stats = _runs_only_after_the_request(lambda: loop.updater.update(targets))
        assert stats.version == 1 and stats.n_new == 4
    finally:
        feed.close()
