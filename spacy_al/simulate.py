"""Replay gold labels as the annotator: how many labels does each strategy need?

For every seed and strategy, a fresh model starts from the same random seed set;
then, batch by batch, the loop (the same ``ActiveLoop`` the app drives) picks
questions, an oracle answers them from the gold labels, the model updates online,
and the serving model is scored on the evaluation set. The same run trains a model
on all of TRAIN to convergence (early stopping on a dev slice of TRAIN): the
full-data score, which the target is a fraction of.

Each run also follows the stopping signal the app shows (stabilizing
predictions, :mod:`spacy_al.stopping`): after every update the serving model
predicts a fixed stop set of the pool (the same for every strategy with one seed),
and the results say where the signal would have stopped (labels, and the score
there against the run's final score and the full-data score).

This module holds the runner every task shares and text classification;
:mod:`spacy_al.simulate_ner` the NER runs (``simulate`` hands them over).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from spacy_al.corpus import gold_labels, set_hashes
from spacy_al.errors import Errors
from spacy_al.loop import ActiveLoop, Pool, StrategySpec
from spacy_al.metrics import textcat_score
from spacy_al.models import (
    DEFAULT_LEARN_RATE,
    Committee,
    TextcatModel,
    Updater,
    build_textcat,
)
from spacy_al.patterns import PatternMatcher
from spacy_al.stopping import (
    DEFAULT_STOP_SET_SIZE,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    StabilizingPredictions,
    sample_stop_set,
    stop_set_labels,
)
from spacy_al.targets import TextcatTarget
from spacy_al.training import train_textcat

#: Called after every evaluated round: strategy, seed, labels so far, score.
Progress = Callable[[str, int, int, float], None]


@dataclass
class SimulationConfig:
    strategies: tuple[str, ...] = ("margin", "random")
    seed_size: int = 20
    batch_size: int = 10
    budget: int = 1000
    seeds: int = 5
    target: float = 0.95
    positive_label: str | None = None
    architecture: str = "bow"
    base: str = "blank:en"
    multilabel: bool = False
    oracle: str = "correct"  # "correct": a reject names the right label; "binary"
    update_steps: int = 3
    replay: int = 30
    retrain_every: int = 0
    learn_rate: float | None = None
    window: int | None = None
    committee_size: int = 3
    patterns: str | None = None
    n_jobs: int = 1
    labels: tuple[str, ...] = field(default_factory=tuple)
    task: str = "textcat"  # or "ner"
    beam_width: int = 4  # NER: beam for training (beam_ner) and scoring; 1 = greedy
    drop: float = 0.0  # dropout in every update
    max_epochs: int = 30  # the full-data reference's training
    patience: int = 4
    stop_window: int = DEFAULT_WINDOW  # the stopping signal (stabilizing predictions)
    stop_threshold: float = DEFAULT_THRESHOLD
    stop_set_size: int = DEFAULT_STOP_SET_SIZE


@dataclass
class GoldSet:
    tasks: list[dict]
    gold: list[list[str]]


def gold_set(records: Sequence[dict], *, what: str) -> GoldSet:
    """Records with gold labels, deduplicated by input hash (first one wins)."""
    tasks, gold, seen = [], [], set()
    for i, record in enumerate(records, start=1):
        labels = gold_labels(record)
        if labels is None:
            raise ValueError(Errors.E411.format(what=what, i=i))
        task = set_hashes(
            {"text": record["text"], "meta": dict(record.get("meta") or {})}
        )
        if task["_input_hash"] in seen:
            continue
        seen.add(task["_input_hash"])
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


def labels_to_target(
    curve: Sequence[tuple[int, float]], target_score: float
) -> int | None:
    for n, score in curve:
        if score >= target_score:
            return int(n)
    return None


def _evaluate(
    model: TextcatModel, eval_docs, eval_set: GoldSet, config, labels
) -> float:
    return textcat_score(
        model.predict(eval_docs),
        eval_set.gold,
        labels,
        exclusive=not config.multilabel,
        positive_label=config.positive_label,
    )


def _new_updater(config: SimulationConfig, labels, spec: StrategySpec, seed: int):
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


def _stop_set_docs(loop, config: SimulationConfig, seed: int) -> list:
    """The run's stop set: the same pool examples for every strategy with ``seed``
    (tokenized by the loop, which keeps them for its own scoring)."""
    indices = sample_stop_set(len(loop.pool), size=config.stop_set_size, seed=seed)
    return loop.docs(indices)


def run_one(
    train: GoldSet,
    eval_set: GoldSet,
    config: SimulationConfig,
    strategy: str,
    seed: int,
    on_round: Progress | None = None,
    stopping: StabilizingPredictions | None = None,
) -> list[tuple[int, float]]:
    """One learning curve: a strategy from one seed set to the budget.

    With ``stopping``, every model scored also predicts the stop set, and the
    signal is updated: its update ``k`` is the model of curve point ``k - 1``.
    """
    labels = config.labels
    spec = StrategySpec.parse(strategy)
    updater = _new_updater(config, labels, spec, seed)
    model = updater.model
    patterns = (
        PatternMatcher.from_file(model.nlp, config.patterns)
        if config.patterns
        else None
    )
    pool = Pool(train.tasks)
    gold = {t["_input_hash"]: g for t, g in zip(train.tasks, train.gold, strict=True)}
    loop = ActiveLoop(
        pool,
        updater,
        spec=spec,
        batch_size=config.batch_size,
        window=config.window,
        patterns=patterns,
        seed=seed,
    )
    eval_docs = model.make_docs(t["text"] for t in eval_set.tasks)
    exclusive = not config.multilabel
    stop_docs = _stop_set_docs(loop, config, seed) if stopping is not None else []

    def observe() -> None:  # the stopping signal sees every model that is scored
        if stopping is not None:
            stopping.update(stop_set_labels(updater.serving()[0], stop_docs))

    def evaluate() -> float:
        served, _ = updater.serving()
        if isinstance(served, list):  # a committee: score the mean of its members
            probs = np.mean([m.predict(eval_docs) for m in served], axis=0)
            return textcat_score(
                probs,
                eval_set.gold,
                labels,
                exclusive=exclusive,
                positive_label=config.positive_label,
            )
        return _evaluate(served, eval_docs, eval_set, config, labels)

    # The seed set: the same random examples for every strategy with this seed.
    rng = np.random.default_rng(seed)
    seed_idx = rng.choice(
        len(pool), size=min(config.seed_size, len(pool)), replace=False
    )
    loop.answer(
        [
            seed_answer(pool.tasks[i], gold[pool.tasks[i]["_input_hash"]])
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
                    t, gold[t["_input_hash"]], exclusive=exclusive, mode=config.oracle
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
            t["text"], t["_input_hash"], {x: float(x in g) for x in labels}, {}, True
        )

    nlp = build_textcat(
        labels, exclusive=exclusive, base=config.base, architecture=config.architecture
    )
    model = TextcatModel(nlp)
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
    eval_docs = model.make_docs(t["text"] for t in eval_set.tasks)
    score = _evaluate(result.model, eval_docs, eval_set, config, labels)
    return score, {"best_epoch": result.best_epoch, "dev_score": result.best_score}


def _median_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[list[float]]:
    by_n: dict[int, list[float]] = {}
    for curve in curves:
        for n, score in curve:
            by_n.setdefault(int(n), []).append(score)
    return [[n, float(np.median(v))] for n, v in sorted(by_n.items())]


def _median_or_none(values: Sequence[float | None]) -> float | None:
    """The median, counting a run that never reached the target as infinitely long.

    So the median is known while fewer than half the runs missed the target, and
    None (not reached within the budget) otherwise.
    """
    if not values:
        return None
    median = float(np.median([math.inf if v is None else v for v in values]))
    return None if math.isinf(median) else median


def _new_signal(config: SimulationConfig) -> StabilizingPredictions:
    return StabilizingPredictions(
        window=config.stop_window, threshold=config.stop_threshold
    )


def _run_job(args):
    run, train, eval_set, config, strategy, seed = args
    signal = _new_signal(config)
    curve = run(train, eval_set, config, strategy, seed, stopping=signal)
    return strategy, seed, curve, signal


def _run_jobs(
    run: Callable[..., list],
    train,
    eval_set,
    config: SimulationConfig,
    on_round: Progress | None,
    on_job_done: Callable[[str, int], None] | None,
) -> tuple[dict[str, dict[int, list]], dict[str, dict[int, StabilizingPredictions]]]:
    """Every (strategy, seed) curve of ``run`` and its stopping signal, in
    processes with ``n_jobs`` > 1."""
    jobs = [
        (run, train, eval_set, config, strategy, seed)
        for seed in range(config.seeds)
        for strategy in config.strategies
    ]
    curves: dict[str, dict[int, list]] = {s: {} for s in config.strategies}
    signals: dict[str, dict[int, StabilizingPredictions]] = {
        s: {} for s in config.strategies
    }
    if config.n_jobs > 1:
        with ProcessPoolExecutor(max_workers=config.n_jobs) as pool:
            for strategy, seed, curve, signal in pool.map(_run_job, jobs):
                curves[strategy][seed] = curve
                signals[strategy][seed] = signal
                if on_job_done is not None:
                    on_job_done(strategy, seed)
        return curves, signals
    for job in jobs:
        _, *args, strategy, seed = job
        signal = _new_signal(config)
        curves[strategy][seed] = run(
            *args, strategy, seed, on_round=on_round, stopping=signal
        )
        signals[strategy][seed] = signal
        if on_job_done is not None:
            on_job_done(strategy, seed)
    return curves, signals


def stop_summary(
    curves: Sequence[Sequence[tuple[int, float]]],
    signals: Sequence[StabilizingPredictions],
    full_score: float,
) -> dict:
    """Where the stopping signal would have stopped each run (one per seed).

    ``labels`` and ``score`` at the first model after which the signal said stop
    (None where it never did within the budget), each run's ``final_score``,
    their medians (``labels_median`` counts a run that never stopped as longest;
    ``score_median`` is over the runs that stopped), the median score at the stop
    as a share of the full-data score and of the final score, and ``kappa_curve``:
    the median kappa of each model with the one before, over labels.
    """
    points = [
        None if s.stop_index is None else c[s.stop_index - 1]
        for c, s in zip(curves, signals, strict=True)
    ]
    labels = [None if p is None else int(p[0]) for p in points]
    scores = [None if p is None else float(p[1]) for p in points]
    finals = [float(c[-1][1]) for c in curves]
    stopped = [x for x in scores if x is not None]
    score_median = float(np.median(stopped)) if stopped else None
    final_median = float(np.median(finals))
    kappas = [
        [(c[i + 1][0], k) for i, k in enumerate(s.history)]
        for c, s in zip(curves, signals, strict=True)
    ]
    return {
        "labels": labels,
        "labels_median": _median_or_none(labels),
        "score": scores,
        "score_median": score_median,
        "final_score": finals,
        "score_share_of_full": None
        if score_median is None or not full_score
        else score_median / full_score,
        "score_share_of_final": None
        if score_median is None or not final_median
        else score_median / final_median,
        "kappa_curve": _median_curve(kappas),
    }


def _add_ratios_to_random(strategies: dict, ratios: dict[str, str]) -> None:
    """Each strategy's median cost as a share of random's (``None`` if unknown)."""
    if "random" not in strategies:
        return
    base = strategies["random"]
    for entry in strategies.values():
        for key, ratio in ratios.items():
            mine, theirs = entry[key], base[key]
            entry[ratio] = mine / theirs if mine is not None and theirs else None


def simulate(
    train_records: Sequence[dict],
    eval_records: Sequence[dict],
    config: SimulationConfig,
    *,
    on_round: Progress | None = None,
    on_job_done: Callable[[str, int], None] | None = None,
) -> dict:
    """Run every strategy from every seed; return the results (see module doc)."""
    if config.task == "ner":
        from spacy_al.simulate_ner import simulate_ner  # it builds on this module

        return simulate_ner(
            train_records,
            eval_records,
            config,
            on_round=on_round,
            on_job_done=on_job_done,
        )
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
    curves, signals = _run_jobs(run_one, train, eval_set, config, on_round, on_job_done)
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
    for strategy in config.strategies:
        runs = [curves[strategy][seed] for seed in range(config.seeds)]
        reached = [labels_to_target(c, target_score) for c in runs]
        results["strategies"][strategy] = {
            "labels_to_target": reached,
            "labels_to_target_median": _median_or_none(reached),
            "auc": float(np.mean([np.mean([s for _, s in c]) for c in runs])),
            "final_score": float(np.median([c[-1][1] for c in runs])),
            "curve": _median_curve(runs),
            "stop": stop_summary(
                runs, [signals[strategy][seed] for seed in range(config.seeds)], full
            ),
        }
    _add_ratios_to_random(
        results["strategies"], {"labels_to_target_median": "ratio_to_random"}
    )
    results["wall_time_seconds"] = time.perf_counter() - start
    return results


def plot_curves(results: dict, path: str) -> None:
    """A learning-curve plot: median score over labels, per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("curve", "labels")]
    if any("token_curve" in e for e in results["strategies"].values()):
        panels.append(("token_curve", "tokens annotated"))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(8 * len(panels), 5), squeeze=False
    )
    for ax, (key, xlabel) in zip(axes[0], panels, strict=True):
        for name, entry in results["strategies"].items():
            xs = [p[0] for p in entry[key]]
            ys = [p[1] for p in entry[key]]
            (line,) = ax.plot(xs, ys, label=name)
            stop = entry.get("stop")
            if key == "curve" and stop:  # where the stopping signal said stop
                at = [
                    (n, score)
                    for n, score in zip(stop["labels"], stop["score"], strict=True)
                    if n is not None
                ]
                if at:
                    ax.scatter(
                        [n for n, _ in at],
                        [score for _, score in at],
                        marker="v",
                        s=60,
                        color=line.get_color(),
                        edgecolors="black",
                        zorder=3,
                        label=f"{name}: stop signal",
                    )
        ax.axhline(
            results["full_data_score"], color="black", linestyle=":", label="all data"
        )
        ax.axhline(
            results["target_score"],
            color="grey",
            linestyle="--",
            label=f"{results['target']:.0%} of all data",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(results["metric"])
        ax.set_title(f"{results['task']}: median of {results['config']['seeds']} seeds")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
