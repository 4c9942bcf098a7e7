"""Label efficiency: how many labels each system needs, ours beside its peers.

:func:`run_labels` runs our strategies through :func:`spacy_al.simulate.simulate`
(the loop the labelling app uses) and the peers (:mod:`spacy_al.benchmarks.peers`:
small-text, modAL and a random baseline) on the same gold labels, from the same
seed sets, with the same batch size, budget, evaluation set and metric, and
returns every system's row (:func:`summarize`) and per-seed curves. A peer whose
package is missing is skipped with the reason; NER runs our strategies only (the
peers have no NER). :func:`plot_labels` draws the median curves. The ``bench
labels`` recipe prints the table. One concept, one module: the protocol (splits,
seeds, the common target, intervals) and the systems it compares belong together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from spacy_al.benchmarks.peers import (
    FULL_DATA_SETTINGS,
    PEERS,
    available_peers,
    full_data_score_peer,
    run_peer,
    seed_indices,
)
from spacy_al.corpus import Source
from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.ner.model import SESSION_FACTORY
from spacy_al.ner.scores import DEFAULT_NER_MEASURE
from spacy_al.simulate import simulate
from spacy_al.simulate.runner import (
    SimulationConfig,
    curve_auc,
    labels_to_target,
    paired_bootstrap,
)
from spacy_al.simulate.textcat import gold_set, infer_labels, split_variants
from spacy_al.textcat.learner import LINEAR_V3, MANY_LABELS, MANY_LABELS_ARCH
from spacy_al.textcat.model import DEFAULT_ARCHITECTURE

TASKS = ("textcat", "ner")
#: ``dev``: tune on a dev split of train.jsonl with seeds from TUNE_SEED;
#: ``test``: report on test.jsonl with seeds from REPORT_SEED (never tuned on).
SPLITS = ("dev", "test")
TUNE_SEED = 0
REPORT_SEED = 100
DEV_SHARE = 0.2
#: NER: what the recipes and ``simulate ner`` use (greedy ``ner`` scored with a
#: beam of 4, ranked by DEFAULT_NER_MEASURE; chosen on WNUT-17, issue #12).
DEFAULT_STRATEGIES = {
    "textcat": "margin,balanced,random",
    "ner": ",".join(dict.fromkeys((DEFAULT_NER_MEASURE, "random"))),
}
DEFAULT_ARCH = {"textcat": DEFAULT_ARCHITECTURE, "ner": SESSION_FACTORY}

Curve = list[tuple[int, float]]


# --- running the systems -------------------------------------------------------


def read_corpus(
    corpus: Path, *, split: str = "test", dev_share: float = DEV_SHARE
) -> tuple[list[dict], list[dict]]:
    """The pool and the evaluation records of a corpus DIR.

    ``split="test"``: DIR/train.jsonl and DIR/test.jsonl. ``split="dev"`` (for
    tuning): DIR/train.jsonl only, split by :func:`dev_split` into a pool and a
    dev set; DIR/test.jsonl is never opened.
    """
    if split not in SPLITS:
        raise ValueError(Errors.E442.format(split=split, report_seed=REPORT_SEED))
    train_path = Path(corpus) / "train.jsonl"
    if not train_path.is_file():
        raise FileNotFoundError(Errors.E708.format(path=train_path))
    train = list(Source(train_path, dedupe=False))
    if split == "dev":
        return dev_split(train, dev_share=dev_share)
    test_path = Path(corpus) / "test.jsonl"
    if not test_path.is_file():
        raise FileNotFoundError(Errors.E708.format(path=test_path))
    return train, list(Source(test_path, dedupe=False))


def dev_split(
    records: Sequence[dict], *, dev_share: float = DEV_SHARE, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """A pool and a dev set carved from training records (a fixed shuffle)."""
    n = len(records)
    n_dev = int(round(n * dev_share))
    if n_dev < 1 or n - n_dev < 2:
        raise ValueError(
            Errors.E441.format(dev_share=dev_share, n=n, n_dev=n_dev, n_train=n - n_dev)
        )
    order = np.random.default_rng(seed).permutation(n)
    dev = {int(i) for i in order[:n_dev]}
    return (
        [r for i, r in enumerate(records) if i not in dev],
        [r for i, r in enumerate(records) if i in dev],
    )


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
    aucs = [curve_auc(c) for c in runs]
    return {
        "seeds": sorted(curves),
        "full_data_score": full,
        "target_score": target * full,
        "labels_to_target": to_own,
        "labels_to_target_median": median_labels(to_own),
        "labels_to_common": to_common,
        "labels_to_common_median": median_labels(to_common),
        "auc": float(np.mean(aucs)),
        "auc_per_seed": aucs,
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


def run_labels(
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
    first_seed: int = REPORT_SEED,
    split: str = "test",
    architecture: str | None = None,
    patterns: str | None = None,
) -> dict:
    """Our strategies and the peers from the same seed sets; the results dict.

    With ``n_jobs`` > 1, our strategies run in ``n_jobs`` groups (each group a
    ``simulate`` call of its own, so each trains the full-data model; the first
    group's full-data score is the one used), and each peer in a job of its own.

    The runs use seeds ``first_seed`` .. ``first_seed + seeds - 1`` (tune with
    ``split="dev"`` from 0, report with ``split="test"`` from 100: ``split`` is
    recorded, the caller chose the records). A run reaches a score when it gets
    there and stays there to the budget. Every one of our strategies gets the
    difference of its AUC to each peer's and to our random's, with a paired
    bootstrap 95% interval over the seeds, and its labels to the common score
    as a share of our random's.
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
    for strategy in strategies:  # an unknown name fails here, not later
        StrategySpec.parse(split_variants(strategy)[0], task=task)
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
            for s in range(first_seed, first_seed + seeds)
        }
    config = SimulationConfig(
        strategies=tuple(strategies),
        seed_size=seed_size,
        batch_size=batch_size,
        budget=budget,
        seeds=seeds,
        target=target,
        positive_label=positive_label,
        architecture=architecture or DEFAULT_ARCH[task],
        patterns=patterns,
        patterns_for_all=False,  # only the NAME+patterns rows use them
        first_seed=first_seed,
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
        arch = results["config"]["architecture"]
        if arch != "linear":
            model = f"spaCy {arch}, online updates"
        elif len(labels) >= MANY_LABELS:
            model = (
                "spaCy textcat, spacy_al linear v3 (tf-idf char n-grams and words "
                "with the pool's LSA, linear SVM, C = 1, refit every batch)"
                if MANY_LABELS_ARCH == LINEAR_V3
                else "spaCy textcat, spacy_al linear v2 (tf-idf char n-grams and "
                "words, linear SVM, C = 1, refit every batch)"
            )
        else:
            model = (
                "spaCy textcat, spacy_al linear (tf-idf char n-grams, digits read "
                "as 0, L2 logistic regression refit every batch)"
            )
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
        systems[name]["full_data_training"] = (
            first["full_data_training"]
            if entry["kind"] == "spacy_al"
            else FULL_DATA_SETTINGS[PEERS[name].model]
        )
    compare_systems(systems)
    return {
        "benchmark": "labels",
        "task": first["task"],
        "metric": first["metric"],
        "labels": first["labels"],
        "pool_size": first["pool_size"],
        "eval_size": first["eval_size"],
        "split": split,
        "seeds": list(range(first_seed, first_seed + seeds)),
        "target_rule": "a run reaches a score when it gets there and stays there "
        "to the budget",
        "config": {
            "strategies": strategies,
            "peers": list(peers),
            "seeds": seeds,
            "first_seed": first_seed,
            "architecture": config.architecture,
            "patterns": patterns,
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


def compare_systems(systems: dict[str, dict]) -> None:
    """Add to each of our non-random strategies ``auc_vs``: its AUC minus every
    peer's and our random's (paired by seed, bootstrap 95% interval), and
    ``ratio_to_random``: its median labels to the common score over random's."""
    random_entry = systems.get("random")
    others = [n for n, e in systems.items() if e["kind"] == "peer" or n == "random"]
    for name, entry in systems.items():
        if entry["kind"] != "spacy_al" or name == "random":
            continue
        entry["auc_vs"] = {
            other: paired_bootstrap(
                entry["auc_per_seed"], systems[other]["auc_per_seed"]
            )
            for other in others
            if systems[other]["seeds"] == entry["seeds"]
        }
        if random_entry is not None:
            mine = entry["labels_to_common_median"]
            theirs = random_entry["labels_to_common_median"]
            entry["ratio_to_random"] = (
                mine / theirs if mine is not None and theirs else None
            )


def _job_name(job: tuple[str, tuple]) -> str:
    kind, args = job
    if kind == "ours":
        return "spacy_al " + ", ".join(args[2].strategies)
    return "peers " + ", ".join(args[0])


def plot_labels(results: dict, path: str | Path, *, title: str = "") -> None:
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
