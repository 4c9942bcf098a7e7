"""bench speed: latency, update time, scoring throughput and memory of a session.

    python -m spacy_al bench speed --corpus DIR [--pools 10000,100000] \\
        [--answers 500] [--annotators 5] [--think 0.5,1.5] \\
        [--learners thread,process] [--over feed,http] \\
        [--big-pools 100000,1000000] [--update-batches 20] [--scoring-docs 20000] \\
        [--ner-corpus DIR] [--ner-scoring-docs 1000] [--dask-scoring 200000] \\
        [--dask-pool 10000000] [--serving-pools 1000000,10000000] [--output DIR]

How fast is a session on pools made of DIR/train.jsonl's texts
(``spacy_al.benchmarks``): answer -> next example while the model learns, with the
annotator threads calling the Feed in the serving process (``--over feed``) or over
HTTP from this one to a JSON API server in its own (``--over http``), the feed
selecting and learning in its own threads or a learner process (``--learners``);
a batch -> the updated model serving (textcat bow and ensemble, NER beam
4 on --ner-corpus); scoring throughput against raw ``nlp.pipe``; peak RSS and
time to the first question for big pools, each in a fresh process; with
``--ner-scoring-docs``, NER uncertainty by beam search against the greedy
fallback (speed, and how well each measure ranks the model's errors first);
scaling out (``spacy_al.benchmarks.scale``, needs the dask extra): texts scored
per second in this process and on local Dask clusters of 1 and 2 workers, and
with ``--dask-pool`` a pool of millions of texts opened with ``--dask local:2``;
with ``--serving-pools``, a serving process that follows a learner process
(``--learner remote``) on pools of those sizes: its peak RSS, the time to open
it, and answer -> next through it (wall and CPU time).
Prints a table per section beside the project's targets; writes DIR/results.json.


The measuring is in ``spacy_al.benchmarks``; this module reads the options,
calls it and prints the tables (the five tables make most of its length).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Annotated, Any

import srsly
import typer
from wasabi import msg

from spacy_al.benchmarks import next_example, speed
from spacy_al.errors import Errors, SourceError
from spacy_al.registry import recipe

from ._options import Corpus, split_commas

#: Texts of --ner-corpus's train.jsonl the NER scoring section trains on.
NER_TRAIN_DOCS = 1500


@recipe("bench.speed")
def bench_speed(
    corpus: Corpus = None,
    pools: Annotated[
        str, typer.Option("--pools", help="Pool sizes for answer -> next")
    ] = "10000,100000",
    answers: Annotated[
        int, typer.Option("--answers", help="Answers per pool size")
    ] = 500,
    annotators: Annotated[
        int, typer.Option("--annotators", help="Annotator threads")
    ] = 5,
    think: Annotated[
        str,
        typer.Option(
            "--think",
            help="MIN,MAX seconds an annotator reads (0,0.05: a stress test, far "
            "faster than people)",
        ),
    ] = "0.5,1.5",
    learners: Annotated[
        str,
        typer.Option(
            "--learners",
            help="Where answer -> next's feed selects and learns: thread (in the "
            "serving process), process (a learner process of its own), or both "
            "side by side: thread,process",
        ),
    ] = "thread",
    over: Annotated[
        str,
        typer.Option(
            "--over",
            help="How answer -> next's annotators reach the server: feed (threads "
            "calling the Feed inside the serving process), http (the JSON API "
            "server in a process of its own, the annotator threads in this one, "
            "as browsers or scripts elsewhere), or both side by side: feed,http",
        ),
    ] = "feed",
    big_pools: Annotated[
        str,
        typer.Option("--big-pools", help="Pool sizes for memory and start-up"),
    ] = "100000,1000000",
    update_batches: Annotated[
        int, typer.Option("--update-batches", help="Batches learnt per model")
    ] = 20,
    scoring_docs: Annotated[
        int, typer.Option("--scoring-docs", help="Texts scored per repeat")
    ] = 20_000,
    ner_corpus: Annotated[
        Path | None,
        typer.Option(
            "--ner-corpus",
            help="A corpus with gold spans for the NER figures (default: wnut17 "
            "beside --corpus, if there)",
        ),
    ] = None,
    ner_scoring_docs: Annotated[
        int,
        typer.Option(
            "--ner-scoring-docs",
            help="Texts of --ner-corpus's test.jsonl to score with beam and greedy "
            f"NER uncertainty, after training on {NER_TRAIN_DOCS} (0: skip)",
        ),
    ] = 0,
    dask_scoring: Annotated[
        int,
        typer.Option(
            "--dask-scoring",
            help="Pool size for the scoring throughput in this process and on "
            "local Dask clusters of 1 and 2 workers (0: skip)",
        ),
    ] = 200_000,
    dask_pool: Annotated[
        int,
        typer.Option(
            "--dask-pool",
            help="Pool size opened with --dask local:2: time to the first "
            "question, a full pass, the learner's peak RSS (0: skip; 10000000 "
            "takes about an hour on 2 cores)",
        ),
    ] = 0,
    serving_pools: Annotated[
        str,
        typer.Option(
            "--serving-pools",
            help="Pool sizes for a serving process that follows a learner "
            "process (--learner remote): peak RSS, answer -> next (empty: skip)",
        ),
    ] = "",
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the results")
    ] = Path("bench_speed"),
) -> None:
    """Latency, update time, scoring throughput and memory of a session.

    Pools are made of --corpus DIR/train.jsonl's texts. Prints a table per
    section beside the project's targets and writes results.json.
    """
    if corpus is None:
        msg.fail(Errors.E711.format(what="speed"), exits=1)
    pools, big_pools, think = _sizes(pools), _sizes(big_pools), _think(think)
    modes = [m.strip() for m in learners.split(",") if m.strip()]
    if not modes or any(m not in ("thread", "process") for m in modes):
        msg.fail(Errors.E1105.format(value=learners), exits=1)
    routes = [r.strip() for r in over.split(",") if r.strip()]
    if not routes or any(r not in ("feed", "http") for r in routes):
        msg.fail(Errors.E1109.format(value=over), exits=1)
    start = time.perf_counter()
    train = Path(corpus) / "train.jsonl"
    if not train.is_file():
        msg.fail(Errors.E722.format(path=train), exits=1)
    ner_corpus = ner_corpus or Path(corpus).parent / "wnut17"
    ner_train = Path(ner_corpus) / "train.jsonl"
    try:
        records = speed.read_labelled(train)
    except (SourceError, ValueError) as e:
        msg.fail(str(e), exits=1)
    raw_records = list(srsly.read_jsonl(train))
    targets = speed.TARGETS
    results: dict[str, Any] = {
        "benchmark": "speed",
        "corpus": str(corpus),
        "machine": speed.machine_info(),
        "targets": targets,
        "load_average": {},
    }
    msg.info(
        f"bench speed on {corpus} ({len(records)} labelled texts), "
        f"load average {_load()}"
    )

    # 1. answer -> next example
    msg.divider("1. answer -> next example (server side, Feed, updater running)")
    msg.text(
        f"{annotators} annotator threads, each reading {think[0]:g}-{think[1]:g} s "
        "before answering"
    )
    rows = []
    results["next_example"] = []
    for size, route, mode in itertools.product(pools, routes, modes):
        try:
            if route == "http":
                r = next_example.measure_next_example_http(
                    records,
                    pool_size=size,
                    answers=answers,
                    annotators=annotators,
                    think=think,
                    learner=mode,
                )
            else:
                r = next_example.measure_next_example(
                    records,
                    pool_size=size,
                    answers=answers,
                    annotators=annotators,
                    think=think,
                    build=speed.SESSION if mode == "process" else speed.textcat_session,
                    learner=mode,
                )
        except (ValueError, RuntimeError) as e:
            msg.fail(str(e), exits=1)
        r["over"] = route
        results["next_example"].append(r)
        q = r["answer_then_next"]
        rows.append(
            [
                f"{r['pool_size']:,}",
                route,
                mode,
                q["n"],
                _ms(q["p50"]),
                _ms(q["p95"]),
                _ms(r["answer"]["p95"]),
                _ms(r["next_task"]["p95"]),
                _ms(r["next_task"]["max"]),
                r["dry_waits"],
                r["model_updates"],
                f"<= {_ms(targets['next_example_p95_seconds'])}",
                _verdict(q["p95"] <= targets["next_example_p95_seconds"]),
            ]
        )
    results["load_average"]["next_example"] = list(os.getloadavg())
    msg.table(
        rows,
        header=[
            "pool",
            "over",
            "learner",
            "answers",
            "p50",
            "p95",
            "answer p95",
            "next_task p95",
            "next_task max",
            "queue dry",
            "updates",
            "target p95",
            "",
        ],
        divider=True,
    )

    # 2. batch -> updated model serving
    msg.divider("2. batch answered -> updated model serving (Updater.update)")
    rows = []
    results["update"] = []
    jobs: list[tuple[str, list[dict]]] = [
        ("linear", raw_records),
        ("bow", raw_records),
        ("ensemble", raw_records),
    ]
    if ner_train.is_file():
        jobs.append(("ner", list(srsly.read_jsonl(ner_train))))
    else:
        msg.warn(f"No NER update figures: {Errors.E722.format(path=ner_train)}")
    for model, recs in jobs:
        try:
            r = speed.measure_update(recs, model=model, batches=update_batches)
        except ValueError as e:
            msg.fail(str(e), exits=1)
        results["update"].append(r)
        limit = targets[
            "update_ner_p95_seconds" if model == "ner" else "update_textcat_p95_seconds"
        ]
        name = "ner (greedy, fit per batch)" if model == "ner" else f"textcat {model}"
        rows.append(
            [
                name,
                r["seconds"]["n"],
                _ms(r["seconds"]["p50"]),
                _ms(r["seconds"]["p95"]),
                _ms(r["seconds"]["max"]),
                f"<= {limit:g} s",
                _verdict(r["seconds"]["p95"] <= limit),
            ]
        )
    results["load_average"]["update"] = list(os.getloadavg())
    msg.table(
        rows,
        header=["model", "batches", "p50", "p95", "max", "target p95", ""],
        divider=True,
    )

    # 3. scoring throughput
    msg.divider("3. uncertainty scoring vs raw nlp.pipe (textcat bow, median of 3)")
    try:
        r = speed.measure_scoring(records, n_docs=scoring_docs)
    except ValueError as e:
        msg.fail(str(e), exits=1)
    results["scoring"] = r
    results["load_average"]["scoring"] = list(os.getloadavg())
    dps = r["docs_per_second"]
    limit = targets["scoring_ratio"]
    msg.table(
        [
            ["raw nlp.pipe", f"{dps['raw']:,.0f}", "1.00x", "", ""],
            [
                "scoring, streamed (tokenize + margin)",
                f"{dps['scoring']:,.0f}",
                f"{r['ratio']:.2f}x",
                f">= {limit}x",
                _verdict(r["ratio"] >= limit),
            ],
            [
                "scoring, all Docs made first (before)",
                f"{dps['scoring_all_docs_first']:,.0f}",
                f"{r['ratio_all_docs_first']:.2f}x",
                "",
                "",
            ],
            [
                "scoring, Docs cached",
                f"{dps['scoring_pretokenized']:,.0f}",
                f"{r['ratio_pretokenized']:.2f}x",
                "",
                "",
            ],
        ],
        header=["path", "docs/s", "ratio", "target", ""],
        divider=True,
    )

    # 4. peak memory and time to the first question, one fresh process per pool
    msg.divider("4. peak RSS and time to the first question (fresh process each)")
    rows = []
    results["startup"] = []
    for size in big_pools:
        try:
            r = speed.measure_startup_subprocess(
                records, pool_size=size, build=speed.SESSION
            )
        except RuntimeError as e:
            msg.warn(str(e))
            results["startup"].append({"pool_size": size, "error": str(e)})
            continue
        results["startup"].append(r)
        mem_ok = r["peak_rss_bytes"] <= targets["startup_peak_rss_bytes"]
        time_ok = r["first_question_seconds"] <= targets["first_question_seconds"]
        rows.append(
            [
                f"{r['pool_size']:,}",
                _mb(r["peak_rss_bytes"]),
                _mb(r["peak_rss_before_bytes"]),
                f"{r['session_build_seconds']:.1f} s",
                f"{r['first_question_seconds']:.1f} s",
                f"{r['pool_read_seconds']:.1f} s",
                f"<= {_mb(targets['startup_peak_rss_bytes'])}, "
                f"<= {targets['first_question_seconds']:g} s",
                f"memory {_verdict(mem_ok)}, time {_verdict(time_ok)}",
            ]
        )
    results["load_average"]["startup"] = list(os.getloadavg())
    msg.table(
        rows,
        header=[
            "pool",
            "peak RSS",
            "of which at start",
            "session built",
            "first question",
            "pool read",
            "target",
            "",
        ],
        divider=True,
    )

    # 5. NER scoring: beam search against the greedy fallback (with --ner-scoring-docs)
    if ner_scoring_docs > 0:
        msg.divider(
            "5. NER uncertainty scoring: beam vs greedy (beam_ner trained here)"
        )
        ner_test = Path(ner_corpus) / "test.jsonl"
        for path in (ner_train, ner_test):
            if not path.is_file():
                msg.fail(Errors.E722.format(path=path), exits=1)
        try:
            r = speed.measure_ner_scoring(
                list(itertools.islice(srsly.read_jsonl(ner_train), NER_TRAIN_DOCS)),
                list(itertools.islice(srsly.read_jsonl(ner_test), ner_scoring_docs)),
            )
        except ValueError as e:
            msg.fail(str(e), exits=1)
        results["ner_scoring"] = r
        results["load_average"]["ner_scoring"] = list(os.getloadavg())
        msg.text(
            f"{r['n_docs']} docs, {r['n_tokens']} tokens; beam_ner (width 4) trained "
            f"on {r['train_docs']} docs in {r['train_seconds']:.0f} s, entity F1 "
            f"{r['docs_ents_f']:.3f} on the scored docs, "
            f"{r['share_of_docs_wrong']:.0%} of them wrong"
        )
        measures = speed.NER_RANKING_MEASURES
        msg.table(
            [
                [
                    row["method"],
                    f"{row['docs_per_second']:,.0f}",
                    f"{row['tokens_per_second']:,.0f}",
                    *(_auroc(row.get(f"auroc_{m}")) for m in measures),
                ]
                for row in r["rows"]
            ],
            header=["method", "docs/s", "tokens/s", *(f"AUROC {m}" for m in measures)],
            divider=True,
        )
    # 6. Scaling out: the pool scored on Dask (spacy_al.benchmarks.scale)
    if dask_scoring > 0 or dask_pool > 0:
        _bench_scale(records, results, scoring=dask_scoring, pool=dask_pool)
    # 7. A serving process that follows a learner process
    if serving_pools.strip():
        _bench_serving(records, results, sizes=_sizes(serving_pools), answers=answers)
    results["wall_time_seconds"] = time.perf_counter() - start
    output.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output / "results.json", results)
    msg.good(
        f"Wrote {output / 'results.json'} ({results['wall_time_seconds']:.0f} s; "
        f"load average now {_load()})"
    )


def _bench_scale(records, results: dict, *, scoring: int, pool: int) -> None:
    """Section 6 of bench speed: Dask scoring throughput and a very big pool."""
    from spacy_al.benchmarks import scale

    msg.divider("6. scaling out: the pool scored on Dask (bow, margin, whole pool)")
    try:
        import dask.distributed  # noqa: F401
    except ImportError as e:
        msg.warn(f"Skipped: {Errors.E1201.format(err=e)}")
        return
    targets = scale.TARGETS
    if scoring > 0:
        r = scale.measure_pool_scoring(records, pool_size=scoring)
        results["dask_scoring"] = r
        results["load_average"]["dask_scoring"] = list(os.getloadavg())
        rows = [["in this process", "-", f"{r['in_process']['texts_per_second']:,.0f}"]]
        for n, d in r["dask"].items():
            rows.append(
                [
                    f"Dask, {n} worker{'s' if n != '1' else ''}",
                    f"{d['index_seconds']:.1f} s",
                    f"{d['texts_per_second']:,.0f}",
                ]
            )
        msg.table(rows, header=["scorer", "index", "texts/s"], divider=True)
        ratio = r.get("speedup_2_vs_1")
        if ratio is not None:
            goal = targets["dask_speedup_2_vs_1"]
            msg.text(
                f"{scoring:,} texts; 2 workers / 1 worker: {ratio:.2f}x (goal >= "
                f"{goal:g}x: {_verdict(ratio >= goal)}); same picks everywhere: "
                f"{r['same_picks']}"
            )
    if pool > 0:
        try:
            r = scale.measure_big_pool_subprocess(records, pool_size=pool)
        except RuntimeError as e:
            msg.warn(str(e))
            results["dask_pool"] = {"pool_size": pool, "error": str(e)}
            return
        results["dask_pool"] = r
        results["load_average"]["dask_pool"] = list(os.getloadavg())
        ok = r["learner_peak_rss_bytes"] <= targets["learner_peak_rss_bytes"]
        msg.table(
            [
                [
                    f"{r['pool_size']:,}",
                    f"{r['first_question_seconds']:.0f} s",
                    f"{r['full_pass_seconds']:.0f} s",
                    _mb(r["learner_peak_rss_bytes"]),
                    ", ".join(_mb(x) for x in r["worker_peak_rss_bytes"]),
                    _verdict(ok),
                ]
            ],
            header=[
                "pool (Dask local:2)",
                "first question",
                "full pass",
                "learner peak RSS",
                "workers' peak RSS",
                f"learner <= {_mb(targets['learner_peak_rss_bytes'])}",
            ],
            divider=True,
        )


def _bench_serving(records, results: dict, *, sizes: list[int], answers: int) -> None:
    """Section 7 of bench speed: a serving process with --learner remote,
    ``answers`` answers through it per pool size."""
    from spacy_al.benchmarks import scale

    msg.divider("7. a serving process that follows a learner process (fresh each)")
    limit = scale.TARGETS["serving_peak_rss_bytes"]
    rows = []
    results["serving"] = []
    for size in sizes:
        try:
            r = scale.measure_serving_subprocess(
                records, pool_size=size, answers=answers
            )
        except RuntimeError as e:
            msg.warn(str(e))
            results["serving"].append({"pool_size": size, "error": str(e)})
            continue
        results["serving"].append(r)
        rows.append(
            [
                f"{r['pool_size']:,}",
                _mb(r["peak_rss_bytes"]),
                _mb(r["peak_rss_before_bytes"]),
                f"{r['session_open_seconds']:.1f} s",
                f"{r['answers']} ({len(r['errors'])} errors)",
                _ms(r["answer_then_next_p95_seconds"]),
                _ms(r["cpu_seconds_per_answer"]),
                f"<= {_mb(limit)}",
                _verdict(r["peak_rss_bytes"] <= limit),
            ]
        )
    results["load_average"]["serving"] = list(os.getloadavg())
    msg.table(
        rows,
        header=[
            "pool",
            "peak RSS",
            "of which imports",
            "opened",
            "answers",
            "answer -> next p95",
            "CPU per answer",
            "target",
            "",
        ],
        divider=True,
    )


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in split_commas(value)]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 for n in sizes):
        msg.fail(Errors.E723.format(value=value), exits=1)
    return sizes


def _think(value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in split_commas(value))
    except ValueError:
        low, high = -1.0, -1.0
    if not 0 <= low <= high:
        msg.fail(Errors.E724.format(value=value), exits=1)
    return low, high


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1024**2:.0f} MB"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _auroc(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
