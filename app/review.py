"""review: an example the annotators disagree on, with each one's answer; the
reviewer's choice (or corrected entities) is stored as gold."""

from __future__ import annotations

import streamlit as st
from spacy_al.app.views.choice import choose_labels
from spacy_al.app.views.ner import entities_html, render_ner_manual
from spacy_al.app.views.widgets import esc

from spacy_al.serve.feed import Feed


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
