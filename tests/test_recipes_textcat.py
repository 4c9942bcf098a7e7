import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy_al.recipes.textcat import build_components
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


@pytest.fixture
def sms_sample(corpora_dir, tmp_path):
    """200 SMS texts with their gold labels, as a source file."""
    path = tmp_path / "sms.jsonl"
    records = list(
        itertools.islice(
            srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl"), 200
        )
    )
    srsly.write_jsonl(path, records)
    return path, {r["text"]: r["label"] for r in records}


def label_with_oracle(components, gold, n):
    loop = components["loop"]
    while loop.pool.n_done < n:
        tasks = loop.select(loop.batch_size)
        answers = []
        for t in tasks:
            if gold[t["text"]] == t["label"]:
                answers.append({**t, "answer": "accept"})
            else:  # reject → correct in one step
                answers.append({**t, "answer": "reject", "accept": [gold[t["text"]]]})
        loop.answer(answers, annotator="alice")
        if loop.ready_to_learn:
            loop.learn()


def test_recipes_textcat_teach_stores_answers_and_resumes(sms_sample, tmp_path):
    source, gold = sms_sample
    db = str(tmp_path / "al.db")
    components = build_components(
        "sms",
        source,
        labels=["ham", "spam"],
        view_id="classification",
        strategy="margin",
        db=db,
    )
    assert components["view_id"] == "classification"
    label_with_oracle(components, gold, 40)
    components["checkpoint"].save(components["loop"].updater)
    assert Store(db).count_answers("sms") == 40
    # A new session resumes: answered texts are left out, the model version continues.
    again = build_components(
        "sms",
        source,
        labels=["ham", "spam"],
        view_id="classification",
        strategy="margin",
        db=db,
    )
    loop = again["loop"]
    assert loop.pool.n_done == 40
    assert loop.version == components["loop"].version
    served = {t["text"] for t in loop.select(len(loop.pool) - 40)}
    answered = {a["text"] for a in Store(db).get_answers("sms")}
    assert not served & answered


def test_recipes_textcat_train_and_data_to_spacy_train_with_spacy(
    app, sms_sample, tmp_path
):
    source, gold = sms_sample
    db = str(tmp_path / "al.db")
    components = build_components(
        "sms",
        source,
        labels=["ham", "spam"],
        view_id="classification",
        strategy="margin",
        db=db,
    )
    label_with_oracle(components, gold, 120)
    # train: a pipeline that spacy.load reads and that predicts the labels.
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", str(out), "--textcat", "sms", "--db", db])
    assert result.exit_code == 0, result.output
    assert "Best macro F1" in result.output
    nlp = spacy.load(out)
    assert set(nlp("Call now to WIN a free prize").cats) == {"ham", "spam"}
    # data-to-spacy: DocBins and a config that `spacy train` runs unchanged.
    corpus = tmp_path / "corpus"
    result = runner.invoke(
        app, ["data-to-spacy", str(corpus), "--textcat", "sms", "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in corpus.iterdir()} == {
        "train.spacy",
        "dev.spacy",
        "config.cfg",
    }
    # The command it prints runs as printed and saves the trained pipeline.
    (command,) = [
        line.strip()
        for line in result.output.splitlines()
        if line.strip().startswith("python -m spacy train")
    ]
    argv = shlex.split(command)
    trained = Path(argv[argv.index("--output") + 1])
    assert trained.parent == tmp_path
    proc = subprocess.run(
        [sys.executable, *argv[1:], "--training.max_epochs", "1"]
        + ["--training.max_steps", "30"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    best = spacy.load(trained / "model-best")
    assert "textcat" in best.pipe_names
    assert set(best("free entry").cats) == {"ham", "spam"}


def test_recipes_textcat_bad_source_names_file_and_line(app, tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{"text": 3}\n')
    db = str(tmp_path / "al.db")
    with pytest.raises(ValueError, match=r"bad.jsonl.*line 2.*'text'"):
        build_components(
            "x",
            source,
            labels=["a", "b"],
            view_id="classification",
            strategy="margin",
            db=db,
        )
    # A refused source creates nothing: the source is read before the dataset row.
    store = Store(db)
    assert not store.has_dataset("x")
    components = build_components(
        "x",
        source,
        labels=["a", "b"],
        view_id="classification",
        strategy="margin",
        db=db,
        skip_invalid=True,
    )
    assert len(components["loop"].pool) == 1 and components["source"]["skipped"] == 1


def test_recipes_textcat_simulate_writes_results_and_plot(app, corpora_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    test = tmp_path / "test.jsonl"
    srsly.write_jsonl(
        train,
        itertools.islice(srsly.read_jsonl(corpora_dir / "trec6" / "train.jsonl"), 400),
    )
    srsly.write_jsonl(
        test,
        itertools.islice(srsly.read_jsonl(corpora_dir / "trec6" / "test.jsonl"), 150),
    )
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "textcat",
            str(train),
            "--eval",
            str(test),
            "--strategies",
            "margin,random",
            "--seed-size",
            "20",
            "--batch-size",
            "20",
            "--budget",
            "100",
            "--seeds",
            "2",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "macro f1" and 0 < results["full_data_score"] <= 1
    for name in ("margin", "random"):
        entry = results["strategies"][name]
        assert len(entry["labels_to_target"]) == 2
        assert [n for n, _ in entry["curve"]] == [20, 40, 60, 80, 100]
        assert 0 <= entry["auc"] <= 1
    assert (out / "curve.png").stat().st_size > 10_000


def test_recipes_textcat_help_lists_every_recipe_in_one_line(app):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in (
        "textcat.teach",
        "textcat.correct",
        "textcat.manual",
        "train",
        "data-to-spacy",
        "simulate",
        "db-in",
        "db-out",
        "stats",
        "drop",
    ):
        assert name in result.output
