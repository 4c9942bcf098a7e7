"""Scaling out: pool scoring on Dask against one process, and a very big pool.

* ``measure_pool_scoring``: texts scored per second by one selection over the
  whole pool (tokenizing, predicting, the strategy's top k), in this process and
  on local Dask clusters of 1 and 2 single-threaded worker processes, with the
  same trained model; and whether every run picked the same texts.
* ``measure_big_pool`` / ``measure_big_pool_subprocess``: a pool of millions of
  texts (a corpus repeated with a numbered suffix, as ``bench speed``'s start-up
  figures) opened with ``open_session(dask=...)``: the time to index it on the
  cluster, to the first question (a random sample of ``FIRST_WINDOW`` texts
  scored), and for a later full pass (after an update, so the new model is
  shipped), and the peak RSS of the learner process and of each worker.
* ``measure_serving`` / ``measure_serving_subprocess``: a serving process that
  follows a learner process (``textcat.teach --learner remote``: the pool's
  keys and done marks, no model) on such a pool, with answers flowing through
  its feed from a queue published as a learner publishes it: the time to open
  it, its peak RSS, and the CPU time per answer -> next.

``bench speed --dask-scoring N --dask-pool N --serving-pools N,M`` runs them.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import srsly

from spacy_al.benchmarks.speed import peak_rss_bytes, run_in_fresh_python
from spacy_al.errors import Errors

#: The project's goals for scaling out.
TARGETS = {
    "dask_speedup_2_vs_1": 1.7,
    "learner_peak_rss_bytes": 2 * 1024**3,
    "serving_peak_rss_bytes": 500 * 1024**2,
}


def _labels(records: Sequence[tuple[str, list[str]]]) -> list[str]:
    return sorted({label for _, labels in records for label in labels})


def _replicated_text(base: Sequence[str], i: int) -> str:
    """The ``i``-th text of a replicated pool of the distinct texts ``base``."""
    return base[i] if i < len(base) else f"{base[i % len(base)]} #{i // len(base)}"


def write_replicated_pool(
    path: str | Path, texts: Sequence[str], n: int, *, chunk: int = 100_000
) -> Path:
    """A JSONL pool of ``n`` distinct texts (``replicate_texts``), written a
    chunk at a time so that ten million texts never sit in memory."""
    path = Path(path)
    base = list(dict.fromkeys(texts))
    with path.open("w", encoding="utf-8") as file:
        for lo in range(0, n, chunk):
            lines = (
                srsly.json_dumps({"text": _replicated_text(base, i)})
                for i in range(lo, min(n, lo + chunk))
            )
            file.write("\n".join(lines) + "\n")
    return path


def _trained_updater(records, labels: list[str], architecture: str, n: int = 300):
    """An updater whose model learnt ``n`` gold-labelled texts (refit or steps)."""
    from spacy_al.identity import get_input_key
    from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
    from spacy_al.textcat.targets import TextcatTarget
    from spacy_al.updater import Updater

    model = TextcatModel(build_textcat(labels, architecture=architecture))
    updater = Updater(
        model, learn_rate=DEFAULT_LEARN_RATE[architecture], seed=0, snapshots=False
    )
    model.fit_idf(text for text, _ in records[:5000])
    targets = [
        TextcatTarget(
            text,
            get_input_key({"text": text}),
            {x: float(x in gold) for x in labels},
            {},
            True,
        )
        for text, gold in records[:n]
    ]
    updater.update(targets)
    return updater


def _time_selects(loop, repeats: int, n: int = 10) -> tuple[list[float], list[int]]:
    seconds, picks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        tasks = loop.select(n)
        seconds.append(time.perf_counter() - start)
        picks = [t["_input_key"] for t in tasks]
    return seconds, picks


def measure_pool_scoring(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    architecture: str = "bow",
    workers: Sequence[int] = (1, 2),
    repeats: int = 3,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Texts per second of one full-pool selection (margin, top 10), in this
    process and on local Dask clusters of each size in ``workers``.

    Every run scores the same pool with the same model (learnt on 300 gold
    texts); the in-process loop caches no Docs (as for a pool bigger than its
    cache). The Dask figures are the median of ``repeats`` selections after a
    first one, which ships the model and warms the workers (reported apart).
    """
    from spacy_al.corpus import Source
    from spacy_al.loop import StrategySpec
    from spacy_al.pool import Pool
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.pool import OffsetPool
    from spacy_al.textcat.loop import ActiveLoop

    if repeats < 1 or pool_size < 1:
        raise ValueError(Errors.E720.format(repeats=repeats, n_docs=pool_size))
    labels = _labels(records)
    updater = _trained_updater(list(records), labels, architecture)
    spec = StrategySpec.parse("margin")
    out: dict[str, Any] = {
        "pool_size": pool_size,
        "architecture": architecture,
        "strategy": "margin, top 10 of the whole pool",
        "repeats": repeats,
    }
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_scale_") as tmp:
        path = write_replicated_pool(
            Path(tmp) / "pool.jsonl", [t for t, _ in records], pool_size
        )
        pool = Pool(Source(path))
        loop = ActiveLoop(pool, updater, spec=spec, doc_cache_size=0)
        seconds, reference = _time_selects(loop, repeats)
        median = statistics.median(seconds)
        out["in_process"] = {
            "seconds": seconds,
            "texts_per_second": pool_size / median,
        }
        del loop, pool
        same = True
        out["dask"] = {}
        for n_workers in workers:
            with Cluster.connect(f"local:{n_workers}") as cluster:
                start = time.perf_counter()
                on_cluster = OffsetPool.build(path, cluster=cluster)
                index = time.perf_counter() - start
                loop = ActiveLoop(on_cluster, updater, spec=spec)
                first, _ = _time_selects(loop, 1)
                seconds, picks = _time_selects(loop, repeats)
                same = same and picks == reference
                median = statistics.median(seconds)
                out["dask"][str(n_workers)] = {
                    "partitions": len(on_cluster.parts),
                    "index_seconds": index,
                    "first_select_seconds": first[0],
                    "seconds": seconds,
                    "texts_per_second": pool_size / median,
                }
        out["same_picks"] = same
    rates = {k: v["texts_per_second"] for k, v in out["dask"].items()}
    if "1" in rates and "2" in rates:
        out["speedup_2_vs_1"] = rates["2"] / rates["1"]
    if "2" in rates:
        out["speedup_2_vs_in_process"] = (
            rates["2"] / out["in_process"]["texts_per_second"]
        )
    return out


