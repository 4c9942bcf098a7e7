"""bench: measure spacy_al's claims, one recipe per benchmark.

    python -m spacy_al bench labels --corpus DIR [--task textcat] \\
        [--strategies margin,balanced,random] \\
        [--peers small-text-entropy,small-text-breaking-ties,small-text-random,modal-uncertainty,modal-margin,sklearn-random] \\
        [--seeds 5] [--seed-size 20] [--batch-size 10] [--budget 1000] \\
        [--positive-label spam] [--output DIR] [--n-jobs 2] \\
        [--split test|dev] [--first-seed N] [--arch linear] [--patterns FILE]

``bench labels``: how many labels does each system need? DIR holds train.jsonl
(the pool, with its gold labels) and test.jsonl (the evaluation set). Our
strategies run through ``spacy_al.simulate`` (the loop the labelling app uses);
the peers (small-text, modAL and random baselines on each's model, installed with
``pip install -e .[bench]``) replay the same gold labels from the same seed
sets, with the same batch size, budget, evaluation set and metric
(``spacy_al.benchmarks.labels``). A peer whose package is missing is skipped
with a message. NER runs our strategies only: the peers have no NER.

For every system the table shows, with medians over seeds:

- labels to reach 95% (``--target``) of ITS OWN full-data score (its model
  trained on all of TRAIN, scored on TEST): how fast it gets close to what its
  model can do;
- labels to reach one common absolute score, 95% of the best full-data score
  among all the systems: how fast it gets to a quality a user would accept
  whatever the tool. A weaker model may never get there;
- AUC: the mean score over its curve (every system is scored at the same label
  counts, so this is the area under the curve divided by the budget);
- its final score at the budget, and where our stopping signal said stop.

A run reaches a score when it gets there and stays there to the budget (a
curve that touches it and falls back doesn't count). A seed that never reaches
a score counts as more than the budget, so the median is '>budget' when half
the seeds or more never get there. A second table gives each of our strategies'
AUC minus every peer's and our random's, paired by seed, with a bootstrap 95%
interval, and its labels to the common score ÷ our random's.

``--split test`` (the default) evaluates on DIR/test.jsonl with seeds 100 on;
``--split dev`` tunes: it reads only DIR/train.jsonl, carves a 20% dev set from
it and uses seeds 0 on, so nothing chosen with it has seen the test set or the
report seeds. A strategy name takes ``+diverse-seed`` (a seed set of one text
per k-means cluster of the pool), ``+patterns`` (``--patterns`` for that row
only) or ``+pattern-seed`` (``--patterns`` also fill up to half the seed set with
texts they match), to measure each cold start on its own. Writes DIR/results.json
(every per-seed curve too) and DIR/curves.png (median curves of every system).

    python -m spacy_al bench speed --corpus DIR [--pools 10000,100000] \\
        [--answers 500] [--annotators 5] [--think 0.5,1.5] \\
        [--big-pools 100000,1000000] [--update-batches 20] [--scoring-docs 20000] \\
        [--ner-corpus DIR] [--ner-scoring-docs 1000] [--dask-scoring 200000] \\
        [--dask-pool 10000000] [--output DIR]

``bench speed``: how fast is a session on pools made of DIR/train.jsonl's texts
(``spacy_al.benchmarks.speed``): answer -> next example in the Feed while the model
learns; a batch -> the updated model serving (textcat bow and ensemble, NER beam
4 on --ner-corpus); scoring throughput against raw ``nlp.pipe``; peak RSS and
time to the first question for big pools, each in a fresh process; with
``--ner-scoring-docs``, NER uncertainty by beam search against the greedy
fallback (speed, and how well each measure ranks the model's errors first);
scaling out (``spacy_al.benchmarks.scale``, needs the dask extra): texts scored
per second in this process and on local Dask clusters of 1 and 2 workers, and
with ``--dask-pool`` a pool of millions of texts opened with ``--dask local:2``.
Prints a table per section beside the project's targets; writes DIR/results.json.

``bench durability`` (kill -9 trials and a team under load) is in
``bench_durability.py``. The measuring is in ``spacy_al.benchmarks``; this module
reads the options, calls it and prints the tables (the speed recipe's five
tables make most of its length).
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

from spacy_al.benchmarks import speed
from spacy_al.benchmarks.labels import (
    DEFAULT_STRATEGIES,
    REPORT_SEED,
    TASKS,
    TUNE_SEED,
    plot_labels,
    read_corpus,
    run_labels,
)
from spacy_al.benchmarks.peers import PEERS
from spacy_al.errors import Errors, SourceError
from spacy_al.registry import recipe
from spacy_al.simulate.runner import stop_cells

from ._options import BatchSize, Budget, SeedSize, Target, split_commas

#: The benchmarks: ``bench WHAT`` runs the recipe ``bench.WHAT``.
BENCHMARKS = ("labels", "speed", "durability")

# An option of more than one bench recipe.
Corpus = Annotated[
    Path | None,
    typer.Option("--corpus", help="Directory with train.jsonl and test.jsonl"),
]


@recipe("bench")
def bench_cli(
    what: Annotated[
        str, typer.Argument(help="What to measure: labels, speed or durability")
    ],
) -> None:
    """Benchmarks: bench labels, bench speed, bench durability.

    bench labels compares label savings with small-text and modAL; bench speed
    measures latency, update time, scoring throughput and memory; bench
    durability runs kill -9 trials and a team under load. Each has its own
    options: python -m spacy_al bench labels --help.
    """
    # `bench labels ...` reaches the recipe bench.labels (the CLI joins the two
    # words); only a name that is no benchmark ends up here.
    msg.fail(Errors.E707.format(what=what, whats=", ".join(BENCHMARKS)), exits=1)


# --- bench labels ----------------------------------------------------------------


@recipe("bench.labels")
def bench_labels(
    corpus: Corpus = None,
    task: Annotated[str, typer.Option("--task", help="textcat or ner")] = "textcat",
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            help="Ours, comma-separated (textcat: margin,balanced,random)",
        ),
    ] = None,
    peers: Annotated[
        str | None,
        typer.Option(
            "--peers", help="Peers, comma-separated ('' for none; textcat: all of them)"
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Runs per system")] = 5,
    seed_size: SeedSize = 20,
    batch_size: BatchSize = 10,
    budget: Budget = 1000,
    target: Target = 0.95,
    positive_label: Annotated[
        str | None, typer.Option("--positive-label", help="Score this label's F1")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the results")
    ] = Path("bench_labels"),
    n_jobs: Annotated[int, typer.Option("--n-jobs", help="Processes in parallel")] = 1,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="test: report on DIR/test.jsonl with seeds from 100; dev: tune on "
            "a dev split of DIR/train.jsonl with seeds from 0 (test.jsonl unread)",
        ),
    ] = "test",
    first_seed: Annotated[
        int | None,
        typer.Option("--first-seed", help="First seed (default: 100 test, 0 dev)"),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Our text classifier's architecture")
    ] = None,
    patterns: Annotated[
        str | None,
        typer.Option("--patterns", help="A patterns file (JSONL) for our strategies"),
    ] = None,
) -> None:
    """Labels each system needs: our strategies beside small-text and modAL.

    Replays the gold labels of --corpus DIR/train.jsonl from the same seed sets
    for every system, scores on DIR/test.jsonl, prints a row per system and
    writes results.json and curves.png.
    """
    if corpus is None:
        msg.fail(Errors.E711.format(what="labels"), exits=1)
    # 1. The corpus: the pool with its gold labels, and the evaluation set.
    # --split dev (tuning) reads only train.jsonl and carves a dev set from it;
    # --split test reports on test.jsonl with seeds never used for tuning.
    try:
        train_records, eval_records = read_corpus(corpus, split=split)
    except (SourceError, FileNotFoundError, ValueError) as e:
        msg.fail(str(e), exits=1)
    if first_seed is None:
        first_seed = TUNE_SEED if split == "dev" else REPORT_SEED
    if task not in TASKS:
        msg.fail(Errors.E710.format(task=task, tasks=", ".join(TASKS)), exits=1)
    # 2. The systems: our strategies, and every peer unless --peers says otherwise.
    strategy_names = split_commas(strategies or DEFAULT_STRATEGIES[task])
    peer_names = split_commas(
        ",".join(PEERS) if peers is None and task == "textcat" else peers or ""
    )
    msg.info(
        f"bench labels on {corpus}: {len(train_records)} pool, {len(eval_records)} "
        f"{split} records; {', '.join(strategy_names)} and {', '.join(peer_names) or 'no peers'}; "
        f"seeds {first_seed}-{first_seed + seeds - 1}, budget {budget}; "
        f"evaluated on {'a dev split of train.jsonl' if split == 'dev' else 'test.jsonl'}"
    )

    def on_job_done(name: str, seconds: float) -> None:
        msg.text(f"  done: {name} ({seconds:.0f} s)")

    # 3. Run them all from the same seed sets (in --n-jobs processes).
    try:
        results = run_labels(
            train_records,
            eval_records,
            task=task,
            strategies=strategy_names,
            peers=peer_names,
            seeds=seeds,
            seed_size=seed_size,
            batch_size=batch_size,
            budget=budget,
            target=target,
            positive_label=positive_label,
            n_jobs=n_jobs,
            on_job_done=on_job_done,
            first_seed=first_seed,
            split=split,
            architecture=arch,
            patterns=patterns,
        )
    except ValueError as e:
        msg.fail(str(e), exits=1)
    results["corpus"] = str(corpus)
    for name, reason in results["skipped"].items():
        msg.warn(f"Skipped {name}: {reason}")
    # 4. Write the results and the plot; print the table.
    output.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output / "results.json", results)
    plot_labels(results, output / "curves.png", title=Path(corpus).name)
    msg.info(
        f"{results['metric']} on {results['eval_size']} test texts, pool "
        f"{results['pool_size']}; common score = {results['common_score_rule']} "
        f"= {results['common_score']:.3f}"
    )
    print_labels_table(results)
    print_comparisons(results)
    msg.good(
        f"Wrote {output / 'results.json'} and {output / 'curves.png'} "
        f"({results['wall_time_seconds']:.0f} s)"
    )


def _labels_cell(value: float | None, budget: int) -> str:
    return f">{budget}" if value is None else f"{value:.0f}"


def print_labels_table(results: dict) -> None:
    """The per-system table a person reads first."""
    budget = results["config"]["budget"]
    target = f"{results['target']:.0%}"
    header = [
        "system",
        "full data",
        f"labels to {target} own (per seed)",
        "median",
        f"labels to {results['common_score']:.3f}",
        "AUC",
        "final",
        "stop (per seed)",
        "at stop",
        "÷ full",
    ]
    rows = []
    for name, e in results["systems"].items():
        rows.append(
            [
                name if e["kind"] == "peer" else f"{name} (spacy_al)",
                f"{e['full_data_score']:.3f}",
                ", ".join("-" if n is None else str(n) for n in e["labels_to_target"]),
                _labels_cell(e["labels_to_target_median"], budget),
                _labels_cell(e["labels_to_common_median"], budget),
                f"{e['auc']:.3f}",
                f"{e['final_score']:.3f}",
                *stop_cells(e.get("stop")),
            ]
        )
    msg.table(rows, header=header, divider=True)
    if any(e.get("stop") for e in results["systems"].values()):
        msg.text(
            "Stop: where spacy_al's stopping signal (stabilizing predictions) said "
            "stop; at stop: the median score there, over the seeds that stopped."
        )


def print_comparisons(results: dict) -> None:
    """Our strategies' AUC minus each peer's and random's, with the paired
    bootstrap 95% interval over seeds, and labels to the common score ÷ random's."""
    rows = []
    for name, e in results["systems"].items():
        ratio = e.get("ratio_to_random")
        for other, d in e.get("auc_vs", {}).items():
            rows.append(
                [
                    name,
                    other,
                    f"{d['diff']:+.4f}",
                    f"[{d['low']:+.4f}, {d['high']:+.4f}]",
                    "yes" if d["low"] > 0 else "no",
                    "-" if ratio is None else f"{ratio:.3f}",
                ]
            )
    if rows:
        seeds = results["seeds"]
        msg.text(
            f"AUC differences over seeds {seeds[0]}-{seeds[-1]} ({results['split']} "
            "split); a score counts as reached when the run stays there to the budget."
        )
        msg.table(
            rows,
            header=["ours", "vs", "AUC diff", "95% interval", "above 0", "÷ random"],
            divider=True,
        )


# --- bench speed -----------------------------------------------------------------

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
    for size, mode in ((size, mode) for size in pools for mode in modes):
        try:
            r = speed.measure_next_example(
                records,
                pool_size=size,
                answers=answers,
                annotators=annotators,
                think=think,
                build=speed.SESSION if mode == "process" else speed.textcat_session,
                learner=mode,
            )
        except ValueError as e:
            msg.fail(str(e), exits=1)
        results["next_example"].append(r)
        q = r["answer_then_next"]
        rows.append(
            [
                f"{r['pool_size']:,}",
                mode,
                q["n"],
                _ms(q["p50"]),
                _ms(q["p95"]),
                _ms(r["answer"]["p95"]),
                _ms(r["next_task"]["p95"]),
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
            "learner",
            "answers",
            "p50",
            "p95",
            "answer p95",
            "next_task p95",
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
        name = "ner (beam_ner, width 4)" if model == "ner" else f"textcat {model}"
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
