"""Answer -> next over HTTP: the JSON API server in a process of its own, the
annotators in another.

:func:`spacy_al.benchmarks.speed.measure_next_example` runs its annotator
threads inside the serving process, where they share the GIL with the requests
they time; a team's browsers are elsewhere. :func:`measure_next_example_http`
starts ``python -m spacy_al textcat.teach DATASET POOL --api`` (with
``learner="process"``, ``--learner process``: and the learner process it starts
beside itself) as a process of its own, and runs the annotator threads in this
one, each doing ``POST /answer`` then ``POST /next`` over a new connection per
request, as a script or another front end would. The server is the recipe's
default (the ``linear`` learner, margin sampling), not the in-process
benchmark's session, so the two figures are side by side, not the same thing
measured twice.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy_al.benchmarks.processes import ServerProcess, free_port, request
from spacy_al.benchmarks.speed import (
    _labels_of,
    quantiles,
    replicate_texts,
    write_pool,
)
from spacy_al.errors import Errors

DATASET = "bench_http"
#: Seconds a /next waits on the server before it replies with no task.
NEXT_WAIT = 10.0


def measure_next_example_http(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    answers: int = 500,
    annotators: int = 5,
    think: tuple[float, float] = (0.5, 1.5),
    learner: str = "thread",
    workdir: str | Path | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Answer -> next through the JSON API of a server process (see the module).

    ``records`` are (text, gold labels); a pool of ``pool_size`` texts is made
    of them. Each of ``annotators`` threads thinks ``think`` seconds (uniform),
    answers its task with the gold label (accept if the suggested label is
    right, else reject), and asks for the next, until ``answers`` answers are
    in. A ``/next`` that comes back empty while the pool has texts (the queue
    ran dry for ``NEXT_WAIT`` seconds) is asked again, its time counted.
    Returns the quantiles of ``answer``, ``next`` and both (as the client sees
    them), ``empty_nexts`` (such empty replies), the server's ``dry_waits``
    (its requests that waited for candidates, the warm-up's first excluded),
    the updates and model version
    its ``/stats`` show, and the time to the first question (start-up
    included). ``timeout`` bounds the server's start-up and the run.
    """
    if answers < 1 or annotators < 1:
        raise ValueError(Errors.E714.format(answers=answers, annotators=annotators))
    texts = replicate_texts([t for t, _ in records], pool_size)
    gold: dict[str, list[str]] = {}
    for text, labels in records:
        gold.setdefault(text, labels)
    base = list(dict.fromkeys(t for t, _ in records))
    gold_of = {t: gold[base[i % len(base)]] for i, t in enumerate(texts)}
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_http_") as tmp:
        pool_path = write_pool(Path(tmp) / "pool.jsonl", texts)
        argv = [
            "textcat.teach",
            DATASET,
            str(pool_path),
            "--label",
            ",".join(_labels_of(records)),
            "--db",
            f"sqlite:///{Path(tmp) / 'bench.db'}",
            "--batch-size",
            "10",
        ]
        if learner == "process":
            argv += ["--learner", "process"]
        server = ServerProcess(
            argv,
            port=free_port(),
            log=Path(tmp) / "server.log",
            env={"SPACY_AL_HOME": str(Path(tmp) / "home")},
            fork=False,
        )
        port = server.port
        start = time.perf_counter()
        server.start()
        try:
            first = _first_task(server, timeout)
            first_seconds = time.perf_counter() - start
            request(  # the warm-up answers too, as in measure_next_example
                port,
                "POST",
                "/answer",
                {"annotator": "warmup", "task": _gold_answer(first, gold_of)},
            )
            # The warm-up waited for the first ranking: not counted.
            _, before = request(port, "GET", "/stats?annotator=warmup")
            commits: list[float] = []
            nexts: list[float] = []
            clicks: list[float] = []
            empty = [0]
            left = [answers]
            lock = threading.Lock()
            failures: list[str] = []
            deadline = time.monotonic() + timeout

            def annotate(who: str) -> None:
                rng = random.Random(who)
                task = _next(port, who)
                while task is not None and time.monotonic() < deadline:
                    with lock:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                    time.sleep(rng.uniform(*think))  # the person reads
                    t0 = time.perf_counter()
                    status, reply = request(
                        port,
                        "POST",
                        "/answer",
                        {"annotator": who, "task": _gold_answer(task, gold_of)},
                    )
                    t1 = time.perf_counter()
                    if status != 200:
                        with lock:
                            failures.append(f"/answer {status}: {reply}")
                        return
                    task = _next(port, who)
                    n_empty = 0
                    while task is None and time.monotonic() < deadline:
                        n_empty += 1  # the queue ran dry: ask again
                        task = _next(port, who)
                    t2 = time.perf_counter()
                    with lock:
                        commits.append(t1 - t0)
                        nexts.append(t2 - t1)
                        clicks.append(t2 - t0)
                        empty[0] += n_empty

            threads = [
                threading.Thread(target=annotate, args=(f"annotator{i}",))
                for i in range(annotators)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            _, stats = request(port, "GET", "/stats?annotator=warmup")
        finally:
            server.close()
    if failures or not clicks:
        raise RuntimeError(Errors.E715.format(timeout=timeout) + f" {failures[:1]}")
    return {
        "pool_size": len(texts),
        "learner": learner,
        "over": "http",
        "annotators": annotators,
        "think_seconds": list(think),
        "answer_then_next": quantiles(clicks),
        "answer": quantiles(commits),
        "next_task": quantiles(nexts),
        "empty_nexts": empty[0],
        "dry_waits": stats.get("dry_waits", 0) - before.get("dry_waits", 0),
        "answers": stats.get("answers"),
        "model_updates": stats.get("updates"),
        "final_version": stats.get("version"),
        "error": stats.get("error"),
        "first_question_seconds": first_seconds,
        "first_task_key": first["_input_key"],
        "wall_seconds": wall,
    }


def _first_task(server: ServerProcess, timeout: float) -> dict:
    """The first task the server gives (a warm-up annotator's), once it is up."""
    deadline = time.monotonic() + timeout
    if not server.wait_ready(timeout):
        raise RuntimeError(Errors.E715.format(timeout=timeout))
    while time.monotonic() < deadline:
        task = _next(server.port, "warmup")
        if task is not None:
            return task
    raise RuntimeError(Errors.E715.format(timeout=timeout))


def _next(port: int, who: str) -> dict | None:
    status, reply = request(
        port, "POST", "/next", {"annotator": who, "wait": NEXT_WAIT}
    )
    return reply["task"] if status == 200 else None


def _gold_answer(task: dict, gold_of: dict[str, list[str]]) -> dict:
    right = task.get("label") in gold_of.get(task.get("text", ""), ())
    return {"_input_key": task["_input_key"], "answer": "accept" if right else "reject"}
