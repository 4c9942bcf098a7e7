"""NER views: ner.teach (one suggested entity: right or wrong?) and ner.correct /
ner.manual (edit the text's entities, then accept them as its full analysis)."""

from __future__ import annotations

import streamlit as st
from spacy import displacy
from spacy_al.app.views import widgets as w
from spacy_al.app.views.widgets import esc, md_escape

from spacy_al.serve.feed import Feed

PAGE_TOKENS = 80  # token pills per page of a long text
UNCERTAIN_SHOWN = 5  # the most uncertain tokens listed under a text
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
    facts.append(w.version_fact(task, stats["version"]))
    ner_card(task, task.get("spans") or [], feed.labels, facts)
    w.answer_buttons(feed, who, task, reject=True, can_undo=stats["you"]["can_undo"])


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
    w.answer(feed, who, eg, answer)


def _token_name(token: dict) -> str:
    text = token["text"]
    return md_escape(text) if text.strip() else "⏎" if "\n" in text else "␣"


def render_ner_manual(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """ner.correct / ner.manual: edit the spans (select tokens, pick a label, add;
    remove), then accept them as the text's complete analysis."""
    tokens = task.get("tokens") or []
    spans_key = "ner_spans"
    if st.session_state.get("ner_for") != task["_task_key"]:
        st.session_state["ner_for"] = task["_task_key"]
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
    facts.append(w.version_fact(task, stats["version"]))
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
                shortcut=w.SHORTCUTS[name],
                on_click=_answer_spans,
                args=(feed, who, task, name, spans_key),
                width="stretch",
            )
    with columns[2]:
        w.undo_button(feed, who, can_undo=stats["you"]["can_undo"])
