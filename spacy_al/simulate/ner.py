"""``simulate`` for NER: entity F1, with the cost in texts and in tokens.

The runs go through :class:`~spacy_al.ner.loop.NERLoop` (the loop of the NER
recipes) and the shared runner of :mod:`spacy_al.simulate`; ``simulate(...)``
with ``config.task == "ner"`` calls :func:`simulate_ner`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from spacy.vectors import Vectors

from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors
from spacy_al.loop import StrategySpec
from spacy_al.ner.fit import DEFAULT_LEARN_RATE as NER_LEARN_RATE
from spacy_al.ner.fit import train_ner
from spacy_al.ner.loop import NERLoop
from spacy_al.ner.loop import oracle_answer as oracle_ner_answer
from spacy_al.ner.model import NERModel, build_ner, gold_docs
from spacy_al.ner.patterns import EntityPatterns
from spacy_al.ner.targets import NERTarget
from spacy_al.pipelines import load_base
from spacy_al.pool import Pool
from spacy_al.representations import (
    VECTORS_CFG,
    VectorsProgress,
    prepare_vectors,
    set_vectors,
)
from spacy_al.simulate.runner import (
    Progress,
    SimulationConfig,
    _add_ratios_to_random,
    _median_curve,
    _median_or_none,
    _new_signal,
    _run_jobs,
    _stop_set_docs,
    paired_bootstrap,
    reached_and_stayed,
    seed_list,
    stop_summary,
)
from spacy_al.spans import make_ner_doc
from spacy_al.stopping import StabilizingPredictions, stop_set_labels
from spacy_al.updater import Updater

#: One point of an NER learning curve: texts annotated, tokens annotated, score.
NERPoint = tuple[int, int, float]


@dataclass
class NERGoldSet:
    """Pool tasks (text, tokens, meta; no spans) and their gold spans."""

    tasks: list[dict]
    spans: list[list[dict]]


def ner_gold_set(records: Sequence[dict], *, what: str) -> NERGoldSet:
    """Records with gold ``spans``, deduplicated by input key (first one wins)."""
    tasks, spans, seen = [], [], set()
    for i, record in enumerate(records, start=1):
        if not isinstance(record.get("spans"), list) or record.get("answer") in (
            "reject",
            "ignore",
        ):
            raise ValueError(Errors.E537.format(what=what, i=i))
        task = {"text": record["text"], "meta": dict(record.get("meta") or {})}
        if record.get("tokens"):
            task["tokens"] = list(record["tokens"])
        task = set_hashes(task)
        if task["_input_key"] in seen:
            continue
        seen.add(task["_input_key"])
        tasks.append(task)
        spans.append(
            [
                {"start": s["start"], "end": s["end"], "label": s["label"]}
                for s in record["spans"]
            ]
        )
    return NERGoldSet(tasks, spans)


def _ner_labels(*sets: NERGoldSet) -> tuple[str, ...]:
    return tuple(sorted({s["label"] for g in sets for doc in g.spans for s in doc}))


def _base_nlp(config: SimulationConfig):
    """The base pipeline, with the pool's vectors when the simulation made them
    (read from ``config.vectors_dir``, where :func:`simulate_ner` saved them)."""
    nlp = load_base(config.base)
    if config.vectors_dir and (Path(config.vectors_dir) / VECTORS_CFG).exists():
        set_vectors(
            nlp, Vectors(strings=nlp.vocab.strings).from_disk(config.vectors_dir)
        )
    return nlp


def _ner_model(config: SimulationConfig, seed: int) -> NERModel:
    nlp = build_ner(
        config.labels,
        base=_base_nlp(config),
        factory=config.architecture,
        beam_width=max(config.beam_width, 2),
        static_vectors=None if config.vectors != "none" else False,
        seed=seed,
    )
    return NERModel(
        nlp,
        beam_width=config.beam_width,
        fit_examples=config.fit_examples,
        learn_rate=config.learn_rate or NER_LEARN_RATE,
        drop=config.drop,
        seed=seed,
    )


def _ner_gold_docs(
    model: NERModel, gold: NERGoldSet, rows: Sequence[int] | None = None
):
    rows = range(len(gold.tasks)) if rows is None else rows
    return gold_docs(
        model.nlp,
        ({**gold.tasks[i], "spans": gold.spans[i]} for i in rows),
        labels=model.labels,
    )


def _gold_target(task: dict, spans: list[dict]) -> NERTarget:
    return NERTarget(
        task["text"], task["_input_key"], list(spans), [], task.get("tokens"), {}, True
    )


def run_one_ner(
    train: NERGoldSet,
    eval_set: NERGoldSet,
    config: SimulationConfig,
    strategy: str,
    seed: int,
    on_round: Progress | None = None,
    stopping: StabilizingPredictions | None = None,
) -> list[NERPoint]:
    """One NER learning curve, in texts and tokens annotated, to the budget.

    The oracle answers as ``ner.correct`` would be answered (``oracle="correct"``:
    the gold analysis of each chosen text) or as ``ner.teach`` (``"binary"``:
    accept or reject the one suggested entity). A text costs all its tokens
    either way: the annotator reads it. ``stopping`` as in :func:`run_one`
    (kappa over the BIO tags of the stop set's tokens).
    """
    mode = "teach" if config.oracle == "binary" else "correct"
    spec = StrategySpec.parse(strategy, task="ner")
    model = _ner_model(config, seed)
    updater = Updater(
        model,
        learn_rate=config.learn_rate or NER_LEARN_RATE,
        update_steps=config.update_steps,
        replay=config.replay,
        retrain_every=config.retrain_every,
        drop=config.drop,
        seed=seed,
        use_averages=True,  # serve (and score) the averaged weights
        refit_seconds=math.inf,  # with fit_examples: a fit after every batch
    )
    patterns = (
        EntityPatterns.from_file(model.nlp, config.patterns, labels=model.labels)
        if config.patterns
        else None
    )
    pool = Pool(train.tasks)
    gold = {t["_input_key"]: g for t, g in zip(train.tasks, train.spans, strict=True)}
    loop = NERLoop(
        pool,
        updater,
        spec=spec,
        mode=mode,
        batch_size=config.batch_size,
        window=config.window,
        patterns=patterns,
        seed=seed,
    )
    eval_docs = _ner_gold_docs(model, eval_set)
    n_tokens = {
        t["_input_key"]: len(d)
        for t, d in zip(pool.tasks, loop.docs(range(len(pool))), strict=True)
    }
    annotated = 0
    stop_docs = _stop_set_docs(loop, config, seed) if stopping is not None else []

    def evaluate() -> float:
        served, _ = updater.serving()
        return float(served.evaluate(eval_docs)["ents_f"])

    def point() -> NERPoint:
        if stopping is not None:  # the signal sees every model that is scored
            stopping.update(stop_set_labels(updater.serving()[0], stop_docs))
        return (pool.n_done, annotated, evaluate())

    # The seed set: the same random texts for every strategy with this seed,
    # annotated in full (as in ner.manual): the model needs entities to suggest.
    rng = np.random.default_rng(seed)
    seed_idx = rng.choice(
        len(pool), size=min(config.seed_size, len(pool)), replace=False
    )
    seed_answers = [
        oracle_ner_answer(
            {**pool.tasks[i], "_view_id": "ner_manual"},
            gold[pool.tasks[i]["_input_key"]],
            mode="manual",
        )
        for i in seed_idx
    ]
    loop.answer(seed_answers, annotator="oracle")
    annotated += sum(n_tokens[eg["_input_key"]] for eg in seed_answers)
    loop.learn()
    updater.retrain()
    curve = [point()]
    if on_round is not None:
        on_round(strategy, seed, curve[-1][0], curve[-1][2])
    while pool.n_done < config.budget and pool.n_done < len(pool):
        n = min(config.batch_size, config.budget - pool.n_done)
        tasks = loop.select(n)
        if not tasks:
            break
        answers = [
            oracle_ner_answer(t, gold[t["_input_key"]], mode=mode) for t in tasks
        ]
        loop.answer(answers, annotator="oracle")
        annotated += sum(n_tokens[t["_input_key"]] for t in tasks)
        loop.learn()
        curve.append(point())
        if on_round is not None:
            on_round(strategy, seed, curve[-1][0], curve[-1][2])
    return curve


def full_data_score_ner(
    train: NERGoldSet, eval_set: NERGoldSet, config: SimulationConfig, *, seed: int = 0
) -> tuple[float, dict]:
    """Train on all of TRAIN (early stopping on a 10% dev slice); entity F1 on EVAL."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train.tasks))
    n_dev = max(1, len(order) // 10)
    model = _ner_model(config, seed)
    dev_docs = _ner_gold_docs(model, train, order[:n_dev])
    targets = [_gold_target(train.tasks[i], train.spans[i]) for i in order[n_dev:]]
    result = train_ner(
        model,
        targets,
        lambda m: float(m.evaluate(dev_docs)["ents_f"]),
        max_epochs=config.max_epochs,
        patience=config.patience,
        learn_rate=config.learn_rate or NER_LEARN_RATE,
        drop=config.drop,
        seed=seed,
    )
    score = float(result.model.evaluate(_ner_gold_docs(model, eval_set))["ents_f"])
    return score, {
        "best_epoch": result.best_epoch,
        "dev_score": result.best_score,
        "epochs": len(result.history),
    }


#: The settings the full-data reference depends on (with the texts and vectors).
_FULL_DATA_KEYS = (
    "architecture",
    "beam_width",
    "base",
    "vectors",
    "fit_examples",
    "learn_rate",
    "drop",
    "max_epochs",
    "patience",
    "labels",
)


def _full_data_key(
    train: NERGoldSet, eval_set: NERGoldSet, config: SimulationConfig
) -> str:
    digest = hashlib.sha256()
    settings = {k: getattr(config, k) for k in _FULL_DATA_KEYS}
    settings["vectors_dir"] = (
        Path(config.vectors_dir).name if config.vectors_dir else None
    )
    digest.update(json.dumps(settings, sort_keys=True, default=list).encode())
    for gold in (train, eval_set):
        for task, spans in zip(gold.tasks, gold.spans, strict=True):
            digest.update(str(task["_input_key"]).encode())
            digest.update(json.dumps(spans, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cached_full_data_score_ner(
    train: NERGoldSet,
    eval_set: NERGoldSet,
    config: SimulationConfig,
    *,
    folder: str | Path | None,
) -> tuple[float, dict]:
    """:func:`full_data_score_ner`, kept in ``folder`` under a key of the texts,
    their gold spans, the vectors and the settings it depends on.

    The reference is the same for every seed and strategy (and takes longer than
    a run on 2 cores), so simulations of the same data split into several
    commands (seeds 0-2, then 3-4) train it once. ``info["cached"]`` says
    whether it was read from the cache.
    """
    if folder is None:
        score, info = full_data_score_ner(train, eval_set, config)
        return score, {**info, "cached": False}
    path = Path(folder) / f"full_data-{_full_data_key(train, eval_set, config)}.json"
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf8"))
        return float(saved["score"]), {**saved["info"], "cached": True}
    score, info = full_data_score_ner(train, eval_set, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"score": score, "info": info}), encoding="utf8")
    tmp.replace(path)
    return score, {**info, "cached": False}


def _first_reaching(curve: Sequence[NERPoint], target_score: float) -> NERPoint | None:
    """The point from which the curve stays at or above the target to the end."""
    index = reached_and_stayed(curve, target_score, score_at=2)
    return None if index is None else curve[index]


def simulate_ner(
    train_records: Sequence[dict],
    eval_records: Sequence[dict],
    config: SimulationConfig,
    *,
    on_round: Progress | None = None,
    on_job_done: Callable[[str, int], None] | None = None,
    on_vectors: VectorsProgress | None = None,
) -> dict:
    """``simulate`` for NER: entity F1, with the cost in texts and in tokens.

    The results have the textcat shape (``labels_to_target`` counts texts) plus,
    per strategy, ``tokens_to_target`` per seed, its median, that median as a
    fraction of the pool's tokens, and ``token_curve`` (median F1 over tokens).
    Every model (the full-data reference too) reads the vectors
    ``config.vectors`` asks for: floret vectors of the pool's texts by default
    (``spacy_al.representations``), trained once, before the runs
    (``on_vectors`` reports it) and cached in ``config.vectors_dir``, as is
    the full-data reference (:func:`cached_full_data_score_ner`).
    """
    start = time.perf_counter()
    _new_signal(config)  # bad stopping settings fail before any training
    train = ner_gold_set(train_records, what="TRAIN")
    eval_set = ner_gold_set(eval_records, what="EVAL")
    if not config.labels:
        config.labels = _ner_labels(train, eval_set)
    with tempfile.TemporaryDirectory(prefix="spacy_al-vectors-") as tmp:
        vectors = prepare_vectors(
            load_base(config.base),
            [task["text"] for task in train.tasks],
            config.vectors,
            folder=config.vectors_dir or tmp,
            on_progress=on_vectors,
        )
        run_config = replace(
            config, vectors_dir=None if vectors is None else str(vectors.path)
        )
        results = _simulate_ner(
            train,
            eval_set,
            run_config,
            on_round=on_round,
            on_job_done=on_job_done,
            cache=config.vectors_dir,
        )
    results["config"]["vectors_dir"] = config.vectors_dir
    results["vectors"] = (
        None
        if vectors is None
        else {
            "kind": "floret (pool texts)",
            "shape": list(vectors.vectors.shape),
            "seconds": vectors.seconds,
            "cached": vectors.cached,
        }
    )
    results["wall_time_seconds"] = time.perf_counter() - start
    return results


def token_auc(curve: Sequence[NERPoint], *, low: float, high: float) -> float:
    """The mean entity F1 over tokens annotated, from ``low`` to ``high`` tokens.

    The model a point scores is the one an annotator has from that point's
    tokens until the next point's (a step function: the model changes only after
    a batch), and the last one holds to ``high``. Strategies that pick long texts
    read more tokens per text; over tokens they are compared at the same reading
    cost (the issue's "F1 per token annotated").
    """
    if high <= low:
        return float(curve[-1][2])
    area = 0.0
    for i, (_, tokens, score) in enumerate(curve):
        start = max(float(tokens), low)
        end = float(curve[i + 1][1]) if i + 1 < len(curve) else high
        end = min(end, high)
        if end > start:
            area += (end - start) * score
    return area / (high - low)


def _simulate_ner(
    train: NERGoldSet,
    eval_set: NERGoldSet,
    config: SimulationConfig,
    *,
    on_round: Progress | None,
    on_job_done: Callable[[str, int], None] | None,
    cache: str | None = None,
) -> dict:
    full, full_info = cached_full_data_score_ner(train, eval_set, config, folder=cache)
    target_score = config.target * full
    curves, signals = _run_jobs(
        run_one_ner, train, eval_set, config, on_round, on_job_done
    )
    nlp = load_base(config.base)
    pool_tokens = sum(
        len(make_ner_doc(nlp, {**task, "spans": []}, missing=True))
        for task in train.tasks
    )
    results: dict = {
        "task": "ner",
        "metric": "entity f1",
        "labels": list(config.labels),
        "full_data_score": full,
        "full_data_training": full_info,
        "target": config.target,
        "target_score": target_score,
        "pool_size": len(train.tasks),
        "pool_tokens": pool_tokens,
        "eval_size": len(eval_set.tasks),
        "config": {k: v for k, v in asdict(config).items() if k != "labels"},
        "seeds": seed_list(config),
        # AUC over tokens: from each seed's seed set to the tokens a random
        # reader of ``budget`` texts reads (pool tokens per text x budget).
        "auc_tokens_to": _token_horizon(config, pool_tokens, train),
        "strategies": {},
    }
    horizon = results["auc_tokens_to"]
    for strategy in config.strategies:
        runs = [curves[strategy][seed] for seed in seed_list(config)]
        reached = [_first_reaching(c, target_score) for c in runs]
        texts = [None if r is None else r[0] for r in reached]
        tokens = [None if r is None else r[1] for r in reached]
        median_tokens = _median_or_none(tokens)
        runs_signals = [signals[strategy][seed] for seed in seed_list(config)]
        stop = stop_summary(
            [[(p[0], p[2]) for p in c] for c in runs], runs_signals, full
        )
        stop["tokens"] = [
            None if s.stop_index is None else c[s.stop_index - 1][1]
            for c, s in zip(runs, runs_signals, strict=True)
        ]
        token_aucs = [token_auc(c, low=c[0][1], high=horizon) for c in runs]
        results["strategies"][strategy] = {
            "labels_to_target": texts,
            "labels_to_target_median": _median_or_none(texts),
            "tokens_to_target": tokens,
            "tokens_to_target_median": median_tokens,
            "tokens_to_target_fraction": (
                None if median_tokens is None else median_tokens / pool_tokens
            ),
            "auc": float(np.mean([np.mean([p[2] for p in c]) for c in runs])),
            "auc_per_seed": [float(np.mean([p[2] for p in c])) for c in runs],
            "auc_tokens": float(np.mean(token_aucs)),
            "auc_tokens_per_seed": token_aucs,
            "final_per_seed": [float(c[-1][2]) for c in runs],
            "final_score": float(np.median([c[-1][2] for c in runs])),
            "best_score": float(np.median([max(p[2] for p in c) for c in runs])),
            "final_tokens": float(np.median([c[-1][1] for c in runs])),
            "curve": _median_curve([[(p[0], p[2]) for p in c] for c in runs]),
            "token_curve": _median_token_curve(runs),
            "stop": stop,
            # Every point of every seed's curve: texts, tokens, entity F1.
            "curves_per_seed": [[list(p) for p in c] for c in runs],
        }
    _add_ratios_to_random(
        results["strategies"],
        {
            "labels_to_target_median": "ratio_to_random",
            "tokens_to_target_median": "token_ratio_to_random",
        },
    )
    if "random" in results["strategies"]:
        base = results["strategies"]["random"]
        for name, entry in results["strategies"].items():
            if name != "random":
                entry["auc_vs_random"] = paired_bootstrap(
                    entry["auc_per_seed"], base["auc_per_seed"]
                )
                entry["auc_tokens_vs_random"] = paired_bootstrap(
                    entry["auc_tokens_per_seed"], base["auc_tokens_per_seed"]
                )
    return results


def _token_horizon(config: SimulationConfig, pool_tokens: int, train) -> float:
    """Where AUC over tokens ends: the tokens of ``budget`` texts of average
    length (what random reads), the same for every strategy and seed."""
    texts = min(config.budget, len(train.tasks))
    return pool_tokens * texts / max(len(train.tasks), 1)


def _median_token_curve(runs: Sequence[Sequence[NERPoint]]) -> list[list[float]]:
    """Median score and tokens per round (rounds line up across seeds)."""
    out = []
    for points in zip(*runs, strict=False):  # a run may end early
        out.append(
            [
                float(np.median([p[1] for p in points])),
                float(np.median([p[2] for p in points])),
            ]
        )
    return out
