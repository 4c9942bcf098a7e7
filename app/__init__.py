"""The labelling app's views (installed as ``spacy_al.app.views``).

``app.py`` at the top of the repository is the Streamlit script: it obtains the
shared feed and calls these modules, one per view, plus the sidebar and the
first screen. They hold widgets and callbacks only: what to ask, what to store
and when to learn is the feed's business (:mod:`spacy_al.serve.feed`).

Safety: texts, labels and annotator names are user data. They are never passed
to ``st.markdown`` or to any element that renders Markdown (button labels,
captions, toasts) unescaped: they go through :func:`widgets.esc` into
``st.html`` (which Streamlit also sanitizes), or into ``st.dataframe``; button
labels get :func:`widgets.md_escape`.
"""
