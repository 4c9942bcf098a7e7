from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import srsly
import typer
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.store import Store

TASKS = [
    {"text": "Goal in the last minute", "label": "SPORTS", "answer": "accept"},
    {"text": "Parliament votes today", "label": "SPORTS", "answer": "reject"},
    {"text": "New stadium opens", "label": "SPORTS"},
    {"text": "Café prices rise ☕", "meta": {"source": "rss"}},
    {"text": "Ambiguous headline", "label": "SPORTS", "answer": "ignore"},
]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    load_builtin_recipes()
    return build_app()


@pytest.fixture
def run(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the CLI in a fresh working directory, with no $SPACY_AL_DB."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPACY_AL_DB", raising=False)
    runner = CliRunner()

    def invoke(*args: str, **kwargs: Any) -> Any:
        return runner.invoke(app, list(args), **kwargs)

    return invoke


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "news.jsonl"
    srsly.write_jsonl(path, TASKS)
    return path


def _datasets() -> list[str]:
    with Store("spacy_al.db") as store:
        return store.datasets()


def _texts_and_answers(tasks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(task["text"], task["answer"]) for task in tasks]


def test_recipes_db_round_trip(run: Any, source: Path, tmp_path: Path) -> None:
    result = run("db-in", "news", str(source), "--db", "answers.db")
    assert result.exit_code == 0, result.output
    assert "Imported 5 answers" in result.output
    result = run("db-out", "news", "out.jsonl", "--db", "answers.db")
    assert result.exit_code == 0, result.output
    exported = list(srsly.read_jsonl(tmp_path / "out.jsonl"))
    expected = [(t["text"], t.get("answer", "accept")) for t in TASKS]
    assert _texts_and_answers(exported) == expected
    assert exported[3]["meta"] == {"source": "rss"}
    for task in exported:
        assert task["_annotator_id"] == "db-in"
        assert task["_session_id"] == "news-db-in"
        assert isinstance(task["_input_hash"], int)
        assert isinstance(task["_task_hash"], int)
        assert isinstance(task["_timestamp"], int)
    # Without OUTPUT, the same lines go to standard output.
    result = run("db-out", "news", "--db", "answers.db")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == exported


def test_recipes_db_in_answer_and_annotator_options(run: Any, source: Path) -> None:
    result = run(
        "db-in", "news", str(source), "--answer", "reject", "--annotator", "alice"
    )
    assert result.exit_code == 0, result.output
    with Store("spacy_al.db") as store:
        answers = store.get_answers("news")
    assert [a["answer"] for a in answers] == [
        "accept",
        "reject",
        "reject",
        "reject",
        "ignore",
    ]
    assert {a["_annotator_id"] for a in answers} == {"alice"}


def test_recipes_db_in_rejects_unknown_answer_option(run: Any, source: Path) -> None:
    result = run("db-in", "news", str(source), "--answer", "yes")
    assert result.exit_code == 1
    assert "E960" in result.output
    assert not Path("spacy_al.db").exists()


MISALIGNED = json.dumps(  # "Car" cuts the word "Carol"
    {
        "text": "Carol visited Berlin.",
        "spans": [{"start": 0, "end": 3, "label": "PERSON"}],
        "_view_id": "ner_manual",
    }
)
OVERLAPPING = json.dumps(
    {
        "text": "Dave and Erin live in Rome.",
        "spans": [
            {"start": 0, "end": 8, "label": "PERSON"},
            {"start": 5, "end": 13, "label": "PERSON"},
        ],
        "_view_id": "ner_manual",
    }
)


@pytest.mark.parametrize(
    "lines,line,field",
    [
        (['{"text": "ok"}', '{"text": "fine"}', '{"text": "broken'], 3, None),
        (['{"text": "ok"}', '{"text": "x", "answer": "maybe"}'], 2, "answer"),
        (['{"text": "ok"}', "", '{"text": ""}'], 3, "text"),
        (['{"text": "ok"}', '{"label": "SPORTS"}'], 2, "text"),
        # Entity spans that would break data-to-spacy and train (issue #11).
        (['{"text": "ok"}', "", MISALIGNED], 3, "spans"),
        ([OVERLAPPING, '{"text": "ok"}'], 1, "spans"),
    ],
)
def test_recipes_db_in_malformed_input_changes_nothing(
    run: Any, source: Path, tmp_path: Path, lines: list[str], line: int, field: Any
) -> None:
    assert run("db-in", "news", str(source)).exit_code == 0
    with Store("spacy_al.db") as store:
        before = store.get_answers("news")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf8")
    for dataset in ("news", "fresh"):
        result = run("db-in", dataset, str(bad))
        assert result.exit_code == 1
        message = " ".join(result.output.split())  # undo wasabi's line wrapping
        assert str(bad) in message and f"line {line}" in message
        if field is not None:
            assert f"field '{field}'" in message
    with Store("spacy_al.db") as store:
        assert store.get_answers("news") == before
        assert store.datasets() == ["news"]


