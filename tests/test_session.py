"""Opening a labelling session: the source is read before the dataset exists, and
a restart continues the model version, the learning curve and the stopping
signal's history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import srsly

from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.loop import StrategySpec
from spacy_al.serve.feed import Feed
from spacy_al.session import open_session
from spacy_al.store import Store
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.targets import answers_to_textcat_targets
from spacy_al.updater import Updater

SUPPORT = Path(corpus_path("support.jsonl"))
EVAL = corpus_path("support_eval.jsonl")
LABEL_LIST = LABELS.split(",")
GOLD = {eg["text"]: eg["label"] for eg in srsly.read_jsonl(SUPPORT)}


def _open(db: str, source: Path, dataset: str = "support"):
    return open_session(
        dataset,
        source,
        db=db,
        meta={"labels": LABEL_LIST, "task": "textcat"},
        new_updater=lambda version: Updater(
            TextcatModel(build_textcat(LABEL_LIST, exclusive=True)), version=version
        ),
        load_updater=lambda checkpoints: checkpoints.load(),
        to_targets=lambda answers, labels: answers_to_textcat_targets(
            answers, labels, exclusive=True
        ),
    )


def _components(db: str) -> dict:
    """What textcat.teach returns, built from the session (no recipe imported)."""
    session = _open(db, SUPPORT)
    loop = ActiveLoop(
        session.pool,
        session.updater,
        spec=StrategySpec.parse("margin"),
        store=session.store,
        dataset="support",
        batch_size=5,
    )
    return {
        "dataset": "support",
        "view_id": "classification",
        "store": session.store,
        "loop": loop,
        "labels": list(session.updater.labels),
        "exclusive": True,
        "eval": EVAL,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {"batch_size": 5, "stop_window": 2, "stop_set_size": 50},
    }


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize(
    "name,content",
    [
        ("bad_utf8.jsonl", b'{"text": "caf\xe9"}\n'),
        ("bad_line.jsonl", b'{"text": "fine"}\n{"text": 3}\n'),
        ("corrupt.spacy", b"not a DocBin at all"),
        ("missing.jsonl", None),
        ("folder.jsonl", "dir"),
    ],
)
def test_session_bad_source_creates_no_dataset(tmp_path, name, content):
    source = tmp_path / name
    if content == "dir":
        source.mkdir()
    elif content is not None:
        source.write_bytes(content)
    db = str(tmp_path / "answers.db")
    with pytest.raises((ValueError, OSError)) as info:
        _open(db, source)
    assert "[E" in str(info.value)  # a coded message, for the CLI to print
    with Store(db) as store:
        assert not store.has_dataset("support")


def test_session_restart_keeps_the_version_curve_and_stopping_history(tmp_path):
    db = str(tmp_path / "answers.db")
    feed = Feed.from_components(_components(db), checkpoint_seconds=0)

    def label(n: int) -> None:
        for _ in range(n):
            task = feed.next_task("alice", timeout=30)
            gold = [GOLD[task["text"]]]
            feed.answer("alice", {**task, "answer": "accept", "accept": gold})

    for version in (1, 2, 3):  # three updates, a batch of five each
        label(5)
        assert _wait_for(lambda v=version: feed.stats()["version"] == v)
    assert _wait_for(lambda: len(feed.stats()["stopping"]["points"]) == 3)
    label(2)  # stored, not learnt yet: fewer than a batch
    before = feed.stats()
    feed.close()  # Ctrl+C: the model, the version and the progress are saved

    # The same command again: the two unlearnt answers are learnt at the start.
    again = Feed.from_components(_components(db), checkpoint_seconds=0)
    try:
        assert again.stats()["version"] == before["version"] + 1
        old = before["stopping"]["points"]
        assert _wait_for(lambda: len(again.stats()["curve"]) > len(before["curve"]))
        assert _wait_for(lambda: len(again.stats()["stopping"]["points"]) > len(old))
        after = again.stats()
        # The curve's points continue, then a point for the version learnt now.
        assert after["curve"][: len(before["curve"])] == before["curve"]
        assert after["curve"][-1]["version"] == before["version"] + 1
        # The stopping history continues: its points, and one more for the
        # version learnt at the start (its kappa with the saved predictions).
        assert after["stopping"]["points"][: len(old)] == old
        assert after["stopping"]["points"][-1]["version"] == before["version"] + 1
    finally:
        again.close()
