"""The labelling app: widgets and callbacks over the shared feed, nothing else.

Started by ``python -m spacy_al RECIPE ...`` (spacy_al/server.py), which passes the
recipe's name and arguments in the environment. All sessions of the server share
one :class:`spacy_al.serve.feed.Feed` (``st.cache_resource``): it decides what each
annotator sees, commits their answers and trains the model in the background.
This file only renders a task and calls the feed.

Each view is one render function, registered in ``VIEWS`` under the recipe's
``view_id``; a new view (NER, say) is a new function and one line in ``VIEWS``.

Safety: texts, labels and annotator names are user data. They are never passed to
st.markdown or to any element that renders Markdown (button labels, captions,
toasts): they go through ``html.escape`` into ``st.html`` (which Streamlit also
sanitizes), or into ``st.dataframe``; button labels get :func:`md_escape`.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable

import altair as alt
import streamlit as st
from spacy import displacy

from spacy_al.errors import Errors
from spacy_al.serve import launcher as server
from spacy_al.serve.feed import Feed, check_annotator

PAGE_TOKENS = 80  # token pills per page of a long text (NER)
UNCERTAIN_SHOWN = 5  # the most uncertain tokens listed under an NER text
# displaCy colours by label position: labels come from the recipe (a whitelist),
# so no user text reaches displaCy's unescaped label and colour slots.
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
REFRESH_SECONDS = 2.0  # how often the sidebar polls progress and the curve
WAIT_SECONDS = 3.0  # how long a page waits for the selector when nothing is queued
SHORTCUTS = {"accept": "A", "reject": "X", "ignore": "Space", "undo": "Backspace"}
FLASH = {
    "undone": "Took back your last answer: here it is again.",
    "not_undone": "Nothing to undo: the model has already learnt from your answers.",
    "duplicate": "That example was already answered.",
    "no_span": "Select one or more tokens first, then add the span.",
}
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
</style>
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


# --- the shared feed -----------------------------------------------------------


@st.cache_resource(
    show_spinner="Loading the texts and the model…",
    on_release=lambda feed: feed.close(),
)
def get_feed(recipe: str, args: str, tokens: str, files: str) -> Feed:
    """One feed per server process and recipe configuration."""
    return server.build_feed(
        recipe,
        json.loads(args),
        tokens=json.loads(tokens),
        recipe_files=json.loads(files),
    )


def load_feed() -> Feed:
    try:
        recipe, kwargs, tokens, files = server.read_app_env(os.environ)
    except ValueError as e:
        alert(str(e), "error")
        st.stop()
    try:
        return get_feed(
            recipe,
            json.dumps(kwargs, sort_keys=True),
            json.dumps(tokens),
            json.dumps(files),
        )
    except (ValueError, FileNotFoundError, ImportError) as e:  # the recipe's message
        alert(f"Can't start {recipe}: {e}", "error")
        st.stop()


# --- who is labelling ------------------------------------------------------------


def _start_session() -> None:
    name = st.session_state.get("name_input", "").strip()
    if name:
        st.query_params["session"] = name
    token = st.session_state.get("token_input", "")
    if token:
        st.session_state["token"] = token


def annotator(feed: Feed) -> str:
    """The annotator of this session (``?session=NAME``), asked for if missing."""
    name = st.query_params.get("session", "")
    token = st.query_params.get("token") or st.session_state.get("token")
    problem = None
    if name:
        try:
            name = check_annotator(name)
        except ValueError as e:
            problem, name = str(e), ""
    if name and feed.check_token(name, token):
        return name
    if name and token:
        problem = (
            "This name and access token don't match. Use the link printed for you."
        )
    if not feed.restricted:  # a restricted server shows nothing before the token
        header(feed)
    if problem:
        alert(problem, "error")
    with st.form("who"):
        st.text_input("Your name", value=name, key="name_input", max_chars=64)
        if feed.restricted:
            st.text_input("Access token", type="password", key="token_input")
        st.form_submit_button("Start labelling", on_click=_start_session)
    st.stop()


# --- callbacks -----------------------------------------------------------------


def _answer(
    feed: Feed,
    who: str,
    task: dict,
    answer: str,
    accept: list[str] | None = None,
    chosen_key: str | None = None,
) -> None:
    """Commit an answer; ``chosen_key`` names the session-state list of chosen labels
    (read at click time, so the latest toggles count)."""
    if chosen_key is not None:
        accept = list(st.session_state.get(chosen_key, []))
    eg = dict(task)
    eg["answer"] = answer
    if accept is not None:
        eg["accept"] = list(accept)
    else:
        eg.pop("accept", None)
    if feed.answer(who, eg) is None:
        st.session_state["flash"] = "duplicate"


def _correct(
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
        _answer(feed, who, task, "accept")
    else:
        _answer(feed, who, task, "reject", labels or [])


def _undo(feed: Feed, who: str) -> None:
    st.session_state["flash"] = "undone" if feed.undo(who) else "not_undone"


def _toggle(key: str, label: str) -> None:
    chosen = st.session_state[key]
    st.session_state[key] = (
        [x for x in chosen if x != label] if label in chosen else [*chosen, label]
    )


# --- pieces of every view ------------------------------------------------------------


def header(feed: Feed, who: str | None = None) -> None:
    parts = [feed.dataset or "", feed.view_id]
    if who:
        parts.append(f"annotator: {who}")
    st.html(CSS + f'<div class="sal-head">spacy_al · {esc(" · ".join(parts))}</div>')


def card(task: dict, *, label: str | None, version: int) -> None:
    """The text (and the suggested label), with the model's score and version."""
    meta = task.get("meta") or {}
    facts = []
    if label is not None and "score" in meta:
        facts.append(f"model's score for {label}: {meta['score']:.2f}")
    elif "scores" in meta:
        best = max(meta["scores"], key=meta["scores"].get)
        facts.append(f"model's best guess: {best} ({meta['scores'][best]:.2f})")
    elif "score" in meta and task.get("label"):
        facts.append(f"model's best guess: {task['label']} ({meta['score']:.2f})")
    if "uncertainty" in meta:
        facts.append(f"uncertainty {meta['uncertainty']:.2f}")
    asked = task.get("_model_version")
    facts.append(
        f"model v{version}"
        + (
            f" (chose this at v{asked})"
            if asked is not None and asked != version
            else ""
        )
    )
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
        f'<div class="sal-meta">{esc(" · ".join(facts))}</div></div>'
    )


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
                st.button(
                    "Undo",
                    key="undo",
                    shortcut=SHORTCUTS["undo"],
                    on_click=_undo,
                    args=(feed, who),
                    disabled=not can_undo,
                    width="stretch",
                )
                continue
            st.button(
                name.capitalize(),
                key=name,
                shortcut=SHORTCUTS[name],
                type="primary" if name == "accept" else "secondary",
                on_click=_answer,
                args=(feed, who, task, name)
                + ((accept, chosen_key) if name == "accept" else ()),
                width="stretch",
            )


