"""Scoring the pool on Dask (spacy_al.scale): the same picks and curves as in one
process, a source read by byte offsets as the in-process reader reads it, clear
refusals, and no dask import without --dask.

One LocalCluster (2 single-threaded worker processes) serves the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import srsly
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.corpus import Source
from spacy_al.errors import SourceError
from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.session import open_session
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.targets import answers_to_textcat_targets
from spacy_al.updater import Updater

pytest.importorskip("dask.distributed")

from spacy_al.scale.cluster import Cluster, parse_address  # noqa: E402
from spacy_al.scale.pool import OffsetPool  # noqa: E402
from spacy_al.scale.scoring import check_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "corpora" / "support.jsonl"
SUPPORT_EVAL = ROOT / "corpora" / "support_eval.jsonl"
LABELS = sorted({t["label"] for t in Source(SUPPORT)})


@pytest.fixture(scope="module")
def cluster():
    with Cluster.connect("local:2") as c:
        yield c


def _loop(pool, strategy: str, *, window: int | None = None) -> ActiveLoop:
    nlp = build_textcat(LABELS, exclusive=True, architecture="linear")
    updater = Updater(TextcatModel(nlp), seed=0, snapshots=False)
    return ActiveLoop(
        pool, updater, spec=StrategySpec.parse(strategy), seed=7, window=window
    )


@pytest.mark.parametrize(
    "strategy,window",
    [
        ("margin", None),
        ("entropy", 60),
        ("balanced", None),
        ("cost", None),
        ("random", 80),
    ],
)
def test_dask_picks_equal_in_process_picks(cluster, strategy, window):
    # Partitions of ~1.5 kB: the 322 texts are spread over about 20 of them.
    on_cluster = OffsetPool.build(SUPPORT, cluster=cluster, partition_bytes=1500)
    assert len(on_cluster.parts) > 10
    here, there = (
        _loop(Pool(Source(SUPPORT)), strategy, window=window),
        _loop(on_cluster, strategy, window=window),
    )
    gold = {t["_input_key"]: t["label"] for t in Source(SUPPORT)}
    for _ in range(3):  # the untrained model (all ties), then two learnt versions
        picked_here, picked_there = here.select(6), there.select(6)
        assert [t["_input_key"] for t in picked_there] == [
            t["_input_key"] for t in picked_here
        ]
        assert [(t["label"], t["meta"]) for t in picked_there] == [
            (t["label"], t["meta"]) for t in picked_here
        ]
        for loop, tasks in ((here, picked_here), (there, picked_there)):
            answers = [
                {
                    **t,
                    "answer": "accept"
                    if t["label"] == gold[t["_input_key"]]
                    else "reject",
                }
                for t in tasks
            ]
            loop.answer(answers, annotator="oracle")
            loop.learn()
    assert there.version == here.version == 3


def _source(tmp_path: Path, lines: list[str], *, bom: bool = False) -> Path:
    path = tmp_path / "pool.jsonl"
    data = "".join(lines).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


MIXED = [
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 1}}\r\n',
    "\n",
    '{"text": "second line, CRLF ended"}\r\n',
    "   \r\n",
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 2}}\n',  # a duplicate
    '{"text": "ünïcödé ' + "x" * 300 + '"}\n',
    '{"text": "last, no newline at the end"}',
]


def test_dask_source_bigger_than_a_partition_reads_as_in_process(cluster, tmp_path):
    path = _source(tmp_path, MIXED, bom=True)
    pool = OffsetPool.build(path, cluster=cluster, partition_bytes=40)
    assert len(pool.parts) >= 5
    source = Source(path)
    tasks = list(Pool(source).tasks)
    assert [t["_input_key"] for t in pool.tasks] == [t["_input_key"] for t in tasks]
    assert list(pool.tasks) == tasks
    assert pool.tasks[-1]["text"] == "last, no newline at the end"
    assert (
        (pool.n_read, pool.n_duplicates)
        == (source.n_read, source.n_duplicates)
        == (
            5,
            1,
        )
    )


def test_dask_bad_line_names_file_and_line_as_in_process(cluster, tmp_path):
    lines = [*MIXED[:-1], '{"text": "ok"}\n', "{not json}\n", '{"text": "after"}\n']
    path = _source(tmp_path, lines)
    with pytest.raises(SourceError) as here:
        list(Source(path))
    with pytest.raises(SourceError) as there:
        OffsetPool.build(path, cluster=cluster, partition_bytes=40)
    assert there.value.line == here.value.line == 8
    assert str(there.value) == str(here.value)
    assert f"file {path}" in str(there.value) and "line 8" in str(there.value)
    # Skipped and counted with skip_invalid, as in process.
    source = Source(path, skip_invalid=True)
    kept = [t["_input_key"] for t in Pool(source).tasks]
    pool = OffsetPool.build(
        path, cluster=cluster, skip_invalid=True, partition_bytes=40
    )
    assert list(pool.keys) == kept
    assert pool.n_skipped == source.n_skipped == 1
    assert pool.skipped_errors == source.skipped_errors


def test_dask_open_session_scores_on_the_cluster(cluster, tmp_path):
    session = open_session(
        "tickets",
        SUPPORT,
        db=f"sqlite:///{tmp_path / 'db.sqlite'}",
        meta={"labels": LABELS, "task": "textcat"},
        new_updater=lambda version: Updater(
            TextcatModel(build_textcat(LABELS, exclusive=True)), version=version
        ),
        load_updater=None,
        to_targets=lambda answers, labels: answers_to_textcat_targets(
            answers, labels, exclusive=True
        ),
        dask=cluster,
    )
    try:
        assert isinstance(session.pool, OffsetPool) and session.cluster is cluster
        assert session.source_info()["read"] == 322
        loop = ActiveLoop(
            session.pool,
            session.updater,
            spec=StrategySpec.parse("margin"),
            store=session.store,
            dataset="tickets",
        )
        tasks = loop.select(3)
        loop.answer([{**t, "answer": "accept"} for t in tasks], annotator="a")
        assert session.pool.n_done == 3
        assert not {t["_input_key"] for t in tasks} & {
            t["_input_key"] for t in loop.select(10)
        }
    finally:
        session.store.close()


def test_dask_textcat_recipe_scores_the_whole_pool_on_the_cluster(cluster, tmp_path):
    from spacy_al.recipes.textcat import build_components

    components = build_components(
        "tickets",
        SUPPORT,
        labels=LABELS,
        view_id="classification",
        strategy="margin",
        db=f"sqlite:///{tmp_path / 'db.sqlite'}",
        dask=cluster,
    )
    try:
        loop = components["loop"]
        assert isinstance(loop.pool, OffsetPool) and loop.window is None
        assert components["source"]["read"] == 322
        assert len(loop.select(4)) == 4
    finally:
        components["store"].close()


@pytest.mark.parametrize(
    "name,code",
    [
        ("diverse", "E1204"),
        ("power", "E1204"),
        ("random-start", "E1204"),
        ("bald", "E1206"),
    ],
)
def test_dask_refuses_what_partitions_cannot_reproduce(name, code):
    spec = StrategySpec.parse(name)
    with pytest.raises(ValueError, match=code):
        check_spec(spec.name, spec.strategy, spec.measure)


@pytest.mark.parametrize("value", ["local", "local:0", "local:x", ""])
def test_dask_bad_address_says_what_to_pass(value):
    with pytest.raises(ValueError, match="E1200"):
        parse_address(value)


def test_dask_simulate_gives_the_same_curve(tmp_path):
    load_builtin_recipes()
    app = build_app()
    args = [
        "simulate",
        "textcat",
        str(SUPPORT),
        "--eval",
        str(SUPPORT_EVAL),
        "--strategies",
        "margin,random",
        "--seed-size",
        "10",
        "--batch-size",
        "10",
        "--budget",
        "50",
        "--seeds",
        "2",
        "--first-seed",
        "0",
        "--stop-set-size",
        "50",
    ]
    runner = CliRunner()
    results = {}
    for name, extra in (("here", []), ("dask", ["--dask", "local:2"])):
        out = tmp_path / name
        result = runner.invoke(app, [*args, *extra, "--output", str(out)])
        assert result.exit_code == 0, result.output
        results[name] = json.loads((out / "results.json").read_text())
    assert results["dask"]["config"]["dask"] == "local:2"
    for strategy in ("margin", "random"):
        here = results["here"]["strategies"][strategy]
        there = results["dask"]["strategies"][strategy]
        assert there["curves"] == here["curves"]
        assert len(here["curves"]["0"]) == 5
        assert there["stop"]["kappa_curve"] == here["stop"]["kappa_curve"]


def test_dask_is_not_imported_without_dask(tmp_path):
    records = list(srsly.read_jsonl(SUPPORT))
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    srsly.write_jsonl(train, records[:120])
    srsly.write_jsonl(test, records[120:180])
    code = f"""