def measure_big_pool(
    pool_path: str | Path,
    *,
    labels: Sequence[str],
    dask: str,
    architecture: str = "bow",
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Open a session on ``pool_path`` with ``dask`` and serve two questions.

    ``first_question_seconds``: from nothing to the first question (the index
    built on the cluster, the session and the loop, and the first selection: a
    random sample of ``FIRST_WINDOW`` texts scored, as the recipes' loops on a
    cluster do); ``full_pass_seconds``: a selection after one batch
    was learnt (the new model shipped, the whole pool scored again). Peak RSS
    of this process (the learner) and of each worker.
    """
    from spacy_al.loop import StrategySpec
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.pool import FIRST_WINDOW
    from spacy_al.session import open_session
    from spacy_al.textcat.loop import ActiveLoop
    from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
    from spacy_al.textcat.targets import answers_to_textcat_targets
    from spacy_al.updater import Updater

    rss_before = peak_rss_bytes()
    labels = list(labels)
    learn_rate = DEFAULT_LEARN_RATE[architecture]
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_big_") as tmp:
        with Cluster.connect(dask) as cluster:
            cluster_up = time.perf_counter()
            session = open_session(
                "bench",
                pool_path,
                db=f"sqlite:///{Path(tmp) / 'bench.db'}",
                meta={"labels": labels, "task": "textcat", "exclusive": True},
                new_updater=lambda version: Updater(
                    TextcatModel(build_textcat(labels, architecture=architecture)),
                    learn_rate=learn_rate,
                    version=version,
                ),
                load_updater=None,
                to_targets=lambda answers, labels: answers_to_textcat_targets(
                    answers, labels, exclusive=True
                ),
                dask=cluster,
            )
            opened = time.perf_counter() - cluster_up
            loop = ActiveLoop(
                session.pool,
                session.updater,
                spec=StrategySpec.parse("margin"),
                store=session.store,
                dataset="bench",
                batch_size=10,
                first_window=FIRST_WINDOW,  # as the recipes' loops on a cluster
            )
            tasks = loop.select(10)
            first = time.perf_counter() - cluster_up
            loop.answer([{**t, "answer": "accept"} for t in tasks], annotator="a")
            loop.learn()
            start = time.perf_counter()
            again = loop.select(10)
            full_pass = time.perf_counter() - start
            workers_rss = cluster.client.run(peak_rss_bytes)
            session.store.close()
            pool_size = len(session.pool)
            partitions = len(session.pool.parts)
    return {
        "pool_size": pool_size,
        "architecture": architecture,
        "dask": dask,
        "partitions": partitions,
        "session_open_seconds": opened,
        "first_question_seconds": first,
        "full_pass_seconds": full_pass,
        "texts_per_second": pool_size / full_pass,
        "questions": len(tasks) + len(again),
        "learner_peak_rss_bytes": peak_rss_bytes(),
        "learner_peak_rss_before_bytes": rss_before,
        "worker_peak_rss_bytes": sorted(workers_rss.values()),
    }


SERVING_DATASET = "bench_serving"


def measure_serving(
    pool_path: str | Path,
    *,
    labels: Sequence[str],
    db: str,
    answers: int,
    annotators: int = 4,
) -> dict[str, Any]:
    """A serving process that follows a learner process, on ``pool_path``.

    Opens ``textcat.teach --learner remote`` (what such a server holds of the
    pool, and no model) and its feed, which reads the queue already published
    in ``db`` (:func:`measure_serving_subprocess` publishes it as a learner
    does); then ``annotators`` threads ask for ``answers`` tasks and answer
    them through the feed. Returns the seconds to open the session, the peak
    RSS of this process (before anything was opened, too), the answers given,
    and answer -> next: wall time per answer and CPU time of this process.
    """
    from spacy_al.serve.feed import Feed, configure_process
    from spacy_al.serve.launcher import build_components

    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    components = build_components(
        "textcat.teach",
        {
            "dataset": SERVING_DATASET,
            "source": Path(pool_path),
            "label": ",".join(labels),
            "db": db,
            "learner": "remote",
        },
    )
    opened = time.perf_counter() - start
    rss_opened = peak_rss_bytes()
    configure_process()
    feed = Feed.from_components(components, lease_seconds=600.0)
    per_annotator = -(-answers // annotators)
    seconds: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def annotate(who: str) -> None:
        for _ in range(per_annotator):
            begin = time.perf_counter()
            try:
                task = feed.next_task(who, timeout=30.0)
                if task is None:
                    return
                answer = {"_input_key": task["_input_key"], "answer": "accept"}
                feed.answer(who, answer)
            except Exception as e:  # reported: the figures are wrong with them
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                return
            with lock:
                seconds.append(time.perf_counter() - begin)

    cpu = time.process_time()
    wall = time.perf_counter()
    threads = [
        threading.Thread(target=annotate, args=(f"a{k}",)) for k in range(annotators)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    stats = feed.stats()
    feed.close()
    return {
        "pool_size": len(components["loop"].pool),
        "pool": type(components["loop"].pool).__name__,
        "model": components["loop"].updater is not None,
        "session_open_seconds": opened,
        "answers": len(seconds),
        "done": stats["done"],
        "errors": errors[:5],
        "answer_then_next_p50_seconds": statistics.median(seconds or [0.0]),
        "answer_then_next_p95_seconds": _p95(seconds),
        "cpu_seconds_per_answer": cpu / max(len(seconds), 1),
        "wall_seconds": wall,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_opened_bytes": rss_opened,
        "peak_rss_before_bytes": rss_before,
    }


def _p95(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def publish_queue_as_learner(
    db: str,
    base: Sequence[str],
    *,
    pool_size: int,
    labels: Sequence[str],
    n_tasks: int,
    seed: int = 0,
) -> None:
    """Publish ``n_tasks`` tasks of a replicated pool of ``pool_size`` texts
    (spread over the whole pool) as the queue of ``SERVING_DATASET``, as a
    learner process does; its lock is taken for an hour."""
    import numpy as np

    from spacy_al.corpus import set_hashes
    from spacy_al.store import Store

    rng = np.random.default_rng(seed)
    picks = rng.choice(pool_size, size=min(n_tasks, pool_size), replace=False)
    tasks = [
        set_hashes(
            {
                "text": _replicated_text(base, int(i)),
                "label": labels[0],
                "meta": {"score": 0.5},
                "_model_version": 1,
            }
        )
        for i in picks
    ]
    store = Store(db)
    try:
        store.create_dataset(
            SERVING_DATASET,
            meta={
                "labels": list(labels),
                "view_id": "classification",
                "exclusive": True,
                "task": "textcat",
                "overlap": 1,
            },
        )
        store.acquire_learner(SERVING_DATASET, "bench-learner", seconds=3600)
        store.publish_queue(
            SERVING_DATASET,
            "bench-learner",
            version=1,
            tasks=tasks,
            replace=True,
            exhausted=False,
        )
    finally:
        store.close()


def measure_serving_subprocess(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    answers: int = 1000,
    annotators: int = 4,
    workdir: str | Path | None = None,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """``measure_serving`` in a fresh Python on a replicated pool of
    ``pool_size`` texts, after a queue of ``2 * answers`` of them was published
    in a fresh SQLite database."""
    labels = _labels(records)
    base = list(dict.fromkeys(t for t, _ in records))
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_serving_") as tmp:
        pool_path = write_replicated_pool(Path(tmp) / "pool.jsonl", base, pool_size)
        db = f"sqlite:///{Path(tmp) / 'serving.db'}"
        publish_queue_as_learner(
            db, base, pool_size=pool_size, labels=labels, n_tasks=2 * answers
        )
        out_path = Path(tmp) / "result.json"
        code = (
            "import sys, srsly\n"
            "from spacy_al.benchmarks.scale import measure_serving\n"
            "r = measure_serving(sys.argv[1], labels=sys.argv[2].split('\\x1f'),"
            " db=sys.argv[3], answers=int(sys.argv[4]), annotators=int(sys.argv[5]))\n"
            "srsly.write_json(sys.argv[6], r)\n"
        )
        args = [str(pool_path), "\x1f".join(labels), db, str(answers), str(annotators)]
        result = run_in_fresh_python(
            code,
            [*args, str(out_path)],
            out_path=out_path,
            pool_size=pool_size,
            timeout=timeout,
        )
        result["pool_bytes"] = pool_path.stat().st_size
        return result


def measure_big_pool_subprocess(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    dask: str = "local:2",
    architecture: str = "bow",
    workdir: str | Path | None = None,
    timeout: float = 7200.0,
) -> dict[str, Any]:
    """``measure_big_pool`` on a pool of ``pool_size`` texts, in a fresh Python
    (the pool file is written here first, so the peak RSS is the learner's).
    The Dask cluster starts inside, after the learner's imports; its start is
    not counted in ``first_question_seconds``."""
    labels = _labels(records)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_pool_") as tmp:
        start = time.perf_counter()
        pool_path = write_replicated_pool(
            Path(tmp) / "pool.jsonl", [t for t, _ in records], pool_size
        )
        written = time.perf_counter() - start
        out_path = Path(tmp) / "result.json"
        code = (
            "import sys, srsly\n"
            "from spacy_al.benchmarks.scale import measure_big_pool\n"
            "if __name__ == '__main__':\n"
            "    r = measure_big_pool(sys.argv[1], labels=sys.argv[2].split('\\x1f'),"
            " dask=sys.argv[3], architecture=sys.argv[4], workdir=sys.argv[5])\n"
            "    srsly.write_json(sys.argv[6], r)\n"
        )
        args = [str(pool_path), "\x1f".join(labels), dask, architecture, tmp]
        result = run_in_fresh_python(
            code,
            [*args, str(out_path)],
            out_path=out_path,
            pool_size=pool_size,
            timeout=timeout,
        )
        result["pool_bytes"] = pool_path.stat().st_size
        result["pool_write_seconds"] = written
        return result
