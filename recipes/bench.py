"""bench: measure spacy_al's claims, side by side with its peers, in one run.

    python -m spacy_al bench labels --corpus DIR [--task textcat] \\
        [--strategies margin,balanced,random] \\
        [--peers small-text-entropy,small-text-breaking-ties,modal-uncertainty,modal-margin,sklearn-random] \\
        [--seeds 5] [--seed-size 20] [--batch-size 10] [--budget 1000] \\
        [--positive-label spam] [--output DIR] [--n-jobs 2]

``bench labels``: how many labels does each system need? DIR holds train.jsonl
(the pool, with its gold labels) and test.jsonl (the evaluation set). Our
strategies run through ``spacy_al.simulate`` (the loop the labelling app uses);
the peers (``spacy_al.benchmarks.peers``: small-text, modAL and a random baseline, installed
with ``pip install -e .[bench]``) replay the same gold labels from the same seed
sets, with the same batch size, budget, evaluation set and metric. A peer whose
package is missing is skipped with a message. NER runs our strategies only: the
peers have no NER.

For every system the table shows, with medians over seeds:

- labels to reach 95% (``--target``) of ITS OWN full-data score (its model
  trained on all of TRAIN, scored on TEST): how fast it gets close to what its
  model can do;
- labels to reach one common absolute score, 95% of the best full-data score
  among all the systems: how fast it gets to a quality a user would accept
  whatever the tool. A weaker model may never get there;
- AUC: the mean score over its curve (every system is scored at the same label
  counts, so this is the area under the curve divided by the budget);
- its final score at the budget.

A seed that never reaches a score counts as more than the budget, so the median
is '>budget' when half the seeds or more never get there. Writes DIR/results.json
(every per-seed curve too) and DIR/curves.png (median curves of every system).

    python -m spacy_al bench speed --corpus DIR [--pools 10000,100000] \\
        [--answers 500] [--annotators 5] [--big-pools 100000,1000000] \\
        [--update-batches 20] [--scoring-docs 20000] [--ner-corpus DIR] [--output DIR]

``bench speed``: how fast is a session on pools made of DIR/train.jsonl's texts
(``spacy_al.benchmarks.speed``): answer -> next example in the Feed while the model
learns; a batch -> the updated model serving (textcat bow and ensemble, NER beam
4 on --ner-corpus); scoring throughput against raw ``nlp.pipe``; peak RSS and
time to the first question for big pools, each in a fresh process. Prints a
table per section beside the project's targets; writes DIR/results.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import srsly
import typer
from wasabi import msg

from spacy_al.benchmarks import speed as bench_speed
from spacy_al.benchmarks.peers import (
    PEERS,
    available_peers,
    full_data_score_peer,
    run_peer,
    seed_indices,
)
from spacy_al.corpus import Source
from spacy_al.errors import Errors, SourceError
from spacy_al.loop import StrategySpec
from spacy_al.registry import recipe
from spacy_al.simulate import simulate
from spacy_al.simulate.runner import SimulationConfig
from spacy_al.simulate.textcat import gold_set, infer_labels, labels_to_target

from ._options import BatchSize, Budget, SeedSize, Target, split_commas
from .simulate import stop_cells

#: The benchmarks ``bench WHAT`` knows; each has a ``bench_<what>`` function.
BENCHMARKS = ("labels", "speed")
TASKS = ("textcat", "ner")
DEFAULT_STRATEGIES = {"textcat": "margin,balanced,random", "ner": "mnlp,random"}
DEFAULT_ARCH = {"textcat": "bow", "ner": "beam_ner"}

Curve = list[tuple[int, float]]


# --- running the systems -------------------------------------------------------


def read_corpus(corpus: Path) -> tuple[list[dict], list[dict]]:
    """The records of DIR/train.jsonl and DIR/test.jsonl."""
    paths = [Path(corpus) / "train.jsonl", Path(corpus) / "test.jsonl"]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(Errors.E708.format(path=path))
    train, test = (list(Source(path, dedupe=False)) for path in paths)
    return train, test


def _run_ours(
    train_records: list[dict], eval_records: list[dict], config: SimulationConfig
) -> tuple[dict, dict[str, dict[int, Curve]]]:
    """``simulate`` for some strategies, keeping every per-seed curve."""
    curves: dict[str, dict[int, Curve]] = {s: {} for s in config.strategies}

    def on_round(strategy: str, seed: int, n: int, score: float) -> None:
        curves[strategy].setdefault(seed, []).append((int(n), float(score)))

    results = simulate(train_records, eval_records, config, on_round=on_round)
    return results, curves


def _run_peers(
    names: Sequence[str],
    texts: list[str],
    gold: list[list[str]],
    eval_texts: list[str],
    eval_gold: list[list[str]],
    labels: list[str],
    seed_sets: dict[int, list[int]],
    batch_size: int,
    budget: int,
    positive_label: str | None,
) -> dict[str, dict]:
    """Every peer from every seed set, and each peer model's full-data score."""
    data = (texts, gold, eval_texts, eval_gold, labels)
    full: dict[str, float] = {}  # one full-data score per model
    out = {}
    for name in names:
        start = time.perf_counter()
        model = PEERS[name].model
        if model not in full:
            full[model] = full_data_score_peer(
                name, *data, positive_label=positive_label
            )
        curves = {
            seed: run_peer(
                name,
                *data,
                seed_indices=idx,
                batch_size=batch_size,
                budget=budget,
                positive_label=positive_label,
                seed=seed,
            )
            for seed, idx in seed_sets.items()
        }
        out[name] = {
            "full_data_score": full[model],
            "curves": curves,
            "wall_time_seconds": time.perf_counter() - start,
        }
    return out


