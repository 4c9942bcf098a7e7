"""The Streamlit app, driven by AppTest: every view, undo, several sessions at once."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest
import srsly
import streamlit as st
from streamlit.testing.v1 import AppTest

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve import launcher as server
from spacy_al.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SUPPORT = corpus_path("support.jsonl")
EVAL = corpus_path("support_eval.jsonl")
LABEL_LIST = LABELS.split(",")
DATASET = "app_test"
WAIT = 30.0


@pytest.fixture(autouse=True)
def fresh_feed():
    """Each test gets its own shared feed (and its threads are stopped after)."""
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def serve(monkeypatch, db_url):
    """Configure the app as ``python -m spacy_al RECIPE ...`` would."""

    def configure(
        recipe: str = "textcat.teach",
        tokens: dict | None = None,
        batch_size: int | None = 4,
        **kwargs,
    ) -> str:
        args = {"dataset": DATASET, "source": SUPPORT, "label": LABELS, "db": db_url}
        if batch_size is not None:  # textcat.manual has no --batch-size
            args["batch_size"] = batch_size
        args.update(kwargs)
        env = server.app_env(recipe, args, tokens=tokens, base={})
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return db_url

    return configure


def session(name: str | None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=WAIT)
    if name is not None:
        at.query_params["session"] = name
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def shown_text(at: AppTest) -> str:
    """The example's text, as the card shows it (HTML-escaped)."""
    for element in at.get("html"):
        body = element.proto.body
        if 'class="sal-text"' in body:
            return body.split('class="sal-text">', 1)[1].split("</div>", 1)[0]
    raise AssertionError("no example shown")


def html_bodies(at: AppTest) -> str:
    return "\n".join(element.proto.body for element in at.get("html"))


def answers(db_url: str) -> list[dict]:
    with Store(db_url) as store:
        return store.get_answers(DATASET) if store.has_dataset(DATASET) else []


def model_version(at: AppTest) -> int:
    return int(at.metric[0].value)


def wait_for_version(at: AppTest, version: int) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if model_version(at.run()) >= version:
            return True
        time.sleep(0.1)
    return False


def test_app_asks_for_a_name_without_session(serve):
    serve()
    at = session(None)
    assert "accept" not in [b.key for b in at.button]
    assert [t.label for t in at.text_input] == ["Your name"]
    at.text_input(key="name_input").input("alice")
    at.button[0].click().run()
    assert at.query_params["session"] == "alice"
    assert at.button(key="accept").label == "Accept"


def test_app_first_screen_explains_the_session(serve):
    serve()
    body = html_bodies(session(None))
    assert f"Labelling {DATASET}" in body
    assert "Is the label shown above the text right?" in body
    assert all(f'<span class="sal-tag">{label}</span>' in body for label in LABEL_LIST)
    assert "learns after every 4 answers" in body
    for key, what in [("A", "accept"), ("X", "reject"), ("Space", "ignore")]:
        assert f"<kbd>{key}</kbd></td><td>{what}" in body
    assert "<kbd>1–4</kbd></td><td>reject and give the right label" in body


def test_app_first_screen_of_a_choice_names_only_its_keys(serve):
    serve("textcat.manual", batch_size=None)
    body = html_bodies(session(None))
    assert "Choose the label of each text." in body
    assert "<kbd>A</kbd>" not in body and "<kbd>X</kbd>" not in body
    assert "<kbd>1–4</kbd></td><td>choose the label" in body


@pytest.mark.parametrize(
    "key,value", [("accept", "accept"), ("reject", "reject"), ("ignore", "ignore")]
)
def test_app_classification_answer_moves_on(serve, key, value):
    db_url = serve()
    at = session("alice")
    first = shown_text(at)
    # No model has learnt anything yet: no score of one is shown.
    assert "model v0" in html_bodies(at) and "no model trained yet" in html_bodies(at)
    assert "score for" not in html_bodies(at)
    assert "data-server-ms" not in html_bodies(at)  # no answer in this run
    at.button(key=key).click().run()
    assert shown_text(at) != first
    # The server's part of click-to-next (bench ui reads it): a time in ms.
    [server_ms] = re.findall(r'data-server-ms="([0-9.]+)"', html_bodies(at))
    assert 0 < float(server_ms) < 60_000
    stored = answers(db_url)
    assert [(eg["answer"], eg["_annotator_id"]) for eg in stored] == [(value, "alice")]
    assert stored[0]["label"] in LABEL_LIST and "accept" not in stored[0]
    assert '<span class="sal-count">1</span>' in html_bodies(at)


