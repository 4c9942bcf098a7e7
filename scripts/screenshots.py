"""Screenshots of every view of the labelling app, from real servers and Chromium.

    python scripts/screenshots.py [OUT_DIR [VIEW ...]]   # default: ./screenshots, all

Starts ``python -m spacy_al`` servers (demo = textcat.teach, textcat.correct,
textcat.manual --multilabel, ner.teach, ner.correct on a few texts written to a
temporary file) on free ports with throwaway databases, and saves one PNG per
view (only the VIEWs named, e.g. ``first_screen teach_50 multilabel team_sidebar``,
if any). Needs Debian's chromium (/usr/bin/chromium) and the ``playwright``
package (pip install playwright; never ``playwright install``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "support.jsonl"
LABELS = "BILLING,SHIPPING,TECHNICAL,ACCOUNT"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(args: list[str], *, log: Path | None = None) -> Iterator[str]:
    """Run ``python -m spacy_al ARGS --port P`` until the block ends; yield its URL.

    The CLI is stopped with SIGINT, as Ctrl+C would, and stops its server itself.
    """
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "spacy_al", *args, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {args}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 90 s: {args}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if log:
            out.close()


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )


def open_page(
    browser, url: str, name: str, *, height: int = 1100, ready: str = ".sal-text"
):
    """A new context with ``?session=name``, once the first example (``ready``,
    ".sal-ents" for the NER views) is shown."""
    context = browser.new_context(viewport={"width": 1200, "height": height})
    page = context.new_page()
    page.goto(f"{url}/?session={name}", timeout=90_000)
    page.locator(ready).first.wait_for(timeout=90_000)
    page.wait_for_selector(IDLE)
    # The buttons' code loads lazily: wait until they are drawn and their key
    # bindings are in place (React binds them right after the next frames).
    page.get_by_role("button", name="Ignore").wait_for(timeout=60_000)
    page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    return page


def shown(page) -> tuple[str, int]:
    """The example's text and the annotator's answer count, as displayed."""
    return page.locator(".sal-text").inner_text(), int(
        page.locator(".sal-count").inner_text()
    )


def answer_with_key(page, key: str) -> float:
    """Press ``key``; wait until the next example is shown. Returns the seconds."""
    _, count = shown(page)
    page.locator(".sal-head").first.click()  # focus the app, not a widget
    start = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function(
        "n => document.querySelector('.sal-count')?.textContent === n",
        arg=str(count + 1),
        timeout=60_000,
    )
    seconds = time.perf_counter() - start
    page.wait_for_selector(IDLE)
    return seconds


def toggle(page, key: str, n_chosen: int) -> None:
    """Press a label's number key; wait until ``n_chosen`` labels are chosen."""
    chosen = '[class*="st-key-label-"] [data-testid="stBaseButton-primary"]'
    page.locator(".sal-head").first.click()
    page.keyboard.press(key)
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n",
        arg=[chosen, n_chosen],
        timeout=30_000,
    )
    page.wait_for_selector(IDLE)


NER_TEXTS = [
    "Tim Cook met Sundar Pichai at the Apple offices in Cupertino on Monday.",
    "Angela Merkel visited Siemens in Munich with Olaf Scholz.",
    "Satya Nadella said Microsoft will open a lab in Nairobi.",
    "The <script>alert(1)</script> team at Acme Corp hired Jane Doe.",
    "Lionel Messi signed for Inter Miami after leaving Paris Saint-Germain.",
    "Jeff Bezos founded Amazon in Seattle; Andy Jassy now runs it.",
    "Greta Thunberg spoke to the United Nations in New York.",
    "Elon Musk moved Tesla's headquarters from Palo Alto to Austin.",
]


def team_answers(db: Path) -> None:
    """Two annotators' choices on the first texts of the corpus, for ``review``:
    they agree on every third text and disagree on the others."""
    from spacy_al.corpus import Source, set_hashes
    from spacy_al.store import Store

    labels = LABELS.split(",")
    texts = [task["text"] for task, _ in zip(Source(CORPUS), range(6), strict=False)]
    with Store(f"sqlite:///{db}") as store:
        store.create_dataset(
            "team",
            meta={
                "labels": labels,
                "view_id": "choice",
                "exclusive": True,
                "task": "textcat",
                "overlap": 2,
            },
        )
        for who, shift in (("alice", 0), ("bob", 1)):
            answers = [
                set_hashes(
                    {
                        "text": text,
                        "answer": "accept",
                        "accept": [labels[(i + (shift if i % 3 else 0)) % 4]],
                        "_view_id": "choice",
                    }
                )
                for i, text in enumerate(texts)
            ]
            store.add_answers("team", answers, annotator=who)