def _run_job(job: tuple[str, tuple]) -> tuple[str, Any]:
    kind, args = job
    return kind, (_run_ours(*args) if kind == "ours" else _run_peers(*args))


# --- summarising ---------------------------------------------------------------


def median_labels(values: Sequence[int | None]) -> float | None:
    """Median over seeds, a seed that never got there counting as infinite.

    ``None`` when the median is infinite: half the seeds or more never got there.
    """
    if not values:
        return None
    median = float(np.median([np.inf if v is None else v for v in values]))
    return None if np.isinf(median) else median


def median_curve(curves: Sequence[Curve]) -> list[list[float]]:
    """The median score over seeds at every label count."""
    by_n: dict[int, list[float]] = {}
    for curve in curves:
        for n, score in curve:
            by_n.setdefault(int(n), []).append(score)
    return [[n, float(np.median(v))] for n, v in sorted(by_n.items())]


def summarize(
    curves: dict[int, Curve], *, full: float, target: float, common: float
) -> dict:
    """One system's row: labels to its own target and to the common score, AUC."""
    runs = [curves[seed] for seed in sorted(curves)]
    to_own = [labels_to_target(c, target * full) for c in runs]
    to_common = [labels_to_target(c, common) for c in runs]
    return {
        "full_data_score": full,
        "target_score": target * full,
        "labels_to_target": to_own,
        "labels_to_target_median": median_labels(to_own),
        "labels_to_common": to_common,
        "labels_to_common_median": median_labels(to_common),
        "auc": float(np.mean([np.mean([s for _, s in c]) for c in runs])),
        "final_score": float(np.median([c[-1][1] for c in runs])),
        "curve": median_curve(runs),
        "curves": {
            str(seed): [list(p) for p in curves[seed]] for seed in sorted(curves)
        },
    }


def _requested_peers(
    names: Sequence[str], task: str
) -> tuple[list[str], dict[str, str]]:
    """The peers to run, and the skipped ones with the reason."""
    for name in names:
        if name not in PEERS:
            raise ValueError(Errors.E700.format(name=name, names=", ".join(PEERS)))
    if task == "ner":
        return [], {name: "the peers have no NER" for name in names}
    status = available_peers()
    run = [n for n in names if status[n] is None]
    return run, {n: status[n] for n in names if status[n] is not None}


