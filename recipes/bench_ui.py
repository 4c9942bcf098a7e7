"""bench ui: click-to-next latency in real Chromium, and a screenshot of each view.

    python -m spacy_al bench ui [--views textcat.teach,ner.manual,...] \\
        [--answers 50] [--think 0.5] [--chromium /usr/bin/chromium] [--output DIR]

For each view named by ``--views`` (all of them by default):

* ``baseline``: a Streamlit page with a text and one button (A), nothing of
  spacy_al (``streamlit run``): Streamlit's own click-to-next on this machine,
  against which the views' figures read;
* ``textcat.teach``: the classification view, the support corpus's 4 labels;
  keys A, X, Space and the number keys (reject and correct in one step);
* ``textcat.correct``: the choice view, 4 exclusive labels; a number key answers;
* ``ner.manual``: the span editor; → Shift+→ Enter mark the first two words
  (not timed), then A;
* ``ner.correct``: the span editor with a patterns file's matches pre-filled; A;
* ``ner.teach``: one suggested entity (a pattern's match first); A, X, Space;
* ``review.ner`` / ``review.textcat``: the review view over two annotators who
  disagree on every example (written into the database first); A / a number key,

a labelling server is started as a user starts it (``python -m spacy_al RECIPE
... --db`` a fresh SQLite file in DIR, the recipe's defaults otherwise) on the
bundled support corpus, and headless Chromium (playwright driving an installed
Chromium: ``pip install playwright``, never ``playwright install``) answers
``--answers`` examples with the keyboard, pausing ``--think`` seconds on each
as a reader would.

**Click-to-next** is measured in the page: from the key press (the keydown
event's own time stamp, taken by a listener that runs before the app's) to the
first animation frame in which the next example is drawn (its card or editor
differs from the answered one) and the answer count has moved on: what the
annotator waits for, to within one frame (16.7 ms). **Server** is the app's
own part of it: from the callback that stores the answer to the end of the
page script that draws the next example (``data-server-ms``, written by
``app.py``); the rest is the browser and the WebSocket. Both as the median and
the 95th percentile. Where the rest goes, as medians: **key -> sent**, from the
key press to the answer leaving on the app's WebSocket (the page's key
handling), and **last msg -> shown**, from the last message received before the
next example shows to its frame (drawing it). The first answer of each view
counts like the others.

Writes DIR/results.json (every measurement) and two PNG screenshots per view:
DIR/VIEW_first.png (the first example, as the annotator first sees it) and
DIR/VIEW.png (after the last answer). The load average before and after each
view is recorded: the figures are only as quiet as the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy
import srsly
import typer
from wasabi import msg

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.errors import Errors
from spacy_al.registry import recipe
from spacy_al.store import Store

from ._options import split_commas

NER_LABELS = "PRODUCT,PAYMENT,DELIVERY,DOCUMENT"
# Entity patterns for the support corpus (what a user would write before
# labelling): ner.correct pre-fills their matches, ner.teach asks about them.
PATTERNS = (
    [
        {"label": "PRODUCT", "pattern": phrase}
        for phrase in ("app", "website", "checkout", "page", "basket")
    ]
    + [
        {"label": "PAYMENT", "pattern": phrase}
        for phrase in ("card", "credit card", "payment", "refund", "fee")
    ]
    + [
        {"label": "DELIVERY", "pattern": phrase}
        for phrase in ("courier", "delivery", "tracking", "parcel")
    ]
    + [
        {"label": "DOCUMENT", "pattern": phrase}
        for phrase in ("invoice", "invoices", "receipt")
    ]
)
REVIEWED = 80  # examples the review views' two annotators disagree on

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Runs in the page before the app's scripts, so its keydown listener (capture,
# on window) sees a key before the app's handler, which stops it; and the
# app's WebSocket reports when the answer left the page and its replies came.
INIT_JS = """
window.__salBench = { armed: null };
window.addEventListener("keydown", (event) => {
  const arm = window.__salBench.armed;
  if (arm && arm.t0 === null && event.key === arm.key) arm.t0 = event.timeStamp;
}, true);
const PageSocket = window.WebSocket;
window.WebSocket = class extends PageSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", () => {
      const arm = window.__salBench.armed;
      if (!arm || arm.sent === null || arm.t1 !== null) return;
      const now = performance.now();
      if (arm.reply === null) arm.reply = now;
      arm.last = now;
    });
  }
  send(data) {
    const arm = window.__salBench.armed;
    if (arm && arm.t0 !== null && arm.sent === null) arm.sent = performance.now();
    return super.send(data);
  }
};
"""
# What the annotator sees of the example: the cards (st.html) and the span
# editor's text (in its shadow root).
SHOWN_JS = """
() => {
  const cards = [...document.querySelectorAll(".sal-card")].map((e) => e.innerHTML);
  const editors = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
    .map((h) => h.shadowRoot && h.shadowRoot.querySelector(".sal-text"))
    .filter(Boolean).map((e) => e.textContent);
  return cards.join("|") + "#" + editors.join("|");
}
"""
# Arm the measurement of the next key press: polled every animation frame.
ARM_JS = f"""
(key) => {{
  const shown = {SHOWN_JS};
  const count = () => document.querySelector(".sal-count")?.textContent ?? null;
  const state = {{ key, t0: null, t1: null, sent: null, reply: null, last: null,
    before: shown(), count: count() }};
  window.__salBench.armed = state;
  const poll = () => {{
    if (window.__salBench.armed !== state) return;
    if (state.t0 !== null && count() !== null && count() !== state.count
        && shown() !== state.before) {{
      state.t1 = performance.now();
      return;
    }}
    requestAnimationFrame(poll);
  }};
  requestAnimationFrame(poll);
}}
"""
# Ready for the next answer: the script is idle and the answer buttons (or the
# span editor's) are drawn and enabled.
READY_JS = f"""
() => {{
  if (!document.querySelector('{IDLE}')) return false;
  for (const host of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {{
    const button = host.shadowRoot
      && host.shadowRoot.querySelector(".sal-actions button[data-answer]");
    if (button) return !button.disabled;
  }}
  return !!document.querySelector(".st-key-accept button, .st-key-ignore button");
}}
"""
DONE_JS = "() => window.__salBench.armed && window.__salBench.armed.t1 !== null"


@dataclass(frozen=True)
class View:
    """How to start one view's server and answer in it."""

    recipe: Callable[[Path], list[str]]  # the command's arguments, given DIR
    keys: tuple[str, ...]  # the answering keys, taken in turn
    baseline: bool = False  # BASELINE_APP under streamlit run, not a recipe
    before: tuple[str, ...] = ()  # keys pressed before each answer (not timed)
    seed: Callable[[str], None] | None = None  # writes answers to the database


def _ner_tokens(text: str, nlp: Any) -> list[dict[str, Any]]:
    return [
        {
            "text": t.text,
            "start": t.idx,
            "end": t.idx + len(t),
            "id": t.i,
            "ws": bool(t.whitespace_),
        }
        for t in nlp.make_doc(text)
    ]


def _seed_review(db: str, *, ner: bool) -> None:
    """Two annotators who disagree on each of the first REVIEWED texts: in NER,
    the first word as a PRODUCT or as a PAYMENT; in textcat, the corpus's label
    or the next one."""
    import spacy

    nlp = spacy.blank("en")
    labels = NER_LABELS.split(",") if ner else LABELS.split(",")
    dataset = "ui_ner" if ner else "ui_textcat"
    records = list(srsly.read_jsonl(corpus_path("support.jsonl")))[:REVIEWED]
    with Store(db) as store:
        store.create_dataset(
            dataset, meta={"labels": labels, "task": "ner" if ner else "textcat"}
        )
        for n, annotator in enumerate(("alice", "bob")):
            answers = []
            for record in records:
                eg: dict[str, Any] = {"text": record["text"], "answer": "accept"}
                if ner:
                    tokens = _ner_tokens(record["text"], nlp)
                    first = next(t for t in tokens if t["text"].isalpha())
                    eg["tokens"] = tokens
                    eg["spans"] = [
                        {
                            "start": first["start"],
                            "end": first["end"],
                            "token_start": first["id"],
                            "token_end": first["id"],
                            "label": labels[n],
                        }
                    ]
                    eg["_view_id"] = "ner_manual"
                else:
                    gold = labels.index(record["label"])
                    eg["accept"] = [labels[(gold + n) % len(labels)]]
                    eg["_view_id"] = "choice"
                answers.append(eg)
            store.add_answers(dataset, answers, annotator=annotator)


def _patterns(out: Path) -> str:
    path = out / "patterns.jsonl"
    srsly.write_jsonl(path, PATTERNS)
    return str(path)


# The baseline: a Streamlit page with a text and one button, nothing of
# spacy_al, measured as the views are: Streamlit's own click-to-next.
BASELINE_APP = """
import streamlit as st


def answer():
    st.session_state["n"] = st.session_state.get("n", 0) + 1


n = st.session_state.get("n", 0)
st.html(f'<div class="sal-card">Text number {n}</div>')
st.button("Accept", key="accept", shortcut="A", on_click=answer)
st.html(f'<div class="sal-you">You answered <span class="sal-count">{n}</span></div>')
"""
SUPPORT = corpus_path("support.jsonl")
VIEWS: dict[str, View] = {
    "baseline": View(lambda out: [], keys=("a",), baseline=True),
    "textcat.teach": View(
        lambda out: ["textcat.teach", "ui", SUPPORT, "--label", LABELS],
        keys=("a", "x", "Space", "1", "a", "2", "x", "3", "Space", "4"),
    ),
    "textcat.correct": View(
        lambda out: ["textcat.correct", "ui", SUPPORT, "--label", LABELS],
        keys=("1", "2", "3", "4"),
    ),
    "ner.manual": View(
        lambda out: ["ner.manual", "ui", SUPPORT, "--label", NER_LABELS],
        keys=("a",),
        before=("ArrowRight", "Shift+ArrowRight", "Enter"),
    ),
    "ner.correct": View(
        lambda out: (
            ["ner.correct", "ui", SUPPORT, "--label", NER_LABELS]
            + ["--patterns", _patterns(out)]
        ),
        keys=("a",),
    ),
    "ner.teach": View(
        lambda out: (
            ["ner.teach", "ui", SUPPORT, "--label", NER_LABELS]
            + ["--patterns", _patterns(out)]
        ),
        keys=("a", "x", "Space"),
    ),
    "review.ner": View(
        lambda out: ["review", "ui_ner_review", "--input", "ui_ner"],
        keys=("a",),
        seed=lambda db: _seed_review(db, ner=True),
    ),
    "review.textcat": View(
        lambda out: ["review", "ui_textcat_review", "--input", "ui_textcat"],
        keys=("1", "2", "3", "4"),
        seed=lambda db: _seed_review(db, ner=False),
    ),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(
    args: list[str], *, port_flag: str, cwd: Path, log: Path
) -> tuple[subprocess.Popen, str]:
    """Start ``python -m ARGS PORT_FLAG P``; return it and its URL once
    Streamlit answers its health check."""
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *args, port_flag, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    _stop(process)
    tail = log.read_text(errors="replace")[-1500:]
    raise RuntimeError(Errors.E1302.format(command=" ".join(args), log=tail))


def _stop(process: subprocess.Popen) -> None:
    """Ctrl+C, as a user stops a server; forced if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _summary(values: list[float]) -> tuple[float | None, float | None]:
    """(median, 95th percentile) of ``values``; None for none."""
    if not values:
        return None, None
    return statistics.median(values), float(numpy.percentile(values, 95))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def measure_view(
    browser: Any,
    url: str,
    view: View,
    *,
    answers: int,
    think: float,
    shots: Path,
    name: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Answer ``answers`` examples in the page at ``url``; return every
    click-to-next and server time (ms) and the answers that timed out."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(INIT_JS)
    page = context.new_page()
    page.goto(f"{url}/?session=bench", timeout=120_000)
    page.wait_for_function(READY_JS, timeout=120_000, polling="raf")
    if page.locator(".sal-head").count():  # focus the app, as a person would
        page.locator(".sal-head").first.click()
    page.wait_for_timeout(think * 1000)
    page.screenshot(path=str(shots / f"{name}_first.png"), full_page=True)
    next_ms: list[float] = []
    server_ms: list[float] = []
    page_ms: list[float] = []  # key press -> the answer leaves on the WebSocket
    render_ms: list[float] = []  # the last message before it -> the next shown
    timeouts = 0
    for i in range(answers):
        try:
            page.wait_for_function(READY_JS, timeout=timeout * 1000, polling="raf")
        except Exception:  # playwright's TimeoutError: nothing left to answer
            break
        page.wait_for_timeout(think * 1000)
        for key in view.before:
            page.keyboard.press(key)
        key = view.keys[i % len(view.keys)]
        page.evaluate(ARM_JS, " " if key == "Space" else key)
        page.keyboard.press(key)
        try:
            page.wait_for_function(DONE_JS, timeout=timeout * 1000, polling="raf")
        except Exception:  # playwright's TimeoutError: counted, not fatal
            timeouts += 1
            continue
        arm = page.evaluate("() => window.__salBench.armed")
        next_ms.append(arm["t1"] - arm["t0"])
        if arm["sent"] is not None and arm["last"] is not None:
            page_ms.append(arm["sent"] - arm["t0"])
            render_ms.append(arm["t1"] - arm["last"])
        server = page.evaluate(
            "() => [...document.querySelectorAll('[data-server-ms]')]"
            ".map((e) => e.dataset.serverMs).pop() ?? null"
        )
        if server is not None:
            server_ms.append(float(server))
    page.wait_for_timeout(think * 1000)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    context.close()
    return {
        "next_ms": next_ms,
        "server_ms": server_ms,
        "page_ms": page_ms,
        "render_ms": render_ms,
        "timeouts": timeouts,
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@recipe("bench.ui")
def bench_ui(
    views: Annotated[
        str,
        typer.Option("--views", help=f"Comma-separated views: {', '.join(VIEWS)}"),
    ] = ",".join(VIEWS),
    answers: Annotated[
        int, typer.Option("--answers", help="Answers timed per view")
    ] = 50,
    think: Annotated[
        float,
        typer.Option("--think", help="Seconds on each example before answering"),
    ] = 0.5,
    chromium: Annotated[
        Path, typer.Option("--chromium", help="The Chromium (or Chrome) to drive")
    ] = Path("/usr/bin/chromium"),
    output: Annotated[
        Path, typer.Option("--output", help="Directory for results and screenshots")
    ] = Path("bench_ui"),
) -> None:
    """Click-to-next latency of each labelling view in real Chromium (median and
    p95 over --answers keyboard answers, and the server's part), with a
    screenshot of each view."""
    wanted = split_commas(views)
    unknown = [name for name in wanted if name not in VIEWS]
    if unknown or not wanted:
        msg.fail(Errors.E1300.format(views=views, known=", ".join(VIEWS)), exits=1)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        msg.fail(Errors.E1301.format(what="the playwright package"), exits=1)
    if not chromium.is_file():
        msg.fail(Errors.E1301.format(what=f"Chromium at {chromium}"), exits=1)
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    msg.info(
        f"bench ui: {', '.join(wanted)}; {answers} answers each, think {think:g} s; "
        f"load {_load()} on {os.cpu_count()} CPUs"
    )
    results: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            for name in wanted:
                view = VIEWS[name]
                work = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=output))
                db = str(work / "ui.db")
                if view.seed is not None:
                    view.seed(db)
                if view.baseline:
                    script = work / "baseline_app.py"
                    script.write_text(BASELINE_APP, encoding="utf8")
                    args = ["streamlit", "run", str(script), "--server.headless"]
                    args += ["true", "--browser.gatherUsageStats", "false"]
                    port_flag = "--server.port"
                else:
                    args = ["spacy_al", *view.recipe(work), "--db", db]
                    port_flag = "--port"
                load_before = _load()
                process, url = _start(
                    args, port_flag=port_flag, cwd=work, log=work / "server.log"
                )
                try:
                    started = time.monotonic()
                    found = measure_view(
                        browser,
                        url,
                        view,
                        answers=answers,
                        think=think,
                        shots=output,
                        name=name,
                    )
                finally:
                    _stop(process)
                nxt, server = _summary(found["next_ms"]), _summary(found["server_ms"])
                sent, render = _summary(found["page_ms"]), _summary(found["render_ms"])
                results.append(
                    {
                        "view": name,
                        "command": ["python", "-m", *args],
                        **found,
                        "next_median_ms": nxt[0],
                        "next_p95_ms": nxt[1],
                        "server_median_ms": server[0],
                        "server_p95_ms": server[1],
                        "key_to_sent_median_ms": sent[0],
                        "last_message_to_shown_median_ms": render[0],
                        "load_before": load_before,
                        "load_after": _load(),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                )
                srsly.write_json(output / "results.json", results)  # after each
                rows.append(
                    [
                        name,
                        str(len(found["next_ms"])),
                        _ms(nxt[0]),
                        _ms(nxt[1]),
                        _ms(server[0]),
                        _ms(server[1]),
                        _ms(sent[0]),
                        _ms(render[0]),
                        str(found["timeouts"]),
                        f"{load_before} / {_load()}",
                    ]
                )
                msg.text(
                    f"{name}: next median {_ms(nxt[0])} ms, p95 {_ms(nxt[1])} ms "
                    f"(server {_ms(server[0])} / {_ms(server[1])} ms)"
                )
        finally:
            browser.close()
    header = [
        "view",
        "answers",
        "next median ms",
        "next p95 ms",
        "server median ms",
        "server p95 ms",
        "key -> sent ms",
        "last msg -> shown ms",
        "timeouts",
        "load before / after",
    ]
    msg.table(rows, header=header, divider=True)
    msg.good(
        f"Wrote {output / 'results.json'} and the screenshots {output}/VIEW.png, "
        f"{output}/VIEW_first.png"
    )
