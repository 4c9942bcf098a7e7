"""Scoring speed of NER uncertainty: beam search (width 4 and 8) vs the greedy
fallback, on the same model and the same Docs.

    python scripts/bench_ner_scoring.py --train TRAIN.jsonl --docs TEST.jsonl

Trains a ``beam_ner`` (width 4) on TRAIN (early stopping on a tenth of it), then times, on the
Docs of --docs: plain prediction (``nlp.pipe``, no uncertainty) and
``NERModel.score`` with the greedy per-step entropy (width 1) and beam widths 4
and 8 (median of --repeats runs). It also reports how well each document measure
ranks the documents the model gets wrong above those it gets right (AUROC of the
doc-level error: predicted entities differ from the gold ones). Prints a table
and writes --output (JSON).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import srsly
from sklearn.metrics import roc_auc_score

from spacy_al.ner.model import NERModel, build_ner, gold_docs, train_ner
from spacy_al.ner.scores import ner_doc_scores
from spacy_al.ner.targets import NERTarget

MEASURES = ("mnlp", "max_token_entropy", "sequence_least_confidence", "entity")


def _records(path: Path, limit: int) -> list[dict]:
    out = []
    for record in srsly.read_jsonl(path):
        out.append(record)
        if len(out) >= limit:
            break
    return out


def _train(model: NERModel, records: list[dict], epochs: int, seed: int) -> float:
    """Train on 90% of ``records`` (early stopping on the rest); the dev F1."""
    targets = [
        NERTarget(r["text"], i, r["spans"], [], r.get("tokens"), {}, True)
        for i, r in enumerate(records)
    ]
    n_dev = max(1, len(targets) // 10)
    dev = gold_docs(model.nlp, records[:n_dev], labels=model.labels)
    result = train_ner(
        model,
        targets[n_dev:],
        lambda m: float(m.evaluate(dev)["ents_f"]),
        max_epochs=epochs,
        patience=2,
        seed=seed,
    )
    return result.best_score


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-docs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("bench_ner_scoring.json"))
    args = parser.parse_args()

    train = _records(args.train, args.n_train)
    records = _records(args.docs, args.n_docs)
    labels = sorted({s["label"] for r in train + records for s in r["spans"]})
    model = NERModel(build_ner(labels, beam_width=4, seed=0))
    start = time.perf_counter()
    dev_f = _train(model, train, args.epochs, seed=0)
    train_seconds = time.perf_counter() - start
    gold = gold_docs(model.nlp, records, labels=labels)
    docs = [model.make_doc(r) for r in records]
    n_tokens = sum(len(d) for d in docs)
    predicted = model.predict(docs)
    wrong = [
        int(sorted(p) != sorted((e.start, e.end, e.label_) for e in g.ents))
        for p, g in zip(predicted, gold, strict=True)
    ]
    rows = [
        {
            "method": "nlp.pipe (no uncertainty)",
            "seconds": _time(lambda: model.predict(docs), args.repeats),
        }
    ]
    for width in (1, 4, 8):
        scorer = NERModel(model.nlp, beam_width=width)
        scores = scorer.score(docs)
        row = {
            "method": "greedy step entropy" if width == 1 else f"beam width {width}",
            "seconds": _time(lambda s=scorer: s.score(docs), args.repeats),
        }
        for measure in MEASURES:
            values = ner_doc_scores(scores, measure)
            row[f"auroc_{measure}"] = (
                float(roc_auc_score(wrong, values))
                if 0 < sum(wrong) < len(wrong)
                else None
            )
        rows.append(row)
    for row in rows:
        row["docs_per_second"] = len(docs) / row["seconds"]
        row["tokens_per_second"] = n_tokens / row["seconds"]
    result = {
        "n_docs": len(docs),
        "n_tokens": n_tokens,
        "train_docs": len(train),
        "train_epochs": args.epochs,
        "train_seconds": train_seconds,
        "train_dev_ents_f": dev_f,
        "docs_ents_f": model.evaluate(gold)["ents_f"],
        "share_of_docs_wrong": sum(wrong) / len(wrong),
        "rows": rows,
    }
    srsly.write_json(args.output, result)
    print(
        f"{len(docs)} docs, {n_tokens} tokens; model: beam_ner (width 4) trained "
        f"on {len(train)} docs, entity F1 {result['docs_ents_f']:.3f} on these docs, "
        f"{result['share_of_docs_wrong']:.0%} of docs wrong"
    )
    header = f"{'method':28} {'docs/s':>8} {'tokens/s':>9} " + " ".join(
        f"{m[:12]:>12}" for m in MEASURES
    )
    print(header)
    for row in rows:
        aurocs = " ".join(
            f"{row.get(f'auroc_{m}'):12.3f}"
            if row.get(f"auroc_{m}") is not None
            else f"{'':>12}"
            for m in MEASURES
        )
        print(
            f"{row['method']:28} {row['docs_per_second']:8.0f} "
            f"{row['tokens_per_second']:9.0f} {aurocs}"
        )


if __name__ == "__main__":
    main()