import sys
from typer.testing import CliRunner
from spacy_al.cli import build_app, load_builtin_recipes
load_builtin_recipes()
result = CliRunner().invoke(build_app(), ["simulate", "textcat", {str(train)!r},
    "--eval", {str(test)!r}, "--budget", "30", "--seeds", "1", "--first-seed", "0",
    "--seed-size", "10", "--output", {str(tmp_path / "out")!r}])
assert result.exit_code == 0, result.output
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["seeds"] == [0] and "margin" in results["strategies"]


def test_dask_local_workers_start_under_an_app_script_main(tmp_path, monkeypatch):
    # A Streamlit app (and its AppTest) runs its script as __main__, known only
    # by its path; spawned workers must not run that script again.
    script = tmp_path / "app_script.py"
    script.write_text("raise SystemExit('the app script ran in a worker')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    with Cluster.connect("local:1") as cluster:
        assert cluster.n_workers == 1
        assert cluster.map(abs, [-3]) == [3]
    assert sys.modules["__main__"] is main


def test_dask_first_selection_scores_a_sample_with_the_same_picks(cluster):
    # A loop with first_window scores a random sample of the pool for its first
    # selection (the same sample on the cluster and in one process, spread
    # over the whole pool), the whole remaining pool afterwards.
    on_cluster = OffsetPool.build(SUPPORT, cluster=cluster, partition_bytes=1500)
    loops = [_loop(Pool(Source(SUPPORT)), "margin") for _ in range(2)]
    loops.append(_loop(on_cluster, "margin"))
    for loop in loops:
        loop.first_window = 40
    sample = loops[0].candidates()  # what the first selection scores
    assert len(sample) == 40 and sample.max() > len(on_cluster) // 2
    assert len(loops[0].candidates()) == len(on_cluster)  # then the whole pool
    here, there = loops[1].select(6), loops[2].select(6)
    keys = [t["_input_key"] for t in here]
    assert [t["_input_key"] for t in there] == keys
    assert set(keys) <= {int(on_cluster.keys[i]) for i in sample}
    assert len(loops[1].candidates()) == len(on_cluster)