# --- the views -----------------------------------------------------------------


def render_classification(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """Binary: is the suggested label right? Accept, reject (and correct), ignore."""
    card(task, label=task.get("label"), version=stats["version"])
    answer_buttons(feed, who, task, reject=True, can_undo=stats["you"]["can_undo"])
    if feed.exclusive:
        st.html(
            '<p class="sal-hint">Wrong label? Pick the right one to reject and correct in one step:</p>'
        )
        label_buttons(
            feed.labels,
            on_click=_correct,
            args=lambda label: (feed, who, task, [label]),
        )
        return
    key = _selection(task, [])
    st.html(
        '<p class="sal-hint">Wrong label? Choose the right ones, then reject and correct (Enter):</p>'
    )
    label_buttons(
        feed.labels,
        on_click=_toggle,
        args=lambda label: (key, label),
        chosen=st.session_state[key],
    )
    st.button(
        "Reject and correct",
        key="correct",
        shortcut="Enter",
        on_click=_correct,
        args=(feed, who, task, None, key),
    )


def render_choice(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """Choose the label(s) of the text; the model's prediction is pre-selected
    when the recipe asks for it (textcat.correct)."""
    card(task, label=None, version=stats["version"])
    preselected = list(task.get("accept") or []) if feed.preselect else []
    choose_labels(feed, who, task, stats, preselected, chosen_by="the model")


def choose_labels(
    feed: Feed,
    who: str,
    task: dict,
    stats: dict,
    preselected: list[str],
    *,
    chosen_by: str,
) -> None:
    """The label buttons of a choice: one click (or number key) answers an
    exclusive choice; several labels are toggled, then accepted. ``preselected``
    labels were chosen by ``chosen_by`` (the model, the annotators' majority)."""
    can_undo = stats["you"]["can_undo"]
    if feed.exclusive:
        st.html(
            '<p class="sal-hint">Choose the label (its number key answers at once)'
            + (f", or accept {esc(chosen_by)}'s choice" if preselected else "")
            + ":</p>"
        )
        label_buttons(
            feed.labels,
            on_click=_answer,
            args=lambda label: (feed, who, task, "accept", [label]),
            chosen=preselected,
        )
        if preselected:
            answer_buttons(
                feed, who, task, accept=preselected, reject=False, can_undo=can_undo
            )
        else:
            _ignore_undo(feed, who, task, can_undo)
        return
    key = _selection(task, preselected)
    st.html(
        '<p class="sal-hint">Choose every label that applies (number keys), then accept:</p>'
    )
    label_buttons(
        feed.labels,
        on_click=_toggle,
        args=lambda label: (key, label),
        chosen=st.session_state[key],
    )
    answer_buttons(feed, who, task, reject=False, can_undo=can_undo, chosen_key=key)


def _ignore_undo(feed: Feed, who: str, task: dict, can_undo: bool) -> None:
    left, right = st.columns(2)
    with left:
        st.button(
            "Ignore",
            key="ignore",
            shortcut=SHORTCUTS["ignore"],
            on_click=_answer,
            args=(feed, who, task, "ignore"),
            width="stretch",
        )
    with right:
        st.button(
            "Undo",
            key="undo",
            shortcut=SHORTCUTS["undo"],
            on_click=_undo,
            args=(feed, who),
            disabled=not can_undo,
            width="stretch",
        )


def _selection(task: dict, initial: list[str]) -> str:
    """The session-state key of the labels chosen for ``task`` (one task at a time)."""
    key = "chosen"
    if st.session_state.get("chosen_for") != task["_task_hash"]:
        st.session_state["chosen_for"] = task["_task_hash"]
        st.session_state[key] = initial
    return key


# --- NER ---------------------------------------------------------------------------


def entities_html(text: str, spans: list[dict], labels: tuple[str, ...]) -> str:
    """``text`` with ``spans`` highlighted by displaCy (which escapes the text).

    Only spans whose label is one of ``labels`` are drawn: displaCy doesn't
    escape labels, so none but the recipe's own reach it."""
    ents = [
        {"start": s["start"], "end": s["end"], "label": s["label"]}
        for s in sorted(spans, key=lambda s: (s["start"], s["end"]))
        if s.get("label") in labels
    ]
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    body = displacy.render(
        {"text": text, "ents": ents, "title": None},
        style="ent",
        manual=True,
        page=False,
        jupyter=False,
        options={"colors": colors},
    )
    return f'<div class="sal-ents">{body}</div>'


def shading_html(tokens: list[dict]) -> str:
    """The tokens, escaped, shaded by the model's entropy (darker = less sure)."""
    top = max((t.get("entropy", 0.0) for t in tokens), default=0.0) or 1.0
    parts = []
    for t in tokens:
        alpha = min(max(t.get("entropy", 0.0) / top, 0.0), 1.0) * 0.85
        parts.append(
            f'<span style="background: rgba(245, 158, 11, {alpha:.2f})" '
            f'title="entropy {t.get("entropy", 0.0):.2f}">{esc(t["text"])}</span>'
            + (" " if t.get("ws") else "")
        )
    return f'<div class="sal-shade">{"".join(parts)}</div>'


def ner_card(
    task: dict, spans: list[dict], labels: tuple[str, ...], facts: list[str]
) -> None:
    st.html(
        f'<div class="sal-card">{entities_html(task["text"], spans, labels)}'
        f'<div class="sal-meta">{esc(" · ".join(facts))}</div></div>'
    )


def _version_fact(task: dict, version: int) -> str:
    asked = task.get("_model_version")
    if asked is not None and asked != version:
        return f"model v{version} (chose this at v{asked})"
    return f"model v{version}"


def render_ner(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """ner.teach: is the one highlighted span an entity of that label?"""
    span = (task.get("spans") or [{}])[0]
    label = span.get("label")
    facts = []
    if "score" in span:
        facts.append(f"model's probability for {label}: {span['score']:.2f}")
    if "uncertainty" in (task.get("meta") or {}):
        facts.append(f"uncertainty {task['meta']['uncertainty']:.2f}")
    if (task.get("meta") or {}).get("pattern"):
        facts.append("suggested by a pattern")
    facts.append(_version_fact(task, stats["version"]))
    ner_card(task, task.get("spans") or [], feed.labels, facts)
    answer_buttons(feed, who, task, reject=True, can_undo=stats["you"]["can_undo"])


def _token_span(tokens: list[dict], start: int, end: int, label: str) -> dict:
    """A span of tokens ``start`` to ``end`` (exclusive) as character offsets."""
    return {
        "start": tokens[start]["start"],
        "end": tokens[end - 1]["end"],
        "token_start": start,
        "token_end": end - 1,
        "label": label,
    }


def _add_span(tokens: list[dict], spans_key: str, pills_key: str) -> None:
    """The selected tokens (first to last) become a span of the chosen label;
    spans it overlaps are dropped."""
    chosen = st.session_state.get(pills_key) or []
    label = st.session_state.get("ner_label")
    if not chosen or label is None:
        st.session_state["flash"] = "no_span"
        return
    span = _token_span(tokens, min(chosen), max(chosen) + 1, label)
    kept = [
        s
        for s in st.session_state[spans_key]
        if s["token_end"] < span["token_start"] or s["token_start"] > span["token_end"]
    ]
    st.session_state[spans_key] = sorted([*kept, span], key=lambda s: s["start"])
    st.session_state[pills_key] = []


def _remove_spans(spans_key: str) -> None:
    drop = set(st.session_state.get("ner_remove") or [])
    st.session_state[spans_key] = [
        s for i, s in enumerate(st.session_state[spans_key]) if i not in drop
    ]
    st.session_state["ner_remove"] = []


def _answer_spans(
    feed: Feed, who: str, task: dict, answer: str, spans_key: str
) -> None:
    eg = dict(task)
    eg["spans"] = [dict(s) for s in st.session_state[spans_key]]
    _answer(feed, who, eg, answer)


def _token_name(token: dict) -> str:
    text = token["text"]
    return md_escape(text) if text.strip() else "⏎" if "\n" in text else "␣"


def render_ner_manual(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """ner.correct / ner.manual: edit the spans (select tokens, pick a label, add;
    remove), then accept them as the text's complete analysis."""
    tokens = task.get("tokens") or []
    spans_key = "ner_spans"
    if st.session_state.get("ner_for") != task["_task_hash"]:
        st.session_state["ner_for"] = task["_task_hash"]
        st.session_state[spans_key] = [
            dict(s) for s in task.get("spans") or [] if s.get("label") in feed.labels
        ]
        st.session_state["ner_page"] = 0
        for key in [k for k in st.session_state if str(k).startswith("ner_tokens")]:
            del st.session_state[key]
    spans = st.session_state[spans_key]
    meta = task.get("meta") or {}
    facts = [f"{len(spans)} entities"]
    if "uncertainty" in meta:
        facts.append(f"uncertainty {meta['uncertainty']:.2f}")
    facts.append(_version_fact(task, stats["version"]))
    ner_card(task, spans, feed.labels, facts)
    if any("entropy" in t for t in tokens):
        ranked = sorted(
            (t for t in tokens if t.get("entropy", 0.0) > 0.01 and t["text"].strip()),
            key=lambda t: -t["entropy"],
        )[:UNCERTAIN_SHOWN]
        if ranked:
            with st.expander("Where the model is unsure", expanded=False):
                st.html(shading_html(tokens))
            st.html(
                '<p class="sal-hint">Most uncertain tokens: '
                + ", ".join(
                    f"<b>{esc(t['text'])}</b> ({t['entropy']:.2f})" for t in ranked
                )
                + "</p>"
            )
    st.segmented_control(
        "Label",
        feed.labels,
        format_func=md_escape,
        default=feed.labels[0] if feed.labels else None,
        required=True,
        key="ner_label",
    )
    lo = 0
    if len(tokens) > PAGE_TOKENS:
        pages = list(range(0, len(tokens), PAGE_TOKENS))
        lo = st.selectbox(
            "Part of the text",
            pages,
            format_func=lambda i: f"tokens {i + 1}–{min(i + PAGE_TOKENS, len(tokens))}",
            key="ner_page",
        )
    hi = min(lo + PAGE_TOKENS, len(tokens))
    pills_key = f"ner_tokens_{lo}"
    st.pills(
        "Select the tokens of an entity (first and last are enough), then Add span (Enter)",
        list(range(lo, hi)),
        selection_mode="multi",
        format_func=lambda i: _token_name(tokens[i]),
        key=pills_key,
    )
    add, remove = st.columns(2)
    with add:
        st.button(
            "Add span",
            key="add_span",
            shortcut="Enter",
            on_click=_add_span,
            args=(tokens, spans_key, pills_key),
            width="stretch",
        )
    if spans:
        st.pills(
            "Spans (select to remove)",
            list(range(len(spans))),
            selection_mode="multi",
            format_func=lambda i: md_escape(
                f"{task['text'][spans[i]['start'] : spans[i]['end']]} · {spans[i]['label']}"
            ),
            key="ner_remove",
        )
        with remove:
            st.button(
                "Remove selected spans",
                key="remove_spans",
                on_click=_remove_spans,
                args=(spans_key,),
                width="stretch",
            )
    columns = st.columns(3)
    for name, column in zip(("accept", "ignore"), columns, strict=False):
        with column:
            st.button(
                name.capitalize(),
                key=name,
                shortcut=SHORTCUTS[name],
                type="primary" if name == "accept" else "secondary",
                on_click=_answer_spans,
                args=(feed, who, task, name, spans_key),
                width="stretch",
            )
    with columns[2]:
        st.button(
            "Undo",
            key="undo",
            shortcut=SHORTCUTS["undo"],
            on_click=_undo,
            args=(feed, who),
            disabled=not stats["you"]["can_undo"],
            width="stretch",
        )


# --- review (adjudication) and agreement ------------------------------------------


def versions_html(task: dict, labels: tuple[str, ...]) -> str:
    """Every annotator's answer on a review task, escaped: names, then their labels
    (or, for NER, their entities drawn by displaCy)."""
    rows = []
    for version in task.get("versions") or []:
        names = esc(", ".join(version.get("annotators") or []))
        if "spans" in version:
            verdict = "" if version["answer"] == "accept" else " (rejected)"
            body = entities_html(task["text"], version["spans"], labels)
            rows.append(
                f'<div class="sal-meta"><b>{names}</b>{esc(verdict)}</div>{body}'
            )
        else:
            rows.append(
                f'<div class="sal-version"><b>{names}</b>: '
                f"{esc(version.get('rating', ''))}</div>"
            )
    if task.get("ignored_by"):
        rows.append(
            f'<div class="sal-meta">ignored by {esc(", ".join(task["ignored_by"]))}</div>'
        )
    return "".join(rows)


def render_review(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """review: an example the annotators disagree on, with each one's answer; the
    reviewer's choice (or corrected entities) is stored as gold."""
    kind = "Conflict" if task.get("conflict") else "Agreed"
    n = sum(len(v.get("annotators") or []) for v in task.get("versions") or [])
    if task.get("tokens") is not None:  # NER: the answers, then the span editor
        st.html(
            f'<div class="sal-card"><div class="sal-label">{esc(kind)}</div>'
            f'<div class="sal-meta">{n} annotators</div>'
            f"{versions_html(task, feed.labels)}</div>"
        )
        render_ner_manual(feed, who, task, stats)
        return
    st.html(
        f'<div class="sal-card"><div class="sal-label">{esc(kind)}</div>'
        f'<div class="sal-text">{esc(task["text"])}</div>'
        f'<div class="sal-versions">{versions_html(task, feed.labels)}</div></div>'
    )
    choose_labels(
        feed, who, task, stats, list(task.get("accept") or []), chosen_by="the majority"
    )


def agreement_block(stats: dict) -> None:
    """With overlap >= 2: agreement with the consensus and the conflicts held."""
    found = stats.get("agreement")
    if not found or not found["n_shared"] or stats.get("overlap", 1) < 2:
        return

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    st.html(
        '<div class="sal-you">Agreement: Fleiss κ '
        f"{esc(fmt(found['fleiss_kappa']))} · Krippendorff α "
        f"{esc(fmt(found['krippendorff_alpha']))} · {found['n_conflicts']} conflicts "
        f"({found.get('held', 0)} waiting for review) · {found['n_agreed']} agreed</div>"
    )
    if found["annotators"]:
        st.dataframe(
            [
                {"annotator": name, "kappa": a["kappa"], "n": a["n"]}
                for name, a in found["annotators"].items()
            ],
            hide_index=True,
            width="stretch",
        )


VIEWS: dict[str, Callable[[Feed, str, dict, dict], None]] = {
    "classification": render_classification,
    "choice": render_choice,
    "ner": render_ner,
    "ner_manual": render_ner_manual,
    "review": render_review,
}


# --- the sidebar -------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def curve_spec(
    points: tuple[tuple[int, int, float], ...],
    kind: str,
    metric: str = "macro F1",
    right: int = 10,
) -> dict:
    """The learning curve as a Vega-Lite spec, made with altair once per curve
    (altair's validation takes ~60 ms: too slow for every rerun of every session).
    The x axis runs to ``right`` answers at least (to line up with the stability
    chart)."""
    title = (
        f"{metric.capitalize()} on the eval set"
        if kind == "eval"
        else f"{metric.capitalize()} on new answers, before learning them"
    )
    values = [{"answers": a, "version": v, "score": f} for a, v, f in points]
    right = max(right, 10, max(a for a, _, _ in points))
    chart = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "answers:Q",
                title="answers",
                scale=alt.Scale(domain=[0, right]),
                axis=alt.Axis(format="d"),
            ),
            y=alt.Y("score:Q", title=metric, scale=alt.Scale(domain=[0, 1])),
            tooltip=["answers:Q", "version:Q", "score:Q"],
        )
        .properties(height=220)
    )
    return chart.to_dict()


@st.cache_data(max_entries=16, show_spinner=False)
def stability_spec(
    points: tuple[tuple[int, int, float], ...], threshold: float, right: int = 10
) -> dict:
    """The stopping signal as a Vega-Lite spec: each update's kappa with the model
    before it (on the stop set) over answers, and the threshold as a dashed rule."""
    values = [{"answers": a, "version": v, "kappa": k} for a, v, k in points]
    right = max(right, 10, max(a for a, _, _ in points))
    low = min(0.0, min(k for _, _, k in points))
    x = alt.X(
        "answers:Q",
        title="answers",
        scale=alt.Scale(domain=[0, right]),
        axis=alt.Axis(format="d"),
    )
    line = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=True, color="#7c3aed")
        .encode(
            x=x,
            y=alt.Y("kappa:Q", title="kappa", scale=alt.Scale(domain=[low, 1])),
            tooltip=["answers:Q", "version:Q", "kappa:Q"],
        )
    )
    rule = (
        alt.Chart(alt.Data(values=[{"threshold": threshold}]))
        .mark_rule(strokeDash=[4, 4], color="#6b7280")
        .encode(y="threshold:Q")
    )
    chart = alt.layer(line, rule, title="Prediction stability").properties(height=160)
    return chart.to_dict()


