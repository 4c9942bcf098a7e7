"""NER views: ner.teach (one suggested entity: right or wrong?) and ner.correct /
ner.manual (edit the text's entities, then accept them as its full analysis)."""

from __future__ import annotations

import streamlit as st
from spacy import displacy
from spacy_al.app.views import widgets as w
from spacy_al.app.views.span_editor import label_colors, span_editor
from spacy_al.app.views.widgets import esc

from spacy_al.serve.feed import Feed
from spacy_al.team.consensus import REVIEW_VIEW

UNCERTAIN_SHOWN = 5  # the most uncertain tokens listed under a text


def entities_html(text: str, spans: list[dict], labels: tuple[str, ...]) -> str:
    """``text`` with ``spans`` highlighted by displaCy.

    displaCy escapes the text but not the labels, which it puts into the page
    as they are: they are escaped here (a recipe's labels are user input, e.g.
    ``--label '<i>LOC</i>'``). Only spans whose label is one of ``labels`` are
    drawn."""
    ents = [
        {"start": s["start"], "end": s["end"], "label": esc(s["label"])}
        for s in sorted(spans, key=lambda s: (s["start"], s["end"]))
        if s.get("label") in labels
    ]
    colors = {
        esc(label): color
        for label, color in zip(labels, label_colors(labels), strict=True)
    }
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
    """ner.teach: is the one highlighted span an entity of that label? (While
    the model is untrained, in a cold start, the text's entities instead.)"""
    if task.get("_view_id") == "ner_manual":
        render_ner_manual(feed, who, task, stats)
        return
    untrained = (task.get("meta") or {}).get("untrained")
    if untrained:
        w.alert(UNTRAINED_TEACH, "info")
    span = (task.get("spans") or [{}])[0]
    label = span.get("label")
    facts = []
    # (an untrained model's figures are noise: not shown)
    if "score" in span and not untrained:
        facts.append(f"model's probability for {label}: {span['score']:.2f}")
    if "uncertainty" in (task.get("meta") or {}) and not untrained:
        facts.append(f"uncertainty {task['meta']['uncertainty']:.2f}")
    if (task.get("meta") or {}).get("pattern"):
        facts.append("suggested by a pattern")
    facts.append(w.version_fact(task, stats["version"]))
    ner_card(task, task.get("spans") or [], feed.labels, facts)
    w.answer_buttons(feed, who, task, reject=True, can_undo=stats["you"]["can_undo"])


COLD_NOTICE = (
    "The model hasn't learnt anything yet, so it has nothing worth asking about. "
    "Mark every entity of this text (drag over the words, 1–9 pick the label), "
    "then accept: it learns from these until it has seen each label a few times."
)
UNTRAINED_TEACH = (
    "The model hasn't learnt anything yet: this suggestion is a guess. Answer it "
    "all the same; it learns after the first batch. (Started with a patterns file, "
    "ner.teach asks about its matches first.)"
)
UNTRAINED_CORRECT = (
    "The model hasn't learnt anything yet, so it suggests nothing but the matches "
    "of a patterns file, if one was given: mark or correct the entities yourself. "
    "It suggests them after its first update."
)


def _undo_row(feed: Feed, who: str, stats: dict) -> None:
    _, right = st.columns([3, 1])
    with right:
        w.undo_button(feed, who, can_undo=stats["you"]["can_undo"])


def _answer_editor(feed: Feed, who: str, eg: dict) -> None:
    """Store the editor's answer (a callback: the page then shows the next task)."""
    try:
        w.answer(feed, who, eg, eg["answer"])
    except ValueError as e:  # the feed's message: spans that don't fit the text
        st.session_state["editor_error"] = str(e)


def edit_entities(
    feed: Feed,
    who: str,
    task: dict,
    stats: dict,
    *,
    facts: list[str],
    notice: str = "",
    answers: tuple[str, ...] = ("accept", "ignore"),
) -> None:
    """The span editor over ``task`` (its spans pre-filled), then Undo."""
    error = st.session_state.pop("editor_error", None)
    if error:
        w.alert(error, "error")
    tokens = task.get("tokens") or []
    # An untrained model's uncertainty says nothing: not shown.
    scored = any("entropy" in t for t in tokens) and not (task.get("meta") or {}).get(
        "untrained"
    )
    if scored:
        ranked = sorted(
            (t for t in tokens if t.get("entropy", 0.0) > 0.01 and t["text"].strip()),
            key=lambda t: -t["entropy"],
        )[:UNCERTAIN_SHOWN]
        if ranked:
            st.html(
                '<p class="sal-hint">Most uncertain tokens: '
                + ", ".join(
                    f"<b>{esc(t['text'])}</b> ({t['entropy']:.2f})" for t in ranked
                )
                + "</p>"
            )
    span_editor(
        task,
        feed.labels,
        spans=task.get("spans") or [],
        answers=answers,
        facts=" · ".join(facts),
        notice=notice,
        on_answer=lambda eg: _answer_editor(feed, who, eg),
    )
    if scored:
        with st.expander("Where the model is unsure", expanded=False):
            st.html(shading_html(tokens))
    _undo_row(feed, who, stats)


def render_ner_manual(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """ner.correct / ner.manual: edit the spans in the browser (the span
    editor), then accept them as the text's complete analysis."""
    meta = task.get("meta") or {}
    spans = task.get("spans") or []
    facts = []
    if spans:
        facts.append(f"{len(spans)} pre-filled")
    if "uncertainty" in meta and not meta.get("untrained"):
        facts.append(f"uncertainty {meta['uncertainty']:.2f}")
    if feed.view_id != REVIEW_VIEW:  # a review queue has no model that chose it
        facts.append(w.version_fact(task, stats["version"]))
    notice = ""
    if meta.get("cold_start"):
        notice = COLD_NOTICE
    elif meta.get("untrained"):  # ner.correct before the model's first update
        notice = UNTRAINED_CORRECT
    edit_entities(feed, who, task, stats, facts=facts, notice=notice)