def ner_team_answers(db: Path) -> None:
    """Two annotators' entities on the first NER texts, for the NER review:
    bob labels the second name of each text ORG instead of PERSON."""
    import spacy

    from spacy_al.corpus import set_hashes
    from spacy_al.store import Store

    nlp = spacy.blank("en")
    names = [("Tim Cook", "Sundar Pichai"), ("Angela Merkel", "Olaf Scholz")]
    with Store(f"sqlite:///{db}") as store:
        store.create_dataset(
            "ner_team",
            meta={
                "labels": ["GPE", "ORG", "PERSON"],
                "view_id": "ner_manual",
                "task": "ner",
                "overlap": 2,
            },
        )
        for who, second in (("alice", "PERSON"), ("bob", "ORG")):
            answers = []
            for text, (a, b) in zip(NER_TEXTS, names, strict=False):
                doc = nlp(text)
                spans = [
                    {
                        "start": text.index(a),
                        "end": text.index(a) + len(a),
                        "label": "PERSON",
                    },
                    {
                        "start": text.index(b),
                        "end": text.index(b) + len(b),
                        "label": second,
                    },
                ]
                tokens = [
                    {"text": t.text, "start": t.idx, "end": t.idx + len(t), "id": t.i,
                     "ws": bool(t.whitespace_)}
                    for t in doc
                ]  # fmt: skip
                answers.append(
                    set_hashes(
                        {
                            "text": text,
                            "tokens": tokens,
                            "spans": spans,
                            "answer": "accept",
                            "_view_id": "ner_manual",
                        }
                    )
                )
            store.add_answers("ner_team", answers, annotator=who)


# Keys for a teach session: accept, reject, ignore and reject → correct.
TEACH_KEYS = ["a", "x", "Space", "2", "x", "a", "3", "x", "a", "x"]


def shoot(browser, name: str, url: str, out_dir: Path) -> None:
    """Drive the page of view ``name`` as an annotator would, then save it."""
    if name == "first_screen":
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        page.get_by_text("Your name").wait_for(timeout=90_000)
        page.wait_for_selector(IDLE)
        page.screenshot(path=out_dir / f"{name}.png")
        page.close()
        return
    tall = name in ("teach_50", "stopping_signal", "team_sidebar")
    ready = {
        "ner_teach": ".sal-ents",
        "ner_correct": ".sal-editor .sal-tok",
        "ner_manual": ".sal-editor .sal-tok",
        "ner_review": ".sal-editor .sal-tok",
    }.get(name, ".sal-text")
    tall = tall or name == "ner_review"
    page = open_page(browser, url, "alice", ready=ready, height=1500 if tall else 1000)
    if name == "teach_50":
        for key in TEACH_KEYS * 5:  # 50 answers: five updates of ten
            answer_with_key(page, key)
        page.wait_for_timeout(4000)  # the sidebar polls every 2 s
    if name == "stopping_signal":
        for key in ["a", "x", "x", "a"] * 7:
            answer_with_key(page, key)
        page.wait_for_timeout(4000)
    if name == "multilabel":
        # Two batches of four, so that a trained model scores every label: each
        # time toggle one label (a correction of the model's choice), then accept.
        for key in ["1", "2", "3", "4"] * 2:
            page.locator(".sal-head").first.click()
            page.keyboard.press(key)
            page.wait_for_timeout(400)
            page.wait_for_selector(IDLE)
            answer_with_key(page, "a")
        page.wait_for_timeout(3000)
        # Answer on until the card was chosen by a trained model (its scores show).
        while page.get_by_text("model's scores").count() == 0:
            answer_with_key(page, "a")
        page.locator(".sal-head").first.click()
        page.keyboard.press("2")  # toggle a label, as an annotator correcting would
        page.wait_for_timeout(1000)
        page.wait_for_selector(IDLE)
    if name == "team_sidebar":
        bob = open_page(browser, url, "bob")
        for i in range(6):  # both answer, so each example has two answers
            answer_with_key(page, ["a", "x"][i % 2])
            answer_with_key(bob, ["x", "x", "a"][i % 3])
        page.wait_for_timeout(7000)  # agreement figures: the team thread, then a poll
        bob.context.close()
    if name in ("ner_correct", "ner_manual"):
        # The span editor: two words dragged over and labelled with a number key
        # (no round trip: the page stays as it is until the answer).
        # (ner_correct: "Siemens" as ORG; ner_manual: "Sundar Pichai" as PERSON)
        first, last, key = (3, 3, "2") if name == "ner_correct" else (3, 4, "3")
        tokens = page.locator(".sal-editor .sal-tok")
        a, b = tokens.nth(first).bounding_box(), tokens.nth(last).bounding_box()
        page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
        page.mouse.down()
        page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=5)
        page.mouse.up()
        page.keyboard.press(key)
    page.screenshot(path=out_dir / f"{name}.png")
    page.context.close()


