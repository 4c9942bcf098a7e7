"""What every simulation shares: the settings, the job runner, medians, the
stopping-signal summary and the learning-curve plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from spacy_al.errors import Errors
from spacy_al.stopping import (
    DEFAULT_STOP_SET_SIZE,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    StabilizingPredictions,
    sample_stop_set,
)

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
    architecture: str = "linear"
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
    #: Whether ``patterns`` serve every strategy, or only those named
    #: ``NAME+patterns`` (bench labels measures them on their own).
    patterns_for_all: bool = True
    n_jobs: int = 1
    #: The runs use seeds first_seed .. first_seed + seeds - 1: tune with 0, 1,
    #: 2 on a dev split, report on test with seeds never used to tune (100 on).
    first_seed: int = 0
    labels: tuple[str, ...] = field(default_factory=tuple)
    task: str = "textcat"  # or "ner"
    beam_width: int = 4  # NER: beam for training (beam_ner) and scoring; 1 = greedy
    #: NER: examples each batch's fit trains on (every answer, many epochs
    #: while few; 0: the online steps of ``update_steps`` and ``replay``).
    fit_examples: int = 2000
    #: NER: "auto" (floret vectors of the pool when it is big enough, else the
    #: base's), "pool", "base" or "none" (spacy_al.representations).
    vectors: str = "auto"
    #: NER: where the pool's vectors are cached (None: a temporary folder).
    vectors_dir: str | None = None
    drop: float = 0.0  # dropout in every update
    max_epochs: int = 30  # the full-data reference's training
    patience: int = 4
    stop_window: int = DEFAULT_WINDOW  # the stopping signal (stabilizing predictions)
    stop_threshold: float = DEFAULT_THRESHOLD
    stop_set_size: int = DEFAULT_STOP_SET_SIZE
    #: Score the pool on Dask: a scheduler's address or local:N (None: here).
    dask: str | None = None


def seed_list(config: SimulationConfig) -> list[int]:
    """The seeds of a simulation's runs."""
    return list(range(config.first_seed, config.first_seed + config.seeds))


def reached_and_stayed(
    points: Sequence[tuple], target_score: float, *, score_at: int = 1
) -> int | None:
    """Where a learning curve reaches ``target_score`` and stays there for the
    rest of the budget: the index of the first point from which every later
    score (``point[score_at]``) is at least the target; None if the last isn't.

    A curve that touches the target and falls back doesn't count from there:
    test scores are noisy, and the first crossing rewards the noise."""
    index = None
    for i in range(len(points) - 1, -1, -1):
        if points[i][score_at] < target_score:
            break
        index = i
    return index


def labels_to_target(
    curve: Sequence[tuple[int, float]], target_score: float
) -> int | None:
    """The labels from which the curve stays at or above ``target_score`` to the
    end of the budget (:func:`reached_and_stayed`); None if it ends below."""
    index = reached_and_stayed(curve, target_score)
    return None if index is None else int(curve[index][0])


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """The mean of ``a - b`` over paired values (one pair per seed) with a
    percentile bootstrap interval: the seeds are resampled with replacement."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a_arr) != len(b_arr) or not len(a_arr):
        raise ValueError(Errors.E443.format(n_a=len(a_arr), n_b=len(b_arr)))
    diff = a_arr - b_arr
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return {"diff": float(diff.mean()), "low": float(lo), "high": float(hi)}


def curve_auc(curve: Sequence[tuple[int, float]]) -> float:
    """The mean score over a curve's points (all systems are scored at the same
    label counts, so this is the area under the curve over the budget)."""
    return float(np.mean([score for _, score in curve]))


def _stop_set_docs(loop, config: SimulationConfig, seed: int) -> list:
    """The run's stop set: the same pool examples for every strategy with ``seed``
    (tokenized by the loop, which keeps them for its own scoring)."""
    indices = sample_stop_set(len(loop.pool), size=config.stop_set_size, seed=seed)
    return loop.docs(indices)


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
        for seed in seed_list(config)
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


def stop_cells(stop: dict | None) -> list[str]:
    """A :func:`stop_summary` as three table cells: the labels per seed, the
    median score there, and that score as a share of the full-data score."""
    if not stop:
        return ["-", "-", "-"]
    score, share = stop["score_median"], stop["score_share_of_full"]
    return [
        ", ".join("-" if n is None else str(n) for n in stop["labels"]),
        "-" if score is None else f"{score:.3f}",
        "-" if share is None else f"{share:.2f}",
    ]


def _add_ratios_to_random(strategies: dict, ratios: dict[str, str]) -> None:
    """Each strategy's median cost as a share of random's (``None`` if unknown)."""
    if "random" not in strategies:
        return
    base = strategies["random"]
    for entry in strategies.values():
        for key, ratio in ratios.items():
            mine, theirs = entry[key], base[key]
            entry[ratio] = mine / theirs if mine is not None and theirs else None


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
