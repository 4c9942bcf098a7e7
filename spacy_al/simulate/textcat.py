"""Simulated labelling for text classification: the oracle, one run, the
full-data reference and the textcat simulation.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spacy_al.corpus import gold_labels, set_hashes, write_jsonl
from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.metrics import textcat_score
from spacy_al.pool import Pool
from spacy_al.protocols import Served
from spacy_al.seed_sets import diverse_seed, pattern_seed
from spacy_al.simulate.runner import (
    Progress,
    SimulationConfig,
    _add_ratios_to_random,
    _median_curve,
    _median_or_none,
    _new_signal,
    _run_jobs,
    _stop_set_docs,
    curve_auc,
    labels_to_target,
    paired_bootstrap,
    seed_list,
    stop_summary,
)
from spacy_al.stopping import (
    StabilizingPredictions,
    stop_set_labels,
)
from spacy_al.strategies import resolve
from spacy_al.textcat.learner import pool_vectors
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
from spacy_al.textcat.patterns import PatternMatcher
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.training import train_textcat
from spacy_al.updater import Committee, Updater

if TYPE_CHECKING:
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.pool import OffsetPool


@dataclass
class GoldSet:
    tasks: list[dict]
    gold: list[list[str]]


def gold_set(records: Sequence[dict], *, what: str) -> GoldSet:
    """Records with gold labels, deduplicated by input key (first one wins)."""
    tasks, gold, seen = [], [], set()
    for i, record in enumerate(records, start=1):
        labels = gold_labels(record)
        if labels is None:
            raise ValueError(Errors.E411.format(what=what, i=i))
        task = set_hashes(
            {"text": record["text"], "meta": dict(record.get("meta") or {})}
        )
        if task["_input_key"] in seen:
            continue
        seen.add(task["_input_key"])
        tasks.append(task)
        gold.append(list(labels))
    return GoldSet(tasks, gold)


def infer_labels(*sets: GoldSet) -> tuple[str, ...]:
    return tuple(sorted({label for s in sets for labels in s.gold for label in labels}))


def oracle_answer(task: dict, gold: list[str], *, exclusive: bool, mode: str) -> dict:
    """What a careful annotator answers to a teach question, from the gold labels."""
    eg = dict(task)
    if task["label"] in gold:
        eg["answer"] = "accept"
    else:
        eg["answer"] = "reject"
        if mode == "correct" and exclusive and len(gold) == 1:
            eg["accept"] = list(gold)
    return eg


def seed_answer(task: dict, gold: list[str]) -> dict:
    """A manual (choice) answer for the seed set: all gold labels chosen."""
    return {**task, "accept": list(gold), "answer": "accept"}


#: What a strategy name's ``+`` suffixes may ask for (``margin+diverse-seed``):
#: a seed set of one text per cluster of the pool instead of a random one;
#: the patterns of ``SimulationConfig.patterns`` (when it isn't for all);
#: a seed set half of pattern matches (``pattern-seed``, needs patterns).
VARIANTS = ("diverse-seed", "patterns", "pattern-seed")


def split_variants(strategy: str) -> tuple[str, tuple[str, ...]]:
    """A strategy name and its cold-start variants (``margin+diverse-seed``)."""
    name, *variants = strategy.split("+")
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(
                Errors.E445.format(
                    variant=variant, strategy=strategy, variants=", ".join(VARIANTS)
                )
            )
    return name, tuple(variants)


def _evaluate(model: Served, eval_docs, eval_set: GoldSet, config, labels) -> float:
    return textcat_score(
        model.predict(eval_docs),
        eval_set.gold,
        labels,
        exclusive=not config.multilabel,
        positive_label=config.positive_label,
    )


def _new_updater(
    config: SimulationConfig, labels, spec: StrategySpec, seed: int
) -> Updater | Committee:
    nlp = build_textcat(
        labels,
        exclusive=not config.multilabel,
        base=config.base,
        architecture=config.architecture,
    )
    model = TextcatModel(nlp)
    kwargs = dict(
        learn_rate=config.learn_rate or DEFAULT_LEARN_RATE[config.architecture],
        update_steps=config.update_steps,
        replay=config.replay,
        retrain_every=config.retrain_every,
        drop=config.drop,
        snapshots=False,  # one thread: serve the training model itself
    )
    if spec.uses_committee:
        return Committee.build(model, size=config.committee_size, seed=seed, **kwargs)
    return Updater(model, seed=seed, **kwargs)


def run_one(
    train: GoldSet,
    eval_set: GoldSet,
    config: SimulationConfig,
    strategy: str,
    seed: int,
    on_round: Progress | None = None,
    stopping: StabilizingPredictions | None = None,
    *,
    cluster_pool: OffsetPool | None = None,
) -> list[tuple[int, float]]:
    """One learning curve: a strategy from one seed set to the budget.

    With ``stopping``, every model scored also predicts the stop set, and the
    signal is updated: its update ``k`` is the model of curve point ``k - 1``.
    With ``cluster_pool`` (TRAIN's texts indexed on a Dask cluster), the pool is
    scored on the cluster; the picks are the same.
    """
    labels = config.labels
    name, variants = split_variants(strategy)
    spec = StrategySpec.parse(name)
    updater = _new_updater(config, labels, spec, seed)
    model = updater.model
    use_patterns = config.patterns and (
        config.patterns_for_all or {"patterns", "pattern-seed"} & set(variants)
    )
    patterns = (
        PatternMatcher.from_file(model.nlp, config.patterns) if use_patterns else None
    )
    pool = Pool(train.tasks) if cluster_pool is None else cluster_pool.fresh()
    gold = {t["_input_key"]: g for t, g in zip(train.tasks, train.gold, strict=True)}
    loop = ActiveLoop(
        pool,
        updater,
        spec=spec,
        batch_size=config.batch_size,
        window=config.window,
        patterns=patterns,
        seed=seed,
        # random asks the pool in the order the seed decides, as the peers'
        # random does: the two baselines ask the same texts (common random
        # numbers); random-start's random phase asks them too
        strategy_config={"seed": seed}
        if spec.strategy
        in (resolve("random").strategy, resolve("random-start").strategy)
        else None,
    )
    eval_docs = model.make_docs(t["text"] for t in eval_set.tasks)
    exclusive = not config.multilabel
    stop_docs = _stop_set_docs(loop, config, seed) if stopping is not None else []

    def observe() -> None:  # the stopping signal sees every model that is scored
        if stopping is not None:
            stopping.update(stop_set_labels(updater.serving()[0], stop_docs))

    def evaluate() -> float:  # a committee scores the mean of its members
        served, _ = updater.serving()
        return _evaluate(served, eval_docs, eval_set, config, labels)

    # The seed set: the same random examples for every strategy with this seed.
    rng = np.random.default_rng(seed)
    seed_idx = rng.choice(
        len(pool), size=min(config.seed_size, len(pool)), replace=False
    )
    if "diverse-seed" in variants:  # one per cluster of the pool instead
        seed_idx = diverse_seed(
            pool_vectors([t["text"] for t in train.tasks]),
            min(config.seed_size, len(pool)),
            seed=seed,
        )
    if patterns is not None and ("pattern-seed" in variants or config.patterns_for_all):
        # up to half the seed set: texts the patterns mark, each label in turn
        # (as textcat.teach asks pattern matches from its untrained model on)
        seed_idx = pattern_seed(
            patterns.match_many(model.make_docs(t["text"] for t in pool.tasks)),
            seed_idx,
            rng=np.random.default_rng((seed, 2)),
        )
    loop.answer(
        [
            seed_answer(pool.tasks[i], gold[pool.tasks[i]["_input_key"]])
            for i in seed_idx
        ],
        annotator="oracle",
    )
    loop.learn()
    updater.retrain()
    curve = [(pool.n_done, evaluate())]
    observe()
    if on_round is not None:
        on_round(strategy, seed, *curve[-1])
    while pool.n_done < config.budget and pool.n_done < len(pool):
        n = min(config.batch_size, config.budget - pool.n_done)
        tasks = loop.select(n)
        if not tasks:
            break
        loop.answer(
            [
                oracle_answer(
                    t, gold[t["_input_key"]], exclusive=exclusive, mode=config.oracle
                )
                for t in tasks
            ],
            annotator="oracle",
        )
        loop.learn()
        curve.append((pool.n_done, evaluate()))
        observe()
        if on_round is not None:
            on_round(strategy, seed, *curve[-1])
    return curve


def full_data_score(
    train: GoldSet, eval_set: GoldSet, config: SimulationConfig, *, seed: int = 0
) -> tuple[float, dict]:
    """Train on all of TRAIN (early stopping on a 10% dev slice) and score on EVAL."""
    labels = config.labels
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train.tasks))
    n_dev = max(1, len(order) // 10)
    exclusive = not config.multilabel

    def target(i: int) -> TextcatTarget:
        t, g = train.tasks[i], train.gold[i]
        return TextcatTarget(
            t["text"], t["_input_key"], {x: float(x in g) for x in labels}, {}, True
        )

    nlp = build_textcat(
        labels, exclusive=exclusive, base=config.base, architecture=config.architecture
    )
    model = TextcatModel(nlp)
    eval_docs = model.make_docs(t["text"] for t in eval_set.tasks)
    if model.refits:
        # Solved to convergence on all of TRAIN (idf from TRAIN's texts, the pool).
        model.fit_idf(t["text"] for t in train.tasks)
        model.fit([target(i) for i in range(len(train.tasks))], max_iter=2000)
        score = _evaluate(model, eval_docs, eval_set, config, labels)
        attrs = model.thinc_model.attrs
        kind = (
            "linear SVM (squared hinge)"
            if attrs.get("loss") == "squared_hinge"
            else "logistic regression"
        )
        return score, {
            "solver": f"each label's L2 {kind} solved to convergence (liblinear "
            "dual, tolerance 1e-4, at most 2000 iterations) on all of TRAIN",
            "features": "char n-grams and words"
            if attrs.get("words")
            else "char n-grams",
            "class_weight": "balanced" if attrs.get("balance", True) else "none",
            "C": attrs["C"],
            "idf": "from TRAIN's texts",
        }
    dev_docs = model.make_docs(train.tasks[i]["text"] for i in order[:n_dev])
    dev_gold = [train.gold[i] for i in order[:n_dev]]

    def dev_score(m: TextcatModel) -> float:
        return textcat_score(
            m.predict(dev_docs),
            dev_gold,
            labels,
            exclusive=exclusive,
            positive_label=config.positive_label,
        )

    result = train_textcat(
        model,
        [target(i) for i in order[n_dev:]],
        dev_score,
        max_epochs=config.max_epochs,
        patience=config.patience,
        learn_rate=config.learn_rate or DEFAULT_LEARN_RATE[config.architecture],
        seed=seed,
    )
    score = _evaluate(result.model, eval_docs, eval_set, config, labels)
    return score, {
        "best_epoch": result.best_epoch,
        "dev_score": result.best_score,
        "max_epochs": config.max_epochs,
        "patience": config.patience,
        "early_stopping": "on a 10% dev slice of TRAIN",
    }


def _run_on_cluster(
    train: GoldSet,
    eval_set: GoldSet,
    config: SimulationConfig,
    on_round: Progress | None,
    on_job_done: Callable[[str, int], None] | None,
    cluster: Cluster | None,
):
    """``_run_jobs`` with TRAIN indexed and scored on a Dask cluster."""
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.pool import OffsetPool

    if config.n_jobs > 1:
        raise ValueError(Errors.E1208.format(n_jobs=config.n_jobs))
    if config.patterns:
        raise ValueError(Errors.E1205)
    opened = None
    if cluster is None:
        cluster = opened = Cluster.connect(config.dask)
    try:
        with tempfile.TemporaryDirectory(prefix="spacy_al_pool_") as tmp:
            path = Path(tmp) / "pool.jsonl"
            write_jsonl(
                path, ({"text": t["text"], "meta": t["meta"]} for t in train.tasks)
            )
            pool = OffsetPool.build(path, cluster=cluster)
            run = partial(run_one, cluster_pool=pool)
            return _run_jobs(run, train, eval_set, config, on_round, on_job_done)
    finally:
        if opened is not None:
            opened.close()


def simulate_textcat(
    train_records: Sequence[dict],
    eval_records: Sequence[dict],
    config: SimulationConfig,
    *,
    on_round: Progress | None = None,
    on_job_done: Callable[[str, int], None] | None = None,
    cluster: Cluster | None = None,
) -> dict:
    """Run every text-classification strategy from every seed; return the results.

    With ``config.dask`` the pool is scored on that Dask cluster (``cluster``,
    if given, is used instead of opening one): TRAIN's texts are written to a
    JSONL file in a temporary folder, which the workers read (a remote
    cluster's workers must see it: set TMPDIR to a shared folder).
    """
    start = time.perf_counter()
    _new_signal(config)  # bad stopping settings fail before any training
    train = gold_set(train_records, what="TRAIN")
    eval_set = gold_set(eval_records, what="EVAL")
    if not config.labels:
        config.labels = infer_labels(train, eval_set)
    if not config.multilabel and any(len(g) != 1 for g in train.gold + eval_set.gold):
        raise ValueError(Errors.E412)
    full, full_info = full_data_score(train, eval_set, config)
    target_score = config.target * full
    if config.dask or cluster is not None:
        curves, signals = _run_on_cluster(
            train, eval_set, config, on_round, on_job_done, cluster
        )
    else:
        curves, signals = _run_jobs(
            run_one, train, eval_set, config, on_round, on_job_done
        )
    results: dict = {
        "task": "textcat_multilabel" if config.multilabel else "textcat",
        "metric": f"f1 ({config.positive_label})"
        if config.positive_label
        else "macro f1",
        "labels": list(config.labels),
        "full_data_score": full,
        "full_data_training": full_info,
        "target": config.target,
        "target_score": target_score,
        "pool_size": len(train.tasks),
        "eval_size": len(eval_set.tasks),
        "config": {k: v for k, v in asdict(config).items() if k != "labels"},
        "strategies": {},
    }
    seeds = seed_list(config)
    results["seeds"] = seeds
    results["target_rule"] = "reached and stayed at or above the target to the budget"
    for strategy in config.strategies:
        runs = [curves[strategy][seed] for seed in seeds]
        reached = [labels_to_target(c, target_score) for c in runs]
        aucs = [curve_auc(c) for c in runs]
        results["strategies"][strategy] = {
            "labels_to_target": reached,
            "labels_to_target_median": _median_or_none(reached),
            "auc": float(np.mean(aucs)),
            "auc_per_seed": aucs,
            "final_score": float(np.median([c[-1][1] for c in runs])),
            "curve": _median_curve(runs),
            "curves": {
                str(seed): [list(p) for p in c]
                for seed, c in zip(seeds, runs, strict=True)
            },
            "stop": stop_summary(
                runs, [signals[strategy][seed] for seed in seeds], full
            ),
        }
    _add_ratios_to_random(
        results["strategies"], {"labels_to_target_median": "ratio_to_random"}
    )
    if "random" in results["strategies"]:
        base = results["strategies"]["random"]["auc_per_seed"]
        for name, entry in results["strategies"].items():
            if name != "random":
                entry["auc_vs_random"] = paired_bootstrap(entry["auc_per_seed"], base)
    results["wall_time_seconds"] = time.perf_counter() - start
    return results