def stopping_signal(stopping: dict, right: int) -> None:
    """Stabilizing predictions: the kappa chart and what it says (stop or not)."""
    points = stopping["points"]
    window, threshold = stopping["window"], stopping["threshold"]
    if points:
        st.vega_lite_chart(
            spec=stability_spec(
                tuple((p["answers"], p["version"], p["kappa"]) for p in points),
                threshold,
                right,
            ),
            width="stretch",
        )
    mean = stopping["mean_kappa"]
    if stopping["should_stop"]:
        alert(
            "Predictions have stabilized — consider stopping (mean kappa "
            f"{mean:.3f} ≥ {threshold:g} over the last {window} updates, "
            f"on {stopping['stop_set_size']} examples).",
            "success",
        )
    elif stopping["stopped_at"] is not None:
        at = stopping["stopped_at"]
        alert(
            f"Predictions were stable at {at['answers']} answers (version "
            f"{at['version']}) and have changed since: mean kappa {mean:.3f}.",
            "info",
        )
    elif mean is not None:
        st.html(
            f'<div class="sal-you">Stopping signal: mean kappa {mean:.3f} over the '
            f"last {window} updates (each model's predictions on "
            f"{stopping['stop_set_size']} examples vs the one before); stop at "
            f"≥ {threshold:g}.</div>"
        )
    elif stopping["stop_set_size"]:
        st.html(
            f'<div class="sal-you">Stopping signal: after {window + 1} updates '
            f"(predictions on {stopping['stop_set_size']} examples).</div>"
        )


