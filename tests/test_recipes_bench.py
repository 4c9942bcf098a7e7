import dataclasses
import importlib.util
import itertools
import json

import pytest
import srsly
from typer.testing import CliRunner

from spacy_al.benchmarks import peers
from spacy_al.benchmarks.durability import TrialReport
from spacy_al.benchmarks.labels import median_labels, summarize
from spacy_al.benchmarks.peers import PEERS, available_peers, seed_indices
from spacy_al.benchmarks.train_kills import TrainKillReport
from spacy_al.cli import build_app, load_builtin_recipes, main
from spacy_al.simulate.textcat import gold_set

runner = CliRunner()
STRATEGIES = ["margin", "random"]
MISSING = "modal-margin"  # made unavailable in the run below


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


@pytest.fixture(scope="module")
def sms_dir(corpora_dir, tmp_path_factory):
    """A small SMS spam corpus directory: 300 train and 150 test records."""
    path = tmp_path_factory.mktemp("sms")
    for name, n in (("train", 300), ("test", 150)):
        records = itertools.islice(
            srsly.read_jsonl(corpora_dir / "sms_spam" / f"{name}.jsonl"), n
        )
        srsly.write_jsonl(path / f"{name}.jsonl", records)
    return path


@pytest.fixture(scope="module")
def bench_run(app, sms_dir, tmp_path_factory):
    """One `bench labels` run, with one peer's package made missing."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        missing = dataclasses.replace(
            PEERS[MISSING], module="no_such_module_for_spacy_al"
        )
        mp.setitem(peers.PEERS, MISSING, missing)
        result = runner.invoke(
            app,
            [
                "bench.labels",
                "--corpus",
                str(sms_dir),
                "--strategies",
                ",".join(STRATEGIES),
                "--seeds",
                "2",
                "--seed-size",
                "20",
                "--batch-size",
                "10",
                "--budget",
                "50",
                "--positive-label",
                "spam",
                "--output",
                str(out),
            ],
        )
    return result, out


def test_recipes_bench_labels_prints_a_row_per_system(bench_run):
    result, _ = bench_run
    assert result.exit_code == 0, result.output
    for name in STRATEGIES:
        assert f"{name} (spacy_al)" in result.output
    for name in PEERS:
        assert name in result.output
    assert "labels to 95% own" in result.output
    assert "AUC" in result.output
    assert "stop (per seed)" in result.output


def test_recipes_bench_labels_results_have_every_system(bench_run, sms_dir):
    result, out = bench_run
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    requested = set(STRATEGIES) | set(PEERS)
    ran = {n for n, r in available_peers().items() if r is None} - {MISSING}
    assert set(results["systems"]) == set(STRATEGIES) | ran
    assert set(results["systems"]) | set(results["skipped"]) == requested
    assert "[E701]" in results["skipped"][MISSING]
    for entry in results["systems"].values():
        assert [n for n, _ in entry["curve"]] == [20, 30, 40, 50]
        assert len(entry["curves"]) == 2
        assert 0.0 <= entry["auc"] <= 1.0
    best = max(e["full_data_score"] for e in results["systems"].values())
    assert results["common_score"] == pytest.approx(0.95 * best)
    # where the stopping signal would have stopped: ours only (peers have none)
    for name, entry in results["systems"].items():
        if name in STRATEGIES:
            assert len(entry["stop"]["labels"]) == 2  # one per seed
            assert all(n is None or 20 < n <= 50 for n in entry["stop"]["labels"])
        else:
            assert "stop" not in entry
    # the seed sets are simulate's: the same positions for every system
    pool = gold_set(list(srsly.read_jsonl(sms_dir / "train.jsonl")), what="TRAIN")
    assert results["seed_indices"]["101"] == list(
        seed_indices(len(pool.tasks), 20, 101)
    )


def test_recipes_bench_labels_reports_on_seeds_never_used_to_tune(bench_run):
    result, out = bench_run
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "test"
    assert results["seeds"] == [100, 101]
    assert "seeds 100-101" in result.output
    for entry in results["systems"].values():
        assert entry["seeds"] == [100, 101]
        assert entry["full_data_training"]  # how its reference was trained
        assert len(entry["auc_per_seed"]) == 2
    # ours against every peer and our random, with a paired bootstrap interval
    margin = results["systems"]["margin"]
    assert set(margin["auc_vs"]) == set(results["systems"]) - {"margin"}
    for d in margin["auc_vs"].values():
        assert d["low"] <= d["diff"] <= d["high"]
    assert "95% interval" in result.output


def test_recipes_bench_labels_dev_split_never_opens_the_test_file(
    app, sms_dir, tmp_path
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_bytes((sms_dir / "train.jsonl").read_bytes())
    (corpus / "test.jsonl").mkdir()  # opening it raises IsADirectoryError
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "bench.labels",
            "--corpus",
            str(corpus),
            "--split",
            "dev",
            "--strategies",
            "margin",
            "--peers",
            "",
            "--seeds",
            "1",
            "--budget",
            "30",
            "--positive-label",
            "spam",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "dev"
    assert results["seeds"] == [0]
    # 20% of the 300 training records (less their duplicates) is the dev set
    assert 50 <= results["eval_size"] <= 60


def test_recipes_bench_labels_writes_one_plot(bench_run):
    result, out = bench_run
    assert result.exit_code == 0, result.output
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Skipped {MISSING}" in result.output


def test_recipes_bench_unknown_benchmark_names_the_known_ones(app):
    result = runner.invoke(app, ["bench", "sped"])
    assert result.exit_code == 1
    assert "E707" in result.output
    assert all(name in result.output for name in ("labels", "speed", "durability"))


@pytest.mark.parametrize(
    "what,own,others",
    [
        (
            "labels",
            ["--peers", "--n-jobs", "--positive-label"],
            ["--pools", "--trials"],
        ),
        (
            "speed",
            ["--pools", "--think", "--ner-scoring-docs"],
            ["--peers", "--trials"],
        ),
        ("durability", ["--trials", "--db", "--minutes"], ["--peers", "--pools"]),
    ],
)
def test_recipes_bench_each_benchmark_has_only_its_own_options(
    capsys, what, own, others
):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", what, "--help"])  # as typed: two words
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert all(option in out for option in own), out
    assert not any(option in out for option in others), out


def test_recipes_bench_labels_without_the_corpus_files_fails_clearly(app, tmp_path):
    result = runner.invoke(app, ["bench.labels", "--corpus", str(tmp_path)])
    assert result.exit_code == 1
    assert "E708" in result.output and "train.jsonl" in result.output


def test_recipes_bench_labels_unknown_peer_fails_before_running(app, sms_dir):
    result = runner.invoke(
        app, ["bench.labels", "--corpus", str(sms_dir), "--peers", "prodigy"]
    )
    assert result.exit_code == 1
    assert "E700" in result.output


@pytest.mark.parametrize(
    "values,median",
    [
        ([100, 200, 300], 200.0),
        ([100, None, 300], 300.0),
        ([100, None, None], None),
        ([None], None),
        ([], None),
    ],
)
def test_recipes_bench_median_counts_a_miss_as_more_than_the_budget(values, median):
    assert median_labels(values) == median


def test_recipes_bench_summarize_scores_own_and_common_targets():
    curves = {
        0: [(20, 0.2), (30, 0.6), (40, 0.9)],
        1: [(20, 0.3), (30, 0.5), (40, 0.7)],
    }
    row = summarize(curves, full=0.8, target=0.5, common=0.85)
    assert row["labels_to_target"] == [30, 30]  # 0.5 * 0.8 = 0.4
    assert row["labels_to_common"] == [40, None]
    assert row["labels_to_common_median"] is None
    assert row["auc"] == pytest.approx((0.5667 + 0.5) / 2, abs=1e-3)
    assert row["curve"] == [[20, 0.25], [30, 0.55], [40, 0.8]]


def test_recipes_bench_labels_runs_ner_without_peers(app, corpora_dir, tmp_path):
    corpus = tmp_path / "wnut"
    corpus.mkdir()
    records = list(srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"))
    srsly.write_jsonl(corpus / "train.jsonl", records[:40])
    srsly.write_jsonl(corpus / "test.jsonl", records[40:60])
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "bench.labels",
            "--corpus",
            str(corpus),
            "--task",
            "ner",
            "--strategies",
            "mnlp,random",
            "--seeds",
            "1",
            "--seed-size",
            "10",
            "--batch-size",
            "10",
            "--budget",
            "30",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mnlp (spacy_al)" in result.output and "random (spacy_al)" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "ner" and set(results["systems"]) == {"mnlp", "random"}
    assert "no peers" in result.output  # the peers have no NER
    for entry in results["systems"].values():
        assert [n for n, _ in entry["curve"]] == [10, 20, 30]
        assert 0.0 <= entry["auc"] <= 1.0


def test_recipes_bench_durability_runs_both_runs_per_database(tmp_path, monkeypatch):
    """The command's wiring (the trials themselves are test_crash's kill -9 tests)."""
    from spacy_al.recipes import bench_durability

    calls = []
    trained = []

    def fake_run_trials(**kwargs):
        calls.append(kwargs)
        return TrialReport(
            backend="sqlite",
            acknowledged=7,
            stored=7,
            kills=kwargs["kills"],
            servers=kwargs.get("servers", 1),
        )

    def fake_run_train_kills(**kwargs):
        trained.append(kwargs)
        return TrainKillReport(backend="sqlite", trials=kwargs["trials"], kills=2)

    monkeypatch.setattr(bench_durability, "run_trials", fake_run_trials)
    monkeypatch.setattr(bench_durability, "run_train_kills", fake_run_train_kills)
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["bench", "durability", "--trials", "3", "--annotators", "20"]
            + ["--minutes", "0.5", "--output", str(tmp_path)]
            + ["--server-kills", "5", "--train-kills", "4"]
        )
    assert exit_info.value.code in (0, None)
    assert [(c["kills"], c["annotators"], c["seconds"]) for c in calls] == [
        (3, 4, None),
        (0, 20, 30.0),
        (5, 20, None),
    ]
    assert calls[2]["servers"] == 2  # 20 annotators split between two servers
    # train is killed on the answers of the two servers' run.
    assert [(t["db"], t["dataset"], t["trials"]) for t in trained] == [
        (calls[2]["db"], calls[2]["dataset"], 4)
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["run"] for r in results] == [
        "kill -9",
        "load",
        "2 servers kill -9",
        "train kill -9",
    ]
    assert all(r["acknowledged"] == 7 and "load_before" in r for r in results[:3])
    assert results[3]["kills"] == 2 and "load_before" in results[3]


def test_recipes_bench_durability_unknown_run_fails_clearly(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "durability", "--runs", "kill,nap", "--output", str(tmp_path)])
    assert exit_info.value.code == 1
    assert not (tmp_path / "results.json").exists()


# --- bench speed ----------------------------------------------------------------


def test_recipes_bench_speed_prints_every_section_and_writes_results(
    corpora_dir, tmp_path, monkeypatch
):
    corpus = tmp_path / "sms_spam"
    corpus.mkdir()
    srsly.write_jsonl(
        corpus / "train.jsonl",
        itertools.islice(
            srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl"), 250
        ),
    )
    load_builtin_recipes()
    out = tmp_path / "out"
    # the NER scoring section trains on the first 40 texts of --ner-corpus
    from spacy_al.recipes import bench_speed

    monkeypatch.setattr(bench_speed, "NER_TRAIN_DOCS", 40)
    result = runner.invoke(
        build_app(),
        [
            "bench.speed",
            "--corpus",
            str(corpus),
            "--pools",
            "300",
            "--answers",
            "10",
            "--annotators",
            "2",
            "--big-pools",
            "400",
            "--update-batches",
            "2",
            "--scoring-docs",
            "200",
            "--ner-corpus",
            str(corpora_dir / "wnut17"),
            "--ner-scoring-docs",
            "20",
            "--dask-scoring",
            "1000",
            "--serving-pools",
            "3000",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for section in (
        "1. answer",
        "2. batch",
        "3. uncertainty",
        "4. peak RSS",
        "5. NER",
        "6. scaling out",
        "7. a serving process",
    ):
        assert section in result.output
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["update"]] == [
        "linear",
        "bow",
        "ensemble",
        "ner",
    ]
    assert results["startup"][0]["pool_size"] == 400
    assert results["machine"]["nproc"] >= 1
    assert results["ner_scoring"]["n_docs"] == 20
    assert results["ner_scoring"]["train_docs"] == 40
    # the serving process held the pool's keys, no model, and served answers
    serving = results["serving"][0]
    assert (serving["pool_size"], serving["pool"], serving["model"]) == (
        3000,
        "KeyPool",
        False,
    )
    assert serving["answers"] == serving["done"] > 0 and not serving["errors"]
    if importlib.util.find_spec("dask") is not None:  # the optional extra
        assert results["dask_scoring"]["pool_size"] == 1000
        assert results["dask_scoring"]["same_picks"] is True


def test_recipes_bench_speed_rejects_bad_pool_sizes(corpora_dir):
    load_builtin_recipes()
    result = runner.invoke(
        build_app(),
        ["bench.speed", "--corpus", str(corpora_dir / "sms_spam"), "--pools", "ten"],
    )
    assert result.exit_code == 1
    assert "E723" in result.output
