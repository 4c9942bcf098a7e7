from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import spacy
import srsly
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from spacy_al import tasks
from spacy_al.corpus import (
    MAX_SKIPPED_ERRORS,
    Source,
    get_input_hash,
    get_task_hash,
    gold_labels,
    read_jsonl,
    read_source,
    set_hashes,
    validate_task,
    write_jsonl,
)
from spacy_al.errors import SourceError

GOOD = ['{"text": "first text", "label": "A"}', '{"text": "second text"}']


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join(
        (line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n"
        for line in lines
    )
    path.write_bytes(data)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


# --- malformed records --------------------------------------------------------


@pytest.mark.parametrize(
    "line,field,code",
    [
        pytest.param('{"text": "unclosed"', None, "E005", id="invalid-json"),
        pytest.param('["text", "in a list"]', None, "E006", id="not-an-object"),
        pytest.param('"just a string"', None, "E006", id="string-not-object"),
        pytest.param('{"label": "A"}', "text", "E007", id="missing-text"),
        pytest.param('{"text": 42}', "text", "E008", id="text-not-str"),
        pytest.param('{"text": null}', "text", "E008", id="text-null"),
        pytest.param('{"text": "  \\t "}', "text", "E009", id="empty-text"),
        pytest.param('{"text": "a", "label": 3}', "label", "E010", id="label-int"),
        pytest.param('{"text": "a", "label": " "}', "label", "E010", id="label-blank"),
        pytest.param('{"text": "a", "labels": "A"}', "labels", "E011", id="labels-str"),
        pytest.param(
            '{"text": "a", "labels": ["A", 1]}', "labels", "E011", id="labels-int"
        ),
        pytest.param(
            '{"text": "a", "labels": [""]}', "labels", "E011", id="labels-empty"
        ),
        pytest.param('{"text": "a", "cats": ["A"]}', "cats", "E012", id="cats-list"),
        pytest.param(
            '{"text": "a", "cats": {"A": "yes"}}', "cats", "E012", id="cats-str"
        ),
        pytest.param(
            '{"text": "a", "cats": {"A": true}}', "cats", "E012", id="cats-bool"
        ),
        pytest.param(
            '{"text": "a", "cats": {"A": 1.5}}', "cats", "E013", id="cats-above"
        ),
        pytest.param(
            '{"text": "a", "cats": {"A": -0.1}}', "cats", "E013", id="cats-below"
        ),
        pytest.param(
            '{"text": "a", "spans": {"start": 0}}', "spans", "E014", id="spans-obj"
        ),
        pytest.param('{"text": "a", "spans": ["A"]}', "spans", "E015", id="span-str"),
        pytest.param(
            '{"text": "ab", "spans": [{"start": "0", "end": 1, "label": "X"}]}',
            "spans",
            "E015",
            id="span-start-str",
        ),
        pytest.param(
            '{"text": "ab", "spans": [{"start": 2, "end": 1, "label": "X"}]}',
            "spans",
            "E015",
            id="span-start-after-end",
        ),
        pytest.param(
            '{"text": "ab", "spans": [{"start": 0, "end": 9, "label": "X"}]}',
            "spans",
            "E015",
            id="span-past-text",
        ),
        pytest.param(
            '{"text": "ab", "spans": [{"start": 0, "end": 1}]}',
            "spans",
            "E015",
            id="span-no-label",
        ),
        pytest.param('{"text": "a", "answer": "maybe"}', "answer", "E960", id="answer"),
        pytest.param('{"text": "a", "meta": ["x"]}', "meta", "E017", id="meta-list"),
        pytest.param(
            '{"text": "a", "meta": {"cost": 0}}', "meta.cost", "E018", id="cost-0"
        ),
        pytest.param(
            '{"text": "a", "meta": {"cost": "3"}}', "meta.cost", "E018", id="cost-str"
        ),
        pytest.param(
            '{"text": "a", "_input_hash": "abc"}', "_input_hash", "E019", id="hash-str"
        ),
    ],
)
def test_corpus_malformed_jsonl_line_names_file_line_field(
    tmp_path: Path, line: str, field: str | None, code: str
) -> None:
    path = write_lines(tmp_path / "data.jsonl", [*GOOD, line])
    with pytest.raises(SourceError) as exc_info:
        list(Source(path))
    err = exc_info.value
    message = str(err)
    assert f"[{code}]" in message
    assert str(path) in message and "line 3" in message
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    if field is not None:
        assert f"field '{field}'" in message
    assert "--skip-invalid" in message


def test_corpus_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "data.jsonl", [*GOOD, b'{"text": "caf\xe9"}', GOOD[0]]
    )
    with pytest.raises(SourceError) as exc_info:
        list(Source(path, dedupe=False))
    assert "[E004]" in str(exc_info.value)
    assert exc_info.value.line == 3
    assert str(path) in str(exc_info.value) and "line 3" in str(exc_info.value)


