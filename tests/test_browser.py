"""The whole product in a real browser: ``python -m spacy_al demo`` and Chromium.

Needs Debian's chromium at /usr/bin/chromium and the ``playwright`` package
(``apt-get install chromium chromium-driver``; ``pip install playwright``; never
``playwright install``). Skipped when either is missing.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import srsly

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.store import Store

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright not installed",
    ),
]
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
LABEL_LIST = LABELS.split(",")
SUPPORT = corpus_path("support.jsonl")
EVAL = corpus_path("support_eval.jsonl")
# Keyboard only: accept, reject, ignore, and reject → correct with the number keys.
KEYS = ["a", "x", "Space", "1", "a", "2", "x", "3", "Space", "4"] * 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "spacy_al", *args, "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    stop(process)
    pytest.fail(f"server didn't start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    """Ctrl+C for the CLI, which stops its Streamlit server; force if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``python -m spacy_al demo`` on a free port with a fresh SQLite file."""
    tmp = tmp_path_factory.mktemp("demo")
    db = str(tmp / "demo.db")
    process, url = start(["demo", "--db", db], tmp / "server.log")
    yield url, db
    stop(process)
    assert process.returncode == 0, (tmp / "server.log").read_text()[-2000:]


def open_page(browser, url: str, name: str):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/?session={name}", timeout=60_000)
    page.locator(".sal-text").wait_for(timeout=60_000)
    page.wait_for_selector(IDLE)
    # The buttons' code loads lazily: wait until they are drawn and their key
    # bindings are in place (React binds them right after the next frames).
    page.get_by_role("button", name="Ignore").wait_for(timeout=60_000)
    page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    return page


def shown(page) -> tuple[str, str, int]:
    """(text, suggested label, answer count) as the page shows them."""
    return (
        page.locator(".sal-text").inner_text(),
        page.locator(".sal-label").inner_text(),
        int(page.locator(".sal-count").inner_text()),
    )


def count_answers(db: str, dataset: str) -> int:
    with Store(db) as store:
        return store.count_answers(dataset) if store.has_dataset(dataset) else 0


def press(page, key: str) -> None:
    """Press ``key`` once, with the app focused; wait until the next example is
    shown (a press is never repeated: a lost key press fails the test)."""
    count = shown(page)[2]
    page.locator(".sal-head").first.click()  # focus the app, not a widget
    page.keyboard.press(key)
    page.wait_for_function(
        "n => document.querySelector('.sal-count')?.textContent === n",
        arg=str(count + 1),
        timeout=30_000,
    )
    page.wait_for_selector(IDLE)


def wait_for_version(page, version: int) -> None:
    """Wait until the sidebar (it polls every 2 s) shows model ``version``."""
    page.wait_for_function(
        "v => Number(document.querySelector('[data-testid=stMetricValue]')"
        "?.textContent) >= v",
        arg=version,
        timeout=30_000,
    )


def expected(key: str, label: str) -> tuple[str, list[str] | None]:
    """The answer a key stands for, given the suggested label."""
    if key == "a":
        return "accept", None
    if key == "x":
        return "reject", None
    if key == "Space":
        return "ignore", None
    chosen = LABEL_LIST[int(key) - 1]
    return ("accept", None) if chosen == label else ("reject", [chosen])


def test_browser_keyboard_answers_are_stored_and_annotators_get_different_examples(
    browser, demo
):
    url, db = demo
    alice = open_page(browser, url, "alice")
    asked: dict[str, tuple[str, list[str] | None]] = {}
    for key in KEYS:
        text, label, _ = shown(alice)
        asked[text] = expected(key, label)
        press(alice, key)
    with Store(db) as store:
        stored = store.get_answers("support_demo")
    assert len(stored) == len(asked) == 20
    assert {eg["text"]: (eg["answer"], eg.get("accept")) for eg in stored} == asked
    assert {eg["_annotator_id"] for eg in stored} == {"alice"}
    # The model learnt from the batches meanwhile; the sidebar shows its version
    # and alice's 20 answers in its progress.
    wait_for_version(alice, 1)
    alice.wait_for_function(
        "() => document.querySelector('[data-testid=stSidebar]')"
        "?.innerText.includes('20 / ')",
        timeout=10_000,
    )
    held_by_alice = shown(alice)[0]
    bob = open_page(browser, url, "bob")
    seen_by_bob = []
    for key in ["a", "x", "Space"]:
        seen_by_bob.append(shown(bob)[0])
        press(bob, key)
    assert not set(seen_by_bob) & (set(asked) | {held_by_alice})
    assert len(set(seen_by_bob)) == 3
    # Reloading re-serves alice's outstanding example.
    alice.reload()
    alice.locator(".sal-text").wait_for()
    alice.wait_for_selector(IDLE)
    assert shown(alice)[0] == held_by_alice
    with Store(db) as store:
        assert store.count_answers("support_demo") == 23


def test_browser_renders_payloads_inert(browser, tmp_path):
    payload = (
        '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> '
        "**bold** [link](https://example.com) :red[red]"
    )
    source = tmp_path / "evil.jsonl"
    srsly.write_jsonl(source, [{"text": f"{payload} #{i}"} for i in range(3)])
    args = ["textcat.teach", "evil", str(source), "--label", "*A*,:red[B]"]
    process, url = start([*args, "--db", str(tmp_path / "evil.db")], tmp_path / "log")
    try:
        dialogs: list[str] = []
        page = open_page(browser, url, "<b>mallory</b>")
        page.on(
            "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())
        )
        page.wait_for_timeout(500)
        text = page.locator(".sal-text").inner_text()
        assert text.startswith(payload)
        assert page.evaluate("window.pwned") is None and not dialogs
        assert (
            page.locator(".sal-card img, .sal-card script, .sal-card strong").count()
            == 0
        )
        assert (
            page.locator(".sal-head").inner_text().endswith("annotator: <b>mallory</b>")
        )
        buttons = [
            page.get_by_role("button", name=label).count()
            for label in ["*A*", ":red[B]"]
        ]
        assert buttons == [1, 1]
        press(page, "x")
        assert page.evaluate("window.pwned") is None and not dialogs
    finally:
        stop(process)


def test_browser_first_key_press_after_a_fresh_load_is_stored(browser, demo):
    """A key pressed as soon as the text shows (before the buttons are drawn, no
    click first) answers: pressed once, never repeated."""
    url, db = demo
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/?session=carol", timeout=60_000)
    page.locator(".sal-text").wait_for(timeout=60_000)
    page.keyboard.press("x")  # at once: the buttons may not be drawn yet
    page.wait_for_function(
        "() => document.querySelector('.sal-count')?.textContent === '1'",
        timeout=30_000,
    )
    with Store(db) as store:
        mine = [
            eg
            for eg in store.get_answers("support_demo")
            if eg["_annotator_id"] == "carol"
        ]
    assert [eg["answer"] for eg in mine] == ["reject"]
    context.close()


def test_browser_undo_of_the_answer_that_completed_a_batch(browser, tmp_path):
    """The model learnt a batch; undo takes its last answer back out of the store,
    and the answer given instead goes into the next batch the model learns."""
    db = str(tmp_path / "undo.db")
    args = ["textcat.teach", "undo", str(SUPPORT), "--label", LABELS]
    process, url = start([*args, "--batch-size", "2", "--db", db], tmp_path / "log")
    try:
        page = open_page(browser, url, "alice")
        first = shown(page)[0]
        press(page, "a")
        second = shown(page)[0]
        press(page, "a")  # completes the batch: the model learns it
        wait_for_version(page, 1)
        count = shown(page)[2]
        page.locator(".sal-head").first.click()
        page.keyboard.press("Backspace")
        page.wait_for_function(
            "n => document.querySelector('.sal-count')?.textContent === n",
            arg=str(count - 1),
            timeout=30_000,
        )
        page.wait_for_selector(IDLE)
        assert shown(page)[0] == second
        with Store(db) as store:
            assert [eg["text"] for eg in store.get_answers("undo")] == [first]
        press(page, "x")  # the corrected answer
        with Store(db) as store:
            stored = {eg["text"]: eg["answer"] for eg in store.get_answers("undo")}
        assert stored == {first: "accept", second: "reject"}
        # It waits for the next batch (1 of 2), which one more answer completes.
        page.get_by_text("Next update after 2 answers: 1 of 2 so far.").wait_for(
            timeout=30_000
        )
        press(page, "a")
        wait_for_version(page, 2)
    finally:
        stop(process)


def test_browser_restart_keeps_the_curve_and_the_version(browser, tmp_path):
    """Ctrl+C and the same command again: the learning curve's points and the model
    version continue, and the card and the sidebar show the same version."""
    args = ["textcat.teach", "restart", str(SUPPORT), "--label", LABELS]
    args += ["--batch-size", "2", "--eval", str(EVAL), "--db", str(tmp_path / "r.db")]
    process, url = start(args, tmp_path / "first.log")
    try:
        page = open_page(browser, url, "alice")
        for key in ["a", "x", "a", "x"]:
            press(page, key)
        wait_for_version(page, 2)
        curve = page.locator(".sal-curve")
        curve.filter(has_text="(model v2); 3 points").wait_for(timeout=30_000)
        before = curve.inner_text()
        page.context.close()
    finally:
        stop(process)
    process, url = start(args, tmp_path / "second.log")
    try:
        page = open_page(browser, url, "alice")
        wait_for_version(page, 2)
        page.locator(".sal-curve").wait_for(timeout=30_000)
        assert page.locator(".sal-curve").inner_text() == before
        version = page.locator("[data-testid=stMetricValue]").inner_text()
        assert version == "2"
        # The card's example was chosen after the restart, or held from before it
        # (chosen at v1 or v2), never by a model that forgot its updates (v0).
        chosen_by = page.locator(".sal-meta").inner_text().split("chosen by model v")
        assert int(chosen_by[1].split()[0]) in (1, 2)
    finally:
        stop(process)


# --- the NER span editor -------------------------------------------------------

NER_TEXTS = [
    "Alice Smith joined Acme in Paris.",
    "Bob Jones left Globex last week.",
    "Carol White visited Initech.",
]


def ner_server(tmp_path: Path, recipe: str, labels: str, *extra: str):
    source = tmp_path / "ner.jsonl"
    srsly.write_jsonl(source, [{"text": t} for t in NER_TEXTS])
    db = str(tmp_path / "ner.db")
    args = [recipe, "ner_test", str(source), "--label", labels, "--db", db, *extra]
    process, url = start(args, tmp_path / "server.log")
    return process, url, db


def open_editor(browser, url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/?session=alice", timeout=60_000)
    page.locator(".sal-editor .sal-tok").first.wait_for(timeout=60_000)
    return page


def drag(page, first: int, last: int) -> None:
    """A mouse selection from the middle of token ``first`` to that of ``last``."""
    tokens = page.locator(".sal-editor .sal-tok")
    a, b = tokens.nth(first).bounding_box(), tokens.nth(last).bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=5)
    page.mouse.up()


def stored_spans(db: str) -> list[list[tuple[str, str]]]:
    with Store(db) as store:
        return [
            [(eg["text"][s["start"] : s["end"]], s["label"]) for s in eg["spans"]]
            for eg in store.get_answers("ner_test")
        ]


def test_browser_ner_manual_mouse_selection_and_html_labels(browser, tmp_path):
    """Two words dragged over, a number key, then A: exactly that span, at
    the right character offsets; a label written as HTML shows as text. Keys
    pressed right after the answer, while the next text loads, are for the
    next text: none is lost or applied to the text just answered, and none
    answers the next text before it is shown."""
    process, url, db = ner_server(tmp_path, "ner.manual", "PERSON,<i>LOC</i>")
    try:
        page = open_editor(browser, url)
        buttons = page.locator(".sal-editor .sal-label-button")
        assert buttons.nth(0).inner_text().endswith("<i>LOC</i>")  # sorted: "<" < "P"
        assert page.locator(".sal-editor i").count() == 0
        drag(page, 0, 1)
        page.keyboard.press("2")  # PERSON, for the entity just marked
        assert (
            page.locator(".sal-editor mark.sal-ent")
            .inner_text()
            .startswith("Alice Smith")
        )
        # A, then at once (the next text not shown yet) the keyboard alone for
        # the next text: → Shift+→ Enter, 1 mark "Bob Jones"; a Space typed
        # ahead doesn't answer a text before it was shown.
        for key in ("a", "ArrowRight", "Shift+ArrowRight", "Enter", "1", "Space"):
            page.keyboard.press(key)
        page.locator(".sal-editor mark.sal-ent", has_text="Bob Jones").wait_for()
        page.wait_for_timeout(500)
        assert page.locator(".sal-count").inner_text() == "1"
        page.keyboard.press("Space")
        page.wait_for_function(
            "() => document.querySelector('.sal-count')?.textContent === '2'"
        )
        with Store(db) as store:
            first, second = store.get_answers("ner_test")
        assert first["answer"] == "accept"
        assert [(s["start"], s["end"], s["label"]) for s in first["spans"]] == [
            (0, 11, "PERSON")
        ]
        assert second["answer"] == "ignore"
        assert stored_spans(db)[1] == [("Bob Jones", "<i>LOC</i>")]
    finally:
        stop(process)


def test_browser_ner_correct_removes_one_of_two_entities(browser, tmp_path):
    """Of two pre-filled entities, one removed, then A: only the other is
    stored, and the next text starts with nothing marked or selected."""
    patterns = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(
        patterns,
        [
            {"label": "PERSON", "pattern": "Alice Smith"},
            {"label": "ORG", "pattern": "Acme"},
        ],
    )
    process, url, db = ner_server(
        tmp_path,
        "ner.correct",
        "PERSON,ORG",
        "--patterns",
        str(patterns),
        "--strategy",
        "sequential",
    )
    try:
        page = open_editor(browser, url)
        marks = page.locator(".sal-editor mark.sal-ent")
        assert marks.count() == 2
        marks.nth(1).locator(".sal-x").click()  # Acme
        assert marks.count() == 1
        page.keyboard.press("a")
        page.wait_for_function(
            "() => document.querySelector('.sal-count')?.textContent === '1'"
        )
        assert stored_spans(db) == [[("Alice Smith", "PERSON")]]
        editor = page.locator(".sal-editor")
        assert "Bob Jones" in editor.locator(".sal-text").inner_text()
        assert editor.locator("mark.sal-ent").count() == 0
        assert editor.locator(".sal-sel").count() == 0
    finally:
        stop(process)
