"""The review recipe: conflicts served with every annotator's answer, reviews as gold."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import spacy
import streamlit as st
from spacy.tokens import DocBin
from spacy_al.recipes.data import data_to_spacy
from spacy_al.recipes.review import build_review
from streamlit.testing.v1 import AppTest

from spacy_al.corpus import set_hashes
from spacy_al.export import consensus_answers, load_ner_targets
from spacy_al.serve import launcher as server
from spacy_al.serve.feed import Feed
from spacy_al.store import Store
from spacy_al.team.review import review_tasks

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
LABELS = ["A&B<i>", "C", "D"]
TEXTS = [f"Text number {i} <b>bold</b>" for i in range(6)]
EVIL = "<script>alert(1)</script>"


def seed(db_url: str, choices: dict[str, list[str]], *, overlap: int = 2) -> None:
    """Dataset "team": each annotator's label for each of TEXTS, in order."""
    with Store(db_url) as store:
        store.create_dataset(
            "team",
            meta={
                "labels": LABELS,
                "exclusive": True,
                "task": "textcat",
                "overlap": overlap,
                "view_id": "choice",
            },
        )
        for who, labels in choices.items():
            answers = [
                set_hashes(
                    {"text": text, "answer": "accept", "accept": [label]}
                    | {"_view_id": "choice"}
                )
                for text, label in zip(TEXTS, labels, strict=False)
            ]
            store.add_answers("team", answers, annotator=who)


ALICE = ["C", "C", "D", "D", "C", "C"]
BOB = ["C", "D", "D", "C", "C", "C"]  # conflicts on texts 1 and 3


def test_review_serves_only_conflicts_with_each_answer(db_url) -> None:
    seed(db_url, {"alice": ALICE, "bob": BOB})
    comps = build_review("team_review", ["team"], db=db_url)
    try:
        tasks = comps["loop"].pool.tasks
        assert [t["text"] for t in tasks] == [TEXTS[1], TEXTS[3]]
        assert all(t["conflict"] and "accept" not in t for t in tasks)
        assert [(v["annotators"], v["accept"]) for v in tasks[0]["versions"]] == [
            (["alice"], ["C"]),
            (["bob"], ["D"]),
        ]
        assert comps["view_id"] == "review" and comps["labels"] == LABELS
        with Store(db_url) as store:
            assert store.dataset_meta("team_review")["review_of"] == ["team"]
    finally:
        comps["store"].close()


def test_review_all_preselects_the_majority(db_url) -> None:
    seed(db_url, {"alice": ALICE, "bob": BOB, "carol": ALICE}, overlap=3)
    comps = build_review("team_review", ["team"], db=db_url, all_examples=True)
    try:
        tasks = comps["loop"].pool.tasks
        assert len(tasks) == len(TEXTS) and not any(t["conflict"] for t in tasks)
        assert [t["accept"] for t in tasks] == [[label] for label in ALICE]
    finally:
        comps["store"].close()


def test_review_refuses_nothing_to_review_and_its_own_input(db_url) -> None:
    seed(db_url, {"alice": ALICE, "bob": ALICE})
    with pytest.raises(ValueError, match=r"\[E861\].*agree"):
        build_review("team_review", ["team"], db=db_url)
    with pytest.raises(ValueError, match=r"\[E863\].*team_review"):
        build_review("team", ["team"], db=db_url)


def test_review_answers_are_stored_as_gold_and_not_served_again(db_url) -> None:
    seed(db_url, {"alice": ALICE, "bob": BOB})
    feed = Feed.from_components(build_review("team_review", ["team"], db=db_url))
    try:
        task = feed.next_task("lead")
        with pytest.raises(ValueError, match=r"\[E862\]"):
            feed.answer("lead", {**task, "answer": "accept", "accept": ["C", "D"]})
        feed.answer("lead", {**task, "answer": "accept", "accept": ["D"]})
        with Store(db_url) as store:
            (stored,) = store.get_answers("team_review")
        assert stored["_review"] is True and stored["_view_id"] == "review"
        assert stored["accept"] == ["D"] and stored["text"] == task["text"]
    finally:
        feed.close()
    again = build_review("team_review", ["team"], db=db_url)
    try:
        assert again["loop"].pool.n_done == 1
        assert [t["text"] for t in again["loop"].select(5)] == [TEXTS[3]]
    finally:
        again["store"].close()


