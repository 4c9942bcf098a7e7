import ast
import itertools
import math
from pathlib import Path

import pytest
import srsly
from hypothesis import given
from hypothesis import strategies as st

from spacy_al.benchmarks import next_example
from spacy_al.benchmarks import speed as bench_speed


@pytest.fixture(scope="module")
def sms_records(corpora_dir):
    """(text, gold labels) of the first 200 SMS spam training texts."""
    return bench_speed.read_labelled(corpora_dir / "sms_spam" / "train.jsonl")[:200]


@pytest.fixture(scope="module")
def sms_raw(corpora_dir):
    path = corpora_dir / "sms_spam" / "train.jsonl"
    return list(itertools.islice(srsly.read_jsonl(path), 200))


@pytest.fixture(scope="module")
def wnut_raw(corpora_dir):
    path = corpora_dir / "wnut17" / "train.jsonl"
    return list(itertools.islice(srsly.read_jsonl(path), 100))


def _well_formed(q: dict, n: int) -> bool:
    return q["n"] == n and 0 <= q["p50"] <= q["p95"] <= q["max"]


@given(
    texts=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=8),
    n=st.integers(1, 40),
)
def test_bench_speed_replicate_texts_gives_n_distinct_texts(texts, n):
    out = bench_speed.replicate_texts(texts, n)
    assert len(out) == n
    assert len(set(out)) == n
    base = list(dict.fromkeys(texts))
    assert out[: len(base)] == base[:n]


@pytest.mark.parametrize("texts,n", [([], 5), (["a"], 0)])
def test_bench_speed_replicate_texts_rejects_an_impossible_pool(texts, n):
    with pytest.raises(ValueError, match="E713"):
        bench_speed.replicate_texts(texts, n)


@pytest.mark.parametrize(
    "values,p50,p95,top",
    [
        ([1.0], 1.0, 1.0, 1.0),
        ([float(i) for i in range(100, 0, -1)], 50.5, 95.0, 100.0),
    ],
)
def test_bench_speed_quantiles_uses_nearest_rank(values, p50, p95, top):
    q = bench_speed.quantiles(values)
    assert (q["n"], q["p50"], q["p95"], q["max"]) == (len(values), p50, p95, top)


def test_bench_speed_machine_info_reports_cores_memory_and_versions():
    info = bench_speed.machine_info()
    assert info["nproc"] >= 1
    assert info["ram_bytes"] > 0
    assert info["spacy"].startswith("3.")
    assert len(info["load_average"]) == 3


def test_bench_speed_next_example_counts_every_answer(sms_records, tmp_path):
    r = next_example.measure_next_example(
        sms_records,
        pool_size=300,
        build=bench_speed.textcat_session,
        answers=25,
        annotators=3,
        think=(0.02, 0.05),  # gaps between requests: the trainer runs
        workdir=tmp_path,
    )
    assert r["pool_size"] == 300
    assert r["answers"] == 26  # the 25 measured, and the warm-up's
    assert _well_formed(r["answer_then_next"], 25)
    assert _well_formed(r["next_task"], 25)
    assert r["model_updates"] >= 1 and r["final_version"] >= 1
    assert r["error"] is None


def test_bench_speed_next_example_over_http_counts_every_answer(sms_records, tmp_path):
    # The JSON API server in a process of its own, the annotators here.
    r = next_example.measure_next_example_http(
        sms_records,
        pool_size=300,
        answers=20,
        annotators=2,
        think=(0.02, 0.05),
        workdir=tmp_path,
        timeout=120.0,
    )
    assert r["over"] == "http" and r["learner"] == "thread"
    assert r["answers"] == 21  # the 20 measured, and the warm-up's (server side)
    assert _well_formed(r["answer_then_next"], 20)
    assert _well_formed(r["next_task"], 20)
    assert r["answer"]["n"] == 20
    assert r["error"] is None and r["dry_waits"] >= 0


@pytest.mark.parametrize("model", ["linear", "bow", "ensemble", "ner"])
def test_bench_speed_update_bumps_the_version_per_batch(model, sms_raw, wnut_raw):
    records = wnut_raw if model == "ner" else sms_raw
    r = bench_speed.measure_update(records, model=model, batches=2, batch_size=5)
    assert r["model"] == model
    assert _well_formed(r["seconds"], 2)


def test_bench_speed_update_rejects_an_unknown_model(sms_raw):
    with pytest.raises(ValueError, match="E719"):
        bench_speed.measure_update(sms_raw, model="cnn", batches=1)


def test_bench_speed_update_needs_enough_records(sms_raw):
    with pytest.raises(ValueError, match="E717"):
        bench_speed.measure_update(sms_raw[:5], model="bow", batches=2, batch_size=5)


def test_bench_speed_scoring_ratio_is_raw_time_over_scoring_time(sms_records):
    r = bench_speed.measure_scoring(sms_records, n_docs=300, repeats=1)
    s = r["seconds"]
    assert math.isclose(r["ratio"], s["raw"] / s["scoring"])
    assert math.isclose(
        r["ratio_all_docs_first"], s["raw"] / s["scoring_all_docs_first"]
    )
    assert math.isclose(r["docs_per_second"]["raw"], 300 / s["raw"])
    assert r["ratio_pretokenized"] > 0


def test_bench_speed_ner_scoring_times_greedy_and_beam_on_the_same_docs(wnut_raw):
    r = bench_speed.measure_ner_scoring(
        wnut_raw[:60], wnut_raw[60:80], epochs=1, repeats=1, widths=(1, 4)
    )
    assert (r["n_docs"], r["train_docs"]) == (20, 60)
    methods = [row["method"] for row in r["rows"]]
    assert methods == [
        "nlp.pipe (no uncertainty)",
        "greedy step entropy",
        "beam width 4",
    ]
    for row in r["rows"]:
        assert math.isclose(row["docs_per_second"], 20 / row["seconds"])
    for row in r["rows"][1:]:  # the error ranking of each document measure
        for measure in bench_speed.NER_RANKING_MEASURES:
            auroc = row[f"auroc_{measure}"]
            assert auroc is None or 0.0 <= auroc <= 1.0
    assert 0.0 <= r["share_of_docs_wrong"] <= 1.0


def test_bench_speed_ner_scoring_needs_gold_spans(sms_raw):
    with pytest.raises(ValueError, match="E952"):
        bench_speed.measure_ner_scoring(sms_raw[:20], sms_raw[20:30], epochs=1)


def test_bench_speed_startup_in_a_fresh_process_reports_peak_memory(sms_records):
    r = bench_speed.measure_startup_subprocess(
        sms_records, pool_size=500, build=bench_speed.SESSION
    )
    assert r["pool_size"] == 500
    assert r["peak_rss_bytes"] >= r["peak_rss_before_bytes"] > 0
    assert 0 < r["session_build_seconds"] <= r["first_question_seconds"]
    assert r["session_build_seconds"] <= r["pool_read_seconds"]


@pytest.mark.parametrize(
    "name",
    ["spacy_al.benchmarks.speed:no_such_function", "no_such_module:f", "nocolon"],
)
def test_bench_speed_unknown_session_builder_is_refused_before_the_child_runs(
    sms_records, name
):
    with pytest.raises(ValueError, match="E800"):
        bench_speed.measure_startup_subprocess(sms_records, pool_size=10, build=name)


def test_bench_speed_library_imports_no_recipe():
    tree = ast.parse(Path(bench_speed.__file__).read_text(encoding="utf-8"))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert imported and not [m for m in imported if m and "recipes" in m]
