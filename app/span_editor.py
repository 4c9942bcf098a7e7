"""The NER span editor: a Streamlit version 2 custom component (inline HTML, CSS
and JavaScript, no iframe, no build step) that edits a text's entities in the
browser, and the Python side that turns its answer into the feed's.

The browser keeps the spans while the annotator works: dragging over words (or
Shift+arrows, then Enter) marks them with the current label, snapped to whole
tokens; the number keys 1-9 pick the label (and relabel the entity just
marked); a click on an entity gives it the current label, or removes it if it
has that label already (its × always removes it); "Clear all" removes every
entity. Nothing reaches the server until the answer: Accept (A), Reject (X,
where asked) or Ignore (Space) sends the spans and the answer in one trigger
value, so a text costs one round trip however many edits it took.

The component is keyed by the task, so nothing marked on one text carries over
to the next. Texts and labels are put into the page with ``textContent`` only,
never as HTML. Offsets travel as UTF-16 code units (JavaScript string indices)
and are converted back with :func:`spacy_al.spans.utf16_spans_to_char`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from spacy_al.errors import Errors
from spacy_al.spans import utf16_spans_to_char

# displaCy's default entity colours, by label position.
PALETTE = (
    "#7aecec",
    "#bfeeb7",
    "#feca74",
    "#ff9561",
    "#aa9cfc",
    "#c887fb",
    "#9cc9cc",
    "#ffeb80",
    "#ff8197",
    "#e4e7d2",
    "#bfe1d9",
    "#f0d0ff",
)
ANSWERS = ("accept", "reject", "ignore")
ATTEMPT = "editor_attempt"  # session state: answers sent from the editor

CSS = """
:host { display: block; }
.sal-editor { border: 1px solid #d1d5db; border-radius: 0.6rem; padding: 1rem 1.2rem;
  background: #fff; color: #111827; font-family: inherit; }
.sal-notice { background: #e0f2fe; color: #0c4a6e; border-radius: 0.4rem;
  padding: 0.5rem 0.8rem; margin-bottom: 0.7rem; font-size: 0.92rem; }
.sal-labels { display: flex; flex-wrap: wrap; gap: 0.35rem; margin-bottom: 0.8rem; }
.sal-labels button { border: 1px solid #d1d5db; border-radius: 0.4rem; background: #fff;
  padding: 0.2rem 0.6rem; cursor: pointer; font-size: 0.9rem; display: inline-flex;
  align-items: center; gap: 0.35rem; color: #111827; }
.sal-labels button[aria-pressed="true"] { border-color: #2563eb; background: #eff6ff;
  color: #1d4ed8; font-weight: 600; box-shadow: inset 0 0 0 1px #2563eb; }
/* buttons don't inherit the page's font by default */
button { font-family: inherit; }
.sal-swatch { width: 0.8rem; height: 0.8rem; border-radius: 0.2rem; display: inline-block; }
kbd { border: 1px solid #9ca3af; border-bottom-width: 2px; border-radius: 0.25rem;
  padding: 0 0.3rem; font-size: 0.75rem; background: #f9fafb; color: #374151;
  font-family: inherit; }
.sal-text { font-size: 1.25rem; line-height: 2.3; white-space: pre-wrap;
  overflow-wrap: anywhere; user-select: none; -webkit-user-select: none; cursor: text; }
.sal-tok { border-radius: 0.2rem; }
.sal-tok.sal-sel { background: #bfdbfe; }
.sal-tok.sal-cur { outline: 2px solid #2563eb; outline-offset: 1px; }
mark.sal-ent { border-radius: 0.35rem; padding: 0.2rem 0.3rem; margin: 0 0.1rem;
  cursor: pointer; color: inherit; }
mark.sal-ent.sal-active { box-shadow: 0 0 0 2px #111827; }
.sal-ent-label { font-size: 0.7rem; font-weight: 700; text-transform: uppercase;
  margin-left: 0.35rem; vertical-align: middle; letter-spacing: 0.02em; }
.sal-x { border: none; background: rgba(0,0,0,0.12); border-radius: 0.6rem;
  width: 1.1rem; height: 1.1rem; line-height: 1rem; font-size: 0.8rem; margin-left: 0.25rem;
  cursor: pointer; padding: 0; vertical-align: middle; color: #111827; }
.sal-meta { font-size: 0.85rem; color: #6b7280; margin-top: 0.6rem; }
.sal-hint { font-size: 0.8rem; color: #6b7280; margin-top: 0.3rem; }
.sal-actions { display: flex; gap: 0.5rem; margin-top: 0.9rem; flex-wrap: wrap; }
.sal-actions button { flex: 1 1 0; min-width: 6rem; border-radius: 0.5rem; padding: 0.45rem 0.8rem;
  border: 1px solid #d1d5db; background: #fff; cursor: pointer; font-size: 0.95rem;
  color: #111827; }
.sal-actions button:disabled { opacity: 0.5; cursor: default; }
.sal-actions .sal-accept { background: #16a34a; border-color: #16a34a; color: #fff; }
.sal-actions .sal-reject { background: #dc2626; border-color: #dc2626; color: #fff; }
.sal-actions .sal-accept kbd, .sal-actions .sal-reject kbd { background: rgba(255,255,255,0.2);
  color: #fff; border-color: rgba(255,255,255,0.6); }
.sal-actions .sal-clear { flex: 0 1 auto; }
"""

# One function, called by Streamlit with the data of every render. The state of
# an edit lives on the component's root element, for the task it was made for.
JS = r"""
const AHEAD_MS = 10000;  // keys typed ahead are kept this long for the next text

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let root = parentElement.querySelector(".sal-editor");
  if (!root) {
    root = document.createElement("div");
    root.className = "sal-editor";
    parentElement.appendChild(root);
  }
  const tokens = data.tokens || [];
  const labels = data.labels || [];
  const text = data.text || "";
  const tokenAt = (offset, edge) => tokens.findIndex((t) => t[edge] === offset);
  let st = root.__sal;
  const fresh = !st || st.task !== data.task || st.attempt !== data.attempt;
  if (fresh) {
    const spans = [];
    for (const s of data.spans || []) {
      // snap to whole tokens: the first token ending after start, the last
      // starting before end
      let a = tokens.findIndex((t) => t[1] > s.start);
      let b = -1;
      tokens.forEach((t, i) => { if (t[0] < s.end) b = i; });
      if (a >= 0 && b >= a && labels.includes(s.label)) spans.push({ a, b, label: s.label });
    }
    st = { task: data.task, attempt: data.attempt, spans, label: Math.min(data.label || 0, Math.max(labels.length - 1, 0)),
      cursor: -1, anchor: -1, drag: null, active: -1, sent: false };
    root.__sal = st;
  }
  const color = (label) => (data.colors || [])[labels.indexOf(label)] || "#ddd";
  const sorted = () => st.spans.sort((x, y) => x.a - y.a);
  const blank = (i) => !text.slice(tokens[i][0], tokens[i][1]).trim();
  const add = (a, b) => {
    if (a > b) [a, b] = [b, a];
    if (!labels.length || a < 0) return;
    while (a <= b && blank(a)) a++;  // an entity doesn't start or end in a space
    while (b >= a && blank(b)) b--;
    if (a > b) return;
    const span = { a, b, label: labels[st.label] };
    st.spans = st.spans.filter((s) => s.b < a || s.a > b);
    st.spans.push(span);
    sorted();
    st.active = st.spans.indexOf(span);
  };
  const send = (answer) => {
    if (st.sent || !(data.answers || []).includes(answer)) return;
    st.sent = true;
    // Keys pressed from now until the next text's editor is drawn are for that
    // text: kept here (by this editor, or the page's handler once it is gone).
    window.__salAhead = { after: data.task, at: Date.now(), keys: [] };
    const spans = st.spans.map((s) => ({ start: tokens[s.a][0], end: tokens[s.b][1],
      label: s.label }));
    draw();
    setTriggerValue("answer", { task: data.task, answer, spans });
  };
  const clickEntity = (i) => {
    const span = st.spans[i];
    if (span.label === labels[st.label]) { st.spans.splice(i, 1); st.active = -1; }
    else { span.label = labels[st.label]; st.active = i; }
    draw();
  };

  function el(tag, cls, textValue) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (textValue !== undefined) node.textContent = textValue;
    // A clicked button doesn't take the focus: Space or Enter pressed next must
    // answer, not press that button again.
    if (tag === "button") node.addEventListener("mousedown", (e) => e.preventDefault());
    return node;
  }
  function kbd(key) { return el("kbd", null, key); }

  function draw() {
    root.replaceChildren();
    if (data.notice) root.appendChild(el("div", "sal-notice", data.notice));
    const bar = el("div", "sal-labels");
    labels.forEach((label, i) => {
      const b = el("button", "sal-label-button");
      b.type = "button";
      b.setAttribute("aria-pressed", String(i === st.label));
      b.dataset.label = String(i);
      if (i < 9) b.appendChild(kbd(String(i + 1)));
      const sw = el("span", "sal-swatch");
      sw.style.background = color(label);
      b.appendChild(sw);
      b.appendChild(document.createTextNode(label));
      b.addEventListener("click", () => pick(i));
      bar.appendChild(b);
    });
    root.appendChild(bar);
    const box = el("div", "sal-text");
    const lo = st.drag ? Math.min(st.drag[0], st.drag[1])
      : (st.anchor >= 0 && st.cursor >= 0 ? Math.min(st.anchor, st.cursor) : -1);
    const hi = st.drag ? Math.max(st.drag[0], st.drag[1])
      : (st.anchor >= 0 && st.cursor >= 0 ? Math.max(st.anchor, st.cursor) : -1);
    let pos = 0;
    let k = 0;
    const tokenNode = (i) => {
      const t = el("span", "sal-tok", text.slice(tokens[i][0], tokens[i][1]));
      t.dataset.i = String(i);
      if (i >= lo && i <= hi && lo >= 0) t.classList.add("sal-sel");
      if (i === st.cursor) t.classList.add("sal-cur");
      return t;
    };
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i][0] > pos) box.appendChild(document.createTextNode(text.slice(pos, tokens[i][0])));
      while (k < st.spans.length && st.spans[k].b < i) k++;
      const span = st.spans[k];
      if (span && span.a === i) {
        const index = k;
        const mark = el("mark", "sal-ent");
        mark.dataset.span = String(index);
        mark.style.background = color(span.label);
        if (index === st.active) mark.classList.add("sal-active");
        for (let j = span.a; j <= span.b; j++) {
          if (j > span.a && tokens[j][0] > tokens[j - 1][1])
            mark.appendChild(document.createTextNode(text.slice(tokens[j - 1][1], tokens[j][0])));
          mark.appendChild(tokenNode(j));
        }
        const chip = el("span", "sal-ent-label", span.label);
        chip.addEventListener("click", () => clickEntity(index));
        mark.appendChild(chip);
        const x = el("button", "sal-x", "×");
        x.type = "button";
        x.title = "Remove";
        x.addEventListener("mousedown", (e) => e.stopPropagation());
        x.addEventListener("click", (e) => {
          e.stopPropagation(); st.spans.splice(index, 1); st.active = -1; draw();
        });
        mark.appendChild(x);
        box.appendChild(mark);
        pos = tokens[span.b][1];
        i = span.b;
        continue;
      }
      box.appendChild(tokenNode(i));
      pos = tokens[i][1];
    }
    if (pos < text.length) box.appendChild(document.createTextNode(text.slice(pos)));
    box.addEventListener("mousedown", (e) => {
      const tok = e.target.closest && e.target.closest(".sal-tok");
      if (!tok || e.button !== 0 || st.sent) return;
      e.preventDefault();
      const i = Number(tok.dataset.i);
      st.drag = [i, i];
      st.anchor = -1;
      st.cursor = -1;
      draw();
    });
    box.addEventListener("mouseover", (e) => {
      if (!st.drag) return;
      const tok = e.target.closest && e.target.closest(".sal-tok");
      if (!tok) return;
      const i = Number(tok.dataset.i);
      if (i !== st.drag[1]) { st.drag[1] = i; draw(); }
    });
    root.appendChild(box);
    if (data.facts) root.appendChild(el("div", "sal-meta", data.facts));
    const actions = el("div", "sal-actions");
    const clear = el("button", "sal-clear", "Clear all");
    clear.type = "button";
    clear.disabled = st.sent || !st.spans.length;
    clear.addEventListener("click", () => { st.spans = []; st.active = -1; draw(); });
    actions.appendChild(clear);
    const names = { accept: ["Accept", "A"], reject: ["Reject", "X"], ignore: ["Ignore", "Space"] };
    for (const answer of data.answers || []) {
      const b = el("button", "sal-" + answer);
      b.type = "button";
      b.dataset.answer = answer;
      b.appendChild(document.createTextNode(names[answer][0] + " "));
      b.appendChild(kbd(names[answer][1]));
      b.disabled = st.sent;
      b.addEventListener("click", () => send(answer));
      actions.appendChild(b);
    }
    root.appendChild(actions);
    root.appendChild(el("div", "sal-hint", st.sent ? "Saving…"
      : "Drag over words to mark them (or ←/→, Shift+←/→, Enter) · 1–9 pick the label · "
        + "click an entity to give it the current label, or to remove it if it has it · Esc clears the selection"));
  }

  function pick(i) {
    if (i < 0 || i >= labels.length) return;
    st.label = i;
    if (st.active >= 0 && st.spans[st.active]) st.spans[st.active].label = labels[i];
    draw();
  }

  st.onUp = () => {
    if (!st.drag) return;
    const [a, b] = st.drag;
    st.drag = null;
    const inside = st.spans.findIndex((s) => s.a <= a && a <= s.b);
    if (a === b && inside >= 0) clickEntity(inside);
    else { add(a, b); draw(); }
  };
  st.onKey = (event) => {
    const key = event.key;
    const mods = event.ctrlKey || event.metaKey || event.altKey;
    if (mods) return false;
    if (st.sent) {  // answered: the key is for the next text
      const ahead = window.__salAhead;
      if (!ahead || ahead.after !== st.task) return false;
      ahead.keys.push({ key, shiftKey: event.shiftKey, repeat: event.repeat });
      return true;
    }
    if (/^[1-9]$/.test(key) && !event.shiftKey) { pick(Number(key) - 1); return true; }
    if (event.shiftKey && key !== "ArrowLeft" && key !== "ArrowRight") return false;
    if (key === "ArrowRight" || key === "ArrowLeft") {
      const step = key === "ArrowRight" ? 1 : -1;
      const next = st.cursor < 0 ? (step > 0 ? 0 : tokens.length - 1)
        : Math.min(Math.max(st.cursor + step, 0), tokens.length - 1);
      if (event.shiftKey) { if (st.anchor < 0) st.anchor = st.cursor < 0 ? next : st.cursor; }
      else st.anchor = next;
      st.cursor = next;
      draw();
      return true;
    }
    if (key === "Enter") {
      if (st.cursor >= 0) { add(st.anchor >= 0 ? st.anchor : st.cursor, st.cursor); st.anchor = st.cursor; draw(); }
      return true;
    }
    if (key === "Escape") { st.anchor = -1; st.cursor = -1; st.active = -1; st.drag = null; draw(); return true; }
    if (key === "Delete") {
      const i = st.active >= 0 ? st.active : st.spans.findIndex((s) => s.a <= st.cursor && st.cursor <= s.b);
      if (i >= 0) { st.spans.splice(i, 1); st.active = -1; draw(); }
      return true;
    }
    if (event.repeat) return false;
    const answer = { a: "accept", x: "reject", " ": "ignore" }[key.toLowerCase()];
    if (answer && (data.answers || []).includes(answer)) { send(answer); return true; }
    return false;
  };

  // The page's key handler (app/widgets.py) asks the editor first; a mouse
  // released anywhere ends a drag.
  const onKey = (event) => st.onKey(event);
  const onUp = () => st.onUp();
  window.__salEditor = onKey;
  // Streamlit calls this function again for new data without the cleanup
  // below (it runs only when the editor goes): one mouseup listener at a time.
  if (root.__salUp) window.removeEventListener("mouseup", root.__salUp);
  root.__salUp = onUp;
  window.addEventListener("mouseup", onUp);
  draw();
  // A new text: the keys pressed since the last answer (typed ahead while this
  // text loaded) are pressed again now, in order, through the page's key
  // handler (app/widgets.py), so they reach this editor, or Undo. An answer key
  // among them ends them: a text is never answered before it was shown (a
  // double press of A must not accept the next text unseen). Keys kept after
  // an answer that didn't take (the same text drawn again) or kept too long
  // are dropped.
  const ahead = window.__salAhead;
  if (fresh && ahead) {
    window.__salAhead = null;
    if (ahead.after !== data.task && Date.now() - ahead.at < AHEAD_MS)
      for (const k of ahead.keys) {
        if (!k.shiftKey && ["a", "x", " "].includes(k.key.toLowerCase())) break;
        window.dispatchEvent(new KeyboardEvent("keydown", { ...k, bubbles: true, cancelable: true }));
      }
  }
  return () => {
    window.removeEventListener("mouseup", onUp);
    if (window.__salEditor === onKey) window.__salEditor = null;
  };
}
"""

EDITOR = st.components.v2.component(
    "spacy_al.span_editor", html='<div class="sal-editor"></div>', css=CSS, js=JS
)


def label_colors(labels: Sequence[str]) -> list[str]:
    """One colour per label, by position (displaCy's palette)."""
    return [PALETTE[i % len(PALETTE)] for i in range(len(labels))]


def utf16_offset(text: str, offset: int) -> int:
    """The UTF-16 code unit offset (JavaScript string index) of the code point
    offset ``offset`` into ``text``."""
    return offset + sum(1 for char in text[:offset] if ord(char) > 0xFFFF)


def editor_data(
    task: Mapping[str, Any],
    labels: Sequence[str],
    *,
    spans: Sequence[Mapping[str, Any]] = (),
    answers: Sequence[str] = ("accept", "ignore"),
    facts: str = "",
    notice: str = "",
    attempt: int = 0,
) -> dict[str, Any]:
    """What the browser gets: the text, its tokens and the pre-filled ``spans``
    (only those of ``labels``) in UTF-16 offsets, the labels and their colours,
    the answers offered, and the task key (a string: JavaScript numbers lose the
    digits of a 64-bit key). The browser starts the text afresh when the task
    or ``attempt`` changes (a new attempt after an answer that wasn't stored)."""
    text = task["text"]
    u16 = [utf16_offset(text, i) for i in range(len(text) + 1)]
    return {
        "task": str(task["_task_key"]),
        "text": text,
        "tokens": [[u16[t["start"]], u16[t["end"]]] for t in task.get("tokens") or []],
        "spans": [
            {"start": u16[s["start"]], "end": u16[s["end"]], "label": s["label"]}
            for s in spans
            if s.get("label") in labels
        ],
        "labels": list(labels),
        "colors": label_colors(labels),
        "answers": [a for a in answers if a in ANSWERS],
        "facts": facts,
        "notice": notice,
        "attempt": attempt,
    }


def answer_from_editor(task: Mapping[str, Any], payload: Any) -> dict[str, Any]:
    """The answer to pass to the feed from what the editor sent: ``task`` with
    ``answer`` and ``spans`` (character offsets, with their token indices).

    Raises ValueError if the payload isn't the editor's answer to this task; the
    feed checks the spans against the text and the labels."""
    if (
        not isinstance(payload, Mapping)
        or payload.get("task") != str(task["_task_key"])
        or payload.get("answer") not in ANSWERS
        or not isinstance(payload.get("spans"), list)
    ):
        raise ValueError(Errors.E945.format(snippet=repr(payload)[:80]))
    try:
        spans = utf16_spans_to_char(
            task["text"],
            [
                {"start": s["start"], "end": s["end"], "label": s["label"]}
                for s in payload["spans"]
            ],
        )
    except (KeyError, TypeError) as e:
        raise ValueError(Errors.E945.format(snippet=repr(payload)[:80])) from e
    starts = {t["start"]: i for i, t in enumerate(task.get("tokens") or [])}
    ends = {t["end"]: i for i, t in enumerate(task.get("tokens") or [])}
    for span in spans:
        if span["start"] in starts and span["end"] in ends:
            span["token_start"] = starts[span["start"]]
            span["token_end"] = ends[span["end"]]
    eg = dict(task)
    eg["answer"] = payload["answer"]
    eg["spans"] = sorted(spans, key=lambda s: (s["start"], s["end"]))
    return eg


def span_editor(
    task: Mapping[str, Any],
    labels: Sequence[str],
    *,
    on_answer: Callable[[dict[str, Any]], None],
    spans: Sequence[Mapping[str, Any]] = (),
    answers: Sequence[str] = ("accept", "ignore"),
    facts: str = "",
    notice: str = "",
) -> None:
    """Draw the editor for ``task``; when the annotator answers, ``on_answer``
    gets the answer (:func:`answer_from_editor`) in a callback, before the page
    is drawn again (so the next task shows in the same round trip). A payload
    that isn't for this task is reported on the page and nothing is stored.

    Every answer counts an attempt: if the same text is drawn again (the answer
    wasn't stored), the browser's editor, which shows "Saving…" after an
    answer, starts it again instead of waiting for an answer that won't come."""
    key = f"span_editor_{task['_task_key']}"

    def answered() -> None:
        state = st.session_state.get(key) or {}
        payload = state.get("answer") if isinstance(state, Mapping) else None
        if payload is None:
            return
        st.session_state[ATTEMPT] = st.session_state.get(ATTEMPT, 0) + 1
        try:
            eg = answer_from_editor(task, payload)
        except ValueError as e:
            st.session_state["editor_error"] = str(e)
            return
        on_answer(eg)

    EDITOR(
        key=key,
        data=editor_data(
            task,
            labels,
            spans=spans,
            answers=answers,
            facts=facts,
            notice=notice,
            attempt=st.session_state.get(ATTEMPT, 0),
        ),
        on_answer_change=answered,
    )
