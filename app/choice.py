"""textcat.correct and textcat.manual: choose the label(s) of the text."""

from __future__ import annotations

import streamlit as st
from spacy_al.app.views import widgets as w

from spacy_al.serve.feed import Feed


def render_choice(feed: Feed, who: str, task: dict, stats: dict) -> None:
    """Choose the label(s) of the text; the model's prediction is pre-selected
    when the recipe asks for it (textcat.correct)."""
    w.card(task, label=None, version=stats["version"])
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
            + (f", or accept {w.esc(chosen_by)}'s choice" if preselected else "")
            + ":</p>"
        )
        w.label_buttons(
            feed.labels,
            on_click=w.answer,
            args=lambda label: (feed, who, task, "accept", [label]),
            chosen=preselected,
        )
        if preselected:
            w.answer_buttons(
                feed, who, task, accept=preselected, reject=False, can_undo=can_undo
            )
        else:
            w.ignore_undo(feed, who, task, can_undo=can_undo)
        return
    key = w.selection(task, preselected)
    st.html(
        '<p class="sal-hint">Choose every label that applies (number keys), '
        "then accept:</p>"
    )
    w.label_buttons(
        feed.labels,
        on_click=w.toggle,
        args=lambda label: (key, label),
        chosen=st.session_state[key],
    )
    w.answer_buttons(feed, who, task, reject=False, can_undo=can_undo, chosen_key=key)