def test_app_says_so_when_its_dataset_is_dropped_under_it(serve):
    db_url = serve()
    at = session("alice")
    shown_text(at)
    with Store(db_url) as store:
        store.drop_dataset(DATASET, force=True)  # a careless `drop --force`
    at.button(key="accept").click().run()
    assert not answers(db_url)  # nothing stored, and the dataset isn't made again
    with Store(db_url) as store:
        assert not store.has_dataset(DATASET)
    errors = " ".join(element.proto.body for element in at.get("alert")) + " ".join(
        e.value for e in at.error
    )
    assert "stopped serving" in html_bodies(at) + errors
    assert DATASET in html_bodies(at) + errors


def test_app_reject_and_correct_in_one_step(serve):
    db_url = serve()
    at = session("alice")
    suggested = html_bodies(at).split('class="sal-label">', 1)[1].split("<")[0]
    other = next(i for i, label in enumerate(LABEL_LIST) if label != suggested)
    at.button(key=f"label-{other}").click().run()
    [eg] = answers(db_url)
    assert (eg["answer"], eg["label"], eg["accept"]) == (
        "reject",
        suggested,
        [LABEL_LIST[other]],
    )


def test_app_undo_shows_the_example_again(serve):
    db_url = serve()
    at = session("alice")
    first = shown_text(at)
    at.button(key="accept").click().run()
    assert not at.button(key="undo").disabled
    at.button(key="undo").click().run()
    assert shown_text(at) == first
    assert answers(db_url) == []
    assert [t.proto.body for t in at.toast] == [
        "Took back your last answer: here it is again."
    ]
    assert at.button(key="undo").disabled


def test_app_undo_goes_back_past_learnt_batches(serve):
    """Ten answers, two of them batches the model learnt: each undo takes one back
    (newest first), serves its example again and removes it from the store."""
    db_url = serve()
    at = session("alice")
    shown = []
    for _ in range(10):
        shown.append(shown_text(at))
        at.button(key="reject").click().run()
    assert wait_for_version(at, 2)
    for i in range(10):
        assert not at.button(key="undo").disabled
        at.button(key="undo").click().run()
        assert shown_text(at) == shown[-1 - i]
        assert len(answers(db_url)) == 9 - i
    assert at.button(key="undo").disabled
    # The example undone last is answered again, and stored once.
    at.button(key="accept").click().run()
    [eg] = answers(db_url)
    assert eg["text"] == html.unescape(shown[0]) and eg["answer"] == "accept"


def test_app_choice_view_preselects_the_prediction(serve):
    db_url = serve("textcat.correct")
    at = session("alice")
    chosen = [
        b.label
        for b in at.button
        if b.key.startswith("label-") and b.proto.type == "primary"
    ]
    assert len(chosen) == 1 and "no model trained yet" in html_bodies(at)
    assert "best guess" not in html_bodies(at)
    at.button(key="accept").click().run()
    at.button(key=f"label-{LABEL_LIST.index('BILLING')}").click().run()
    stored = answers(db_url)
    assert [(eg["answer"], eg["accept"]) for eg in stored] == [
        ("accept", chosen),
        ("accept", ["BILLING"]),
    ]
    # A choice asks about no one label: the answer's labels are in "accept" only.
    assert all("label" not in eg and "score" not in eg["meta"] for eg in stored)


def test_app_choice_view_multilabel_toggles(serve):
    db_url = serve("textcat.manual", multilabel=True, batch_size=None)
    at = session("alice")
    assert all(
        b.proto.type == "secondary" for b in at.button if b.key.startswith("label-")
    )
    at.button(key="label-0").click().run()
    at.button(key="label-2").click().run()
    at.button(key="label-0").click().run()
    at.button(key="label-3").click().run()
    at.button(key="accept").click().run()
    [eg] = answers(db_url)
    assert eg["answer"] == "accept" and eg["accept"] == [LABEL_LIST[2], LABEL_LIST[3]]
    assert all(
        b.proto.type == "secondary" for b in at.button if b.key.startswith("label-")
    )


def test_app_two_sessions_share_progress_and_model(serve):
    db_url = serve()
    alice, bob = session("alice"), session("bob")
    assert shown_text(alice) != shown_text(bob)
    for _ in range(2):
        alice.button(key="accept").click().run()
        bob.button(key="reject").click().run()
    assert wait_for_version(alice, 1)
    assert "4 / 322 examples answered" in bob.run().get("progress")[0].proto.text
    counts = bob.dataframe[0].value
    assert dict(zip(counts["annotator"], counts["answers"], strict=True)) == {
        "alice": 2,
        "bob": 2,
    }
    assert len({eg["_input_hash"] for eg in answers(db_url)}) == 4