def test_review_export_uses_the_reviewed_answer_and_leaves_out_conflicts(
    db_url, tmp_path
) -> None:
    seed(db_url, {"alice": ALICE, "bob": BOB})
    feed = Feed.from_components(build_review("team_review", ["team"], db=db_url))
    try:
        task = feed.next_task("lead")
        assert task["text"] == TEXTS[1]
        feed.answer("lead", {**task, "answer": "accept", "accept": ["A&B<i>"]})
    finally:
        feed.close()
    out = tmp_path / "corpus"
    data_to_spacy(out, textcat="team", db=db_url, eval_split=0.25, seed=0)
    nlp = spacy.blank("en")
    cats = {
        doc.text: max(doc.cats, key=doc.cats.get)
        for name in ("train.spacy", "dev.spacy")
        for doc in DocBin().from_disk(out / name).get_docs(nlp.vocab)
    }
    assert cats[TEXTS[1]] == "A&B<i>"  # the reviewer's, not alice's or bob's
    assert TEXTS[3] not in cats  # still in conflict: not exported as gold
    assert {cats[TEXTS[i]] for i in (0, 2, 4, 5)} == {"C", "D"}
    assert len(cats) == 5


NER_TEXT = "Ada Lovelace met Babbage"
PERSON = {"start": 0, "end": 12, "label": "PERSON", "token_start": 0, "token_end": 1}
BABBAGE = {"start": 17, "end": 24, "label": "PERSON", "token_start": 3, "token_end": 3}


def seed_ner(db_url: str, bob: str = "bob") -> None:
    """Dataset "ents": alice and ``bob`` disagree on Babbage (PERSON or ORG)."""
    doc = spacy.blank("en")(NER_TEXT)
    tokens = [
        {"text": t.text, "start": t.idx, "end": t.idx + len(t), "id": t.i, "ws": True}
        for t in doc
    ]
    wrong = {**BABBAGE, "label": "ORG"}
    with Store(db_url) as store:
        store.create_dataset(
            "ents", meta={"labels": ["PERSON", "ORG"], "task": "ner", "overlap": 2}
        )
        for who, spans in (("alice", [PERSON, BABBAGE]), (bob, [PERSON, wrong])):
            eg = {"text": NER_TEXT, "tokens": tokens, "spans": spans}
            eg |= {"answer": "accept", "_view_id": "ner_manual"}
            store.add_answers("ents", [set_hashes(eg)], annotator=who)


def test_review_ner_conflict_shows_both_analyses_and_stores_manual_gold(
    db_url,
) -> None:
    person, babbage = PERSON, BABBAGE
    seed_ner(db_url)
    (task,) = review_tasks(Store(db_url).get_answers("ents"), overlap=2, task="ner")
    assert [v["annotators"] for v in task["versions"]] == [["alice"], ["bob"]]
    assert task["spans"] == [person]  # what both said: a start for the reviewer
    assert len(task["tokens"]) == 4
    feed = Feed.from_components(build_review("ents_review", ["ents"], db=db_url))
    try:
        served = feed.next_task("lead")
        with pytest.raises(ValueError, match=r"\[E865\]"):
            bad = {**babbage, "end": 19}  # not on token boundaries
            feed.answer("lead", {**served, "answer": "accept", "spans": [bad]})
        gold = [person, babbage]
        feed.answer("lead", {**served, "answer": "accept", "spans": gold})
    finally:
        feed.close()
    with Store(db_url) as store:
        (stored,) = store.get_answers("ents_review")
        assert stored["_view_id"] == "ner_manual" and stored["_review"] is True
        (target,) = load_ner_targets(store, ["ents"]).targets
        assert [(s["start"], s["label"]) for s in target.spans] == [
            (0, "PERSON"),
            (17, "PERSON"),
        ]
        assert target.is_gold
        learn = consensus_answers(store, ["ents"]).answers
        assert [a["_annotator_id"] for a in learn] == ["lead"]


# --- the review view in the app -----------------------------------------------------


