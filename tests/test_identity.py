"""Identity from the content (issue #11, fault 1).

Two real texts whose 32-bit Prodigy hashes collide (found by a birthday search
over generated sentences with the project's own hashing) must stay two answers,
two pool examples and two imported records; two records under one wide key but
with different content are refused, never merged; databases made before the keys
are upgraded in place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import srsly
from typer.testing import CliRunner

import spacy_al.identity
from spacy_al.answers import AnswerError
from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.corpus import Source, get_input_key, get_task_key, set_hashes
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.store import Store
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Updater

# Different texts, the same 32-bit _input_hash (-904607487) and so the same
# _task_hash for the same question.
COLLIDING = (
    "The quick dog sees the writer in Lisbon at 4 o'clock.",
    "The quick dog joins the teacher in Madrid at 11 o'clock.",
)
POSTGRES_URL = os.environ.get("SPACY_AL_TEST_POSTGRES_URL")


def _tasks(**fields: Any) -> list[dict[str, Any]]:
    return [set_hashes({"text": text, **fields}) for text in COLLIDING]


def test_identity_the_pair_collides_in_32_bits_only() -> None:
    first, second = _tasks(label="SPORTS")
    assert first["_input_hash"] == second["_input_hash"]
    assert first["_task_hash"] == second["_task_hash"]
    assert first["_input_key"] != second["_input_key"]
    assert first["_task_key"] != second["_task_key"]


def test_identity_store_keeps_both_answers(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        for task in _tasks(label="SPORTS"):
            store.add_answers("news", [{**task, "answer": "accept"}], annotator="al")
        stored = store.get_answers("news")
        assert sorted(a["text"] for a in stored) == sorted(COLLIDING)
        assert len(store.answered_input_keys("news")) == 2


def test_identity_db_in_and_db_out_keep_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPACY_AL_DB", raising=False)
    load_builtin_recipes()
    runner = CliRunner()
    srsly.write_jsonl("in.jsonl", [{"text": t, "label": "SPORTS"} for t in COLLIDING])
    result = runner.invoke(build_app(), ["db-in", "news", "in.jsonl"])
    assert result.exit_code == 0, result.output
    assert "2 distinct tasks" in result.output
    result = runner.invoke(build_app(), ["db-out", "news", "out.jsonl"])
    assert result.exit_code == 0, result.output
    exported = list(srsly.read_jsonl("out.jsonl"))
    assert sorted(eg["text"] for eg in exported) == sorted(COLLIDING)
    # The Prodigy-compatible hashes stay in the export.
    assert {eg["_input_hash"] for eg in exported} == {-904607487}


def test_identity_loop_answers_both_and_learns_both(tmp_path: Path) -> None:
    """Answered through a labelling loop (as the app and the API do): two stored
    answers, two examples done, two targets."""
    pool = Pool({"text": text} for text in COLLIDING)
    model = TextcatModel(build_textcat(["SPORTS", "OTHER"]))
    with Store(tmp_path / "a.db") as store:
        loop = ActiveLoop(
            pool,
            Updater(model, seed=0),
            spec=StrategySpec.parse("sequential"),
            store=store,
            dataset="news",
        )
        tasks = loop.select(2)
        assert sorted(t["text"] for t in tasks) == sorted(COLLIDING)
        assert tasks[0]["_task_hash"] == tasks[1]["_task_hash"]
        for task in tasks:
            loop.answer([{**task, "answer": "accept"}], annotator="al")
        assert store.count_answers("news") == 2
    assert pool.n_done == 2 and len(loop.targets) == 2


def test_identity_pool_and_source_keep_both(tmp_path: Path) -> None:
    pool = Pool([{"text": text} for text in COLLIDING])
    assert [t["text"] for t in pool.tasks] == list(COLLIDING)
    path = tmp_path / "source.jsonl"
    srsly.write_jsonl(path, [{"text": t} for t in [*COLLIDING, COLLIDING[0]]])
    source = Source(path)
    assert [t["text"] for t in source] == list(COLLIDING)
    assert source.n_duplicates == 1  # the real duplicate, and only it


@pytest.fixture
def narrow_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every identity key collide, as a 64-bit collision would."""
    monkeypatch.setattr(spacy_al.identity, "_wide", lambda text: 7)


def test_identity_same_key_other_text_is_refused_by_the_store(
    tmp_path: Path, narrow_keys: None
) -> None:
    first, second = ({"text": t, "answer": "accept"} for t in COLLIDING)
    with Store(tmp_path / "a.db") as store:
        store.add_answers("news", [first], annotator="al")
        with pytest.raises(AnswerError, match="E962"):
            store.add_answers("news", [second], annotator="bo")
        with pytest.raises(AnswerError, match="E962"):
            store.add_answers("other", [first, second], annotator="al")
        # The same text again is an edit, as before.
        store.add_answers("news", [{**first, "answer": "reject"}], annotator="al")
        assert [a["answer"] for a in store.get_answers("news")] == ["reject"]
        assert not store.has_dataset("other")