def test_app_three_sessions_never_get_the_same_example(serve):
    db_url = serve()
    people = {name: session(name) for name in ("alice", "bob", "carol")}
    seen: list[str] = []
    for _ in range(5):
        for at in people.values():
            seen.append(shown_text(at))
            at.button(key="ignore").click().run()
    assert len(seen) == len(set(seen)) == 15
    stored = answers(db_url)
    assert len({eg["_input_hash"] for eg in stored}) == 15
    assert {eg["_annotator_id"] for eg in stored} == set(people)


def test_app_model_version_moves_after_a_batch(serve):
    serve(eval_path=EVAL)
    at = session("alice")
    assert model_version(at) == 0
    for _ in range(4):
        at.button(key="reject").click().run()
    assert wait_for_version(at, 1)
    assert at.get("vega_lite_chart"), "the learning curve is drawn"


def test_app_renders_user_text_and_labels_inert(serve, tmp_path):
    payload = (
        "**bold** <script>window.pwned=1</script> <img src=x onerror=alert(1)> "
        ":red[red] [link](http://example.com)"
    )
    source = tmp_path / "evil.jsonl"
    srsly.write_jsonl(source, [{"text": payload}, {"text": payload + " again"}])
    serve(source=source, label="*A*,:red[B]")
    at = session("<b>mallory</b>")
    assert shown_text(at).startswith(
        "**bold** &lt;script&gt;window.pwned=1&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;"
    )
    bodies = html_bodies(at)
    assert (
        "<script>window" not in bodies
        and "<img" not in bodies
        and "<b>mallory" not in bodies
    )
    assert "annotator: &lt;b&gt;mallory&lt;/b&gt;" in bodies
    assert all(payload not in m.value for m in at.markdown)
    assert [b.label for b in at.button if b.key.startswith("label-")] == [
        r"\*A\*",
        r"\:red\[B\]",
    ]


def test_app_restricted_server_asks_for_the_token(serve):
    tokens = {"alice": "s3cret-token"}
    serve(tokens=tokens)
    at = session("alice")
    assert [t.label for t in at.text_input] == ["Your name", "Access token"]
    wrong = session("alice", token="nope")
    assert "don&#x27;t match" in html_bodies(wrong)
    assert "accept" not in [b.key for b in wrong.button]
    right = session("alice", token="s3cret-token")
    assert right.button(key="accept").label == "Accept"


def test_app_without_recipe_explains_how_to_start(monkeypatch):
    monkeypatch.delenv(server.ENV_RECIPE, raising=False)
    at = session("alice")
    assert "E608" in html_bodies(at) and "python -m spacy_al demo" in html_bodies(at)


def test_app_shows_why_the_recipe_failed(serve, tmp_path):
    serve(source=tmp_path / "missing.jsonl")
    at = session("alice")
    assert "Can&#x27;t start textcat.teach: [E001]" in html_bodies(at)
    assert not at.exception


def test_app_env_round_trip_restores_paths(tmp_path):
    env = server.app_env(
        "textcat.teach",
        {"source": tmp_path / "x.jsonl", "port": 9},
        tokens={"a": "t"},
        base={},
    )
    recipe, kwargs, tokens, files = server.read_app_env(env)
    assert (recipe, tokens, files) == ("textcat.teach", {"a": "t"}, [])
    assert json.loads(env[server.ENV_ARGS]) == {
        "source": str(tmp_path / "x.jsonl"),
        "port": 9,
    }
    from spacy_al.recipes.textcat import teach

    restored = server.restore_paths(teach, kwargs)
    assert restored == {"source": tmp_path / "x.jsonl", "port": 9}


def test_app_session_urls_hold_each_token():
    urls = server.session_urls("0.0.0.0", 8600, tokens={"alice": "t1", "bob": "t/2"})
    assert urls == {
        "alice": "http://localhost:8600/?session=alice&token=t1",
        "bob": "http://localhost:8600/?session=bob&token=t%2F2",
    }
    assert server.session_urls("127.0.0.1", 8501) == {"": "http://127.0.0.1:8501/"}


def test_app_is_found_in_the_checkout():
    assert server.app_path().read_text().startswith('"""The labelling app')