@pytest.fixture
def review_app(monkeypatch, db_url):
    st.cache_resource.clear()
    seed(db_url, {"alice": ALICE, EVIL: BOB})
    args = {"dataset": "team_review", "input_sets": "team", "db": db_url}
    for key, value in server.app_env("review", args, base={}).items():
        monkeypatch.setenv(key, value)
    yield db_url
    st.cache_resource.clear()


def test_app_review_shows_every_answer_escaped_and_stores_gold(review_app) -> None:
    at = AppTest.from_file(APP, default_timeout=30.0)
    at.query_params["session"] = "lead"
    at.run()
    body = "\n".join(element.proto.body for element in at.get("html"))
    assert "Text number 1 &lt;b&gt;bold&lt;/b&gt;" in body
    assert "<b>alice</b>: C" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</b>: D" in body
    # The app's own key-handling script is the only <script>: none from user data.
    assert "<script>alert" not in body and "<b>bold</b>" not in body
    assert "Conflict" in body
    at.button(key="label-0").click().run()  # "A&B<i>", the first label
    with Store(review_app) as store:
        (stored,) = store.get_answers("team_review")
    assert stored["accept"] == ["A&B<i>"] and stored["_review"] is True
    assert stored["_annotator_id"] == "lead" and stored["text"] == TEXTS[1]
    body = "\n".join(element.proto.body for element in at.get("html"))
    assert "Text number 3" in body  # the next conflict


def test_app_sidebar_shows_agreement_with_overlap(monkeypatch, db_url, tmp_path):
    st.cache_resource.clear()
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(f'{{"text": "{t}"}}\n' for t in TEXTS[:3]))
    args = {
        "dataset": "team",
        "source": source,
        "label": "C,D",
        "db": db_url,
        "strategy": "sequential",
        "overlap": 2,
    }
    for key, value in server.app_env("textcat.correct", args, base={}).items():
        monkeypatch.setenv(key, value)
    try:
        sessions = {}
        for who, keys in (
            ("alice", ["label-0", "label-0"]),
            ("bob", ["label-0", "label-1"]),
        ):
            at = sessions[who] = AppTest.from_file(APP, default_timeout=30.0)
            at.query_params["session"] = who
            at.run()
            for key in keys:
                at.button(key=key).click().run()
        at = sessions["alice"]
        deadline = time.monotonic() + 20.0
        body = ""
        expected = "1 conflicts (1 waiting for review) · 1 agreed"
        while time.monotonic() < deadline and expected not in body:
            time.sleep(0.5)
            body = "\n".join(e.proto.body for e in at.run().get("html"))
        assert "Agreement: Fleiss κ" in body
        assert expected in body
        frames = [df.value for df in at.dataframe]
        assert any(list(f.columns) == ["annotator", "kappa", "n"] for f in frames)
    finally:
        st.cache_resource.clear()


def test_app_review_ner_draws_each_analysis_and_accepts_the_edit(
    monkeypatch, db_url
) -> None:
    st.cache_resource.clear()
    seed_ner(db_url, bob=EVIL)
    args = {"dataset": "ents_review", "input_sets": "ents", "db": db_url}
    for key, value in server.app_env("review", args, base={}).items():
        monkeypatch.setenv(key, value)
    try:
        at = AppTest.from_file(APP, default_timeout=30.0)
        at.query_params["session"] = "lead"
        at.run()
        body = "\n".join(element.proto.body for element in at.get("html"))
        assert "<b>alice</b>" in body and "&lt;script&gt;" in body
        assert "<script>alert" not in body  # the app's own key script aside
        assert body.count("Babbage") >= 2  # alice's and bob's
        assert ">ORG<" in body.replace(" ", "")  # bob's label, drawn by displaCy
        # The span editor (a component: its answer is sent as the browser does)
        # starts from what both agreed on, Ada only, and that is accepted.
        from test_app import answer_in_editor, editor_sent

        sent = editor_sent(at)
        assert "Babbage" in sent["text"]
        assert "model" not in sent["facts"]  # no model chose it: a review queue
        answer_in_editor(at, "accept", sent["spans"])
        with Store(db_url) as store:
            (stored,) = store.get_answers("ents_review")
        assert [(s["start"], s["end"], s["label"]) for s in stored["spans"]] == [
            (0, 12, "PERSON")
        ]
        assert stored["_review"] is True and stored["_annotator_id"] == "lead"
    finally:
        st.cache_resource.clear()