@st.fragment(run_every=REFRESH_SECONDS)
def sidebar(feed: Feed, who: str) -> None:
    """Progress, per-annotator counts, model version, the learning curve and the
    stopping signal."""
    feed.touch(who)
    stats = feed.stats(who)
    total = max(stats["total"], 1)
    review = stats["view_id"] == "review"  # nothing is trained while reviewing
    st.progress(
        min(stats["done"] / total, 1.0),
        text=f"{stats['done']} / {stats['total']} examples "
        + ("reviewed" if review else "answered"),
    )
    if not review:
        st.metric(
            "Model version",
            stats["version"],
            help="Goes up after every batch of answers",
        )
        st.html(
            f'<div class="sal-you">Waiting for the next update: {stats["pending"]} / {stats["batch_size"]} answers'
            + (" · training…" if stats["training"] else "")
            + "</div>"
        )
    if stats["annotators"]:
        st.dataframe(
            [
                {"annotator": name, "answers": n}
                for name, n in stats["annotators"].items()
            ],
            hide_index=True,
            width="stretch",
        )
    agreement_block(stats)
    stopping = stats.get("stopping")
    # Both charts run to the same number of answers, so that they line up.
    right = max(
        [p["answers"] for p in stats["curve"]]
        + [p["answers"] for p in (stopping or {}).get("points", [])]
        + [10]
    )
    if stats["curve"]:
        points = tuple((p["answers"], p["version"], p["score"]) for p in stats["curve"])
        st.vega_lite_chart(
            spec=curve_spec(
                points,
                stats["curve_kind"],
                stats.get("curve_metric", "macro F1"),
                right,
            ),
            width="stretch",
        )
    elif stats["curve_kind"] is not None:
        st.html(
            '<div class="sal-you">The learning curve starts after the first update.</div>'
        )
    if stopping is not None:
        stopping_signal(stopping, right)
    if stats["error"]:
        alert(stats["error"], "error")
    if st.session_state.get("waiting") and feed.has_task(who):
        st.rerun()  # something to label now: show it


# --- the page ------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="spacy_al", layout="centered")
    feed = load_feed()
    who = annotator(feed)
    header(feed, who)
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(FLASH[flash])
    task = feed.next_task(who, timeout=WAIT_SECONDS)
    stats = feed.stats(who)
    st.session_state["waiting"] = task is None
    with st.sidebar:
        sidebar(feed, who)
    if task is None:
        if stats["you"]["finished"]:
            alert(
                f"No more examples for you: you answered {stats['you']['answers']}. Thank you!",
                "success",
            )
        else:
            alert(
                "Waiting for examples (others may be holding the last ones, or the model is choosing)…",
                "info",
            )
        return
    render = VIEWS.get(feed.view_id)
    if render is None:
        alert(Errors.E613.format(view_id=feed.view_id, views=", ".join(VIEWS)), "error")
        return
    render(feed, who, task, stats)
    st.html(
        f'<div class="sal-you">You answered <span class="sal-count">'
        f"{stats['you']['answers']}</span> examples.</div>"
    )


main()
