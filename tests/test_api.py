"""The JSON API (python -m spacy_al RECIPE ... --api) and access control.

A server started with --annotators gives nothing to a request without the right
token: no example, no count, no label, the same reply for an unknown name and a
wrong token. The app's login shows none of the pool either.
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
import srsly
import streamlit as st
from spacy_al.recipes.textcat import teach
from streamlit.testing.v1 import AppTest

from spacy_al.cli import join_subcommand, split_api_flag
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve import access as access_module
from spacy_al.serve import api as api_module
from spacy_al.serve import launcher as server
from spacy_al.serve.api import MAX_BODY, make_server
from spacy_al.serve.feed import Feed
from spacy_al.store import Store

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = corpus_path("support.jsonl")
LABEL_LIST = LABELS.split(",")
TOKENS = {"alice": "alice-secret-token", "bob": "bob-secret-token"}
DATASET = "api_test"


@pytest.fixture
def api(db_url, tmp_path):
    """A restricted feed served by the API in a thread; yields (port, feed)."""
    started: list[tuple] = []

    def start(*, tokens=TOKENS, source=SUPPORT):
        comps = teach(
            dataset=DATASET, source=source, label=LABELS, db=db_url, batch_size=4
        )
        feed = Feed.from_components(comps, tokens=tokens)
        httpd = make_server(feed, "127.0.0.1", 0)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        started.append((httpd, feed))
        return httpd.port, feed

    yield start
    for httpd, feed in started:
        httpd.shutdown()
        httpd.server_close()
        feed.close()


def call(port, method, path, body=None, *, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else None
        if body is not None:
            data = json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        text = response.read().decode()
        return response.status, text, dict(response.getheaders())
    finally:
        conn.close()


def pool_texts() -> list[str]:
    return [task["text"] for task in srsly.read_jsonl(SUPPORT)]


def test_api_right_token_labels_and_the_answer_is_committed(api, db_url):
    port, _ = api()
    status, text, headers = call(
        port, "POST", "/next", {"annotator": "alice", "token": TOKENS["alice"]}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Content-Type-Options"] == "nosniff"
    task = json.loads(text)["task"]
    assert task["text"] in pool_texts()
    body = {"annotator": "alice", "token": TOKENS["alice"]}
    status, text, _ = call(
        port, "POST", "/answer", {**body, "task": {**task, "answer": "reject"}}
    )
    reply = json.loads(text)
    assert status == 200 and reply["duplicate"] is False
    with Store(db_url) as store:  # committed before the reply
        stored = store.get_answers(DATASET)
    assert [(a["_id"], a["answer"], a["text"]) for a in stored] == [
        (reply["id"], "reject", task["text"])
    ]
    # A retry (its first reply lost) stores nothing and names the stored answer.
    status, text, _ = call(
        port, "POST", "/answer", {**body, "task": {**task, "answer": "reject"}}
    )
    assert json.loads(text) == {"id": reply["id"], "duplicate": True}
    with Store(db_url) as store:
        assert store.count_answers(DATASET) == 1
    status, text, _ = call(
        port, "GET", f"/stats?annotator=alice&token={TOKENS['alice']}"
    )
    assert status == 200 and json.loads(text)["you"]["answers"] == 1


@pytest.mark.parametrize(
    "who,token",
    [
        ("alice", "wrong"),
        ("alice", None),
        ("alice", TOKENS["bob"]),
        ("mallory", TOKENS["alice"]),
        ("mallory", "anything"),
        ("", ""),
        (None, None),
        (["alice"], TOKENS["alice"]),
    ],
)
def test_api_without_the_right_token_learns_nothing(api, db_url, who, token):
    port, feed = api()
    body = {"annotator": who, "token": token}
    replies = [
        call(port, "POST", "/next", body),
        call(
            port, "POST", "/answer", {**body, "task": {"text": "x", "answer": "accept"}}
        ),
        call(port, "GET", f"/stats?annotator={who}&token={token}"),
    ]
    expected = {"error": json.loads(replies[0][1])["error"]}
    texts = pool_texts()
    for status, text, _ in replies:
        assert status == 401
        assert json.loads(text) == expected  # one reply for every kind of failure
        assert not any(t in text for t in texts)
        assert not any(label in text for label in LABEL_LIST)
        assert DATASET not in text and "322" not in text
    with Store(db_url) as store:
        assert not store.has_dataset(DATASET) or store.count_answers(DATASET) == 0
    assert feed.stats()["answers"] == 0


def test_api_tokens_are_compared_in_constant_time(api, monkeypatch):
    port, _ = api()
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(access_module.hmac, "compare_digest", spy)
    for who, token in [
        ("alice", "x"),
        ("mallory", "y" * 40),
        ("alice", TOKENS["alice"]),
    ]:
        call(port, "POST", "/next", {"annotator": who, "token": token, "wait": 0})
    # Every check went through compare_digest, on equal-length digests.
    assert len(calls) == 3 and all(a == b == 32 for a, b in calls)


def test_api_refuses_bad_requests_with_json_errors(api, db_url):
    port, _ = api()
    auth = {"annotator": "alice", "token": TOKENS["alice"]}
    cases = [
        (call(port, "GET", "/nope"), 404, "E843"),
        (call(port, "GET", "/next"), 405, "E844"),
        (call(port, "POST", "/next", raw=b"{not json"), 400, "E848"),
        (call(port, "POST", "/next", raw=b"\xff\xfe"), 400, "E848"),
        (call(port, "POST", "/next", raw=b"[1, 2]"), 400, "E848"),
        (call(port, "POST", "/next", raw=b"[" * 100_000 + b"]" * 100_000), 400, "E848"),
        (call(port, "POST", "/next", {**auth, "wait": "soon"}), 400, "E850"),
        (call(port, "POST", "/answer", {**auth, "task": "accept"}), 400, "E851"),
        (
            call(
                port,
                "POST",
                "/answer",
                {**auth, "task": {"text": "hi", "answer": "yes"}},
            ),
            400,
            "E988",  # an answer names the task it answers
        ),
        (
            call(
                port,
                "POST",
                "/next",
                raw=b"{}",
                headers={"Content-Length": str(MAX_BODY + 1)},
            ),
            413,
            "E847",
        ),
    ]
    for (status, text, headers), want_status, code in cases:
        assert status == want_status, text
        assert code in json.loads(text)["error"]
        assert headers["Content-Type"].startswith("application/json")
        assert "Traceback" not in text
    # A well-formed answer to a served task with a wrong label: refused, not stored.
    task = json.loads(call(port, "POST", "/next", auth)[1])["task"]
    status, text, _ = call(
        port,
        "POST",
        "/answer",
        {**auth, "task": {**task, "answer": "accept", "accept": ["<script>"]}},
    )
    assert status == 400 and "E605" in json.loads(text)["error"]
    with Store(db_url) as store:
        assert store.count_answers(DATASET) == 0
    assert call(port, "GET", "/health")[:2] == (200, '{"status": "ok"}')


def test_api_user_text_comes_back_as_inert_json(api, tmp_path):
    source = tmp_path / "hostile.jsonl"
    hostile = '<img src=x onerror=alert(1)> "quotes" \\ </script> \u2028 ok'
    srsly.write_jsonl(source, [{"text": hostile}])
    port, _ = api(source=source)
    status, text, headers = call(
        port, "POST", "/next", {"annotator": "bob", "token": TOKENS["bob"]}
    )
    assert status == 200 and json.loads(text)["task"]["text"] == hostile
    # JSON, never HTML: the browser is told not to sniff it or run anything.
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert "\\u2028" in text  # even JavaScript's line separators are escaped
    assert headers["Content-Security-Policy"] == "default-src 'none'"


def test_api_open_server_needs_only_a_name(api):
    port, _ = api(tokens=None)
    status, text, _ = call(port, "POST", "/next", {"annotator": "zoe"})
    assert status == 200 and json.loads(text)["task"]["text"] in pool_texts()
    status, text, _ = call(port, "POST", "/next", {"annotator": "x" * 100})
    assert status == 400 and "E601" in text


def test_api_tokens_stay_the_same_across_restarts(tmp_path):
    ckpt = tmp_path / "db.models" / "ds"
    first = server.annotator_tokens(["alice", "bob"], ckpt)
    again = server.annotator_tokens(["alice", "bob", "carol"], ckpt)
    assert again["alice"] == first["alice"] and again["bob"] == first["bob"]
    assert again["carol"] not in first.values() and len(again["carol"]) >= 20
    path = tmp_path / "db.models" / "ds.tokens.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_api_flag_is_taken_out_of_any_recipe_command():
    assert split_api_flag(["textcat.teach", "ds", "src", "--api", "--port", "1"]) == (
        True,
        ["textcat.teach", "ds", "src", "--port", "1"],
    )
    assert split_api_flag(["textcat.teach", "ds"]) == (False, ["textcat.teach", "ds"])


def test_api_feed_settings_from_the_environment():
    env = {server.ENV_CHECKPOINT_SECONDS: "0.5", server.ENV_LEASE_SECONDS: "60"}
    assert server.feed_settings(env) == {
        "checkpoint_seconds": 0.5,
        "lease_seconds": 60.0,
    }
    with pytest.raises(ValueError, match="E608"):
        server.feed_settings({server.ENV_LEASE_SECONDS: "soon"})


# --- the app's login ------------------------------------------------------------


@pytest.fixture
def app_env(monkeypatch, db_url):
    st.cache_resource.clear()
    args = {
        "dataset": DATASET,
        "source": SUPPORT,
        "label": LABELS,
        "db": db_url,
        "batch_size": 4,
    }
    env = server.app_env("textcat.teach", args, tokens=TOKENS, base={})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    st.cache_resource.clear()


def _page(at: AppTest) -> str:
    parts = [element.proto.body for element in at.get("html")]
    parts += [str(element.value) for element in at.get("markdown")]
    parts += [str(getattr(element, "value", "")) for element in at.get("alert")]
    parts += [str(m.value) for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize(
    "params",
    [
        {"session": "alice", "token": "wrong"},
        {"session": "mallory", "token": "wrong"},
        {"session": "mallory", "token": TOKENS["alice"]},
        {"session": "alice"},
        {},
    ],
)
def test_app_wrong_token_shows_none_of_the_pool(app_env, params):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    page = _page(at)
    assert not any(text in page for text in pool_texts())
    assert not any(label in page for label in LABEL_LIST)
    assert DATASET not in page
    assert "accept" not in [b.key for b in at.button]
    assert not at.metric  # no counts, no model version
    if "token" in params:  # unknown name and wrong token: the same message
        assert "don&#x27;t match" in page or "don't match" in page


def test_api_two_word_commands_run_dotted_recipes():
    names = ["bench", "bench.durability", "textcat.teach"]
    assert join_subcommand(["bench", "durability", "--trials", "1"], names) == [
        "bench.durability",
        "--trials",
        "1",
    ]
    assert join_subcommand(["bench", "labels", "--corpus", "x"], names) == [
        "bench",
        "labels",
        "--corpus",
        "x",
    ]


# --- the server answers from what it served (#11, fault 3) --------------------------


def _next(port, who):
    status, text, _ = call(port, "POST", "/next", {**AUTH[who], "wait": 5})
    assert status == 200, text
    return json.loads(text)["task"]


def _send(port, who, task):
    status, text, _ = call(port, "POST", "/answer", {**AUTH[who], "task": task})
    return status, json.loads(text)


AUTH = {who: {"annotator": who, "token": token} for who, token in TOKENS.items()}


def test_api_answer_is_stored_as_served_whatever_the_client_sends(api, db_url):
    port, feed = api()
    first = _next(port, "alice")
    status, reply = _send(port, "alice", {**first, "answer": "accept"})
    assert status == 200
    second = _next(port, "alice")
    tampered = {
        **second,
        "answer": "reject",
        "_task_hash": first["_task_hash"],  # an earlier answer's hash
        "_task_key": first["_task_key"],
        "_input_hash": first["_input_hash"],
        "text": "a text that is not in the source",
        "_model_version": 99,
        "extra": {"evil": True},
        "meta": {"source": "forged"},
    }
    status, reply = _send(port, "alice", tampered)
    assert status == 200 and reply["duplicate"] is False
    with Store(db_url) as store:
        stored = {eg["_id"]: eg for eg in store.get_answers(DATASET)}
    assert len(stored) == 2  # the earlier answer is untouched
    mine = stored[reply["id"]]
    assert mine["text"] == second["text"] and mine["answer"] == "reject"
    assert mine["_task_hash"] == second["_task_hash"]
    assert str(mine["_input_key"]) == second["_input_key"]
    assert mine["_model_version"] == second["_model_version"] != 99
    assert "extra" not in mine and mine["meta"] == second["meta"]
    assert {eg["text"] for eg in stored.values()} == {first["text"], second["text"]}


def test_api_keys_are_sent_as_strings_and_taken_either_way(api, db_url):
    # 64-bit keys: a JavaScript client reads a JSON number above 2**53 with its
    # last digits changed, so /next sends them as decimal strings.
    port, _ = api()
    first = _next(port, "alice")
    assert isinstance(first["_input_key"], str) and isinstance(first["_task_key"], str)
    status, _ = _send(
        port, "alice", {"_input_key": first["_input_key"], "answer": "accept"}
    )
    assert status == 200
    second = _next(port, "alice")
    task = {"_input_key": int(second["_input_key"]), "answer": "reject"}
    status, _ = _send(port, "alice", task)
    assert status == 200
    with Store(db_url) as store:
        keys = {str(eg["_input_key"]) for eg in store.get_answers(DATASET)}
    assert keys == {first["_input_key"], second["_input_key"]}


def test_api_answer_to_a_task_not_leased_to_the_annotator_is_refused(api, db_url):
    port, feed = api()
    served = _next(port, "bob")
    # A task of the pool that was never served to anyone.
    never = next(
        t for t in feed.loop.pool.tasks if t["_input_key"] != served["_input_key"]
    )
    status, reply = _send(port, "alice", {**never, "answer": "accept"})
    assert status == 409 and "E980" in reply["error"]
    # alice answers bob's leased task: refused; bob's answer is the only one.
    status, reply = _send(port, "alice", {**served, "answer": "accept"})
    assert status == 409 and "E980" in reply["error"]
    status, reply = _send(port, "bob", {**served, "answer": "reject"})
    assert status == 200 and reply["duplicate"] is False
    with Store(db_url) as store:
        stored = store.get_answers(DATASET)
    assert [(eg["_annotator_id"], eg["answer"]) for eg in stored] == [("bob", "reject")]


def test_api_simultaneous_repeats_of_an_answer_all_get_its_id(api, db_url):
    port, _ = api()
    task = _next(port, "alice")
    barrier = threading.Barrier(8)
    replies: list[tuple[int, dict]] = []

    def send() -> None:
        barrier.wait()
        replies.append(_send(port, "alice", {**task, "answer": "accept"}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Store(db_url) as store:
        [stored] = store.get_answers(DATASET)
    assert sorted(status for status, _ in replies) == [200] * 8
    assert {reply["id"] for _, reply in replies} == {stored["_id"]}
    assert sorted(reply["duplicate"] for _, reply in replies) == [False] + [True] * 7


def test_api_answer_needs_only_the_task_key_and_the_answer(api, db_url):
    port, _ = api()
    task = _next(port, "alice")
    slim = {"_input_key": task["_input_key"], "answer": "accept", "accept": ["BILLING"]}
    status, reply = _send(port, "alice", slim)
    assert status == 200
    with Store(db_url) as store:
        [stored] = store.get_answers(DATASET)
    assert stored["text"] == task["text"] and stored["accept"] == ["BILLING"]
    assert stored["label"] == task["label"]


# --- the API's edges (#11, fault 10) ------------------------------------------------


def test_api_bad_values_get_a_json_4xx_not_a_500(api):
    port, _ = api()
    query = "&".join(f"f{i}=x" for i in range(9))
    huge = b'{"annotator": "alice", "token": "%s", "wait": 1%s}' % (
        TOKENS["alice"].encode(),
        b"0" * 4000,
    )
    task = _next(port, "alice")
    cases = [
        (call(port, "GET", f"/stats?{query}"), 400, "E982"),
        (call(port, "POST", "/next", raw=huge), 400, "E850"),
    ]
    for key in ("not-a-key", [task["_input_key"]], {"k": 1}, 1.5, None):
        cases.append(
            (
                call(
                    port,
                    "POST",
                    "/answer",
                    {**AUTH["alice"], "task": {"_input_key": key, "answer": "accept"}},
                ),
                400,
                "E988",
            )
        )
    # Only the Prodigy hash, of the wrong type: the task isn't named.
    wrong_hash = {"_input_hash": {"x": [1]}, "answer": "accept"}
    cases.append(
        (
            call(port, "POST", "/answer", {**AUTH["alice"], "task": wrong_hash}),
            400,
            "E988",
        )
    )
    for (status, text, headers), want_status, code in cases:
        assert status == want_status, text
        assert code in json.loads(text)["error"]
        assert headers["Content-Type"].startswith("application/json")
    # Beside the task's key, a wrong-typed hash is ignored like any other field.
    status, reply = _send(
        port,
        "alice",
        {**task, "_input_hash": ["x"], "_task_hash": 2**80, "answer": "ignore"},
    )
    assert status == 200 and reply["duplicate"] is False


def _stall(port: int, body: bytes, *, every: float | None = None) -> float:
    """Send a request whose body never arrives whole (``every``: one byte per
    that many seconds); return the seconds until the server closed it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    start = time.monotonic()
    try:
        sock.sendall(
            b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body) + 100)
        )
        sock.sendall(body[:5])
        if every is None:
            return _closed_after(sock, start)
        sock.settimeout(every)
        for byte in body[5:]:
            try:
                if sock.recv(1024) == b"":
                    return time.monotonic() - start
            except TimeoutError:
                pass
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - start
        return _closed_after(sock, start)
    finally:
        sock.close()


