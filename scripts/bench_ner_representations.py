"""Representations learnt from the pool, measured (issue #12): entity F1 of a
greedy ``ner`` trained to convergence on N random texts of TRAIN, with

* ``none``: no pretrained representations (the ner's own hashed embeddings);
* ``floret``: floret vectors trained on the pool (``spacy_al.representations``,
  the default of ``--vectors auto``);
* ``pretrain``: a tok2vec pretrained on the pool with spaCy's characters
  objective (``spacy_al.pretraining``);
* ``both``: the tok2vec pretrained over the floret vectors.

The pool is every text of TRAIN (what the vectors and the pretraining learn
from: TRAIN only, never EVAL). A fixed 10% slice of TRAIN (seed 0) is held out
for early stopping; the N texts are drawn from the other 90% per seed, the same
texts for every representation (paired). Scored on EVAL (dev.jsonl to choose,
test.jsonl to report). Prints a table and writes one JSON line per run to
OUTPUT (runs already there are skipped: the command can be resumed).

    nice -n 10 python scripts/bench_ner_representations.py \\
        ../shared/corpora/wnut17/train.jsonl ../shared/corpora/wnut17/dev.jsonl \\
        --output /tmp/reps/dev.jsonl --cache /tmp/reps/cache
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import spacy
import srsly
from spacy.vectors import Vectors

from spacy_al.ner.fit import train_ner
from spacy_al.ner.model import NERModel, build_ner
from spacy_al.pretraining import PretrainSettings, pool_tok2vec
from spacy_al.representations import pool_vectors, set_vectors
from spacy_al.simulate.ner import (
    _gold_target,
    _ner_gold_docs,
    _ner_labels,
    ner_gold_set,
)
from spacy_al.simulate.runner import paired_bootstrap

CONFIGS = ("none", "floret", "pretrain", "both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("eval", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--full-seeds", default="0", help="seeds of the full-data runs ('' none)"
    )
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument("--patience", type=int, default=5)
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    sizes = [int(n) for n in args.sizes.split(",") if n]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    full_seeds = [int(s) for s in args.full_seeds.split(",") if s]

    train = ner_gold_set(list(srsly.read_jsonl(args.train)), what="TRAIN")
    eval_set = ner_gold_set(list(srsly.read_jsonl(args.eval)), what="EVAL")
    labels = _ner_labels(train, eval_set)
    texts = [t["text"] for t in train.tasks]
    order = np.random.default_rng(0).permutation(len(train.tasks))
    n_dev = len(order) // 10
    stop_rows, rest = order[:n_dev], order[n_dev:]

    # The representations, each learnt once on the pool (cached).
    cost: dict[str, dict] = {}
    vectors_path = None
    if {"floret", "both"} & set(configs):
        found = pool_vectors(spacy.blank("en"), texts, folder=args.cache, threads=1)
        vectors_path = found.path
        cost["floret"] = {"seconds": found.seconds, "cached": found.cached}

    def base(with_vectors: bool):
        nlp = spacy.blank("en")
        if with_vectors:
            set_vectors(nlp, Vectors(strings=nlp.vocab.strings).from_disk(vectors_path))
        return nlp

    settings = PretrainSettings(epochs=args.pretrain_epochs)
    tok2vecs = {}
    for name, with_vectors in (("pretrain", False), ("both", True)):
        if name in configs:
            found = pool_tok2vec(
                base(with_vectors), texts, folder=args.cache, settings=settings
            )
            tok2vecs[name] = found
            cost[name] = {
                "seconds": found.seconds,
                "cached": found.cached,
                **found.info,
            }
    print(json.dumps({"cost": cost}), flush=True)

    done = set()
    if args.output.exists():
        for row in srsly.read_jsonl(args.output):
            done.add((row["config"], row["n"], row["seed"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def run(config: str, n: int | None, seed: int) -> None:
        size = len(rest) if n is None else n
        if (config, size, seed) in done:
            return
        start = time.perf_counter()
        rows = (
            rest
            if n is None
            else np.random.default_rng(seed).choice(rest, size=n, replace=False)
        )
        nlp = build_ner(
            labels,
            base=base(config in ("floret", "both")),
            factory="ner",
            static_vectors=config == "floret",
            tok2vec=tok2vecs.get(config),
            seed=seed,
        )
        model = NERModel(nlp, seed=seed)
        stop_docs = _ner_gold_docs(model, train, stop_rows)
        eval_docs = _ner_gold_docs(model, eval_set)
        targets = [_gold_target(train.tasks[i], train.spans[i]) for i in rows]
        # Small sets need more (and shorter) epochs, and a longer patience: their
        # score stays at 0 for the first few.
        max_epochs = max(30, min(100, 10_000 // size))
        result = train_ner(
            model,
            targets,
            lambda m: float(m.evaluate(stop_docs)["ents_f"]),
            max_epochs=max_epochs,
            patience=max(args.patience, max_epochs // 4),
            seed=seed,
        )
        score = float(model.evaluate(eval_docs)["ents_f"])
        row = {
            "config": config,
            "n": size,
            "seed": seed,
            "f1": score,
            "stop_f1": result.best_score,
            "best_epoch": result.best_epoch,
            "epochs": len(result.history),
            "seconds": time.perf_counter() - start,
            "eval": str(args.eval),
        }
        with args.output.open("a", encoding="utf8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    for n in sizes:
        for seed in seeds:
            for config in configs:
                run(config, n, seed)
    for seed in full_seeds:
        for config in configs:
            run(config, None, seed)
    report(list(srsly.read_jsonl(args.output)), configs)


def report(rows: list[dict], configs: list[str]) -> None:
    """Median F1 per representation and size; paired differences to none."""
    by = {(r["config"], r["n"], r["seed"]): r["f1"] for r in rows}
    sizes = sorted({r["n"] for r in rows})
    print("\n| representation | " + " | ".join(f"N={n}" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for config in configs:
        cells = []
        for n in sizes:
            scores = [
                f for (c, m, _), f in sorted(by.items()) if c == config and m == n
            ]
            cells.append(
                f"{np.median(scores):.3f} ({', '.join(f'{s:.3f}' for s in scores)})"
                if scores
                else "–"
            )
        print(f"| {config} | " + " | ".join(cells) + " |")
    for base in ("none", "floret"):
        for config in configs:
            if config in ("none", base):
                continue
            for n in sizes:
                seeds = sorted(
                    s
                    for (c, m, s) in by
                    if c == config and m == n and (base, n, s) in by
                )
                if len(seeds) >= 2:
                    d = paired_bootstrap(
                        [by[(config, n, s)] for s in seeds],
                        [by[(base, n, s)] for s in seeds],
                    )
                    print(
                        f"{config} - {base} at N={n} ({len(seeds)} seeds): "
                        f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                    )


if __name__ == "__main__":
    main()