def test_corpus_invalid_utf8_in_txt_and_csv_names_line(tmp_path: Path) -> None:
    txt = write_lines(tmp_path / "data.txt", [b"fine", b"", b"bad \xff byte"])
    with pytest.raises(SourceError, match=r"E004.*line 3"):
        list(Source(txt))
    csv_path = write_lines(
        tmp_path / "data.csv", [b"text,label", b"ok,A", b"bad \xff,B"]
    )
    with pytest.raises(SourceError, match=r"E004.*line 3"):
        list(Source(csv_path))


def test_corpus_csv_missing_text_column_names_existing_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", [["body", "label"], ["hello", "A"]])
    with pytest.raises(SourceError) as exc_info:
        list(Source(path))
    message = str(exc_info.value)
    assert "[E020]" in message and str(path) in message and "line 1" in message
    assert "'body'" in message and "'label'" in message and "text_column" in message
    assert exc_info.value.field == "text"
    source = Source(path, text_column="body")
    assert [(t["text"], t["label"]) for t in source] == [("hello", "A")]


def test_corpus_csv_missing_named_label_column_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", [["text", "label"], ["hello", "A"]])
    with pytest.raises(SourceError, match=r"E020.*'category'.*'text', 'label'"):
        list(Source(path, label_column="category"))


def test_corpus_csv_without_default_label_column_is_unlabelled(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", [["text", "source"], ["hello", "web"]])
    assert list(Source(path))[0]["meta"] == {"source": "web"}
    assert "label" not in list(Source(path))[0]


@pytest.mark.parametrize(
    "row,field,code",
    [
        pytest.param(["only one field"], None, "E021", id="short-row"),
        pytest.param(["a", "B", "x", "extra"], None, "E021", id="long-row"),
        pytest.param(["   ", "B", "x"], "text", "E009", id="empty-text"),
        pytest.param(["a", "B", "cheap"], "meta.cost", "E018", id="bad-cost"),
        pytest.param(["a", "B", "-2"], "meta.cost", "E018", id="negative-cost"),
    ],
)
def test_corpus_malformed_csv_row_names_file_line_field(
    tmp_path: Path, row: list[str], field: str | None, code: str
) -> None:
    path = write_csv(
        tmp_path / "d.csv", [["text", "label", "cost"], ["x", "A", "1"], row]
    )
    with pytest.raises(SourceError) as exc_info:
        list(Source(path))
    assert f"[{code}]" in str(exc_info.value)
    assert (exc_info.value.path, exc_info.value.line) == (str(path), 3)
    assert exc_info.value.field == field


def test_corpus_empty_txt_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    source = Source(path)
    assert list(source) == []
    assert (source.n_read, source.n_skipped) == (0, 0)


def test_corpus_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=r"E001.*nope\.jsonl"):
        Source(path)
    with pytest.raises(FileNotFoundError, match="E001"):
        read_jsonl(path)


def test_corpus_unknown_suffix_names_file_and_supported(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError) as exc_info:
        Source(path)
    message = str(exc_info.value)
    assert "[E002]" in message and "data.xlsx" in message and "'.xlsx'" in message
    assert all(s in message for s in (".jsonl", ".csv", ".txt", ".spacy"))
    assert [t["text"] for t in Source(path, loader="txt")] == ["x"]


