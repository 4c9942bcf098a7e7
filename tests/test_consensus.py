"""Consensus-aware learning: decisions, the loop holding conflicts, the feed, restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import srsly
from spacy_al.recipes.review import build_review
from spacy_al.recipes.textcat import correct

from spacy_al.corpus import set_hashes
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.serve.feed import Feed
from spacy_al.store import Store
from spacy_al.team.agreement import Rating
from spacy_al.team.consensus import Consensus, is_review
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Updater

LABELS = ["A", "B", "C"]
TEXTS = ["Where is my parcel?", "I was charged twice.", "The app crashes."]
WAIT = 30.0


def eg(who: str, value: str = "accept", *, accept=None, label=None, key=1, **extra):
    """An answer of ``who`` on input ``key``, as the store gives it back."""
    out = {
        "text": "some text",
        "answer": value,
        "_input_hash": key,
        "_task_hash": key * 10,
        "_input_key": key,
        "_task_key": key * 10,
        "_annotator_id": who,
        **extra,
    }
    if accept is not None:
        out["accept"] = accept
    if label is not None:
        out["label"] = label
    return out


def annotators(answers) -> list[str]:
    return [a["_annotator_id"] for a in answers]


# --- decisions ---------------------------------------------------------------------


def test_consensus_two_agreeing_answers_are_learnt() -> None:
    found = Consensus(2).decide([eg("alice", accept=["A"]), eg("bob", accept=["A"])])
    assert found.kind == "learn"
    assert found.rating == Rating(("A",))
    assert annotators(found.answers) == ["alice", "bob"]


def test_consensus_majority_learns_from_the_majority_only() -> None:
    answers = [
        eg("alice", accept=["A"]),
        eg("bob", accept=["B"]),
        eg("carol", accept=["A"]),
    ]
    found = Consensus(3).decide(answers)
    assert found.kind == "learn" and found.rating == Rating(("A",))
    assert annotators(found.answers) == ["alice", "carol"]


@pytest.mark.parametrize(
    "answers",
    [
        [eg("alice", accept=["A"]), eg("bob", accept=["B"])],
        # binary answers: "A" against "not A"
        [eg("alice", label="A"), eg("bob", "reject", label="A")],
        # three different choices among three annotators
        [eg("a", accept=["A"]), eg("b", accept=["B"]), eg("c", accept=["C"])],
    ],
)
def test_consensus_without_majority_is_a_conflict(answers) -> None:
    found = Consensus(len(answers)).decide(answers)
    assert found.kind == "conflict"
    assert annotators(found.answers) == annotators(answers)
    assert not found.learn


def test_consensus_waits_for_every_annotator() -> None:
    one = [eg("alice", accept=["A"])]
    assert Consensus(2).decide(one).kind == "wait"
    # the same annotator answering twice is still one annotator
    twice = [*one, eg("alice", accept=["B"], _task_hash=99, _task_key=99)]
    assert Consensus(2).decide(twice).kind == "wait"
    two = [*one, eg("bob", accept=["A"])]
    assert Consensus(3).decide(two).kind == "wait"


def test_consensus_an_ignore_counts_as_answered_but_says_nothing() -> None:
    found = Consensus(2).decide([eg("alice", accept=["A"]), eg("bob", "ignore")])
    assert found.kind == "learn" and annotators(found.answers) == ["alice"]
    nothing = Consensus(2).decide([eg("alice", "ignore"), eg("bob", "ignore")])
    assert nothing.kind == "learn" and nothing.answers == ()


def test_consensus_overlap_one_learns_every_answer_as_before() -> None:
    answers = [eg("alice", accept=["A"]), eg("bob", accept=["B"])]
    found = Consensus(1).decide(answers)
    assert found.kind == "learn" and list(found.answers) == answers


def test_consensus_review_overrides_a_conflict_latest_review_wins() -> None:
    answers = [eg("alice", accept=["A"]), eg("bob", accept=["B"])]
    first = eg("rev", accept=["B"], _review=True, _id=5)
    second = eg("lead", accept=["C"], _review=True, _id=9)
    found = Consensus(2).decide([*answers, second, first])
    assert found.kind == "learn" and found.reviewed
    assert found.answers == (second,) and found.rating == Rating(("C",))
    # a review that only ignores leaves the decision to the annotators
    ignored = eg("rev", "ignore", _review=True)
    assert Consensus(2).decide([*answers, ignored]).kind == "conflict"
    # reviews decide alone, even before everyone answered and with overlap 1
    assert Consensus(3).decide([answers[0], first]).answers == (first,)
    assert Consensus(1).decide([*answers, first]).answers == (first,)


def test_consensus_is_review_reads_the_mark_and_the_view() -> None:
    assert is_review({"_review": True}) and is_review({"_view_id": "review"})
    assert not is_review({"_view_id": "choice"}) and not is_review({"_review": "yes"})


def test_consensus_split_holds_conflicts_and_waiting_and_puts_reviews_last() -> None:
    answers = [
        eg("alice", accept=["A"], key=1),
        eg("bob", accept=["A"], key=1),
        eg("alice", accept=["A"], key=2),
        eg("bob", accept=["B"], key=2),
        eg("alice", accept=["B"], key=3),
        eg("alice", accept=["A"], key=4),
        eg("bob", accept=["C"], key=4),
        eg("rev", accept=["C"], key=4, _review=True),
    ]
    split = Consensus(2).split(answers)
    assert set(split.conflicts) == {2} and set(split.waiting) == {3}
    assert [a["_input_hash"] for a in split.learn] == [1, 1, 4]
    assert split.learn[-1]["_annotator_id"] == "rev"
    assert split.n_reviewed == 1
    assert {a["_input_hash"] for a in split.held} == {2, 3}


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_consensus_refuses_a_bad_overlap(value) -> None:
    with pytest.raises(ValueError, match=r"\[E860\]"):
        Consensus(value)


def test_consensus_ner_manual_answers_agree_on_the_same_entities() -> None:
    spans = [{"start": 0, "end": 4, "label": "ORG"}]
    other = [{"start": 0, "end": 4, "label": "PERSON"}]
    same = [
        eg("alice", spans=spans, _view_id="ner_manual"),
        eg("bob", spans=list(spans), _view_id="ner_manual"),
    ]
    assert Consensus(2).decide(same).kind == "learn"
    differ = [same[0], eg("bob", spans=other, _view_id="ner_manual")]
    assert Consensus(2).decide(differ).kind == "conflict"


# --- the loop ------------------------------------------------------------------------


def make_loop(store: Store | None = None, overlap: int = 2) -> ActiveLoop:
    pool = Pool({"text": t} for t in TEXTS)
    model = TextcatModel(build_textcat(LABELS))
    loop = ActiveLoop(
        pool,
        Updater(model, seed=0),
        spec=StrategySpec.parse("sequential"),
        store=store,
        dataset="team" if store else None,
        batch_size=1,
    )
    loop.consensus = Consensus(overlap)
    return loop


def choice(text: str, labels: list[str]) -> dict:
    return set_hashes({"text": text, "answer": "accept", "accept": labels})


def test_loop_holds_a_conflict_and_learns_it_after_adjudication(db_url) -> None:
    with Store(db_url) as store:
        loop = make_loop(store)
        loop.answer([choice(TEXTS[0], ["A"])], annotator="alice")
        assert loop.n_waiting == 1 and loop.targets == []
        loop.answer([choice(TEXTS[0], ["B"])], annotator="bob")
        key = set_hashes({"text": TEXTS[0]})["_input_key"]
        assert list(loop.conflicts) == [key]
        assert loop.pop_targets() == []  # nothing learnt from the conflict
        review = choice(TEXTS[0], ["C"])
        assert loop.adjudicate([review]) == 1
        assert loop.conflicts == {}
        (target,) = loop.pop_targets()
        assert target.cats == {"A": 0.0, "B": 0.0, "C": 1.0} and target.is_gold
        # both annotators' answers were stored, neither replaced the other
        assert sorted(a["_annotator_id"] for a in store.get_answers("team")) == [
            "alice",
            "bob",
        ]


def test_loop_learns_once_the_annotators_agree() -> None:
    loop = make_loop()
    loop.answer([choice(TEXTS[1], ["B"])], annotator="alice")
    assert loop.pop_targets() == []
    loop.answer([choice(TEXTS[1], ["B"])], annotator="bob")
    (target,) = loop.pop_targets()
    assert target.cats["B"] == 1.0


def test_loop_undo_takes_back_only_that_annotators_answer() -> None:
    loop = make_loop()
    alice = choice(TEXTS[2], ["A"])
    loop.answer([alice], annotator="alice")
    loop.answer([choice(TEXTS[2], ["A"])], annotator="bob")
    assert loop.undo(alice, annotator="alice")
    assert loop.n_waiting == 1 and loop.targets == []


def test_loop_hold_lets_a_later_answer_complete_an_earlier_one() -> None:
    loop = make_loop()
    earlier = {**choice(TEXTS[0], ["A"]), "_annotator_id": "alice", "_id": 1}
    loop.hold([earlier])
    assert loop.n_pending == 0 and loop.n_waiting == 1
    loop.answer([choice(TEXTS[0], ["A"])], annotator="bob")
    (target,) = loop.pop_targets()
    assert target.cats["A"] == 1.0


def test_loop_overlap_one_is_unchanged_newest_gold_wins() -> None:
    loop = make_loop(overlap=1)
    loop.answer([choice(TEXTS[0], ["A"])], annotator="alice")
    loop.answer([choice(TEXTS[0], ["B"])], annotator="bob")
    (target,) = loop.pop_targets()
    assert target.cats["B"] == 1.0


# --- the feed and the recipes ------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "team.jsonl"
    srsly.write_jsonl(path, [{"text": t} for t in TEXTS])
    return path


def team_components(db_url: str, source: Path, overlap: int = 2) -> dict:
    return correct(
        dataset="team",
        source=source,
        label=",".join(LABELS),
        db=db_url,
        strategy="sequential",
        batch_size=1,
        overlap=overlap,
    )


def wait_for(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def label_everything(feed: Feed, choices: dict[str, str]) -> None:
    for who, label in choices.items():
        while (task := feed.next_task(who, timeout=2.0)) is not None:
            feed.answer(who, {**task, "answer": "accept", "accept": [label]})


def test_feed_overlap_two_disagreeing_annotators_learn_only_after_review(
    db_url, source
) -> None:
    feed = Feed.from_components(team_components(db_url, source))
    try:
        label_everything(feed, {"alice": "A", "bob": "B"})
        assert not feed.loop.ready_to_learn
        time.sleep(0.6)  # (the trainer looks twice a second)
        assert feed.stats()["version"] == 0  # nothing learnt, nothing to learn
        assert len(feed.loop.conflicts) == len(TEXTS)
        # a reviewer adjudicates one example in the review recipe's dataset
        review = Feed.from_components(build_review("team_review", ["team"], db=db_url))
        try:
            task = review.next_task("lead")
            review.answer("lead", {**task, "answer": "accept", "accept": ["C"]})
        finally:
            review.close()
        feed.poll_reviews()  # (the feed's team thread also polls every few seconds)
        assert wait_for(lambda: feed.stats()["version"] >= 1)
        learnt = feed.loop.updater._targets
        assert [t.cats for t in learnt.values()] == [{"A": 0.0, "B": 0.0, "C": 1.0}]
        assert feed.poll_reviews() == 0  # each review is learnt once
        summary = feed.refresh_agreement()
        assert summary["n_conflicts"] == len(TEXTS) and summary["held"] == 2
        assert feed.stats()["agreement"]["annotators"]["alice"]["n"] == len(TEXTS)
    finally:
        feed.close()


def test_recipe_restart_keeps_conflicts_held_and_learns_agreement(
    db_url, source
) -> None:
    feed = Feed.from_components(team_components(db_url, source))
    try:
        for who, labels in {"alice": ["A", "A", "B"], "bob": ["A", "C", "B"]}.items():
            for label in labels:
                task = feed.next_task(who, timeout=2.0)
                feed.answer(who, {**task, "answer": "accept", "accept": [label]})
    finally:
        feed.close()
    comps = team_components(db_url, source)
    try:
        loop = comps["loop"]
        # only the agreed examples were learnt at start-up; the conflict is held
        assert sorted(t.text for t in loop.updater._targets.values()) == sorted(
            [TEXTS[0], TEXTS[2]]
        )
        assert [a[0]["text"] for a in loop.conflicts.values()] == [TEXTS[1]]
    finally:
        comps["store"].close()


def test_loop_a_batch_counts_only_examples_it_can_learn() -> None:
    loop = make_loop()
    loop.batch_size = 2
    for text in TEXTS[:2]:
        loop.answer([choice(text, ["A"])], annotator="alice")
    assert loop.n_pending == 2 and not loop.ready_to_learn  # both wait for bob
    loop.answer([choice(TEXTS[0], ["A"])], annotator="bob")
    assert not loop.ready_to_learn
    loop.answer([choice(TEXTS[1], ["A"])], annotator="bob")
    assert loop.ready_to_learn and len(loop.pop_targets()) == 2


def test_ner_restart_keeps_conflicts_held_and_learns_agreement(db_url, source) -> None:
    from spacy_al.recipes.ner import manual as ner_manual

    def components() -> dict:
        return ner_manual(
            dataset="team_ner",
            source=source,
            label="ORG,PERSON",
            db=db_url,
            batch_size=100,  # nothing is learnt live: only at the restart
            overlap=2,
        )

    first = components()
    loop, store = first["loop"], first["store"]
    try:
        agreed = {"start": 0, "end": 5, "label": "ORG"}  # "Where"
        for who, label in (("alice", "ORG"), ("bob", "PERSON")):
            answers = [
                {"text": TEXTS[0], "answer": "accept", "spans": [agreed]},
                {
                    "text": TEXTS[1],
                    "answer": "accept",
                    "spans": [{"start": 0, "end": 1, "label": label}],  # "I"
                },
            ]
            loop.answer(
                [set_hashes({**a, "_view_id": "ner_manual"}) for a in answers],
                annotator=who,
            )
    finally:
        store.close()
    comps = components()
    try:
        restarted = comps["loop"]
        # the agreed text was learnt at start-up; the conflicting one is held
        learnt = [t.text for t in restarted.updater._targets.values()]
        assert learnt == [TEXTS[0]]
        assert [a[0]["text"] for a in restarted.conflicts.values()] == [TEXTS[1]]
    finally:
        comps["store"].close()
