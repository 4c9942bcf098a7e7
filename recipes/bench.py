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
only, asked by the labelling loop as ``textcat.teach --patterns`` asks them)
or ``+pattern-seed`` (``--patterns`` also fill up to half the seed set with
texts they match), to measure each cold start on its own. Writes DIR/results.json
(every per-seed curve too) and DIR/curves.png (median curves of every system).

``bench speed`` (latency, update time, scoring throughput and memory) is in
``bench_speed.py``, ``bench durability`` (kill -9 trials and a team under load)
in ``bench_durability.py``. The measuring is in ``spacy_al.benchmarks``; this
module reads the options, calls it and prints the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import srsly
import typer
from wasabi import msg

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

from ._options import BatchSize, Budget, Corpus, SeedSize, Target, split_commas

#: The benchmarks: ``bench WHAT`` runs the recipe ``bench.WHAT``.
BENCHMARKS = ("labels", "speed", "durability")


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
