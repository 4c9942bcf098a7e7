"""Crash safety: kill -9 of a real server, broken checkpoints, leases and learning
across restarts.

The big test starts ``python -m spacy_al textcat.teach ... --api`` as its own
process, lets four clients label through the JSON API, kills the process with
SIGKILL at random moments (20 times; also while it starts) and compares what
the clients were told with what the database holds at the end. Two servers on
one database are killed the same way, and ``train`` is killed while it writes
its pipeline (the previous one must still load).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import pytest
from spacy_al.recipes.textcat import build_components

from spacy_al.benchmarks.durability import run_trials
from spacy_al.benchmarks.train_kills import run_train_kills
from spacy_al.checkpoints import (
    Checkpoints,
    load_checkpoint,
    read_version_mark,
    save_updater,
    target_digest,
    write_version_mark,
)
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.serve.feed import Feed
from spacy_al.store import Store
from spacy_al.textcat.targets import answers_to_textcat_targets

SUPPORT = corpus_path("support.jsonl")
LABEL_LIST = LABELS.split(",")
POSTGRES_URL = os.environ.get("SPACY_AL_TEST_POSTGRES_URL")


def _check(report) -> None:
    summary = json.dumps(report.as_dict(), indent=1)
    assert report.acknowledged >= 50, summary  # the clients did get work done
    assert report.lost == 0, summary
    assert report.duplicates == 0, summary
    assert report.errors == 0, summary
    assert report.version_regressions == 0, summary
    assert report.unlearnt == 0, summary
    # Every stored answer was either acknowledged or sent with its reply cut off.
    assert report.acknowledged <= report.stored, summary
    assert report.stored - report.acknowledged <= report.unconfirmed, summary
    assert report.unconfirmed_stored <= report.unconfirmed, summary
    assert report.final_version >= max(report.versions), summary


def test_crash_kill_9_loses_no_acknowledged_answer(tmp_path):
    report = run_trials(
        db=f"sqlite:///{tmp_path / 'answers.db'}",
        source=SUPPORT,
        labels=LABEL_LIST,
        workdir=tmp_path,
        kills=20,
        annotators=4,
        uptime=(0.2, 2.0),
        think=0.3,
        batch_size=5,
        checkpoint_seconds=0.5,
        seed=1,
    )
    assert report.kills >= 20
    assert "starting" in report.kill_moments  # some kills hit the start-up
    _check(report)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="SPACY_AL_TEST_POSTGRES_URL not set")
def test_crash_kill_9_on_postgres(tmp_path):
    dataset = f"crash_{os.getpid()}"
    try:
        report = run_trials(
            db=POSTGRES_URL,
            source=SUPPORT,
            labels=LABEL_LIST,
            workdir=tmp_path,
            kills=8,
            annotators=4,
            uptime=(0.2, 2.0),
            think=0.3,
            dataset=dataset,
            seed=2,
        )
    finally:
        with Store(POSTGRES_URL) as store:
            if store.has_dataset(dataset):
                store.drop_dataset(dataset, force=True)  # the trial's own data
    assert report.kills >= 8
    _check(report)


# --- checkpoints ---------------------------------------------------------------


def _components(db_url: str, **kwargs) -> dict:
    return build_components(
        "crash",
        SUPPORT,
        labels=LABEL_LIST,
        view_id="classification",
        strategy="margin",
        db=db_url,
        batch_size=5,
        **kwargs,
    )


def _answer(loop, n: int, who: str = "alice") -> None:
    tasks = loop.select(n)
    for task in tasks:
        loop.answer([{**task, "answer": "accept"}], annotator=who)


def test_crash_answers_after_the_checkpoint_are_learnt_on_restart(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _components(db_url)
    loop, ckpt = first["loop"], first["checkpoint"].model_path
    _answer(loop, 5)
    loop.learn()
    save_updater(loop.updater, ckpt)  # version 1 knows 5 answers
    _answer(loop, 3)  # stored, then the server dies before learning them
    first["store"].close()

    again = _components(db_url)
    updater = again["loop"].updater
    assert updater.version == 2  # the checkpoint's 1, plus learning the 3 now
    assert updater.history[-1].n_new == 3  # only the 3 the checkpoint missed
    with Store(db_url) as store:
        answers = store.get_answers("crash")
    targets = answers_to_textcat_targets(answers, LABEL_LIST, exclusive=True)
    state = json.loads((Path(ckpt) / "state.json").read_text())
    assert {str(t.input_key): target_digest(t) for t in targets} == state["learnt"]
    again["store"].close()

    # Nothing new: a restart learns nothing and keeps the version.
    third = _components(db_url)
    assert third["loop"].updater.version == 2
    assert third["loop"].updater.history == []
    third["store"].close()


def test_crash_version_never_goes_back_after_unsaved_updates(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _components(db_url)
    loop, ckpt = first["loop"], first["checkpoint"].model_path
    _answer(loop, 5)
    loop.learn()
    save_updater(loop.updater, ckpt)
    for _ in range(3):  # three more updates, served but never saved
        _answer(loop, 5)
        loop.learn()
        write_version_mark(ckpt, loop.updater.version)
    assert loop.updater.version == 4
    first["store"].close()
    again = _components(db_url)
    assert again["loop"].updater.version == 5  # 4 was served: the next is 5
    again["store"].close()


def test_crash_broken_checkpoint_falls_back_to_the_previous_one(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _components(db_url)
    loop, ckpt = first["loop"], first["checkpoint"].model_path
    _answer(loop, 5)
    loop.learn()
    save_updater(loop.updater, ckpt)
    first["store"].close()
    # A crash between save's two renames leaves only the previous checkpoint.
    old = ckpt.with_name(ckpt.name + ".old")
    ckpt.rename(old)
    updater = load_checkpoint(ckpt)
    assert updater is not None and updater.version == 1
    # A garbled checkpoint: the previous one is used, with a warning.
    shutil.copytree(old, ckpt)
    (ckpt / "state.json").write_text('{"version": 1, "task": "textc')
    with pytest.warns(UserWarning, match="E840"):
        updater = load_checkpoint(ckpt)
    assert updater is not None and updater.version == 1


def test_crash_unreadable_checkpoint_retrains_from_the_answers(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _components(db_url)
    loop, ckpt = first["loop"], first["checkpoint"].model_path
    _answer(loop, 5)
    loop.learn()
    save_updater(loop.updater, ckpt)
    write_version_mark(ckpt, 3)
    first["store"].close()
    shutil.rmtree(ckpt / "model")  # the model is gone, the state is there
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _components(db_url)
    messages = " ".join(str(w.message) for w in caught)
    assert "E840" in messages and "E841" in messages
    updater = again["loop"].updater
    assert updater.version == 4  # retrained on all 5 answers, after version 3
    assert updater.n_targets == 5
    assert read_version_mark(ckpt) == 3
    assert (ckpt / "model").exists()  # saved again
    again["store"].close()


# --- leases across restarts --------------------------------------------------------


def test_crash_leases_survive_a_restart_and_expire_by_the_wall_clock(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first = Feed.from_components(_components(db_url), lease_seconds=3.0)
    held = first.next_task("alice")["_input_hash"]
    # The server dies (nothing closed, nothing saved); a new one starts.
    second = Feed.from_components(_components(db_url), lease_seconds=3.0)
    try:
        assert second.next_task("alice")["_input_hash"] == held
        assert second.next_task("bob")["_input_hash"] != held
    finally:
        second.close()
        first.close()
    with Store(db_url) as store:
        ends = {
            lease["annotator"]: lease["expires"] for lease in store.get_leases("crash")
        }
    assert set(ends) == {"alice", "bob"}
    # Alice never comes back: once her lease ends, a restart serves it to carol.
    time.sleep(max(ends["alice"] - time.time(), 0) + 0.2)
    third = Feed.from_components(_components(db_url), lease_seconds=3.0)
    try:
        with Store(db_url) as store:
            assert "alice" not in {
                lease["annotator"] for lease in store.get_leases("crash")
            }
        served = []
        for _ in range(10):
            task = third.next_task("carol")
            served.append(task["_input_hash"])
            third.answer("carol", {**task, "answer": "ignore"})
        assert held in served
    finally:
        third.close()


def test_crash_checkpoint_dir_for_postgres_uses_spacy_al_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACY_AL_HOME", str(tmp_path))
    checkpoints = Checkpoints.for_db("postgresql://u@h/db", "ds")
    assert checkpoints.model_path.parent.parent == tmp_path / "models"


# --- two servers on one database, and train, killed with SIGKILL ----------------------


@pytest.fixture(scope="module")
def two_servers_killed(tmp_path_factory):
    """Two real servers on one SQLite database, 4 annotators split between them,
    either server killed 3 times: (database URL, report)."""
    workdir = tmp_path_factory.mktemp("two_servers")
    db_url = f"sqlite:///{workdir / 'answers.db'}"
    report = run_trials(
        db=db_url,
        source=SUPPORT,
        labels=LABEL_LIST,
        workdir=workdir,
        kills=3,
        annotators=4,
        servers=2,
        uptime=(1.0, 2.5),
        startup_kill_share=0.0,
        think=0.2,
        seed=3,
    )
    return db_url, report


def test_crash_kill_9_of_either_of_two_servers_loses_nothing(two_servers_killed):
    _, report = two_servers_killed
    summary = json.dumps(report.as_dict(), indent=1)
    assert report.servers == 2 and report.kills == 3, summary
    assert report.acknowledged >= 30, summary  # both servers' annotators got work done
    assert report.lost == 0, summary  # acknowledged = stored as told
    assert report.duplicates == 0, summary  # no example answered twice at overlap 1
    assert report.errors == 0, summary
    assert report.version_regressions == 0, summary
    assert report.stored - report.acknowledged <= report.unconfirmed, summary
    assert len(report.final_versions) == 2 and min(report.final_versions) >= 1


def test_crash_kill_9_of_train_keeps_a_loadable_model(two_servers_killed, tmp_path):
    db_url, _ = two_servers_killed
    report = run_train_kills(
        db=db_url,
        dataset="durability",
        workdir=tmp_path,
        trials=4,
        write_share=1.0,  # every kill aimed at the write of the new pipeline
        max_epochs=3,
        seed=1,
    )
    summary = json.dumps(report.as_dict(), indent=1)
    assert report.answers >= 30, summary
    assert report.kills >= 1 and report.during_write >= 1, summary
    assert report.not_loadable == 0 and report.loadable == report.kills, summary
    assert report.kept_previous >= 1, summary  # the previous model, untouched
    # The complete runs (the first, the last) saved a model that loads, and the
    # last one removed what the killed runs left beside it.
    assert report.completed >= 2, summary
    assert report.completed_loadable == report.completed, summary
    assert report.leftovers_after == 0, summary


def test_crash_two_servers_on_one_sqlite_file_never_serve_an_older_version(tmp_path):
    # They share the checkpoint folder (DB.models/NAME-HASH): the version mark
    # the second writes must not lower the version the first showed.
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    first, second = _components(db_url), _components(db_url)  # two servers
    ckpt = first["checkpoint"].model_path
    for _ in range(3):  # the first serves versions 1, 2, 3
        _answer(first["loop"], 5, who="alice")
        first["loop"].learn()
        write_version_mark(ckpt, first["loop"].updater.version)
    _answer(second["loop"], 5, who="bob")  # the second learns once and saves
    second["loop"].learn()
    second["checkpoint"].save(second["loop"].updater)
    write_version_mark(second["checkpoint"].model_path, second["loop"].updater.version)
    first["store"].close()  # the first is killed; started again:
    again = _components(db_url)
    try:
        assert again["loop"].updater.version > 3  # alice saw version 3
    finally:
        again["store"].close()
        second["store"].close()
