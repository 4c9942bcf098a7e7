"""Scaling out: pool scoring on Dask against one process, and a very big pool.

* ``measure_pool_scoring``: texts scored per second by one selection over the
  whole pool (tokenizing, predicting, the strategy's top k), in this process and
  on local Dask clusters of 1 and 2 single-threaded worker processes, with the
  same trained model; and whether every run picked the same texts.
* ``measure_big_pool`` / ``measure_big_pool_subprocess``: a pool of millions of
  texts (a corpus repeated with a numbered suffix, as ``bench speed``'s start-up
  figures) opened with ``open_session(dask=...)``: the time to index it on the
  cluster, to the first question (a full pass), and for a later full pass (after
  an update, so the new model is shipped), and the peak RSS of the learner
  process, of each worker and of a process holding the same index
  (``measure_serving``: what a server would hold if it indexed the pool on the
  cluster; servers started with ``--learner process|remote`` read the pool in
  their own process instead).

``bench speed --dask-scoring N --dask-pool N`` runs them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
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
                srsly.json_dumps(
                    {
                        "text": base[i]
                        if i < len(base)
                        else f"{base[i % len(base)]} #{i // len(base)}"
                    }
                )
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
            # A process holding the same index (nothing learnt), on the same
            # pool and cluster, in a fresh Python of its own.
            serving = _serving_subprocess(
                Path(pool_path),
                labels,
                cluster.client.scheduler.address,
                f"sqlite:///{Path(tmp) / 'bench.db'}",
                timeout=3600,
            )
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
        "serving": serving,
    }


def measure_serving(
    pool_path: str | Path,
    *,
    labels: Sequence[str],
    dask: str,
    db: str,
    architecture: str = "bow",
) -> dict[str, Any]:
    """A process that opens a pool indexed on the Dask cluster ``dask`` (keys,
    offsets and done marks; a model that learns nothing) and its loop: what a
    server would hold if it indexed the pool on the cluster (servers started
    with ``--learner process|remote`` read the pool in-process instead).
    Returns the seconds to open it and this process's peak RSS."""
    from spacy_al.loop import StrategySpec
    from spacy_al.session import open_session
    from spacy_al.textcat.loop import ActiveLoop
    from spacy_al.textcat.model import TextcatModel, build_textcat
    from spacy_al.updater import Updater

    rss_before = peak_rss_bytes()
    labels = list(labels)
    start = time.perf_counter()
    session = open_session(
        "bench",
        pool_path,
        db=db,
        meta={"labels": labels, "task": "textcat", "exclusive": True},
        new_updater=lambda version: Updater(
            TextcatModel(build_textcat(labels, architecture=architecture)),
            version=version,
        ),
        load_updater=None,
        to_targets=lambda answers, labels: [],
        dask=dask,
    )
    ActiveLoop(
        session.pool,
        session.updater,
        spec=StrategySpec.parse("margin"),
        store=session.store,
        dataset="bench",
    )
    opened = time.perf_counter() - start
    session.store.close()
    session.cluster.close()  # a client of the learner's cluster
    return {
        "pool_size": len(session.pool),
        "session_open_seconds": opened,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_before_bytes": rss_before,
    }


def _serving_subprocess(
    pool_path: Path, labels: Sequence[str], address: str, db: str, timeout: float
) -> dict[str, Any]:
    """``measure_serving`` in a fresh Python; its error's last lines if it fails."""
    out_path = pool_path.with_name("serving.json")
    code = (
        "import sys, srsly\n"
        "from spacy_al.benchmarks.scale import measure_serving\n"
        "r = measure_serving(sys.argv[1], labels=sys.argv[2].split('\\x1f'),"
        " dask=sys.argv[3], db=sys.argv[4])\n"
        "srsly.write_json(sys.argv[5], r)\n"
    )
    args = [sys.executable, "-c", code, str(pool_path), "\x1f".join(labels)]
    done = subprocess.run(
        [*args, address, db, str(out_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 or not out_path.exists():
        err = (done.stderr or "").strip().splitlines()[-3:]
        return {"error": " | ".join(err)}
    return dict(srsly.read_json(out_path))


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
