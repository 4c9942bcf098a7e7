import itertools
import json
import subprocess
import sys

import pytest
import spacy
import srsly
from spacy.tokens import DocBin
from spacy_al.recipes.ner import correct, manual, teach
from spacy_al.recipes.textcat import build_components
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.errors import SourceError
from spacy_al.ner.loop import NERLoop, oracle_answer
from spacy_al.simulate.textcat import oracle_answer as textcat_oracle
from spacy_al.store import Store

runner = CliRunner()
LABELS = "location,person"


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


@pytest.fixture
def wnut(corpora_dir, tmp_path):
    """120 WNUT17 tweets, 80 with a location or person, 40 with neither."""
    keep = {"location", "person"}
    with_ents, without = [], []
    for record in srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"):
        record["spans"] = [s for s in record["spans"] if s["label"] in keep]
        group = with_ents if record["spans"] else without
        if len(group) < (80 if record["spans"] else 40):
            group.append(record)
        if len(with_ents) + len(without) == 120:
            break
    records = [
        r for pair in itertools.zip_longest(with_ents, without) for r in pair if r
    ]
    source = tmp_path / "tweets.jsonl"
    srsly.write_jsonl(
        source, ({"text": r["text"], "tokens": r["tokens"]} for r in records)
    )
    return source, {r["text"]: r["spans"] for r in records}


def annotate(loop: NERLoop, gold: dict, n: int, *, mode: str) -> None:
    """Answer ``n`` tasks as a careful annotator, learning after each batch."""
    while loop.pool.n_done < n:
        tasks = loop.select(loop.batch_size)
        if not tasks:
            break
        loop.answer(
            [oracle_answer(t, gold[t["text"]], mode=mode) for t in tasks], annotator="a"
        )
        if loop.ready_to_learn:
            loop.learn()


def test_recipes_ner_teach_happy_path(wnut, tmp_path):
    source, gold = wnut
    patterns = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(patterns, [{"label": "location", "pattern": "london"}])
    db = str(tmp_path / "al.db")
    components = teach(
        "tweets", source, label=LABELS, db=db, patterns=patterns, batch_size=10
    )
    assert components["view_id"] == "ner" and components["task"] == "ner"
    assert components["labels"] == ["location", "person"]
    assert components["exclusive"] is False
    loop = components["loop"]
    assert isinstance(loop, NERLoop) and len(loop.pool) == len(gold)  # deduplicated
    annotate(loop, gold, 30, mode="teach")
    stored = Store(db).get_answers("tweets")
    assert len(stored) == loop.pool.n_done >= 30
    assert {a["answer"] for a in stored} <= {"accept", "reject"}
    assert all(len(a["spans"]) == 1 and a["_view_id"] == "ner" for a in stored)
    assert loop.version >= 3
    # A restart resumes: answered texts are not served again, the model's
    # checkpoint (none saved here) or the stored answers bring it back.
    again = teach("tweets", source, label=LABELS, db=db)
    assert again["loop"].pool.n_done == loop.pool.n_done
    assert again["loop"].updater.n_targets == len(loop.targets)
    served = {t["_input_hash"] for t in again["loop"].select(len(again["loop"].pool))}
    assert not served & {a["_input_hash"] for a in stored}


@pytest.mark.parametrize("recipe", [correct, manual])
def test_recipes_ner_manual_views_store_gold(recipe, wnut, tmp_path):
    source, gold = wnut
    db = str(tmp_path / "al.db")
    components = recipe("gold", source, label=LABELS, db=db, batch_size=10)
    assert components["view_id"] == "ner_manual"
    loop = components["loop"]
    annotate(loop, gold, 20, mode="correct")
    stored = Store(db).get_answers("gold")
    assert len(stored) == 20 and all(a["_view_id"] == "ner_manual" for a in stored)
    assert all(t.is_gold for t in loop.targets)
    by_text = {a["text"]: a["spans"] for a in stored}
    for text, spans in by_text.items():
        assert [(s["start"], s["end"], s["label"]) for s in spans] == [
            (s["start"], s["end"], s["label"]) for s in gold[text]
        ]


@pytest.mark.parametrize(
    "kwargs,error,code",
    [
        ({"label": None}, ValueError, "E535"),
        ({"label": LABELS, "arch": "crf"}, ValueError, "E533"),
        ({"label": LABELS, "strategy": "nonsense:mnlp"}, ValueError, "E222"),
        ({"label": LABELS, "strategy": "diverse:margin"}, ValueError, "E531"),
        ({"label": "person", "patterns": "bad_label"}, ValueError, "E539"),
        ({"label": LABELS, "patterns": "bad_pattern"}, SourceError, "E540"),
    ],
)
def test_recipes_ner_bad_input_is_refused(wnut, tmp_path, kwargs, error, code):
    source, _ = wnut
    files = {
        "bad_label": '{"label": "location", "pattern": "london"}\n',
        "bad_pattern": '{"label": "person"}\n',
    }
    if kwargs.get("patterns") in files:
        path = tmp_path / "patterns.jsonl"
        path.write_text(files[kwargs["patterns"]])
        kwargs = {**kwargs, "patterns": path}
    with pytest.raises(error, match=code):
        teach("tweets", source, db=str(tmp_path / "al.db"), **kwargs)