def test_identity_same_key_other_text_is_refused_by_the_pool(
    tmp_path: Path, narrow_keys: None
) -> None:
    with pytest.raises(ValueError, match="E963"):
        Pool([{"text": text} for text in COLLIDING])
    path = tmp_path / "source.jsonl"
    srsly.write_jsonl(path, [{"text": t} for t in COLLIDING])
    with pytest.raises(ValueError, match="E963"):
        list(Source(path))


def test_identity_answer_key_must_match_its_content(tmp_path: Path) -> None:
    first, second = _tasks()
    forged = {**second, "_input_key": first["_input_key"], "answer": "accept"}
    with Store(tmp_path / "a.db") as store, pytest.raises(AnswerError, match="E961"):
        store.add_answers("news", [forged], annotator="al")


# --- databases made before the identity keys ---------------------------------------

OLD = sa.MetaData()
sa.Table(
    "datasets",
    OLD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("meta", sa.JSON(), nullable=False),
    sqlite_autoincrement=True,
)
sa.Table(
    "answers",
    OLD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id",
        sa.Integer,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("input_hash", sa.BigInteger(), nullable=False),
    sa.Column("task_hash", sa.BigInteger(), nullable=False),
    sa.Column("annotator", sa.String(255), nullable=False),
    sa.Column("answer", sa.String(16), nullable=False),
    sa.Column("label", sa.Text(), nullable=True),
    sa.Column("accept", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("model_version", sa.BigInteger(), nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("content", sa.JSON(), nullable=False),
    sa.UniqueConstraint(
        "dataset_id", "task_hash", "annotator", name="uq_answers_dataset_task_annotator"
    ),
    sa.CheckConstraint(
        "answer IN ('accept', 'reject', 'ignore')", name="ck_answers_answer"
    ),
    sa.Index("ix_answers_dataset_input", "dataset_id", "input_hash"),
    sa.Index("ix_answers_dataset_annotator", "dataset_id", "annotator"),
    sqlite_autoincrement=True,
)


def _make_old_database(url: str) -> None:
    """A database as the code before identity keys made it: three answers, the
    last of them deleted (ids are never reused)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        OLD.create_all(conn)
        now = sa.func.now()
        conn.execute(
            OLD.tables["datasets"].insert().values(name="news", created=now, meta={})
        )
        for text in ("Goal!", "Tax cut", "Gone"):
            task = set_hashes({"text": text, "label": "SPORTS"})
            conn.execute(
                OLD.tables["answers"]
                .insert()
                .values(
                    dataset_id=1,
                    input_hash=task["_input_hash"],
                    task_hash=task["_task_hash"],
                    annotator="al",
                    answer="accept",
                    label="SPORTS",
                    created=now,
                    content={"text": text, "label": "SPORTS", "meta": {}},
                )
            )
        conn.execute(OLD.tables["answers"].delete().where(sa.text("id = 3")))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        _make_old_database(url)
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip("SPACY_AL_TEST_POSTGRES_URL is not set")
    # A schema of its own, so that other tests on the database aren't touched.
    schema = f"migrate_{os.getpid()}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}"
    url += f"options=-csearch_path%3D{schema}"
    _make_old_database(url)
    yield url
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    engine.dispose()


def test_identity_old_database_is_upgraded_in_place(old_url: str) -> None:
    with Store(old_url) as store:
        old = store.get_answers("news")
        assert [(a["_id"], a["text"]) for a in old] == [(1, "Goal!"), (2, "Tax cut")]
        for answer in old:
            assert answer["_input_key"] == get_input_key({"text": answer["text"]})
            assert answer["_task_key"] == get_task_key(
                {"text": answer["text"], "label": "SPORTS"}
            )
        # The old unique key is gone: texts colliding in 32 bits are two answers.
        for task in _tasks(label="SPORTS"):
            store.add_answers("news", [{**task, "answer": "accept"}], annotator="al")
        # An edit replaces the migrated answer, under a new id above every old one.
        (edit,) = store.add_answers(
            "news",
            [{"text": "Goal!", "label": "SPORTS", "answer": "reject"}],
            annotator="al",
        )
        assert edit > 3
        texts = [a["text"] for a in store.get_answers("news")]
        assert sorted(texts) == sorted(["Goal!", "Tax cut", *COLLIDING])
    with Store(old_url) as store:  # opening it again changes nothing
        assert store.count_answers("news") == 4