def main(out_dir: Path, only: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="spacy_al_shots_"))
    ner_source = tmp / "ner.jsonl"
    ner_source.write_text(
        "".join(
            json.dumps({"text": t, "meta": {"n": i}}) + "\n"
            for i, t in enumerate(NER_TEXTS)
        )
    )
    ner_patterns = tmp / "ner_patterns.jsonl"
    ner_patterns.write_text(
        json.dumps({"label": "GPE", "pattern": "Berlin"})
        + "\n"
        + json.dumps(
            {"label": "PERSON", "pattern": [{"IS_TITLE": True}, {"IS_TITLE": True}]}
        )
        + "\n"
    )
    eval_path = str(CORPUS.with_name("support_eval.jsonl"))
    views = {
        # The first screen: what the session is, and the name box.
        "first_screen": ["demo", "--db", str(tmp / "first.db")],
        # textcat.teach after 50 answers: the card, the sidebar with the curve.
        "teach_50": ["demo", "--db", str(tmp / "demo.db")],
        "multilabel": [
            "textcat.correct", "shots", str(CORPUS), "--label", LABELS,
            "--multilabel", "--batch-size", "4", "--db", str(tmp / "multi.db"),
        ],
        # Two annotators on every example: the sidebar's agreement figures.
        "team_sidebar": [
            "textcat.teach", "team_shots", str(CORPUS), "--label", LABELS,
            "--overlap", "2", "--batch-size", "4", "--db", str(tmp / "team2.db"),
        ],
        "manual_multilabel": [
            "textcat.manual", "shots", str(CORPUS), "--label", LABELS,
            "--multilabel", "--db", str(tmp / "manual.db"),
        ],
        "ner_teach": [
            "ner.teach", "shots", str(ner_source), "--label", "PERSON,ORG,GPE",
            "--db", str(tmp / "ner_teach.db"),
        ],
        # Pre-filled from patterns while the model is untrained.
        "ner_correct": [
            "ner.correct", "shots", str(ner_source), "--label", "PERSON,ORG,GPE",
            "--patterns", str(ner_patterns), "--db", str(tmp / "ner_correct.db"),
        ],
        "ner_manual": [
            "ner.manual", "shots", str(ner_source), "--label", "PERSON,ORG,GPE",
            "--db", str(tmp / "ner_manual.db"),
        ],
        "stopping_signal": [
            "textcat.teach", "shots", str(CORPUS), "--label", LABELS,
            "--batch-size", "4", "--eval", eval_path, "--db", str(tmp / "stop.db"),
        ],
        # A reviewer adjudicating alice's and bob's conflicting answers.
        "review": ["review", "team_review", "--input", "team", "--db", str(tmp / "team.db")],
        # The NER review: both annotators' entities, then the span editor.
        "ner_review": [
            "review", "ner_team_review", "--input", "ner_team", "--db", str(tmp / "team.db"),
        ],
    }  # fmt: skip
    team_answers(tmp / "team.db")
    ner_team_answers(tmp / "team.db")
    if only:
        views = {k: v for k, v in views.items() if k in only}
    with sync_playwright() as p:
        browser = launch(p)
        for name, args in views.items():
            with serve(args, log=tmp / f"{name}.log") as url:
                shoot(browser, name, url, out_dir)
        browser.close()
    for png in sorted(out_dir.glob("*.png")):
        print(png)


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path("screenshots"),
        sys.argv[2:] or None,
    )