def bench_labels(
    train_records: Sequence[dict],
    eval_records: Sequence[dict],
    *,
    task: str = "textcat",
    strategies: Sequence[str] = ("margin", "balanced", "random"),
    peers: Sequence[str] = tuple(PEERS),
    seeds: int = 5,
    seed_size: int = 20,
    batch_size: int = 10,
    budget: int = 1000,
    target: float = 0.95,
    positive_label: str | None = None,
    n_jobs: int = 1,
    on_job_done: Callable[[str, float], None] | None = None,
) -> dict:
    """Our strategies and the peers from the same seed sets; the results dict.

    With ``n_jobs`` > 1, our strategies run in ``n_jobs`` groups (each group a
    ``simulate`` call of its own, so each trains the full-data model; the first
    group's full-data score is the one used), and each peer in a job of its own.
    """
    start = time.perf_counter()
    if task not in TASKS:
        raise ValueError(Errors.E710.format(task=task, tasks=", ".join(TASKS)))
    for name, value in (
        ("seeds", seeds),
        ("batch_size", batch_size),
        ("n_jobs", n_jobs),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(Errors.E705.format(name=name, value=value))
    strategies = list(strategies)
    if not strategies:
        raise ValueError(Errors.E709)
    for strategy in strategies:
        StrategySpec.parse(strategy, task=task)  # an unknown name fails here, not later
    peer_names, skipped = _requested_peers(peers, task)

    labels: tuple[str, ...] = ()
    seed_sets: dict[int, list[int]] = {}
    if task == "textcat":
        train, eval_set = (
            gold_set(train_records, what="TRAIN"),
            gold_set(eval_records, what="EVAL"),
        )
        labels = infer_labels(train, eval_set)
        if positive_label is not None and positive_label not in labels:
            raise ValueError(
                Errors.E410.format(label=positive_label, labels=list(labels))
            )
        # The seed sets simulate's run_one draws: the same indices for every system.
        seed_sets = {
            s: [int(i) for i in seed_indices(len(train.tasks), seed_size, s)]
            for s in range(seeds)
        }
    config = SimulationConfig(
        strategies=tuple(strategies),
        seed_size=seed_size,
        batch_size=batch_size,
        budget=budget,
        seeds=seeds,
        target=target,
        positive_label=positive_label,
        architecture=DEFAULT_ARCH[task],
        labels=labels,
        task=task,
        drop=0.1 if task == "ner" else 0.0,
    )
    groups = [strategies[i::n_jobs] for i in range(min(n_jobs, len(strategies)))]
    jobs: list[tuple[str, tuple]] = [
        (
            "ours",
            (
                list(train_records),
                list(eval_records),
                SimulationConfig(**{**asdict(config), "strategies": tuple(group)}),
            ),
        )
        for group in groups
    ]
    # Serially, one job runs every peer (sharing each model's full-data score);
    # in parallel, one job per peer balances the load better.
    peer_groups = [[name] for name in peer_names]
    if n_jobs == 1 and peer_names:
        peer_groups = [peer_names]
    for group in peer_groups:
        jobs.append(
            (
                "peers",
                (
                    group,
                    [t["text"] for t in train.tasks],
                    train.gold,
                    [t["text"] for t in eval_set.tasks],
                    eval_set.gold,
                    list(labels),
                    seed_sets,
                    batch_size,
                    budget,
                    positive_label,
                ),
            )
        )

    # Run the jobs: in this process, or in a pool of n_jobs processes.
    outputs: list[tuple[int, str, Any]] = []
    if n_jobs == 1:
        for i, job in enumerate(jobs):
            outputs.append((i, *_run_job(job)))
            if on_job_done is not None:
                on_job_done(_job_name(job), time.perf_counter() - start)
    else:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                i = futures[future]
                outputs.append((i, *future.result()))
                if on_job_done is not None:
                    on_job_done(_job_name(jobs[i]), time.perf_counter() - start)
    outputs.sort(key=lambda o: o[0])

    # Gather every system's per-seed curves and full-data score.
    sim_results = [out for _, kind, out in outputs if kind == "ours"]
    ours_full = sim_results[0][0]["full_data_score"]
    raw: dict[str, dict] = {}
    for results, curves in sim_results:
        model = f"spaCy {results['config']['architecture']}, online updates"
        for strategy in results["config"]["strategies"]:
            raw[strategy] = {
                "kind": "spacy_al",
                "model": model,
                "full": ours_full,
                "curves": curves[strategy],
                # where the stopping signal would have stopped (peers have none)
                "stop": results["strategies"][strategy]["stop"],
            }
    for _, kind, out in outputs:
        if kind == "peers":
            for name, entry in out.items():
                raw[name] = {
                    "kind": "peer",
                    "model": PEERS[name].description,
                    "full": entry["full_data_score"],
                    "curves": entry["curves"],
                    "wall_time_seconds": entry["wall_time_seconds"],
                }
    best = max(raw, key=lambda name: raw[name]["full"])
    common = target * raw[best]["full"]
    first = sim_results[0][0]
    systems = {}
    for name in [*strategies, *peer_names]:  # the order asked for
        entry = raw[name]
        systems[name] = {
            "kind": entry["kind"],
            "model": entry["model"],
            **summarize(
                entry["curves"], full=entry["full"], target=target, common=common
            ),
        }
        for key in ("stop", "wall_time_seconds"):
            if key in entry:
                systems[name][key] = entry[key]
    return {
        "benchmark": "labels",
        "task": first["task"],
        "metric": first["metric"],
        "labels": first["labels"],
        "pool_size": first["pool_size"],
        "eval_size": first["eval_size"],
        "config": {
            "strategies": strategies,
            "peers": list(peers),
            "seeds": seeds,
            "seed_size": seed_size,
            "batch_size": batch_size,
            "budget": budget,
            "target": target,
            "positive_label": positive_label,
            "n_jobs": n_jobs,
        },
        "target": target,
        "seed_indices": {str(s): idx for s, idx in seed_sets.items()},
        "common_score": common,
        "common_score_rule": (
            f"{target:.0%} of the best full-data score among the systems "
            f"({best}: {raw[best]['full']:.3f})"
        ),
        "full_data_score_runs": [r["full_data_score"] for r, _ in sim_results],
        "full_data_training": first["full_data_training"],
        "systems": systems,
        "skipped": skipped,
        "wall_time_seconds": time.perf_counter() - start,
    }


def _job_name(job: tuple[str, tuple]) -> str:
    kind, args = job
    if kind == "ours":
        return "spacy_al " + ", ".join(args[2].strategies)
    return "peers " + ", ".join(args[0])


# --- reporting -----------------------------------------------------------------


def _labels_cell(value: float | None, budget: int) -> str:
    return f">{budget}" if value is None else f"{value:.0f}"


def print_bench_table(results: dict) -> None:
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


def plot_bench(results: dict, path: str | Path, *, title: str = "") -> None:
    """Every system's median learning curve in one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    # Ours solid; each peer its own dash, so that curves which coincide (in a
    # binary task entropy, margin and least confidence rank alike) stay visible.
    dashes = iter(
        [(0, (5, 2)), (0, (2, 2)), (0, (6, 2, 1, 2)), (0, (1, 1)), (0, (8, 3))] * 9
    )
    for name, e in results["systems"].items():
        ours = e["kind"] == "spacy_al"
        ax.plot(
            [p[0] for p in e["curve"]],
            [p[1] for p in e["curve"]],
            label=f"{name} (spacy_al)" if ours else name,
            linestyle="-" if ours else next(dashes),
            linewidth=2.0 if ours else 1.4,
        )
    ax.axhline(
        results["common_score"],
        color="grey",
        linestyle=":",
        label=f"common score {results['common_score']:.3f}",
    )
    ax.set_xlabel("labels")
    ax.set_ylabel(results["metric"])
    seeds = results["config"]["seeds"]
    ax.set_title(f"{title + ': ' if title else ''}median of {seeds} seed(s)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- bench speed ---------------------------------------------------------------


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


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


#: The session bench speed measures, for a fresh interpreter to import.
SESSION = "spacy_al.recipes.bench:textcat_session"


def textcat_session(pool_path: Path, db: Path, labels: list[str]) -> dict:
    """``textcat.teach``'s components on a pool, as the app serves them (bow,
    margin, 20k scoring window, SQLite store)."""
    from .textcat import build_components

    return build_components(
        "bench",
        pool_path,
        labels=labels,
        view_id="classification",
        strategy="margin",
        db=f"sqlite:///{db}",
    )


def run_speed(
    corpus: Path,
    *,
    pools: Sequence[int],
    answers: int,
    annotators: int,
    big_pools: Sequence[int],
    ner_corpus: Path | None,
    output: Path,
    update_batches: int = 20,
    scoring_docs: int = 20_000,
    think: tuple[float, float] = (0.5, 1.5),
) -> dict:
    """Run every bench speed measurement, print a table per section, write JSON."""
    start = time.perf_counter()
    train = Path(corpus) / "train.jsonl"
    if not train.is_file():
        msg.fail(Errors.E722.format(path=train), exits=1)
    ner_corpus = ner_corpus or Path(corpus).parent / "wnut17"
    ner_train = Path(ner_corpus) / "train.jsonl"
    try:
        records = bench_speed.read_labelled(train)
    except (SourceError, ValueError) as e:
        msg.fail(str(e), exits=1)
    raw_records = list(srsly.read_jsonl(train))
    targets = bench_speed.TARGETS
    results: dict[str, Any] = {
        "benchmark": "speed",
        "corpus": str(corpus),
        "machine": bench_speed.machine_info(),
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
    for size in pools:
        try:
            r = bench_speed.measure_next_example(
                records,
                pool_size=size,
                answers=answers,
                annotators=annotators,
                think=think,
                build=textcat_session,
            )
        except ValueError as e:
            msg.fail(str(e), exits=1)
        results["next_example"].append(r)
        q = r["answer_then_next"]
        rows.append(
            [
                f"{r['pool_size']:,}",
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
            r = bench_speed.measure_update(recs, model=model, batches=update_batches)
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
        r = bench_speed.measure_scoring(records, n_docs=scoring_docs)
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
            r = bench_speed.measure_startup_subprocess(
                records, pool_size=size, build=SESSION
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
    results["wall_time_seconds"] = time.perf_counter() - start
    output.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output / "results.json", results)
    msg.good(
        f"Wrote {output / 'results.json'} ({results['wall_time_seconds']:.0f} s; "
        f"load average now {_load()})"
    )
    return results


# --- the command ---------------------------------------------------------------


@recipe("bench")
def bench_cli(
    what: Annotated[
        str, typer.Argument(help="What to measure: labels, speed or durability")
    ],
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="Directory with train.jsonl and test.jsonl"),
    ] = None,
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
        Path | None,
        typer.Option(
            "--output", help="Directory for the results (default: bench_WHAT)"
        ),
    ] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", help="Processes in parallel")] = 1,
    pools: Annotated[
        str, typer.Option("--pools", help="speed: pool sizes for answer -> next")
    ] = "10000,100000",
    answers: Annotated[
        int, typer.Option("--answers", help="speed: answers per pool size")
    ] = 500,
    annotators: Annotated[
        int, typer.Option("--annotators", help="speed: annotator threads")
    ] = 5,
    big_pools: Annotated[
        str,
        typer.Option("--big-pools", help="speed: pool sizes for memory and start-up"),
    ] = "100000,1000000",
    think: Annotated[
        str,
        typer.Option(
            "--think",
            help="speed: MIN,MAX seconds an annotator reads (0,0.05: a stress "
            "test, far faster than people)",
        ),
    ] = "0.5,1.5",
    update_batches: Annotated[
        int, typer.Option("--update-batches", help="speed: batches learnt per model")
    ] = 20,
    scoring_docs: Annotated[
        int, typer.Option("--scoring-docs", help="speed: texts scored per repeat")
    ] = 20_000,
    ner_corpus: Annotated[
        Path | None,
        typer.Option(
            "--ner-corpus",
            help="speed: a corpus with gold spans for the NER update figures "
            "(default: wnut17 beside --corpus, if there)",
        ),
    ] = None,
) -> None:
    """Benchmarks: bench labels, bench speed, bench durability.

    bench labels compares label savings with small-text and modAL; bench speed
    measures latency, update time, scoring throughput and memory; bench
    durability runs kill -9 trials and a team under load (see bench.durability).
    """
    if what not in BENCHMARKS:
        msg.fail(Errors.E707.format(what=what, whats=", ".join(BENCHMARKS)), exits=1)
    if corpus is None:
        msg.fail(Errors.E711.format(what=what), exits=1)
    output = output or Path(f"bench_{what}")
    if what == "speed":
        run_speed(
            corpus,
            pools=_sizes(pools),
            answers=answers,
            annotators=annotators,
            big_pools=_sizes(big_pools),
            ner_corpus=ner_corpus,
            output=output,
            update_batches=update_batches,
            scoring_docs=scoring_docs,
            think=_think(think),
        )
        return
    # bench labels: read the corpus, run every system, write and print the results.
    try:
        train_records, eval_records = read_corpus(corpus)
    except (SourceError, FileNotFoundError, ValueError) as e:
        msg.fail(str(e), exits=1)
    if task not in TASKS:
        msg.fail(Errors.E710.format(task=task, tasks=", ".join(TASKS)), exits=1)
    strategy_names = split_commas(strategies or DEFAULT_STRATEGIES[task])
    peer_names = split_commas(
        ",".join(PEERS) if peers is None and task == "textcat" else peers or ""
    )
    msg.info(
        f"bench labels on {corpus}: {len(train_records)} train, {len(eval_records)} "
        f"test records; {', '.join(strategy_names)} and {', '.join(peer_names) or 'no peers'}; "
        f"{seeds} seed(s), budget {budget}"
    )

    def on_job_done(name: str, seconds: float) -> None:
        msg.text(f"  done: {name} ({seconds:.0f} s)")

    try:
        results = bench_labels(
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
        )
    except ValueError as e:
        msg.fail(str(e), exits=1)
    results["corpus"] = str(corpus)
    for name, reason in results["skipped"].items():
        msg.warn(f"Skipped {name}: {reason}")
    output.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output / "results.json", results)
    plot_bench(results, output / "curves.png", title=Path(corpus).name)
    msg.info(
        f"{results['metric']} on {results['eval_size']} test texts, pool "
        f"{results['pool_size']}; common score = {results['common_score_rule']} "
        f"= {results['common_score']:.3f}"
    )
    print_bench_table(results)
    msg.good(
        f"Wrote {output / 'results.json'} and {output / 'curves.png'} "
        f"({results['wall_time_seconds']:.0f} s)"
    )