# --- NER ---------------------------------------------------------------------------

NER_LABELS = "PERSON,ORG"


@pytest.fixture
def ner_source(tmp_path) -> Path:
    names = ("Alice Smith", "Bob Jones", "Carol White", "Dan Brown")
    orgs = ("Acme", "Globex", "Initech", "Umbrella")
    path = tmp_path / "ner.jsonl"
    srsly.write_jsonl(
        path,
        [
            {"text": f"{names[i % 4]} joined {orgs[(i // 4) % 4]} in week {i}."}
            for i in range(12)
        ],
    )
    return path


@pytest.fixture
def ner_patterns(tmp_path) -> Path:
    """Patterns for two of ner_source's labels (they end ner.teach's cold start)."""
    path = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(
        path,
        [
            {"label": "PERSON", "pattern": "Alice Smith"},
            {"label": "ORG", "pattern": "Acme"},
        ],
    )
    return path


def test_app_ner_teach_cold_start_asks_for_whole_analyses(serve, ner_source):
    # No patterns and an untrained model: mark the entities (no junk suggestions).
    db_url = serve("ner.teach", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    sent = editor_sent(at)
    assert sent["spans"] == [] and set(sent["labels"]) == set(NER_LABELS.split(","))
    assert "<mark" not in html_bodies(at)
    assert "served in source order" in sent["facts"]  # not chosen by the model
    text = sent["text"]
    name = text.split(" joined")[0]
    answer_in_editor(at, "accept", [{"start": 0, "end": len(name), "label": "PERSON"}])
    [stored] = answers(db_url)
    assert stored["_view_id"] == "ner_manual" and stored["answer"] == "accept"
    assert [(s["start"], s["end"], s["label"]) for s in stored["spans"]] == [
        (0, len(name), "PERSON")
    ]


@pytest.mark.parametrize("key", ["accept", "reject"])
def test_app_ner_teach_stores_the_answer_with_its_span(
    serve, ner_source, ner_patterns, key
):
    db_url = serve(
        "ner.teach",
        source=str(ner_source),
        label=NER_LABELS,
        patterns=str(ner_patterns),
    )
    at = session("alice")
    body = html_bodies(at)
    assert 'class="entities"' in body
    # before the first update: no model figures, and the card says why
    assert "this suggestion is a guess" in body and "probability" not in body
    assert body.count("<mark") == 1  # the one suggested entity
    at.button(key=key).click().run()
    [stored] = answers(db_url)
    assert stored["answer"] == key and stored["_view_id"] == "ner"
    [span] = stored["spans"]
    assert span["label"] in NER_LABELS.split(",")
    assert stored["text"][span["start"] : span["end"]].strip()
    assert f"{span['label']}</span>" in body


def editor_sent(at: AppTest) -> dict:
    """What the span editor component was given (AppTest can't run its JS)."""
    [element] = [
        e
        for e in at.get("bidi_component")
        if e.proto.component_name == "spacy_al.span_editor"
    ]
    return json.loads(element.proto.json)


def answer_in_editor(at: AppTest, answer: str, spans: list[dict]) -> AppTest:
    """Send the span editor's answer as the browser does (a trigger value of the
    component: AppTest can't run its JS), then rerun: its callback stores it."""
    from streamlit.components.v2.bidi_component.main import _make_trigger_id
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    [element] = [
        e
        for e in at.get("bidi_component")
        if e.proto.component_name == "spacy_al.span_editor"
    ]
    payload = {"task": editor_sent(at)["task"], "answer": answer, "spans": spans}
    states = at._tree.get_widget_states

    def with_trigger():
        ws = states()
        trigger = WidgetState(id=_make_trigger_id(element.proto.id, "events"))
        trigger.json_trigger_value = json.dumps([{"event": "answer", "value": payload}])
        ws.widgets.append(trigger)
        return ws

    at._tree.get_widget_states = with_trigger  # once: a run makes a new tree
    return at.run()


def test_app_ner_manual_sends_the_text_and_labels_to_the_editor(serve, ner_source):
    serve("ner.manual", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    sent = editor_sent(at)
    text = "Alice Smith joined Acme in week 0."  # ner.manual serves in source order
    assert sent["text"] == text and sent["spans"] == []
    assert sent["labels"] == sorted(NER_LABELS.split(","))
    assert sent["answers"] == ["accept", "ignore"]
    # No model chose it: the card says how it was chosen.
    assert "served in source order" in sent["facts"]
    assert "chosen by model" not in sent["facts"]
    assert [text[a:b] for a, b in sent["tokens"]][:4] == [
        "Alice",
        "Smith",
        "joined",
        "Acme",
    ]


def test_app_ner_editor_answer_becomes_the_stored_answer():
    from spacy_al.app.views.span_editor import answer_from_editor, editor_data

    text = "Hi 😀 Paris and Rome"
    tokens = [
        {"text": w, "start": text.index(w), "end": text.index(w) + len(w)}
        for w in ("Hi", "😀", "Paris", "and", "Rome")
    ]
    task = {"text": text, "tokens": tokens, "_task_key": 2**63 - 25, "spans": []}
    sent = editor_data(task, ["GPE"], spans=[{"start": 15, "end": 19, "label": "GPE"}])
    assert sent["task"] == str(2**63 - 25)  # a string: JS numbers lose its digits
    assert sent["tokens"][2] == [6, 11]  # UTF-16: the emoji is two code units
    assert sent["spans"] == [{"start": 16, "end": 20, "label": "GPE"}]
    eg = answer_from_editor(
        task,
        {
            "task": sent["task"],
            "answer": "accept",
            "spans": [sent["spans"][0], {"start": 6, "end": 11, "label": "GPE"}],
        },
    )
    assert eg["answer"] == "accept"
    assert [
        (text[s["start"] : s["end"]], s["token_start"], s["token_end"])
        for s in eg["spans"]
    ] == [
        ("Paris", 2, 2),
        ("Rome", 4, 4),
    ]
    for payload in (
        {"task": "1", "answer": "accept", "spans": []},  # another task's answer
        {"task": sent["task"], "answer": "maybe", "spans": []},
        {"task": sent["task"], "answer": "accept", "spans": [{"start": 6}]},
        None,
    ):
        with pytest.raises(ValueError, match="E945"):
            answer_from_editor(task, payload)


def test_app_ner_manual_answer_from_the_editor_is_stored_and_moves_on(
    serve, ner_source
):
    db_url = serve("ner.manual", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    first = editor_sent(at)
    text = first["text"]
    spans = [
        {"start": 0, "end": 11, "label": "PERSON"},
        {"start": 19, "end": 23, "label": "ORG"},
    ]
    at = answer_in_editor(at, "accept", spans)
    [stored] = answers(db_url)
    assert stored["text"] == text and stored["answer"] == "accept"
    assert stored["_view_id"] == "ner_manual"
    assert [
        (text[s["start"] : s["end"]], s["label"], s["token_start"], s["token_end"])
        for s in stored["spans"]
    ] == [("Alice Smith", "PERSON", 0, 1), ("Acme", "ORG", 3, 3)]
    after = editor_sent(at)  # the next text, in the same run, with nothing marked
    assert after["task"] != first["task"] and after["spans"] == []


def test_app_ner_manual_refuses_spans_off_the_tokens(serve, ner_source):
    db_url = serve("ner.manual", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    before = editor_sent(at)
    at = answer_in_editor(at, "accept", [{"start": 1, "end": 4, "label": "PERSON"}])
    assert answers(db_url) == []
    assert "E615" in html_bodies(at) or "align" in html_bodies(at)
    # The same text again, as a new attempt: the browser's editor starts it
    # afresh instead of showing "Saving…" with its buttons disabled.
    after = editor_sent(at)
    assert after["task"] == before["task"] and after["attempt"] != before["attempt"]


def test_app_ner_manual_undo_serves_the_text_again(serve, ner_source):
    db_url = serve("ner.manual", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    first = editor_sent(at)["task"]
    at = answer_in_editor(at, "ignore", [])
    assert editor_sent(at)["task"] != first and len(answers(db_url)) == 1
    at.button(key="undo").click().run()
    assert editor_sent(at)["task"] == first and answers(db_url) == []


def test_app_ner_correct_prefills_nothing_while_the_model_is_untrained(
    serve, ner_source, tmp_path
):
    serve("ner.correct", source=str(ner_source), label=NER_LABELS)
    at = session("alice")
    sent = editor_sent(at)
    assert sent["spans"] == [] and "hasn't learnt anything yet" in sent["notice"]


def test_app_ner_correct_prefills_pattern_matches(serve, ner_source, tmp_path):
    patterns = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(
        patterns,
        [
            {"label": "PERSON", "pattern": "Alice Smith"},
            {"label": "ORG", "pattern": "Acme"},
        ],
    )
    serve(
        "ner.correct",
        source=str(ner_source),
        label=NER_LABELS,
        patterns=str(patterns),
        strategy="sequential",
    )
    at = session("alice")
    sent = editor_sent(at)
    assert [
        (sent["text"][s["start"] : s["end"]], s["label"]) for s in sent["spans"]
    ] == [
        ("Alice Smith", "PERSON"),
        ("Acme", "ORG"),
    ]


def test_app_ner_labels_render_as_text(serve, ner_source):
    labels = "<img src=x onerror=alert(1)>,<i>LOC</i>"
    patterns = ner_source.with_name("html_patterns.jsonl")
    srsly.write_jsonl(patterns, [{"label": "<i>LOC</i>", "pattern": "Acme"}])
    serve("ner.teach", source=str(ner_source), label=labels, patterns=str(patterns))
    at = session("alice")
    body = html_bodies(at)
    assert "<img" not in body and "<i>" not in body
    assert (
        "&lt;i&gt;LOC&lt;/i&gt;" in body or "&lt;img src=x onerror=alert(1)&gt;" in body
    )


# --- what the card and the sidebar say ------------------------------------------------


def _card(task: dict, label: str | None, version: int) -> None:
    from spacy_al.app.views.widgets import card

    card(task, label=label, version=version)


def card_body(task: dict, *, label: str | None, version: int) -> str:
    at = AppTest.from_function(_card, args=(task, label, version)).run()
    return html_bodies(at)


def test_app_card_shows_no_model_figure_before_the_first_update():
    task = {"text": "t", "label": "A", "meta": {"score": 0.5, "uncertainty": 1.0}}
    body = card_body({**task, "_model_version": 0}, label="A", version=1)
    assert "no model trained yet" in body and "0.50" not in body
    body = card_body({**task, "_model_version": 1}, label="A", version=1)
    assert "model&#x27;s score for A: 0.50" in body and "uncertainty 1.00" in body


def test_app_card_says_how_a_text_was_chosen():
    from spacy_al.app.views.widgets import version_fact

    task = {"text": "t", "_model_version": 3}
    assert version_fact(task, 5) == "chosen by model v3"
    for strategy, fact in [
        ("sequential", "served in source order"),
        ("random", "picked at random"),
    ]:
        assert version_fact({**task, "meta": {"strategy": strategy}}, 5) == fact
    cold = {**task, "meta": {"strategy": "any_entity", "cold_start": True}}
    assert version_fact(cold, 0) == "served in source order"
    matched = {**task, "meta": {"strategy": "margin", "pattern": True}}
    assert version_fact(matched, 5) == "matches your patterns"


def test_app_card_of_a_choice_shows_every_label_score():
    scores = {"A": 0.12, "B": 0.91, "C": 0.55}
    task = {"text": "t", "meta": {"scores": scores}, "_model_version": 3}
    body = card_body(task, label=None, version=3)
    assert "best guess" not in body
    shown = body.split("model's scores: ", 1)[1]
    assert [part.split("</b>")[0] for part in shown.split("<b>")[1:]] == ["B", "C", "A"]
    assert "0.91" in shown and "0.55" in shown and "0.12" in shown


def test_app_sidebar_counts_never_exceed_their_total():
    from spacy_al.app.views.sidebar import next_update

    team = {"pending": 12, "batch_size": 10, "training": False, "overlap": 2}
    alone = {**team, "overlap": 1}
    for stats in (team, alone, {**alone, "pending": 3}, {**alone, "training": True}):
        text = next_update(stats)
        assert "12 / 10" not in text and "12 of 10" not in text
    assert next_update({**alone, "pending": 3}) == (
        "Next update after 10 answers: 3 of 10 so far."
    )


@pytest.mark.parametrize(
    "stopping,expected",
    [
        (
            {"should_stop": True, "mean_kappa": 0.995, "stopped_at": None},
            "Predictions have stopped changing: consider stopping (0.995 of 0.99).",
        ),
        (
            {"should_stop": False, "mean_kappa": 0.975, "stopped_at": None},
            "Predictions are still changing: 0.975 of 0.99.",
        ),
        (
            {"should_stop": False, "mean_kappa": None, "stopped_at": None},
            "Too early to say when to stop",
        ),
    ],
)
def test_app_stopping_signal_reads_as_a_sentence(stopping, expected):
    from spacy_al.app.views.sidebar import stopping_sentence

    found = {"window": 3, "threshold": 0.99, "stop_set_size": 300, "points": []}
    text, _ = stopping_sentence({**found, **stopping})
    assert text.startswith(expected)