def test_recipes_ner_bad_source_names_file_and_line(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine text"}\n{"text": ""}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl.*line 2"):
        teach("x", source, label=LABELS, db=str(tmp_path / "al.db"))
    components = teach(
        "x", source, label=LABELS, db=str(tmp_path / "al.db"), skip_invalid=True
    )
    assert len(components["loop"].pool) == 1 and components["source"]["skipped"] == 1


def test_recipes_ner_checkpoint_with_other_labels_is_refused(wnut, tmp_path):
    source, gold = wnut
    db = str(tmp_path / "al.db")
    components = teach("tweets", source, label=LABELS, db=db)
    annotate(components["loop"], gold, 10, mode="teach")
    components["checkpoint"].save(components["loop"].updater)
    resumed = teach("tweets", source, label=LABELS, db=db)
    assert resumed["loop"].version == components["loop"].version
    with pytest.raises(ValueError, match="E545"):
        teach("tweets", source, label="location,person,group", db=db)


def _spacy_train(corpus, out):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(corpus / "config.cfg"),
            "--paths.train",
            str(corpus / "train.spacy"),
            "--paths.dev",
            str(corpus / "dev.spacy"),
            "--output",
            str(out),
            "--training.max_epochs",
            "1",
            "--training.max_steps",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_recipes_ner_train_and_export_joint_pipeline(app, wnut, tmp_path):
    source, gold = wnut
    db = str(tmp_path / "al.db")
    # Binary answers (ner.teach), gold answers (ner.correct) and text categories
    # on the same tweets.
    teach_loop = teach("teach", source, label=LABELS, db=db)["loop"]
    teach_loop.cold_start = False  # binary answers, as once the cold start is over
    annotate(teach_loop, gold, 30, mode="teach")
    annotate(
        correct("gold", source, label=LABELS, db=db)["loop"], gold, 40, mode="correct"
    )
    cats = build_components(
        "topics",
        source,
        labels=["has_entity", "none"],
        view_id="classification",
        strategy="random",
        db=db,
    )
    loop = cats["loop"]
    while loop.pool.n_done < 60:
        tasks = loop.select(10)
        loop.answer(
            [
                textcat_oracle(
                    t,
                    ["has_entity" if gold[t["text"]] else "none"],
                    exclusive=True,
                    mode="correct",
                )
                for t in tasks
            ],
            annotator="a",
        )
    # train: one pipeline with both components.
    out = tmp_path / "model"
    result = runner.invoke(
        app,
        [
            "train",
            str(out),
            "--textcat",
            "topics",
            "--ner",
            "teach,gold",
            "--db",
            db,
            "--max-epochs",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Best macro F1" in result.output and "Best entity F1" in result.output
    nlp = spacy.load(out)
    assert nlp.pipe_names == ["textcat", "ner"]
    assert set(nlp.get_pipe("ner").labels) == {"location", "person"}
    doc = nlp("I went to London with Justin")
    assert set(doc.cats) == {"has_entity", "none"}
    # data-to-spacy: merged Docs; binary answers partial with rejected spans.
    corpus = tmp_path / "corpus"
    result = runner.invoke(
        app,
        [
            "data-to-spacy",
            str(corpus),
            "--textcat",
            "topics",
            "--ner",
            "teach,gold",
            "--db",
            db,
        ],
    )
    assert result.exit_code == 0, result.output
    config = spacy.util.load_config(corpus / "config.cfg")
    assert config["nlp"]["pipeline"] == ["tok2vec", "textcat", "ner"]
    assert config["components"]["ner"]["incorrect_spans_key"] == "incorrect_spans"
    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(corpus / "train.spacy").get_docs(vocab))
    docs += list(DocBin().from_disk(corpus / "dev.spacy").get_docs(vocab))
    store = Store(db)
    n_texts = len(
        {
            a["_input_hash"]
            for name in ("teach", "gold", "topics")
            for a in store.get_answers(name)
        }
    )
    assert len(docs) == n_texts
    partial = [d for d in docs if d.spans.get("incorrect_spans")]
    assert partial and all(any(t.ent_iob_ == "" for t in d) for d in partial)
    assert any(d.cats and d.has_annotation("ENT_IOB") for d in docs)
    dev = list(DocBin().from_disk(corpus / "dev.spacy").get_docs(vocab))
    assert dev and all(
        all(t.ent_iob_ for t in d) or not d.has_annotation("ENT_IOB") for d in dev
    )
    proc = _spacy_train(corpus, tmp_path / "trained")
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = spacy.load(tmp_path / "trained" / "model-best")
    assert {"textcat", "ner"} <= set(best.pipe_names)
    assert set(best.get_pipe("ner").labels) == {"location", "person"}


def test_recipes_ner_export_of_binary_answers_alone_trains_under_spacy(
    app, wnut, tmp_path
):
    source, gold = wnut
    db = str(tmp_path / "al.db")
    teach_loop = teach("teach", source, label=LABELS, db=db)["loop"]
    teach_loop.cold_start = False  # binary answers, as once the cold start is over
    annotate(teach_loop, gold, 40, mode="teach")
    corpus = tmp_path / "corpus"
    result = runner.invoke(
        app, ["data-to-spacy", str(corpus), "--ner", "teach", "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "binary (ner.teach) answers" in result.output
    proc = _spacy_train(corpus, tmp_path / "trained")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "trained" / "model-best" / "ner").exists()


def test_recipes_ner_train_needs_a_dataset(app, tmp_path):
    result = runner.invoke(
        app, ["train", str(tmp_path / "m"), "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 1
    assert "--textcat NAMES and/or --ner NAMES" in " ".join(result.output.split())


def test_recipes_ner_simulate_reports_tokens(app, corpora_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    test = tmp_path / "test.jsonl"
    srsly.write_jsonl(
        train,
        itertools.islice(srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"), 200),
    )
    srsly.write_jsonl(
        test,
        itertools.islice(srsly.read_jsonl(corpora_dir / "wnut17" / "test.jsonl"), 80),
    )
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "ner",
            str(train),
            "--eval",
            str(test),
            "--strategies",
            "mnlp,random",
            "--seed-size",
            "20",
            "--batch-size",
            "20",
            "--budget",
            "60",
            "--seeds",
            "2",
            "--max-epochs",
            "2",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tokens to target" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "ner" and results["metric"] == "entity f1"
    assert 0 <= results["full_data_score"] <= 1
    unique = {r["text"]: r["tokens"] for r in srsly.read_jsonl(train)}
    assert results["pool_size"] == len(unique)
    assert results["pool_tokens"] == sum(len(tokens) for tokens in unique.values())
    for name in ("mnlp", "random"):
        entry = results["strategies"][name]
        assert [n for n, _ in entry["curve"]] == [20, 40, 60]
        assert len(entry["tokens_to_target"]) == 2
        tokens = [t for t, _ in entry["token_curve"]]
        assert tokens == sorted(tokens) and 0 < tokens[-1] < results["pool_tokens"]
    assert (out / "curve.png").stat().st_size > 10_000


def test_recipes_ner_simulate_needs_gold_spans(app, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "no spans here"}\n')
    result = runner.invoke(
        app,
        [
            "simulate",
            "ner",
            str(train),
            "--eval",
            str(train),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert "E537" in result.output


def test_recipes_ner_pool_vectors_are_trained_once_and_cached(wnut, tmp_path):
    source, gold = wnut
    db = str(tmp_path / "al.db")
    components = correct("tweets", source, label=LABELS, db=db, vectors="pool")
    nlp = components["loop"].updater.model.nlp
    assert nlp.vocab.vectors.mode == "floret" and nlp.vocab.vectors.shape[0] > 0
    assert nlp.config["components"]["ner"]["model"]["tok2vec"]["pretrained_vectors"]
    cached = list((components["checkpoint"].folder / "vectors").iterdir())
    assert len(cached) == 1
    # A second dataset on the same source reads the cache of its own folder;
    # --vectors none builds a ner without them.
    plain = correct("plain", source, label=LABELS, db=db, vectors="none")
    plain_nlp = plain["loop"].updater.model.nlp
    assert not plain_nlp.config["components"]["ner"]["model"]["tok2vec"].get(
        "pretrained_vectors"
    )
    with pytest.raises(ValueError, match="E548"):
        correct("bad", source, label=LABELS, db=db, vectors="glove")


def test_recipes_ner_pretrained_tok2vec_is_cached_beside_the_dataset(
    wnut, tmp_path, monkeypatch, capsys
):
    import functools

    import spacy_al.recipes.ner as ner_recipes

    from spacy_al.pretraining import PretrainSettings, prepare_tok2vec

    # One short epoch (the recipe's default is minutes on 2 cores).
    quick = functools.partial(prepare_tok2vec, settings=PretrainSettings(epochs=1))
    monkeypatch.setattr(ner_recipes, "prepare_tok2vec", quick)
    source, gold = wnut
    db = str(tmp_path / "al.db")
    components = correct(
        "tweets", source, label=LABELS, db=db, vectors="none", pretrain="pool"
    )
    loop = components["loop"]
    nlp = loop.updater.model.nlp
    assert nlp.pipe_names == ["tok2vec", "ner"]
    saved = list((components["checkpoint"].folder / "pretrain").glob("*/tok2vec.bin"))
    assert len(saved) == 1
    assert nlp.config["initialize"]["init_tok2vec"] == str(saved[0].resolve())
    assert "Pretraining tok2vec" in capsys.readouterr().err  # the progress bar
    # The loop learns with it: a batch of answers, a fit, then predictions.
    annotate(loop, gold, 10, mode="correct")
    assert loop.updater.version >= 1
    with pytest.raises(ValueError, match="E1232"):
        correct("bad", source, label=LABELS, db=db, pretrain="bert")