def _closed_after(sock: socket.socket, start: float) -> float:
    try:
        while sock.recv(1024):
            pass
    except OSError:
        pass
    return time.monotonic() - start


def test_api_stalled_and_trickling_clients_are_cut_off_with_one_log_line(
    api, monkeypatch, caplog, capfd
):
    monkeypatch.setattr(api_module, "REQUEST_SECONDS", 1.5)
    port, _ = api(tokens=None)
    body = json.dumps({"annotator": "zoe", "wait": 0}).encode()
    caplog.set_level(logging.WARNING, logger="spacy_al.api")
    stalled: list[float] = []
    threads = [
        threading.Thread(target=lambda: stalled.append(_stall(port, body)))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    # One byte every 0.4 s: no single read waits long, but the request does.
    trickled = _stall(port, body * 3, every=0.4)
    for thread in threads:
        thread.join()
    assert len(stalled) == 12 and max(stalled) < 10
    assert trickled < 10  # the whole body would take over 20 s
    lines = [r.getMessage() for r in caplog.records if r.name == "spacy_al.api"]
    assert len(lines) == 13 and all("E984" in line for line in lines)
    assert "Traceback" not in capfd.readouterr().err
    # The server goes on answering.
    assert call(port, "GET", "/health")[:2] == (200, '{"status": "ok"}')
