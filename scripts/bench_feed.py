"""Feed latency on a big pool: next_task and answer, several annotators at once.

    python scripts/bench_feed.py [--docs 100000] [--annotators 5] [--answers 60]

Builds a pool of ``--docs`` texts from the shared corpora (../shared/corpora:
sms_spam and trec6 train sets, repeated with a numbered suffix until there are
enough distinct texts; written to a temporary file, never into the repository),
starts textcat.teach on it with a throwaway SQLite database, and lets
``--annotators`` threads answer ``--answers`` examples each as fast as they can
(after ``--think`` seconds of reading) while the selector re-scores a 20k window
after every model version and the trainer learns in the background. Prints
p50/p95/max of next_task and answer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import srsly
from spacy_al.recipes.textcat import teach

from spacy_al.serve.feed import Feed

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"


def build_pool(path: Path, n: int) -> None:
    texts = list(
        dict.fromkeys(
            eg["text"]
            for name in ("sms_spam", "trec6")
            for eg in srsly.read_jsonl(CORPORA / name / "train.jsonl")
        )
    )
    out = [
        t if i < len(texts) else f"{t} ({i // len(texts)})"
        for i, t in zip(range(n), texts * (n // len(texts) + 1), strict=False)
    ]
    srsly.write_jsonl(path, ({"text": t} for t in out))


def quantiles(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[max(round(0.95 * len(values)) - 1, 0)]
    return (
        f"n={len(values)} p50={statistics.median(values) * 1000:.2f} ms "
        f"p95={p95 * 1000:.2f} ms max={values[-1] * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=[0.0, 0.05],
        help="seconds an annotator reads before answering (uniform between)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spacy_al_bench_"))
    build_pool(tmp / "pool.jsonl", args.docs)
    start = time.perf_counter()
    components = teach(
        dataset="bench",
        source=tmp / "pool.jsonl",
        label="A,B,C",
        db=str(tmp / "bench.db"),
        batch_size=10,
    )
    feed = Feed.from_components(components)
    print(f"pool of {len(feed.loop.pool)} built in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    feed.next_task("warmup", timeout=120)
    print(f"first task (first selection) after {time.perf_counter() - start:.1f} s")
    waits: list[float] = []
    commits: list[float] = []
    lock = threading.Lock()

    def annotate(who: str) -> None:
        rng = random.Random(who)
        for _ in range(args.answers):
            t0 = time.perf_counter()
            task = feed.next_task(who, timeout=60)
            t1 = time.perf_counter()
            feed.answer(who, {**task, "answer": rng.choice(["accept", "reject"])})
            t2 = time.perf_counter()
            with lock:
                waits.append(t1 - t0)
                commits.append(t2 - t1)
            time.sleep(rng.uniform(*args.think))  # the person reads

    threads = [
        threading.Thread(target=annotate, args=(f"annotator{i}",))
        for i in range(args.annotators)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = feed.stats()
    print(f"next_task: {quantiles(waits)}")
    print(f"answer:    {quantiles(commits)}")
    print(f"model version {stats['version']} after {stats['answers']} answers")
    feed.close()


if __name__ == "__main__":
    sys.exit(main())
