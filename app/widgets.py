"""What every view shares: escaping, the page's style, the card, the answer and
label buttons, and the callbacks that pass an answer (or an undo) to the feed."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable

import streamlit as st

from spacy_al.serve.feed import Feed, LeaseError, ServingStopped

ANSWERED_AT = "answered_at"  # session state: when the last answer's callback began
SHORTCUTS = {"accept": "A", "reject": "X", "ignore": "Space", "undo": "Backspace"}
FLASH = {
    "undone": "Took back your last answer: here it is again.",
    "not_undone": "Nothing to undo.",
    "duplicate": "That example was already answered.",
    "not_yours": "That example went to someone else while you were away: here is your next one.",
}
# Accept is green and reject red, as everywhere else; a chosen label, pill or
# segment is blue (not Streamlit's red primary colour, which reads as "reject"). A button keeps the
# focus after a click: its ring would look like a selection, so only keyboard
# focus (Tab) is outlined.
CSS = """
<style>
.sal-head {font-size: 0.9rem; color: #6b7280; margin-bottom: 0.25rem;}
.sal-card {border: 1px solid #d1d5db; border-radius: 0.6rem; padding: 1.1rem 1.3rem;
  background: #fff;}
.sal-label {display: inline-block; font-weight: 700; font-size: 0.95rem;
  letter-spacing: 0.02em; color: #fff; background: #2563eb; border-radius: 0.4rem;
  padding: 0.15rem 0.6rem; margin-bottom: 0.7rem;}
.sal-text {font-size: 1.3rem; line-height: 1.55; white-space: pre-wrap;
  overflow-wrap: anywhere; color: #111827;}
.sal-meta {font-size: 0.85rem; color: #6b7280; margin-top: 0.8rem;}
.sal-you {font-size: 0.9rem; color: #374151;}
.sal-hint {font-size: 0.9rem; color: #374151; margin: 0.3rem 0 0 0;}
.sal-alert {border-radius: 0.5rem; padding: 0.75rem 1rem; white-space: pre-wrap;}
.sal-error {background: #fee2e2; color: #7f1d1d;}
.sal-info {background: #e0f2fe; color: #0c4a6e;}
.sal-success {background: #dcfce7; color: #14532d;}
.sal-ents .entities {font-size: 1.2rem; line-height: 2.4 !important;}
.sal-shade {font-size: 1rem; line-height: 1.9; white-space: pre-wrap;}
.sal-shade span {border-radius: 0.25rem; padding: 0.05rem 0.1rem;}
.sal-scores {display: flex; flex-wrap: wrap; gap: 0.3rem 0.9rem; margin-top: 0.6rem;
  font-size: 0.9rem; color: #374151;}
.sal-scores b {font-weight: 600;}
.sal-welcome h3 {margin: 0 0 0.4rem 0;}
.sal-welcome table {border-collapse: collapse; margin-top: 0.4rem;}
.sal-welcome td {padding: 0.15rem 0.8rem 0.15rem 0; vertical-align: top;}
.sal-welcome kbd {border: 1px solid #9ca3af; border-bottom-width: 2px;
  border-radius: 0.3rem; padding: 0 0.35rem; font-size: 0.85rem; background: #f9fafb;}
.sal-tag {display: inline-block; background: #eff6ff; color: #1e3a8a;
  border-radius: 0.3rem; padding: 0 0.4rem; margin: 0 0.25rem 0.2rem 0;}
.stButton button[data-testid="stBaseButton-primary"] {background: #2563eb;
  border-color: #2563eb; color: #fff;}
.stButton button[data-testid="stBaseButton-primary"]:hover {background: #1d4ed8;
  border-color: #1d4ed8;}
.st-key-accept button {background: #16a34a !important; border-color: #16a34a !important;
  color: #fff !important;}
.st-key-accept button:hover {background: #15803d !important;}
.st-key-reject button {background: #dc2626 !important; border-color: #dc2626 !important;
  color: #fff !important;}
.st-key-reject button:hover {background: #b91c1c !important;}
.stButton button:focus:not(:focus-visible) {box-shadow: none !important;
  outline: none !important;}
.stButton button:focus-visible {outline: 2px solid #111827; outline-offset: 2px;}
[data-testid="stButtonGroup"] button[data-selected="true"],
[data-testid="stButtonGroup"] button[aria-pressed="true"] {color: #1d4ed8 !important;
  border-color: #2563eb !important; background: #eff6ff !important;}
@media (min-width: 1000px) {[data-testid="stSidebar"] {min-width: 360px;}}
[data-testid="stProgressBarTrack"] > div {background-color: #2563eb !important;}
[data-testid="stMain"]:focus, [data-testid="stMain"]:focus-visible {
  outline: none !important; box-shadow: none !important;}
</style>
"""

# The keyboard, bound before the card is drawn. Streamlit binds a button's
# ``shortcut`` in a React effect once the button's (lazily loaded) code has drawn
# it, and the card (st.html) is drawn before that: a key pressed as soon as the
# text shows reached no handler and was lost. This listener runs first (capture
# phase), presses the button the key stands for (by its widget key, the
# ``st-key-*`` class), and if the card is drawn but that button isn't yet,
# presses it when it is (within 5 s). Keys typed into a text field, with a modifier, or held down are
# left alone; a disabled button (Undo with nothing to undo) is not pressed.
KEYS_JS = """
(() => {
  if (window.__salKeys) return;
  window.__salKeys = true;
  const names = { a: ["accept"], x: ["reject"], " ": ["ignore"], backspace: ["undo"],
    enter: ["correct"] };
  for (let i = 1; i <= 9; i++) names[String(i)] = ["label-" + (i - 1)];
  const typing = (el) => !!el && (["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)
    || el.isContentEditable);
  const find = (keys) => {
    for (const key of keys) {
      const button = document.querySelector(`.st-key-${key} button`);
      if (button) return button;
    }
    return null;
  };
  // A click on the page focuses its scrolling main area; a key the app takes
  // would then draw a focus frame around the whole page.
  const unfocus = () => {
    const focused = document.activeElement;
    if (focused && focused.getAttribute("data-testid") === "stMain") focused.blur();
  };
  window.addEventListener("keydown", (event) => {
    if (typing(event.target)) return;
    // Answered in the NER span editor, whose next text isn't drawn yet (the
    // page is running, or its editor is loading): the key is kept for that
    // text, which the new editor presses again (app/span_editor.py). A page
    // that finished without an editor gets its keys as usual.
    const ahead = window.__salAhead;
    if (ahead && !window.__salEditor) {
      const running = !document.querySelector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]');
      const editor = document.querySelector('[data-testid="stBidiComponentIsolated"]');
      if (Date.now() - ahead.at < 10000 && (running || editor)) {
        if (!event.ctrlKey && !event.metaKey && !event.altKey) {
          ahead.keys.push({ key: event.key, shiftKey: event.shiftKey,
            repeat: event.repeat });
          event.preventDefault();
          event.stopImmediatePropagation();
        }
        return;
      }
      window.__salAhead = null;
    }
    // The NER span editor (app/span_editor.py) keeps its keys: labels, answers,
    // arrows to select.
    if (window.__salEditor && window.__salEditor(event)) {
      unfocus();
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) return;
    if (event.repeat) return;
    const keys = names[event.key.toLowerCase()];
    if (!keys) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    unfocus();
    const until = Date.now() + 5000;
    const press = () => {
      const button = find(keys);
      if (button) {
        if (!button.disabled) button.click();
      } else if (document.querySelector(".sal-card") && Date.now() < until) {
        requestAnimationFrame(press);  // the card is drawn, its buttons not yet
      }
    };
    press();
  }, true);
})();
"""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&=^@\"'])")


def md_escape(text: str) -> str:
    """``text`` for an element that renders Markdown, shown literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def alert(text: str, kind: str = "info") -> None:
    """A message box whose text is shown literally (it may quote user input)."""
    st.html(f'<div class="sal-alert sal-{kind}">{esc(text)}</div>')


def header(feed: Feed, who: str | None = None) -> None:
    """The page's style and one line: dataset, view, annotator."""
    parts = [feed.dataset or "", feed.view_id]
    if who:
        parts.append(f"annotator: {who}")
    # JavaScript runs here: our own script, and user data only escaped (inert).
    st.html(
        CSS
        + f"<script>{KEYS_JS}</script>"
        + f'<div class="sal-head">spacy_al · {esc(" · ".join(parts))}</div>',
        unsafe_allow_javascript=True,
    )


# --- callbacks -----------------------------------------------------------------


def answer(
    feed: Feed,
    who: str,
    task: dict,
    answer: str,
    accept: list[str] | None = None,
    chosen_key: str | None = None,
) -> None:
    """Commit an answer; ``chosen_key`` names the session-state list of chosen labels
    (read at click time, so the latest toggles count)."""
    st.session_state[ANSWERED_AT] = time.perf_counter()
    if chosen_key is not None:
        accept = list(st.session_state.get(chosen_key, []))
    eg = dict(task)
    eg["answer"] = answer
    if accept is not None:
        eg["accept"] = list(accept)
    else:
        eg.pop("accept", None)
    try:
        stored = feed.answer(who, eg)
    except LeaseError:  # the lease ran out and another annotator took the example
        st.session_state["flash"] = "not_yours"
        return
    except ServingStopped as e:  # the page says why on its next run
        st.session_state["stopped"] = str(e)
        return
    if stored is None:
        st.session_state["flash"] = "duplicate"


def correct(
    feed: Feed,
    who: str,
    task: dict,
    labels: list[str] | None = None,
    chosen_key: str | None = None,
) -> None:
    """Reject the suggested label and give the right one(s) in the same answer."""
    if chosen_key is not None:
        labels = list(st.session_state.get(chosen_key, []))
    if feed.exclusive and labels == [task.get("label")]:
        answer(feed, who, task, "accept")
    else:
        answer(feed, who, task, "reject", labels or [])


def undo(feed: Feed, who: str) -> None:
    st.session_state["flash"] = "undone" if feed.undo(who) else "not_undone"


def toggle(key: str, label: str) -> None:
    chosen = st.session_state[key]
    st.session_state[key] = (
        [x for x in chosen if x != label] if label in chosen else [*chosen, label]
    )


def selection(task: dict, initial: list[str]) -> str:
    """The session-state key of the labels chosen for ``task`` (one task at a time)."""
    key = "chosen"
    if st.session_state.get("chosen_for") != task["_task_key"]:
        st.session_state["chosen_for"] = task["_task_key"]
        st.session_state[key] = initial
    return key


# --- the card ------------------------------------------------------------------


# Strategies that choose without the model (spacy_al/strategies.py), as the card
# says how its text was chosen.
UNSCORED_CHOICE = {"sequential": "served in source order", "random": "picked at random"}


def version_fact(task: dict, version: int) -> str:
    """How the text was chosen: by which model (a fact of the card that doesn't
    go stale while the sidebar's version moves on; the sidebar shows the current
    one), or, when no model chose it (ner.manual's source order, a cold start's
    texts, ``--strategy random``, a ``--patterns`` match), how it was."""
    meta = task.get("meta") or {}
    if meta.get("cold_start"):  # NER's cold start serves texts in source order
        return UNSCORED_CHOICE["sequential"]
    if meta.get("pattern"):  # asked because it matches a --patterns entry
        return "matches your patterns"
    if meta.get("strategy") in UNSCORED_CHOICE:
        return UNSCORED_CHOICE[meta["strategy"]]
    asked = task.get("_model_version")
    return f"chosen by model v{version if asked is None else asked}"


def trained(task: dict, version: int) -> bool:
    """Whether the model that chose ``task`` had learnt anything: a text
    classifier at version 0 is untrained, so its scores mean nothing."""
    asked = task.get("_model_version")
    return (asked if asked is not None else version) > 0


def card(task: dict, *, label: str | None, version: int) -> None:
    """The text (and the label asked about), with what the model thinks.

    No model figure before the first update (an untrained model's scores are
    noise); with a label asked about, the model's score for it; in a choice,
    the model's score for every label (``meta["scores"]``), highest first."""
    meta = task.get("meta") or {}
    facts = []
    scores = ""
    if not trained(task, version):
        facts.append("no model trained yet (it learns after the first batch)")
    else:
        if label is not None and "score" in meta:
            facts.append(f"model's score for {label}: {meta['score']:.2f}")
        elif label is None and meta.get("scores"):
            ranked = sorted(meta["scores"].items(), key=lambda kv: -kv[1])
            scores = (
                '<div class="sal-scores">model\'s scores: '
                + "".join(f"<span><b>{esc(k)}</b> {v:.2f}</span>" for k, v in ranked)
                + "</div>"
            )
        if "uncertainty" in meta:
            facts.append(f"uncertainty {meta['uncertainty']:.2f}")
    facts.append(version_fact(task, version))
    source_meta = {
        k: v
        for k, v in meta.items()
        if k not in ("score", "scores", "uncertainty", "strategy", "pattern")
    }
    if source_meta:
        facts.append(", ".join(f"{k}: {v}" for k, v in source_meta.items()))
    chip = f'<div class="sal-label">{esc(label)}</div>' if label is not None else ""
    st.html(
        f'<div class="sal-card">{chip}<div class="sal-text">{esc(task["text"])}</div>'
        f'{scores}<div class="sal-meta">{esc(" · ".join(facts))}</div></div>'
    )


# --- buttons -------------------------------------------------------------------


def label_buttons(
    labels: tuple[str, ...],
    *,
    on_click: Callable,
    args: Callable[[str], tuple],
    chosen: list[str] = (),
) -> None:
    """One button per label, with the number keys 1-9 as shortcuts."""
    columns = st.columns(min(len(labels), 4))
    for i, label in enumerate(labels):
        with columns[i % len(columns)]:
            st.button(
                md_escape(label),
                key=f"label-{i}",
                shortcut=str(i + 1) if i < 9 else None,
                type="primary" if label in chosen else "secondary",
                on_click=on_click,
                args=args(label),
                width="stretch",
            )


def undo_button(feed: Feed, who: str, *, can_undo: bool) -> None:
    st.button(
        "Undo",
        key="undo",
        shortcut=SHORTCUTS["undo"],
        on_click=undo,
        args=(feed, who),
        disabled=not can_undo,
        help="Take back your last answer (the last ones, one at a time)",
        width="stretch",
    )


def answer_buttons(
    feed: Feed,
    who: str,
    task: dict,
    *,
    reject: bool,
    can_undo: bool,
    accept: list[str] | None = None,
    chosen_key: str | None = None,
) -> None:
    """Accept (A), reject (X, if asked for), ignore (Space) and undo (Backspace)."""
    names = (
        ["accept", "reject", "ignore", "undo"]
        if reject
        else ["accept", "ignore", "undo"]
    )
    for name, column in zip(names, st.columns(len(names)), strict=True):
        with column:
            if name == "undo":
                undo_button(feed, who, can_undo=can_undo)
                continue
            st.button(
                name.capitalize(),
                key=name,
                shortcut=SHORTCUTS[name],
                on_click=answer,
                args=(feed, who, task, name)
                + ((accept, chosen_key) if name == "accept" else ()),
                width="stretch",
            )


def ignore_undo(feed: Feed, who: str, task: dict, *, can_undo: bool) -> None:
    """Ignore (Space) and undo (Backspace) alone: a choice answered by its labels."""
    left, right = st.columns(2)
    with left:
        st.button(
            "Ignore",
            key="ignore",
            shortcut=SHORTCUTS["ignore"],
            on_click=answer,
            args=(feed, who, task, "ignore"),
            width="stretch",
        )
    with right:
        undo_button(feed, who, can_undo=can_undo)
