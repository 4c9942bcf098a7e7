"""textcat.teach: is the suggested label right? Accept, reject (and correct), ignore."""

from __future__ import annotations

import streamlit as st
from spacy_al.app.views import widgets as w

from spacy_al.serve.feed import Feed


def render_classification(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """The card asks about one label (``task["label"]``); the number keys reject it
    and give the right label in the same answer."""
    w.card(task, label=task.get("label"), version=stats["version"])
    w.answer_buttons(feed, who, task, reject=True, can_undo=stats["you"]["can_undo"])
    if feed.exclusive:
        st.html(
            '<p class="sal-hint">Wrong label? Pick the right one to reject and '
            "correct in one step:</p>"
        )
        w.label_buttons(
            feed.labels,
            on_click=w.correct,
            args=lambda label: (feed, who, task, [label]),
        )
        return
    key = w.selection(task, [])
    st.html(
        '<p class="sal-hint">Wrong label? Choose the right ones, then reject and '
        "correct (Enter):</p>"
    )
    w.label_buttons(
        feed.labels,
        on_click=w.toggle,
        args=lambda label: (key, label),
        chosen=st.session_state[key],
    )
    st.button(
        "Reject and correct",
        key="correct",
        shortcut="Enter",
        on_click=w.correct,
        args=(feed, who, task, None, key),
    )