def test_corpus_unknown_loader_and_empty_label_sep(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", GOOD)
    with pytest.raises(ValueError, match=r"E003.*'xml'.*jsonl, csv, txt, spacy"):
        Source(path, loader="xml")
    with pytest.raises(ValueError, match="E023"):
        Source(path, label_sep="")


def test_corpus_garbage_docbin_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.spacy"
    path.write_bytes(b"not a docbin at all")
    with pytest.raises(ValueError, match=r"E022.*bad\.spacy"):
        list(Source(path))


# --- skipping and deduplication -------------------------------------------------


def test_corpus_skip_invalid_counts_and_keeps_messages(tmp_path: Path) -> None:
    bad = [f'{{"text": "t{i}", "label": {i}}}' for i in range(MAX_SKIPPED_ERRORS + 5)]
    path = write_lines(tmp_path / "d.jsonl", [GOOD[0], *bad, "{oops", GOOD[1], ""])
    source = Source(path, skip_invalid=True)
    tasks = list(source)
    assert [t["text"] for t in tasks] == ["first text", "second text"]
    assert source.n_read == len(bad) + 3
    assert source.n_skipped == len(bad) + 1
    assert len(source.skipped_errors) == MAX_SKIPPED_ERRORS
    assert (
        "line 2" in source.skipped_errors[0]
        and "field 'label'" in source.skipped_errors[0]
    )


def test_corpus_counts_reset_on_each_iteration(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [*GOOD, "{oops", GOOD[0]])
    source = Source(path, skip_invalid=True)
    first = list(source)
    second = list(source)
    assert first == second
    assert (source.n_read, source.n_skipped, source.n_duplicates) == (4, 1, 1)


def test_corpus_dedupe_by_input_hash(tmp_path: Path) -> None:
    lines = [
        '{"text": "same"}',
        '{"text": "same", "label": "B"}',
        '{"text": "other"}',
        '{"text": "same", "meta": {"id": 3}}',
    ]
    path = write_lines(tmp_path / "d.jsonl", lines)
    source = Source(path)
    assert [t["text"] for t in source] == ["same", "other"]
    assert source.n_duplicates == 2
    all_tasks = Source(path, dedupe=False)
    assert len(list(all_tasks)) == 4 and all_tasks.n_duplicates == 0


# --- hashing ----------------------------------------------------------------


def test_corpus_hashes_same_text_same_input_hash() -> None:
    a = set_hashes({"text": "Hello", "label": "A", "meta": {"source": "x"}})
    b = set_hashes({"text": "Hello", "label": "B"})
    c = set_hashes({"text": "Hello!", "label": "A"})
    assert a["_input_hash"] == b["_input_hash"] != c["_input_hash"]
    assert a["_task_hash"] != b["_task_hash"]
    assert a["_task_hash"] != c["_task_hash"]


@pytest.mark.parametrize(
    "task",
    [
        {"text": "x", "cats": {"A": 1.0, "B": 0.0}},
        {"text": "x", "spans": [{"start": 0, "end": 1, "label": "X"}]},
        {"text": "x", "labels": ["A", "B"]},
        {"text": "x", "options": [{"id": "A"}]},
    ],
)
def test_corpus_task_keys_change_task_hash_not_input_hash(task: dict) -> None:
    plain = set_hashes({"text": "x"})
    hashed = set_hashes(task)
    assert hashed["_input_hash"] == plain["_input_hash"]
    assert hashed["_task_hash"] != plain["_task_hash"]


def test_corpus_hashes_ignore_key_order_and_input_keys_extend() -> None:
    a = {"text": "x", "cats": {"A": 1.0, "B": 0.0}}
    b = {"cats": {"B": 0.0, "A": 1.0}, "text": "x"}
    assert get_task_hash(a) == get_task_hash(b)
    assert get_input_hash({"text": "x", "html": "<b>x</b>"}) != get_input_hash(
        {"text": "x"}
    )
    assert get_input_hash({"text": "x", "html": "<b>x</b>"}, input_keys=("text",)) == (
        get_input_hash({"text": "x"})
    )


def test_corpus_set_hashes_keeps_existing_unless_overwrite() -> None:
    task = {"text": "x", "label": "A", "_input_hash": 1, "_task_hash": 2}
    assert set_hashes(task).items() >= task.items()  # kept; the keys are added
    fresh = set_hashes(task, overwrite=True)
    assert fresh["_input_hash"] == get_input_hash({"text": "x"})
    assert fresh["_task_hash"] == get_task_hash({"text": "x", "label": "A"})
    assert task["_input_hash"] == 1  # the input is not changed
    partial = set_hashes({"text": "x", "label": "A", "_input_hash": 7})
    assert partial["_input_hash"] == 7
    assert partial["_task_hash"] == get_task_hash(
        {"text": "x", "label": "A", "_input_hash": 7}
    )


def test_corpus_prodigy_lines_keep_hashes_and_fields(tmp_path: Path) -> None:
    line = {
        "text": "Apple buys a startup",
        "label": "TECH",
        "answer": "accept",
        "accept": ["TECH"],
        "options": [{"id": "TECH", "text": "TECH"}],
        "meta": {"source": "news", "cost": 2.5},
        "_input_hash": -1234,
        "_task_hash": 5678,
        "_annotator_id": "news-alice",
        "_session_id": "news-alice",
        "_timestamp": 1700000000,
        "_view_id": "choice",
    }
    path = tmp_path / "answers.jsonl"
    srsly.write_jsonl(path, [line])
    (task,) = list(Source(path))
    # Every field as it was; the identity keys are added from the content.
    assert {k: v for k, v in task.items() if k not in ("_input_key", "_task_key")} == (
        line
    )


def test_corpus_hashes_are_32bit_and_stable_across_processes() -> None:
    tasks = [{"text": "Héllo wörld", "label": "A"}, {"text": "x", "cats": {"B": 0.5}}]
    here = [(get_input_hash(t), get_task_hash(t)) for t in tasks]
    assert all(-(2**31) <= h < 2**31 for pair in here for h in pair)
    code = (
        "import srsly, sys\n"
        "from spacy_al.corpus import get_input_hash, get_task_hash\n"
        "tasks = srsly.json_loads(sys.argv[1])\n"
        "print(srsly.json_dumps([[get_input_hash(t), get_task_hash(t)] for t in tasks]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, srsly.json_dumps(tasks)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert [tuple(pair) for pair in srsly.json_loads(out.stdout)] == here


# --- validation and gold labels ------------------------------------------------


def test_corpus_validate_task_normalizes_without_mutating() -> None:
    record = {"text": "x", "cats": {"A": 1}, "tokens": ["x"]}
    task = validate_task(record)
    assert task["meta"] == {} and "meta" not in record
    assert task["cats"] == {"A": 1} and task["tokens"] == ["x"]
    assert isinstance(task["_input_hash"], int) and isinstance(task["_task_hash"], int)


@pytest.mark.parametrize(
    "task,expected",
    [
        ({"text": "x", "label": "A"}, ["A"]),
        ({"text": "x", "label": "A", "answer": "accept"}, ["A"]),
        ({"text": "x", "label": "A", "answer": "reject"}, None),
        ({"text": "x", "label": "A", "answer": "ignore"}, None),
        ({"text": "x", "labels": ["A", "B"]}, ["A", "B"]),
        ({"text": "x", "cats": {"A": 0.9, "B": 0.5, "C": 0.1}}, ["A", "B"]),
        ({"text": "x", "cats": {"A": 0.0, "B": 0.2}}, []),
        ({"text": "x", "options": [{"id": "A"}, {"id": "B"}], "accept": ["B"]}, ["B"]),
        ({"text": "x"}, None),
        ({"text": "x", "spans": []}, None),
    ],
)
def test_corpus_gold_labels(task: dict, expected: list[str] | None) -> None:
    assert gold_labels(task) == expected


# --- formats ---------------------------------------------------------------


def test_corpus_jsonl_round_trip(tmp_path: Path) -> None:
    tasks = [
        validate_task({"text": "one", "label": "A"}),
        validate_task({"text": "two", "labels": ["A", "B"], "meta": {"cost": 3}}),
        validate_task({"text": "ünï", "cats": {"A": 0.25}}),
    ]
    path = tmp_path / "out" / "tasks.jsonl"
    assert write_jsonl(path, iter(tasks)) == 3
    assert list(read_source(path)) == tasks
    assert list(read_jsonl(path)) == tasks


def test_corpus_read_jsonl_raw_and_errors(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [GOOD[0], GOOD[0], '{"text": ""}'])
    assert (
        list(itertools.islice(read_jsonl(path, validate=False), 2))
        == [{"text": "first text", "label": "A"}] * 2
    )
    with pytest.raises(SourceError, match=r"E009.*line 3.*field 'text'"):
        list(read_jsonl(path))


def test_corpus_csv_round_trip(tmp_path: Path) -> None:
    rows = [
        ["id", "body", "tags", "cost"],
        ["1", "Hello, world", "A|B", "2"],
        ["2", "a text\nover two lines", "C", "0.5"],
        ["", "", "", ""],
        ["3", "no tags", "", "1"],
    ]
    path = write_csv(tmp_path / "data.csv", rows)
    source = Source(path, text_column="body", label_column="tags", label_sep="|")
    tasks = list(source)
    assert [(t["text"], t.get("labels")) for t in tasks] == [
        ("Hello, world", ["A", "B"]),
        ("a text\nover two lines", ["C"]),
        ("no tags", None),
    ]
    assert tasks[0]["meta"] == {"id": "1", "cost": 2.0}
    assert tasks[1]["meta"] == {"id": "2", "cost": 0.5}
    single = list(Source(path, text_column="body", label_column="tags"))
    assert single[0]["label"] == "A|B"


def test_corpus_csv_error_line_counts_multiline_rows(tmp_path: Path) -> None:
    rows = [["text", "label"], ["two\nlines", "A"], ["", "B"]]
    path = write_csv(tmp_path / "data.csv", rows)
    with pytest.raises(SourceError) as exc_info:
        list(Source(path))
    assert exc_info.value.line == 4


def test_corpus_txt_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes("\ufefffirst line\r\n\n   \nsecond  line \nthird".encode())
    source = Source(path)
    assert [t["text"] for t in source] == ["first line", "second  line ", "third"]
    assert source.n_read == 3
    assert all(t["meta"] == {} and "label" not in t for t in Source(path))


def test_corpus_docbin_round_trip(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    doc1 = nlp.make_doc("Alice works at Acme in Berlin")
    doc1.ents = [doc1.char_span(0, 5, "PERSON"), doc1.char_span(15, 19, "ORG")]
    doc2 = nlp.make_doc("A great film")
    doc2.cats = {"POS": 1.0, "NEG": 0.0}
    doc3 = nlp.make_doc("No entities here")
    doc3.ents = []
    path = tmp_path / "data.spacy"
    DocBin(docs=[doc1, doc2, doc3]).to_disk(path)
    tasks = list(Source(path))
    assert [t["text"] for t in tasks] == [d.text for d in (doc1, doc2, doc3)]
    assert tasks[0]["spans"] == [
        {"start": 0, "end": 5, "label": "PERSON"},
        {"start": 15, "end": 19, "label": "ORG"},
    ]
    assert tasks[1]["cats"] == {"POS": 1.0, "NEG": 0.0} and "spans" not in tasks[1]
    assert tasks[2]["spans"] == [] and "cats" not in tasks[2]
    assert list(Source(path, vocab=nlp.vocab)) == tasks


# --- laziness --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,good,bad",
    [
        ("big.jsonl", '{{"text": "text {i}"}}', "{not json"),
        ("big.txt", "text {i}", b"\xff\xfe"),
        ("big.csv", "text {i},A", "too,many,fields"),
    ],
)
def test_corpus_reading_is_lazy(
    tmp_path: Path, name: str, good: str, bad: str | bytes
) -> None:
    n = 20_000
    header = ["text,label"] if name.endswith(".csv") else []
    lines = [*header, *(good.format(i=i) for i in range(n)), bad]
    path = write_lines(tmp_path / name, lines)
    source = Source(path)
    first = list(itertools.islice(source, 3))
    assert [t["text"] for t in first] == ["text 0", "text 1", "text 2"]
    assert source.n_read == 3
    with pytest.raises(SourceError) as exc_info:
        list(source)
    assert exc_info.value.line == n + 1 + len(header)


# --- real corpora ------------------------------------------------------------


def test_corpus_reads_sms_spam_with_dedupe(corpora_dir: Path) -> None:
    source = Source(corpora_dir / "sms_spam" / "train.jsonl")
    tasks = list(source)
    assert source.n_read == 4460
    assert len(tasks) == 4161 == len({t["text"] for t in tasks})
    assert source.n_duplicates == 4460 - 4161 and source.n_skipped == 0
    assert {t["label"] for t in tasks} == {"ham", "spam"}


def test_corpus_wnut17_spans_validate(corpora_dir: Path) -> None:
    source = Source(corpora_dir / "wnut17" / "train.jsonl", dedupe=False)
    tasks = list(source)
    assert len(tasks) == source.n_read == 3394 and source.n_skipped == 0
    assert sum(len(t["spans"]) for t in tasks) > 0
    assert all(t["text"].split(" ") == t["tokens"] for t in tasks)


# --- properties ----------------------------------------------------------------

valid_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80
).filter(lambda text: bool(text.strip()))


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(valid_text, min_size=1, max_size=8, unique=True))
def test_corpus_texts_round_trip_through_jsonl(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tasks.jsonl"
        assert write_jsonl(path, ({"text": text} for text in texts)) == len(texts)
        tasks = list(read_source(path))
    assert [t["text"] for t in tasks] == texts
    assert [t["_input_hash"] for t in tasks] == [
        get_input_hash({"text": t}) for t in texts
    ]


@settings(max_examples=60, deadline=None)
@given(
    text=valid_text,
    cats=st.dictionaries(
        st.text(min_size=1, max_size=5).filter(str.strip),
        st.floats(min_value=0.0, max_value=1.0),
        max_size=4,
    ),
)
def test_corpus_validation_is_idempotent_and_deterministic(
    text: str, cats: dict
) -> None:
    task = validate_task({"text": text, "cats": cats})
    assert validate_task(task) == task
    again = validate_task({"cats": dict(reversed(cats.items())), "text": text})
    assert (again["_input_hash"], again["_task_hash"]) == (
        task["_input_hash"],
        task["_task_hash"],
    )


# --- the fast path for plain records ---------------------------------------------

# Hashes of plain records as stored by earlier versions (before the fast path):
# answers in existing databases must keep matching their pool texts.
STORED_HASHES = [
    ("Hello", 1376781240, -1435320180),
    ('Héllo wörld ✓ "q" / \\ \n\t😀', 1293480038, 177129002),
]


@pytest.mark.parametrize("text,input_hash,task_hash", STORED_HASHES)
@pytest.mark.parametrize("meta", [None, {"source": "sms", "n": 3}])
def test_corpus_plain_records_keep_their_stored_hashes(
    text: str, input_hash: int, task_hash: int, meta: dict | None
) -> None:
    record = {"text": text} if meta is None else {"text": text, "meta": meta}
    task = validate_task(record)
    assert (task["_input_hash"], task["_task_hash"]) == (input_hash, task_hash)
    assert (get_input_hash(task), get_task_hash(task)) == (input_hash, task_hash)


def _outcome(record: object) -> tuple:
    """What validate_task makes of a record: the task with its key order, or the
    error's message and field."""
    try:
        task = validate_task(record, path="x.jsonl", line=3)
    except SourceError as e:
        return ("refused", str(e), e.field)
    return ("task", task, list(task), list(task["meta"]))


def _full_check_outcome(record: object) -> tuple:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "_plain_task", lambda record: None)
        return _outcome(record)


