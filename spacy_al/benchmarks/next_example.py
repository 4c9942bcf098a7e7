"""Answer → next example: how long a click takes while the model learns.

Section 1 of ``bench speed``, measured two ways:

* :func:`measure_next_example`: server side, in the
  :class:`~spacy_al.serve.feed.Feed` the app uses, driven by several annotator
  threads in the serving process while the selector re-scores and the trainer
  learns in the background (or, with ``learner="process"``, while a learner
  process of its own does: :func:`serve_learner`).
* :func:`measure_next_example_http`: through the JSON API of a server in a
  process of its own (``python -m spacy_al textcat.teach DATASET POOL --api``,
  with ``learner="process"`` and its learner process beside it), the annotator
  threads in this process doing ``POST /answer`` then ``POST /next`` over a new
  connection per request, as a script or another front end would: the in-process
  threads share the GIL with the requests they time, a team's browsers don't.
  The server is the recipe's default (the ``linear`` learner, margin sampling),
  not :func:`~spacy_al.benchmarks.speed.textcat_session`, so the two figures
  are side by side, not the same thing measured twice.

Both count the requests that found nothing queued and waited (``dry_waits``).
Pools and sessions come from :mod:`spacy_al.benchmarks.speed`.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import srsly

from spacy_al.benchmarks.processes import ServerProcess, free_port, request
from spacy_al.benchmarks.speed import (
    BENCH_DATASET,
    SessionBuilder,
    _labels_of,
    peak_rss_bytes,
    quantiles,
    replicate_texts,
    resolve_builder,
    serving_session,
    write_pool,
)
from spacy_al.errors import Errors


def _replicated_pool(
    records: Sequence[tuple[str, list[str]]], pool_size: int
) -> tuple[list[str], dict[str, list[str]]]:
    """The corpus's texts replicated to ``pool_size`` (``replicate_texts``), and
    each replica's gold labels: those of the text it repeats (the first answer
    where a text is labelled twice)."""
    texts = replicate_texts([t for t, _ in records], pool_size)
    gold: dict[str, list[str]] = {}
    for text, labels in records:
        gold.setdefault(text, labels)
    base = list(dict.fromkeys(t for t, _ in records))
    return texts, {t: gold[base[i % len(base)]] for i, t in enumerate(texts)}


class _Clicks:
    """What the annotator threads measured, shared between them: the answers
    left to give, and each click's seconds (``answer``, then the next task)."""

    def __init__(self, answers: int) -> None:
        self.left = answers
        self.commits: list[float] = []  # answer
        self.waits: list[float] = []  # the next task
        self.clicks: list[float] = []  # both
        self.versions: set[int] = set()  # the model versions of the tasks served
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether one more answer is wanted (and counts it)."""
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def add(self, commit: float, wait: float, task: dict | None) -> None:
        with self._lock:
            self.commits.append(commit)
            self.waits.append(wait)
            self.clicks.append(commit + wait)
            if task is not None:
                self.versions.add(int(task.get("_model_version", -1)))


def _annotate(
    who: str,
    clicks: _Clicks,
    *,
    first: Callable[[str], dict | None],
    answer: Callable[[str, dict], None],
    then_next: Callable[[str], dict | None],
    think: tuple[float, float],
    deadline: float = math.inf,
) -> None:
    """One annotator: ``first(who)`` is their first task; then, while answers
    are wanted, they think ``think`` seconds (uniform), ``answer`` and ask for
    the next task (``then_next``), each click timed into ``clicks``; until no
    task comes, or ``deadline`` (``time.monotonic``)."""
    rng = random.Random(who)
    task = first(who)
    while task is not None and time.monotonic() < deadline:
        if not clicks.take():
            return
        time.sleep(rng.uniform(*think))  # the person reads
        t0 = time.perf_counter()
        answer(who, task)
        t1 = time.perf_counter()
        task = then_next(who)
        t2 = time.perf_counter()
        clicks.add(t1 - t0, t2 - t1, task)


def _run_annotators(annotate: Callable[[str], None], n: int) -> float:
    """``annotate(name)`` in ``n`` threads at once; the seconds until all end."""
    threads = [
        threading.Thread(target=annotate, args=(f"annotator{i}",)) for i in range(n)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def measure_next_example(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    build: SessionBuilder | str,
    answers: int = 500,
    annotators: int = 5,
    think: tuple[float, float] = (0.5, 1.5),
    workdir: str | Path | None = None,
    timeout: float = 60.0,
    learner: str = "thread",
) -> dict[str, Any]:
    """Answer → next example in the shared Feed, several annotators at once.

    ``records`` are (text, gold labels); a pool of ``pool_size`` texts is made of
    them and served by the components ``build`` makes. Each of ``annotators``
    threads loops: ``next_task``, think ``think`` seconds (uniform), ``answer``
    with the gold label (accept if the suggested label is right, else reject),
    until ``answers`` answers are in. Returns quantiles of ``answer``, of
    ``next_task`` and of both together (the server side of one click), the model
    versions and updates seen, the time to build the session, and
    ``dry_waits``: the ``next_task`` calls that found nothing queued and waited
    (:attr:`~spacy_al.serve.feed.Feed.dry_waits`; the warm-up's excluded).

    ``learner="process"``: the feed only serves (``Feed(learner="remote")``,
    on the components such a server holds: :func:`serving_session`) and a
    learner process (:func:`serve_learner`, the same ``build``, which must then
    be importable by name) selects and learns on the same database, as
    ``--learner process`` runs it; its start-up is not timed.
    """
    if answers < 1 or annotators < 1:
        raise ValueError(Errors.E714.format(answers=answers, annotators=annotators))
    from spacy_al.serve.feed import Feed

    texts, gold_of = _replicated_pool(records, pool_size)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_speed_") as tmp:
        pool_path = write_pool(Path(tmp) / "pool.jsonl", texts)
        start = time.perf_counter()
        serving = serving_session if learner == "process" else resolve_builder(build)
        components = serving(pool_path, Path(tmp) / "bench.db", _labels_of(records))
        feed = Feed.from_components(
            components,
            checkpoint=None,
            learner="remote" if learner == "process" else "thread",
        )
        built = time.perf_counter() - start
        process = (
            _start_learner(build, pool_path, Path(tmp) / "bench.db", records, feed)
            if learner == "process"
            else None
        )
        try:
            start = time.perf_counter()
            first = feed.next_task("warmup", timeout=timeout)
            first_seconds = time.perf_counter() - start
            if first is None:
                raise RuntimeError(Errors.E715.format(timeout=timeout))
            feed.answer("warmup", _gold_answer(first, gold_of))
            dry_before = feed.dry_waits  # the warm-up waited for the first ranking
            clicks = _Clicks(answers)

            def next_task(who: str) -> dict | None:
                return feed.next_task(who, timeout=timeout)

            def annotate(who: str) -> None:
                _annotate(
                    who,
                    clicks,
                    first=next_task,
                    answer=lambda who, task: feed.answer(
                        who, _gold_answer(task, gold_of)
                    ),
                    then_next=next_task,
                    think=think,
                )

            wall = _run_annotators(annotate, annotators)
            stats = feed.stats()
            dry_waits = feed.dry_waits - dry_before
        finally:
            feed.close()
            learner_rss = _stop_learner(process, Path(tmp)) if process else None
    return {
        "pool_size": len(texts),
        "learner": learner,
        "learner_peak_rss_bytes": learner_rss,
        "annotators": annotators,
        "think_seconds": list(think),
        "answer_then_next": quantiles(clicks.clicks),
        "answer": quantiles(clicks.commits),
        "next_task": quantiles(clicks.waits),
        "dry_waits": dry_waits,
        "answers": stats["answers"],
        "model_updates": stats["updates"],
        "final_version": stats["version"],
        "versions_served": len(clicks.versions),
        "error": stats["error"],
        "session_build_seconds": built,
        "first_question_seconds": first_seconds,
        "wall_seconds": wall,
    }


def serve_learner(
    build: str, pool_path: str, db_path: str, labels: str, out_path: str
) -> None:
    """A learner process for :func:`measure_next_example` (``python -c``): the
    components ``build`` makes (its name, ``"module:function"``) on the pool and
    database, learnt and selected for by a
    :class:`~spacy_al.serve.learner.Learner` until SIGTERM; then its peak RSS is
    written to ``out_path`` (JSON)."""
    import signal

    from spacy_al.serve.learner import BESIDE_NICE, open_learner
    from spacy_al.serve.settings import configure_process

    os.nice(BESIDE_NICE)  # as a learner a server starts beside itself
    configure_process()  # as the learner command does
    builder = resolve_builder(build)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    learn = open_learner(
        lambda: builder(Path(pool_path), Path(db_path), labels.split("\x1f")),
        db=f"sqlite:///{db_path}",
        dataset=BENCH_DATASET,
        checkpoint=None,
    )
    if learn is None:
        return
    try:
        learn.run(stopped=stopped)
    finally:
        learn.close()
        srsly.write_json(out_path, {"peak_rss_bytes": peak_rss_bytes()})


def _builder_name(build: SessionBuilder | str) -> str:
    """``build``'s importable name (a learner process imports it)."""
    if isinstance(build, str):
        return build
    name = f"{build.__module__}:{build.__qualname__}"
    if resolve_builder(name) is not build:
        raise ValueError(Errors.E800.format(name=name))
    return name


def _start_learner(
    build: SessionBuilder | str,
    pool_path: Path,
    db_path: Path,
    records: Sequence[tuple[str, list[str]]],
    feed: Any,
) -> subprocess.Popen[bytes]:
    if feed.dataset != BENCH_DATASET:
        raise ValueError(Errors.E800.format(name=f"{build} (dataset {feed.dataset})"))
    code = (
        "import sys\n"
        "from spacy_al.benchmarks.next_example import serve_learner\n"
        "serve_learner(*sys.argv[1:])\n"
    )
    labels = "\x1f".join(_labels_of(records))
    out = db_path.with_name("learner.json")
    args = [sys.executable, "-c", code, _builder_name(build), str(pool_path)]
    return subprocess.Popen(
        [*args, str(db_path), labels, str(out)], stdout=subprocess.DEVNULL
    )


def _stop_learner(process: subprocess.Popen[bytes], tmp: Path) -> int | None:
    """SIGTERM the learner process; its peak RSS (None if it didn't say)."""
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    out = tmp / "learner.json"
    return int(srsly.read_json(out)["peak_rss_bytes"]) if out.exists() else None


def _gold_answer(task: dict, gold_of: dict[str, list[str]]) -> dict:
    right = task["label"] in gold_of.get(task["text"], ())
    return {**task, "answer": "accept" if right else "reject"}


# --- over HTTP ---------------------------------------------------------------------

HTTP_DATASET = "bench_http"
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
    texts, gold_of = _replicated_pool(records, pool_size)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_http_") as tmp:
        pool_path = write_pool(Path(tmp) / "pool.jsonl", texts)
        argv = [
            "textcat.teach",
            HTTP_DATASET,
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
                {"annotator": "warmup", "task": _gold_reply(first, gold_of)},
            )
            # The warm-up waited for the first ranking: not counted.
            _, before = request(port, "GET", "/stats?annotator=warmup")
            clicks = _Clicks(answers)
            empty: list[int] = []  # each click's empty replies (appends are atomic)
            failures: list[str] = []
            deadline = time.monotonic() + timeout

            def answer(who: str, task: dict) -> None:
                status, reply = request(
                    port,
                    "POST",
                    "/answer",
                    {"annotator": who, "task": _gold_reply(task, gold_of)},
                )
                if status != 200:
                    raise _AnswerFailed(f"/answer {status}: {reply}")

            def then_next(who: str) -> dict | None:
                task = _next(port, who)
                n_empty = 0
                while task is None and time.monotonic() < deadline:
                    n_empty += 1  # the queue ran dry: ask again
                    task = _next(port, who)
                empty.append(n_empty)
                return task

            def annotate(who: str) -> None:
                try:
                    _annotate(
                        who,
                        clicks,
                        first=lambda who: _next(port, who),
                        answer=answer,
                        then_next=then_next,
                        think=think,
                        deadline=deadline,
                    )
                except _AnswerFailed as e:
                    failures.append(str(e))

            wall = _run_annotators(annotate, annotators)
            _, stats = request(port, "GET", "/stats?annotator=warmup")
        finally:
            server.close()
    if failures or not clicks.clicks:
        raise RuntimeError(Errors.E715.format(timeout=timeout) + f" {failures[:1]}")
    return {
        "pool_size": len(texts),
        "learner": learner,
        "over": "http",
        "annotators": annotators,
        "think_seconds": list(think),
        "answer_then_next": quantiles(clicks.clicks),
        "answer": quantiles(clicks.commits),
        "next_task": quantiles(clicks.waits),
        "empty_nexts": sum(empty),
        "dry_waits": stats.get("dry_waits", 0) - before.get("dry_waits", 0),
        "answers": stats.get("answers"),
        "model_updates": stats.get("updates"),
        "final_version": stats.get("version"),
        "error": stats.get("error"),
        "first_question_seconds": first_seconds,
        "first_task_key": first["_input_key"],
        "wall_seconds": wall,
    }


class _AnswerFailed(RuntimeError):
    """The server refused an annotator's answer (the run stops and says why)."""


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


def _gold_reply(task: dict, gold_of: dict[str, list[str]]) -> dict:
    right = task.get("label") in gold_of.get(task.get("text", ""), ())
    return {"_input_key": task["_input_key"], "answer": "accept" if right else "reject"}
