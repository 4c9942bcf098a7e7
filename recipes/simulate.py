"""simulate: replay gold labels as the annotator and compare strategies.

    python -m spacy_al simulate textcat TRAIN.jsonl --eval TEST.jsonl \\
        --strategies margin,entropy,random --seed-size 20 --batch-size 10 \\
        --budget 1000 --seeds 5 --target 0.95 --output DIR

Every strategy starts from the same random seed set (one per seed), asks its
questions through the same loop the labelling app uses, and is scored on EVAL
after every batch. The run also trains a model on all of TRAIN to convergence, the
full-data score. Writes DIR/results.json and DIR/curve.png.

Tune with ``--split dev``: the runs are scored on a dev set carved from TRAIN
(20%, a fixed shuffle) with seeds from 0, or on ``--eval`` when the corpus has a
dev file of its own (``--split dev --eval dev.jsonl``; never the test file).
Report with ``--split test`` (the default): scored on ``--eval``, with seeds from
100, never used for tuning. results.json records the split and the eval file.

    python -m spacy_al simulate ner TRAIN.jsonl --eval TEST.jsonl \\
        --strategies mnlp,token-entropy,random --seed-size 20 --batch-size 20 \\
        --budget 600 --seeds 2 --output DIR

For NER the records need gold ``spans`` (and optionally ``tokens``); the metric
is entity F1, and the cost is also counted in tokens: ``tokens_to_target`` per
seed, as a fraction of the pool's tokens, and a learning curve over tokens.
``--oracle correct`` answers as in ner.correct (the gold analysis of each chosen
text), ``--oracle binary`` as in ner.teach (accept or reject one entity).

Every run also follows the stopping signal the app shows (stabilizing
predictions: Cohen's kappa between successive models' predictions on a fixed
stop set of ``--stop-set-size`` pool examples; stop once the mean of the last
``--stop-window`` kappas reaches ``--stop-threshold``). The table's "stop"
columns say after how many labels it would have stopped (per seed, "-" if never
within the budget) and the median score there, against the final score and the
full-data score. For NER the kappa compares the BIO tags of the stop set's tokens.

``--dask ADDRESS`` (a Dask scheduler) or ``--dask local:N`` (N worker processes
here) scores the pool on a Dask cluster (text classification): the picks, and so
the curves, are the same as without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import srsly
import typer
from tqdm import tqdm
from wasabi import msg

from spacy_al.benchmarks.labels import REPORT_SEED, SPLITS, TUNE_SEED, dev_split
from spacy_al.corpus import Source
from spacy_al.errors import Errors, SourceError
from spacy_al.ner.model import SESSION_FACTORY
from spacy_al.ner.scores import DEFAULT_NER_STRATEGY
from spacy_al.registry import recipe
from spacy_al.simulate import simulate
from spacy_al.simulate.runner import SimulationConfig, plot_curves, stop_cells
from spacy_al.stopping import (
    DEFAULT_STOP_SET_SIZE,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
)
from spacy_al.textcat.model import DEFAULT_ARCHITECTURE

from ._options import (
    Base,
    BatchSize,
    Budget,
    Dask,
    Multilabel,
    SeedSize,
    StopSetSize,
    StopThreshold,
    StopWindow,
    Target,
    split_commas,
)

TASKS = ("textcat", "ner")
DEFAULT_ARCH = {"textcat": DEFAULT_ARCHITECTURE, "ner": SESSION_FACTORY}
DEFAULT_STRATEGIES = {
    "textcat": "margin,random",
    "ner": ",".join(dict.fromkeys((DEFAULT_NER_STRATEGY, "random"))),
}


def print_table(results: dict) -> None:
    """The per-strategy summary a person reads first."""
    header = [
        "strategy",
        "labels to target (per seed)",
        "median",
        "÷ random",
        "AUC",
        "final",
        "stop (labels per seed)",
        "score at stop",
        "÷ full",
    ]
    ner = results["task"] == "ner"
    if ner:
        header[1:1] = ["tokens to target (per seed)", "share of pool", "AUC tokens"]
    rows = []
    for name, entry in results["strategies"].items():
        ratio = entry.get("ratio_to_random")
        row = [
            name,
            ", ".join("-" if n is None else str(n) for n in entry["labels_to_target"]),
            "-"
            if entry["labels_to_target_median"] is None
            else f"{entry['labels_to_target_median']:.0f}",
            "-" if ratio is None else f"{ratio:.2f}",
            f"{entry['auc']:.3f}",
            f"{entry['final_score']:.3f}",
            *stop_cells(entry.get("stop")),
        ]
        if ner:
            share = entry["tokens_to_target_fraction"]
            row[1:1] = [
                ", ".join(
                    "-" if n is None else str(n) for n in entry["tokens_to_target"]
                ),
                "-" if share is None else f"{share:.1%}",
                f"{entry['auc_tokens']:.3f}",
            ]
        rows.append(row)
    msg.table(rows, header=header, divider=True)


@recipe("simulate")
def simulate_cli(
    task: Annotated[str, typer.Argument(help="textcat or ner")],
    train: Annotated[
        Path, typer.Argument(help="Labelled JSONL: the pool (and its gold labels)")
    ],
    eval_path: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="Labelled JSONL to score on (--split test; with --split dev, "
            "the corpus's own dev file)",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="test: score on --eval, seeds from 100; dev (tuning): seeds from "
            "0, scored on --eval when given (a corpus's own dev file) or else on "
            "a dev split carved from TRAIN; results.json records which",
        ),
    ] = "test",
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            help="Comma-separated, e.g. margin,entropy,random (default: "
            "margin,random; NER: the default NER strategy and random)",
        ),
    ] = None,
    seed_size: SeedSize = 20,
    batch_size: BatchSize = 10,
    budget: Budget = 1000,
    seeds: Annotated[int, typer.Option("--seeds", help="Runs per strategy")] = 5,
    first_seed: Annotated[
        int | None,
        typer.Option(
            "--first-seed",
            help="Seeds first..first+seeds-1 (default: 0 with --split dev, 100 "
            "with --split test, seeds never tuned on)",
        ),
    ] = None,
    target: Target = 0.95,
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="Score this label's F1 (binary)"),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", help="Directory for the results")
    ] = Path("simulation"),
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch", help="textcat: linear, bow, ensemble; ner: beam_ner, ner"
        ),
    ] = None,
    base: Base = "blank:en",
    multilabel: Multilabel = False,
    oracle: Annotated[
        str,
        typer.Option(
            "--oracle", help="correct (a reject names the right label) or binary"
        ),
    ] = "correct",
    patterns: Annotated[
        Path | None,
        typer.Option(
            "--patterns",
            help="Patterns (JSONL) for every strategy: up to half the seed set "
            "from their matches, then asked while a label has < 5 answers",
        ),
    ] = None,
    window: Annotated[
        int | None, typer.Option("--window", help="Score a random window")
    ] = None,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", help="Runs in parallel processes")
    ] = 1,
    beam_width: Annotated[
        int, typer.Option("--beam-width", help="NER: beam width (1: greedy scores)")
    ] = 4,
    drop: Annotated[
        float | None, typer.Option("--drop", help="Dropout in updates")
    ] = None,
    update_steps: Annotated[
        int, typer.Option("--update-steps", help="Gradient steps per batch of answers")
    ] = 3,
    replay: Annotated[
        int, typer.Option("--replay", help="Earlier answers replayed in each step")
    ] = 30,
    retrain_every: Annotated[
        int,
        typer.Option("--retrain-every", help="Retrain from scratch every N batches"),
    ] = 0,
    max_epochs: Annotated[
        int,
        typer.Option("--max-epochs", help="Epochs of the full-data reference at most"),
    ] = 30,
    patience: Annotated[
        int, typer.Option("--patience", help="Full-data reference: epochs without gain")
    ] = 4,
    stop_window: StopWindow = DEFAULT_WINDOW,
    stop_threshold: StopThreshold = DEFAULT_THRESHOLD,
    stop_set_size: StopSetSize = DEFAULT_STOP_SET_SIZE,
    dask: Dask = None,
    vectors: Annotated[
        str,
        typer.Option(
            "--vectors",
            help="NER: auto (floret vectors of the pool's texts when it is big "
            "enough), pool, base (the --base pipeline's) or none",
        ),
    ] = "auto",
    fit_examples: Annotated[
        int,
        typer.Option(
            "--fit-examples",
            help="NER: examples each batch's fit on all answers trains on "
            "(0: --update-steps online steps with --replay)",
        ),
    ] = 2000,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="NER: folder caching the pool's vectors and the full-data "
            "reference (default OUTPUT/vectors); runs of the same data split "
            "into several commands (e.g. seeds 0-2, then 3-4) can share one",
        ),
    ] = None,
) -> None:
    """Replay gold labels as the annotator: labels each strategy needs vs random."""
    if task not in TASKS:
        msg.fail(f"Unknown task '{task}'. Choose one of: {', '.join(TASKS)}.", exits=1)
    if oracle not in ("correct", "binary"):
        msg.fail(f"--oracle must be 'correct' or 'binary', not '{oracle}'.", exits=1)
    # Tune on a dev split carved from TRAIN (no --eval file is read); report on
    # --eval with seeds never used for tuning.
    if split not in SPLITS:
        msg.fail(Errors.E442.format(split=split, report_seed=REPORT_SEED), exits=1)
    if split == "test" and eval_path is None:
        msg.fail(Errors.E446.format(split=split, problem="needs --eval"), exits=1)
    if first_seed is None:
        first_seed = TUNE_SEED if split == "dev" else REPORT_SEED
    try:
        train_records = list(Source(train, dedupe=False))
        if split == "dev" and eval_path is None:
            train_records, eval_records = dev_split(train_records)
        else:
            eval_records = list(Source(eval_path, dedupe=False))
    except (SourceError, FileNotFoundError, ValueError) as e:
        msg.fail(str(e), exits=1)
    config = SimulationConfig(
        strategies=tuple(split_commas(strategies or DEFAULT_STRATEGIES[task])),
        seed_size=seed_size,
        batch_size=batch_size,
        budget=budget,
        seeds=seeds,
        first_seed=first_seed,
        target=target,
        positive_label=positive_label,
        architecture=arch or DEFAULT_ARCH[task],
        base=base,
        multilabel=multilabel,
        oracle=oracle,
        patterns=str(patterns) if patterns else None,
        window=window,
        n_jobs=n_jobs,
        task=task,
        beam_width=beam_width,
        drop=(0.1 if task == "ner" else 0.0) if drop is None else drop,
        update_steps=update_steps,
        replay=replay,
        retrain_every=retrain_every,
        max_epochs=max_epochs,
        patience=patience,
        stop_window=stop_window,
        stop_threshold=stop_threshold,
        stop_set_size=stop_set_size,
        dask=dask,
        vectors=vectors,
        fit_examples=fit_examples,
        vectors_dir=str(cache or output / "vectors") if task == "ner" else None,
    )
    runs = len(config.strategies) * seeds
    # The seed set's point, then one per batch (the last one may be short).
    rounds_per_run = max(1, -(-(budget - seed_size) // batch_size) + 1)
    with tqdm(
        total=runs if n_jobs > 1 else runs * rounds_per_run, desc="simulate"
    ) as bar:

        def on_round(strategy: str, seed: int, n: int, score: float) -> None:
            bar.set_postfix_str(f"{strategy} seed {seed}: {n} labels, {score:.3f}")
            bar.update(1)

        def on_job_done(strategy: str, seed: int) -> None:
            if n_jobs > 1:
                bar.update(1)

        try:
            results = simulate(
                train_records,
                eval_records,
                config,
                on_round=on_round,
                on_job_done=on_job_done,
            )
        except (ValueError, ImportError, ConnectionError) as e:
            msg.fail(str(e), exits=1)
    output.mkdir(parents=True, exist_ok=True)
    results["split"] = split  # dev: scored on a split of TRAIN; test: on --eval
    results["train_path"] = str(train)
    results["eval_path"] = None if eval_path is None else str(eval_path)
    results["seeds"] = list(range(first_seed, first_seed + seeds))
    srsly.write_json(output / "results.json", results)
    plot_curves(results, str(output / "curve.png"))
    pool = f"pool {results['pool_size']}"
    if "pool_tokens" in results:
        pool += f" texts ({results['pool_tokens']} tokens)"
    msg.info(
        f"Full-data {results['metric']}: {results['full_data_score']:.3f}; target "
        f"{results['target']:.0%} of it = {results['target_score']:.3f}; "
        f"{pool}, eval {results['eval_size']}"
    )
    print_table(results)
    msg.text(
        f"Seeds {first_seed}-{first_seed + seeds - 1}. Labels to target: where the "
        "run reaches the target and stays there to the budget."
    )
    for name, entry in results["strategies"].items():
        d = entry.get("auc_vs_random")
        if d:
            msg.text(
                f"{name} AUC - random's: {d['diff']:+.4f} "
                f"(paired bootstrap 95% interval [{d['low']:+.4f}, {d['high']:+.4f}])"
            )
        d = entry.get("auc_tokens_vs_random")
        if d:
            msg.text(
                f"{name} AUC over tokens annotated - random's: {d['diff']:+.4f} "
                f"([{d['low']:+.4f}, {d['high']:+.4f}])"
            )
    msg.text(
        f"Stop: where stabilizing predictions said stop (mean kappa of the last "
        f"{stop_window} updates >= {stop_threshold:g} on "
        f"{min(stop_set_size, results['pool_size'])} pool "
        "examples); score at stop: median over the seeds that stopped; ÷ full: "
        "as a share of the full-data score."
    )
    msg.good(
        f"Wrote {output / 'results.json'} and {output / 'curve.png'} "
        f"({results['wall_time_seconds']:.0f} s)"
    )