def test_recipes_db_in_invalid_answer_field_names_record(
    run: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "choices.jsonl"
    srsly.write_jsonl(
        bad, [{"text": "a", "accept": ["X"]}, {"text": "b", "accept": "X"}]
    )
    result = run("db-in", "news", str(bad))
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "Record 2 of" in message and str(bad) in message and "'accept'" in message
    assert _datasets() == []


def test_recipes_db_in_skip_invalid(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"text": "good one"}\n{"text": \n{"text": "x", "accept": 1}\n{"text": "two"}\n',
        encoding="utf8",
    )
    result = run("db-in", "news", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "Imported 2 answers" in result.output
    assert "Skipped 2 malformed records" in result.output
    with Store("spacy_al.db") as store:
        assert [a["text"] for a in store.get_answers("news")] == ["good one", "two"]


def test_recipes_db_out_answer_filter(run: Any, source: Path, tmp_path: Path) -> None:
    run("db-in", "news", str(source))
    result = run("db-out", "news", "--answer", "reject,ignore")
    assert result.exit_code == 0
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert _texts_and_answers(exported) == [
        ("Parliament votes today", "reject"),
        ("Ambiguous headline", "ignore"),
    ]


def test_recipes_db_out_unknown_dataset(run: Any, source: Path, tmp_path: Path) -> None:
    run("db-in", "news", str(source))
    result = run("db-out", "sport", "out.jsonl")
    assert result.exit_code == 1
    assert "'sport'" in result.output and "'news'" in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_recipes_db_stats(run: Any, source: Path) -> None:
    run("db-in", "news", str(source))
    run("db-in", "other", str(source), "--annotator", "bob")
    result = run("stats")
    assert result.exit_code == 0
    rows = [line.split() for line in result.output.splitlines()]
    assert ["news", "5"] in rows and ["other", "5"] in rows
    result = run("stats", "news")
    assert result.exit_code == 0
    rows = [line.split() for line in result.output.splitlines()]
    assert ["Answers", "5"] in rows
    assert ["accept", "3"] in rows and ["reject", "1"] in rows
    assert ["db-in", "5"] in rows
    assert ["SPORTS", "2", "1", "1"] in rows  # per label: accept, reject, ignore


def test_recipes_db_drop_asks_first(run: Any, source: Path) -> None:
    run("db-in", "news", str(source))
    result = run("drop", "news", input="n\n")
    assert result.exit_code == 1
    assert _datasets() == ["news"]
    result = run("drop", "news", input="y\n")
    assert result.exit_code == 0
    assert "5 answers" in result.output
    assert _datasets() == []
    result = run("drop", "news", "--yes")
    assert result.exit_code == 1 and "'news'" in result.output


def test_recipes_db_uses_env_var_database(
    run: Any, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "team" / "answers.db"
    monkeypatch.setenv("SPACY_AL_DB", str(db_path))
    assert run("db-in", "news", str(source)).exit_code == 0
    assert db_path.is_file() and not (tmp_path / "spacy_al.db").exists()
    with Store(db_path) as store:
        assert store.count_answers("news") == 5


def test_recipes_db_real_corpus_round_trip(
    run: Any, corpora_dir: Path, tmp_path: Path
) -> None:
    path = corpora_dir / "sms_spam" / "train.jsonl"
    result = run("db-in", "sms", str(path))
    assert result.exit_code == 0, result.output
    assert run("db-out", "sms", "out.jsonl").exit_code == 0
    records = list(srsly.read_jsonl(path))
    exported = list(srsly.read_jsonl(tmp_path / "out.jsonl"))
    # Repeated (text, label) records are one task: the last one is kept, as an edit.
    expected: dict[tuple[str, str], None] = {}
    for record in records:
        expected.pop((record["text"], record["label"]), None)
        expected[(record["text"], record["label"])] = None
    assert [(t["text"], t["label"]) for t in exported] == list(expected)
    assert {t["answer"] for t in exported} == {"accept"}


def test_recipes_db_command_line_entry_point(source: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    command = [sys.executable, "-m", "spacy_al"]
    done = subprocess.run(
        [*command, "db-in", "news", str(source), "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*command, "db-out", "news", "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in done.stdout.splitlines()]
    assert [t["text"] for t in exported] == [t["text"] for t in TASKS]


def test_recipes_db_stats_prints_agreement_and_conflicts(run: Any) -> None:
    texts = [f"headline {i}" for i in range(6)]
    labels = {
        "alice": ["SPORTS", "SPORTS", "POLITICS", "POLITICS", "SPORTS", "SPORTS"],
        "bob": ["SPORTS", "POLITICS", "POLITICS", "POLITICS", "SPORTS", "POLITICS"],
    }
    with Store("spacy_al.db") as store:
        store.create_dataset("team", meta={"overlap": 2, "task": "textcat"})
        for who, chosen in labels.items():
            store.add_answers(
                "team",
                [
                    {"text": text, "answer": "accept", "accept": [label]}
                    for text, label in zip(texts, chosen, strict=True)
                ],
                annotator=who,
            )
        # a reviewer settles one of the two conflicts
        store.create_dataset("team_review", meta={"review_of": ["team"]})
        store.add_answers(
            "team_review",
            [
                {
                    "text": texts[1],
                    "answer": "accept",
                    "accept": ["SPORTS"],
                    "_review": True,
                }
            ],
            annotator="lead",
        )
    result = run("stats", "team")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert "Agreement (overlap 2)" in result.output
    assert ["Agreed", "(majority)", "4"] in rows
    assert ["Conflicts", "(no", "majority)", "2"] in rows
    assert ["reviewed", "in", "team_review", "1"] in rows
    # 4 of 6 equal; SPORTS: alice 4/6, bob 2/6 -> chance 4/9, kappa 0.4
    assert ["alice", "0.400", "0.667", "6"] in rows
    assert ["bob", "0.400", "0.667", "6"] in rows
    assert "Fleiss' kappa" in result.output and "Krippendorff's alpha" in result.output
    assert "review team_review --input team" in result.output.replace("\n", " ")
    # one annotator only: no agreement section
    assert "Agreement" not in run("stats", "team_review").output
