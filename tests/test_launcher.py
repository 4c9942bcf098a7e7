"""Serving a recipe's components in this process: the app gets the feed built
once, the links appear once the server listens, and the model is saved when the
server stops."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import srsly

from spacy_al.checkpoints import Checkpoints
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.loop import StrategySpec
from spacy_al.serve import launcher
from spacy_al.session import open_session
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.targets import answers_to_textcat_targets
from spacy_al.updater import Updater

SUPPORT = Path(corpus_path("support.jsonl"))
LABEL_LIST = LABELS.split(",")
GOLD = {eg["text"]: eg["label"] for eg in srsly.read_jsonl(SUPPORT)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def components(db: str, *, port: int, annotators: str | None = None) -> dict:
    """What textcat.teach returns (built from the session, no recipe imported)."""
    session = open_session(
        "support",
        SUPPORT,
        db=db,
        meta={"labels": LABEL_LIST, "task": "textcat"},
        new_updater=lambda version: Updater(
            TextcatModel(build_textcat(LABEL_LIST, exclusive=True)), version=version
        ),
        load_updater=lambda checkpoints: checkpoints.load(),
        to_targets=lambda answers, labels: answers_to_textcat_targets(
            answers, labels, exclusive=True
        ),
    )
    loop = ActiveLoop(
        session.pool,
        session.updater,
        spec=StrategySpec.parse("margin"),
        store=session.store,
        dataset="support",
        batch_size=5,
    )
    return {
        "dataset": "support",
        "view_id": "classification",
        "store": session.store,
        "loop": loop,
        "labels": LABEL_LIST,
        "exclusive": True,
        "eval": None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {"host": "127.0.0.1", "port": port, "annotators": annotators},
    }


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class FakeStreamlit:
    """Stands in for Streamlit's server: listens, lets ``work`` use the feed the
    app would get, and stops once the links were reported."""

    def __init__(self, reports: list[tuple[str, str]], work=None) -> None:
        self.reports = reports
        self.work = work
        self.calls: list[tuple[Path, dict]] = []
        self.feed = None

    def __call__(self, app_path: Path, options: dict) -> None:
        self.calls.append((app_path, options))
        self.feed = launcher.serving_feed()
        httpd = ThreadingHTTPServer(
            (options["server.address"], options["server.port"]), Health
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            if self.work is not None:
                self.work(self.feed)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                "Ctrl+C" in text for _, text in self.reports
            ):
                time.sleep(0.05)
        finally:
            httpd.shutdown()
            httpd.server_close()


def test_launcher_serves_the_recipes_feed_in_this_process_and_saves_on_stop(
    tmp_path,
):
    db = str(tmp_path / "answers.db")
    port = free_port()
    reports: list[tuple[str, str]] = []

    def label(feed) -> None:
        for _ in range(5):  # one batch: the model learns it
            task = feed.next_task("alice", timeout=30)
            gold = [GOLD[task["text"]]]
            feed.answer("alice", {**task, "answer": "accept", "accept": gold})
        deadline = time.monotonic() + 30
        while feed.stats()["version"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    server = FakeStreamlit(reports, work=label)
    comps = components(db, port=port)
    loop = comps["loop"]
    code = launcher.serve_app(
        "textcat.teach", comps, run_server=server, report=lambda *r: reports.append(r)
    )
    assert code == 0
    # The app got the feed of the components the recipe built here.
    assert server.feed is not None and server.feed.loop is loop
    ((app_path, options),) = server.calls
    assert app_path.name == "app.py" and options["server.port"] == port
    assert launcher.serving_feed() is None  # released once the server stopped
    # The links: the base URL and how to add a name, never a name that works.
    text = "\n".join(t for _, t in reports)
    assert f"http://127.0.0.1:{port}/" in text and "?session=NAME" in text
    assert "YOUR_NAME" not in text and f"{port}/?session=" not in text
    # Stopping closed the feed, which saved the model it had learnt.
    checkpoints = Checkpoints.for_db(db, "support")
    assert checkpoints.load().version == 1 and len(checkpoints.learnt()) == 5


def test_launcher_links_name_each_annotator_with_the_same_token_after_restart(
    tmp_path,
):
    db = str(tmp_path / "answers.db")
    links = []
    for _ in range(2):
        reports: list[tuple[str, str]] = []
        port = free_port()
        launcher.serve_app(
            "textcat.teach",
            components(db, port=port, annotators="alice,bob"),
            run_server=FakeStreamlit(reports),
            report=lambda *r, reports=reports: reports.append(r),
        )
        found = [t.split("token=")[1] for _, t in reports if "token=" in t]
        assert any("session=alice" in t for _, t in reports)
        links.append(found)
    assert len(links[0]) == 2 and links[0] == links[1]


def test_launcher_port_in_use_fails_before_serving(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = FakeStreamlit([])
        comps = components(str(tmp_path / "answers.db"), port=port)
        with pytest.raises(ValueError, match="E611"):
            launcher.serve_app(
                "textcat.teach", comps, run_server=server, report=lambda *r: None
            )
        comps["store"].close()
    assert server.calls == []