# Any character, with half surrogate pairs (which only the full check refuses)
# drawn often enough to matter.
any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]))
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(any_char, max_size=6),
)
plain_like = st.fixed_dictionaries(
    {"text": st.one_of(st.text(any_char, max_size=20), scalar)},
    optional={
        "meta": st.one_of(
            st.dictionaries(
                st.one_of(st.text(any_char, max_size=5), st.just("cost")),
                st.one_of(scalar, st.lists(scalar, max_size=2)),
                max_size=3,
            ),
            scalar,
        ),
        "label": st.text(max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(record=plain_like)
def test_corpus_fast_path_accepts_and_refuses_as_the_full_check(record: dict) -> None:
    assert _outcome(record) == _full_check_outcome(record)


@pytest.mark.parametrize(
    "record",
    [
        {"text": "   "},
        {"text": "half \ud800 pair"},
        {"text": "x", "meta": {"n": float("nan")}},
        {"text": "x", "meta": {"n": 2**64}},
        {"text": "x", "meta": {"cost": -1}},
        {"text": "x", "meta": {"\udfff": 1}},
        {"text": "x", "meta": []},
        {"text": "x", "meta": {"a": [1, {"b": float("inf")}]}},
    ],
)
def test_corpus_fast_path_refuses_with_the_full_check_message(record: dict) -> None:
    outcome = _outcome(record)
    assert outcome[0] == "refused"
    assert outcome == _full_check_outcome(record)


def test_corpus_source_reads_plain_lines_as_the_full_check_does(tmp_path: Path) -> None:
    lines = [
        '{"text": "plain"}',
        '{"meta": {"id": 7, "ok": true}, "text": "meta first"}',
        '{"text": "labelled", "label": "A"}',
        '{"text": "nested", "meta": {"tags": ["a"]}}',
        '{"text": "plain"}',
    ]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    fast = list(Source(path))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "_plain_task", lambda record: None)
        full = list(Source(path))
    assert [(t, list(t)) for t in fast] == [(t, list(t)) for t in full]
    assert [t["text"] for t in fast] == ["plain", "meta first", "labelled", "nested"]
