"""The first screen: what this session is (dataset, labels, the task, the keys),
and who is labelling (``?session=NAME``, with a token on a restricted server)."""

from __future__ import annotations

import streamlit as st
from spacy_al.app.views.widgets import alert, esc, header

from spacy_al.serve.feed import Feed, check_annotator

# The task of each view, in one line.
TASKS = {
    "classification": "Is the label shown above the text right? Accept it, reject it "
    "(or pick the right label at once), or ignore the text.",
    "choice": "Choose the label of each text.",
    "choice_multi": "Choose every label that applies to each text, then accept.",
    "ner": "Are the highlighted words an entity of the label shown? Accept or reject.",
    "ner_manual": "Mark every entity in the text (select its words, pick the label, "
    "add the span), then accept the text.",
    "review": "The annotators disagree on these texts: choose the right answer; "
    "yours is stored as the final one.",
}


def task_line(feed: Feed) -> str:
    if feed.view_id == "choice" and not feed.exclusive:
        return TASKS["choice_multi"]
    return TASKS.get(feed.view_id, "")


def keys(feed: Feed) -> list[tuple[str, str]]:
    """(key, what it does) for this view."""
    ner_manual = feed.view_id == "ner_manual"
    found = []
    if feed.view_id in ("classification", "ner", "ner_manual") or not feed.exclusive:
        found.append(("A", "accept"))
    elif feed.preselect:  # an exclusive choice answers by its label keys, or so
        found.append(("A", "accept the model's choice"))
    elif feed.view_id == "review":
        found.append(("A", "accept the majority's choice"))
    if feed.view_id in ("classification", "ner"):
        found.append(("X", "reject"))
    found += [
        ("Space", "ignore (skip this text)"),
        ("Backspace", "undo your last answer"),
    ]
    n = min(len(feed.labels), 9)
    if feed.view_id in ("classification", "choice", "review") and n:
        what = (
            "reject and give the right label"
            if feed.view_id == "classification"
            else "choose the label"
        )
        found.append((f"1–{n}" if n > 1 else "1", what))
    if ner_manual:
        found.append(("Enter", "add the selected words as a span"))
    elif feed.view_id == "classification" and not feed.exclusive:
        found.append(("Enter", "reject and correct with the chosen labels"))
    return found


def welcome(feed: Feed) -> None:
    """The session explained: dataset, task, labels, how the model learns, the keys."""
    rows = "".join(
        f"<tr><td><kbd>{esc(k)}</kbd></td><td>{esc(what)}</td></tr>"
        for k, what in keys(feed)
    )
    labels = "".join(f'<span class="sal-tag">{esc(x)}</span>' for x in feed.labels)
    learns = (
        ""
        if feed.view_id == "review"
        else f"<p>The model learns after every {feed.stats()['batch_size']} answers and "
        "picks the texts it is least sure of next.</p>"
    )
    st.html(
        f'<div class="sal-welcome"><h3>Labelling {esc(feed.dataset or "")}</h3>'
        f"<p>{esc(task_line(feed))}</p>"
        f"<p>Labels: {labels}</p>{learns}"
        f"<table>{rows}</table></div>"
    )


def _start_session() -> None:
    name = st.session_state.get("name_input", "").strip()
    if name:
        st.query_params["session"] = name
    token = st.session_state.get("token_input", "")
    if token:
        st.session_state["token"] = token


def annotator(feed: Feed) -> str:
    """The annotator of this session (``?session=NAME``), asked for if missing,
    under an explanation of the session (not before a restricted server's token)."""
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
        welcome(feed)
    if problem:
        alert(problem, "error")
    with st.form("who"):
        st.text_input("Your name", value=name, key="name_input", max_chars=64)
        if feed.restricted:
            st.text_input("Access token", type="password", key="token_input")
        st.form_submit_button("Start labelling", on_click=_start_session)
    st.stop()
