"""The labelling app: the Streamlit script over the shared feed, nothing else.

Started by ``python -m spacy_al RECIPE ...`` (spacy_al/serve/launcher.py). All
sessions of the server share one :class:`spacy_al.serve.feed.Feed`: it decides
what each annotator sees, commits their answers and trains the model in the
background. This script obtains the feed (:func:`load_feed`), asks who is
labelling and renders the task with the view the recipe named; the views, the
sidebar and the first screen are the modules of ``app/`` (installed as
``spacy_al.app.views``), widgets and callbacks only.

Each view is one render function, registered in ``VIEWS`` under the recipe's
``view_id``; a new view is a new module and one line in ``VIEWS``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import streamlit as st
from spacy_al.app.views.choice import render_choice
from spacy_al.app.views.classification import render_classification
from spacy_al.app.views.ner import render_ner, render_ner_manual
from spacy_al.app.views.review import render_review
from spacy_al.app.views.sidebar import sidebar
from spacy_al.app.views.welcome import annotator
from spacy_al.app.views.widgets import ANSWERED_AT, FLASH, alert, header

from spacy_al.errors import Errors
from spacy_al.serve import launcher as server
from spacy_al.serve.feed import Feed, ServingStopped

WAIT_SECONDS = 3.0  # how long a page waits for the selector when nothing is queued

VIEWS: dict[str, Callable[[Feed, str, dict, dict], None]] = {
    "classification": render_classification,
    "choice": render_choice,
    "ner": render_ner,
    "ner_manual": render_ner_manual,
    "review": render_review,
}


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
    # The CLI built the recipe's feed in this process before the server started.
    feed = server.serving_feed()
    if feed is not None:
        return feed
    # Run without the CLI (streamlit run app.py, AppTest): build it from the
    # recipe named in the environment, once per process.
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


# --- the page ------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="spacy_al", layout="centered")
    # Set by the callback that stored an answer in this run (widgets.answer).
    answered_at = st.session_state.pop(ANSWERED_AT, None)
    feed = load_feed()
    who = annotator(feed)
    header(feed, who)
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(FLASH[flash])
    stopped = st.session_state.pop("stopped", None)
    try:
        if stopped:
            raise ServingStopped(stopped)
        task = feed.next_task(who, timeout=WAIT_SECONDS)
    except ServingStopped as e:  # the dataset was dropped, or the source is malformed
        alert(f"This labelling server has stopped serving: {e}", "error")
        st.stop()
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
    n = stats["you"]["answers"]
    # How long the server took from the answer's callback to here (the next
    # text drawn): bench ui reads it to split click-to-next into server and
    # browser time.
    server = (
        f' data-server-ms="{(time.perf_counter() - answered_at) * 1000:.1f}"'
        if answered_at is not None
        else ""
    )
    st.html(
        f'<div class="sal-you"{server}>You answered <span class="sal-count">{n}</span> '
        + ("example." if n == 1 else "examples.")
        + "</div>"
    )


main()
