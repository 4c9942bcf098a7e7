"""Speed and memory of a labelling session, measured on a real corpus.

Each ``measure_*`` function runs one measurement and returns its figures as a
dict (seconds, bytes, ratios); the ``bench speed`` recipe prints them. Pools
bigger than the corpus repeat its texts with a numbered suffix
(``replicate_texts``), so every text stays distinct in the pool.

* answer → next example (section 1) is measured in
  :mod:`spacy_al.benchmarks.next_example`, on the pools and sessions made here.
* ``measure_update``: a batch of answers → the updated model serving, as
  ``Updater.update`` (the gradient steps with replay, then the new snapshot swapped
  in: the trainer thread's work between a batch's last answer and the version bump).
* ``measure_scoring``: uncertainty scoring (tokenization included) against raw
  ``nlp.pipe`` on the same texts.
* ``measure_startup`` / ``measure_startup_subprocess``: time to the first question
  and peak RSS for one pool size, the latter in a fresh interpreter.
* ``measure_ner_scoring``: NER uncertainty by beam search (widths 4 and 8) against
  the greedy per-step entropy and plain prediction, and how well each document
  measure ranks the documents the model gets wrong first.

The session measured is built by a ``build(pool_path, db_path, labels)`` callable;
:func:`textcat_session` builds ``textcat.teach``'s session (and
:func:`serving_session` what a server that follows a learner process holds),
and a fresh interpreter gets it by its importable name :data:`SESSION`.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly

from spacy_al.corpus import Source, gold_labels
from spacy_al.errors import Errors

#: The targets the project set itself (seconds, ratios, bytes).
TARGETS = {
    "next_example_p95_seconds": 0.050,
    "update_textcat_p95_seconds": 2.0,
    "update_ner_p95_seconds": 15.0,
    "scoring_ratio": 0.9,
    "startup_peak_rss_bytes": 2 * 1024**3,
    "first_question_seconds": 5.0,
}


# --- inputs --------------------------------------------------------------------


def read_labelled(path: str | Path) -> list[tuple[str, list[str]]]:
    """(text, gold labels) of every record of a JSONL corpus with a gold label."""
    out = []
    for task in Source(Path(path)):
        labels = gold_labels(task)
        if labels:
            out.append((task["text"], labels))
    if not out:
        raise ValueError(Errors.E712.format(path=path))
    return out


def replicate_texts(texts: Sequence[str], n: int) -> list[str]:
    """``n`` distinct texts: ``texts`` (deduplicated) then copies suffixed `` #k``."""
    base = list(dict.fromkeys(texts))
    if not base or n < 1:
        raise ValueError(Errors.E713.format(n_texts=len(base), n=n))
    return [
        base[i] if i < len(base) else f"{base[i % len(base)]} #{i // len(base)}"
        for i in range(n)
    ]


def write_pool(path: str | Path, texts: Sequence[str]) -> Path:
    """Write ``texts`` as a JSONL source of ``{"text": ...}`` records."""
    path = Path(path)
    srsly.write_jsonl(path, ({"text": text} for text in texts))
    return path


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95 (nearest rank), max and mean of some durations."""
    if not values:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p95 = ordered[max(int(np.ceil(0.95 * len(ordered))) - 1, 0)]
    return {
        "n": len(ordered),
        "p50": float(statistics.median(ordered)),
        "p95": float(p95),
        "max": float(ordered[-1]),
        "mean": float(statistics.fmean(ordered)),
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM; getrusage where no /proc)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model, load average and versions of the running machine."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {
        "nproc": os.cpu_count(),
        "ram_bytes": ram,
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "spacy": spacy.__version__,
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }


def _labels_of(records: Sequence[tuple[str, list[str]]]) -> list[str]:
    return sorted({label for _, labels in records for label in labels})


#: The dataset :func:`textcat_session` opens (the learner process's lock).
BENCH_DATASET = "bench"


#: Builds a session's components (as a recipe returns them, for
#: ``Feed.from_components``) from a pool file, a database file and the labels.
SessionBuilder = Callable[[Path, Path, list[str]], dict]


#: :func:`textcat_session` by name, for a fresh interpreter to import.
SESSION = "spacy_al.benchmarks.speed:textcat_session"


def textcat_session(pool_path: Path, db: Path, labels: list[str]) -> dict:
    """The components ``textcat.teach`` serves for a new dataset on a pool, opened
    as it opens them (:func:`spacy_al.session.open_session`): bow model, margin
    sampling over a 20k scoring window, batches of 10, an SQLite store."""
    from spacy_al.loop import StrategySpec
    from spacy_al.session import open_session
    from spacy_al.textcat.loop import ActiveLoop
    from spacy_al.textcat.model import DEFAULT_LEARN_RATE, TextcatModel, build_textcat
    from spacy_al.textcat.targets import answers_to_textcat_targets
    from spacy_al.updater import Updater

    dataset, view_id, batch_size, strategy = "bench", "classification", 10, "margin"
    learn_rate = DEFAULT_LEARN_RATE.get("bow", 0.01)
    session = open_session(
        dataset,
        pool_path,
        db=f"sqlite:///{db}",
        meta={
            "labels": list(labels),
            "view_id": view_id,
            "exclusive": True,
            "task": "textcat",
            "overlap": 1,
        },
        new_updater=lambda version: Updater(
            TextcatModel(build_textcat(list(labels), architecture="bow")),
            learn_rate=learn_rate,
            version=version,
        ),
        load_updater=lambda checkpoints: checkpoints.load(learn_rate=learn_rate),
        to_targets=lambda answers, labels: answers_to_textcat_targets(
            answers, labels, exclusive=True
        ),
    )
    loop = ActiveLoop(
        session.pool,
        session.updater,
        spec=StrategySpec.parse(strategy),
        store=session.store,
        dataset=dataset,
        batch_size=batch_size,
        window=20_000,
    )
    loop.consensus = session.consensus
    return {
        "dataset": dataset,
        "view_id": view_id,
        "store": session.store,
        "loop": loop,
        "labels": list(session.updater.labels),
        "exclusive": True,
        "eval": None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {"batch_size": batch_size, "strategy": strategy},
    }


def serving_session(pool_path: Path, db: Path, labels: list[str]) -> dict:
    """The components a ``textcat.teach --learner process|remote`` server
    serves for the dataset :func:`textcat_session` opens: the pool's input
    keys and done marks, no model (:class:`~spacy_al.serve.follower.ServingLoop`);
    its learner process selects and learns."""
    from spacy_al.serve.follower import ServingLoop
    from spacy_al.session import open_session

    dataset, view_id = BENCH_DATASET, "classification"
    session = open_session(
        dataset,
        pool_path,
        db=f"sqlite:///{db}",
        meta={
            "labels": list(labels),
            "view_id": view_id,
            "exclusive": True,
            "task": "textcat",
            "overlap": 1,
        },
        new_updater=lambda version: None,  # never called: serve_only
        load_updater=None,
        to_targets=lambda answers, labels: [],
        serve_only=True,
    )
    loop = ServingLoop(
        session.pool,
        store=session.store,
        dataset=dataset,
        labels=labels,
        exclusive=True,
        batch_size=10,
    )
    return {
        "dataset": dataset,
        "view_id": view_id,
        "store": session.store,
        "loop": loop,
        "labels": list(labels),
        "exclusive": True,
        "eval": None,
        "checkpoint": session.checkpoints,
        "source": session.source_info(),
        "config": {"batch_size": 10, "strategy": "margin"},
    }


def resolve_builder(build: SessionBuilder | str) -> SessionBuilder:
    """``build`` itself, or the function an importable ``"module:function"`` names."""
    if callable(build):
        return build
    module, _, name = str(build).partition(":")
    try:
        func = getattr(import_module(module), name) if name else None
    except (ImportError, AttributeError, ValueError):
        func = None
    if not callable(func):
        raise ValueError(Errors.E800.format(name=build))
    return func


# --- 2. batch → updated model ----------------------------------------------------


def measure_update(
    records: Sequence[dict],
    *,
    model: str,
    batches: int = 20,
    batch_size: int = 10,
) -> dict[str, Any]:
    """Time of ``Updater.update`` per batch: the steps, the snapshot, the swap.

    ``model`` is ``linear`` (the default: refit on every answer while a refit
    takes ≤ 2 s, with idf from the records' texts), ``bow`` or ``ensemble``
    (textcat; ``records`` carry a gold label)
    or ``ner`` (greedy ``ner`` scored with a beam of 4 and fit on every answer
    after each batch, as ``ner.teach``; ``records`` carry gold ``spans``; no
    pool vectors). The updater is set up as the recipes set it up; each of
    ``batches`` batches of ``batch_size`` gold answers is learnt in turn (so the
    replay of earlier answers grows as in a session), and the version the updater
    serves is checked to have gone up after each.
    """
    if batches < 1 or batch_size < 1:
        raise ValueError(Errors.E716.format(batches=batches, batch_size=batch_size))
    updater, targets = _updater_and_targets(records, model, batches * batch_size)
    if len(targets) < batches * batch_size:
        raise ValueError(
            Errors.E717.format(n=len(targets), need=batches * batch_size, model=model)
        )
    seconds = []
    for b in range(batches):
        batch = targets[b * batch_size : (b + 1) * batch_size]
        _, before = updater.serving()
        start = time.perf_counter()
        updater.update(batch)
        _, after = updater.serving()
        seconds.append(time.perf_counter() - start)
        if after != before + 1:
            raise RuntimeError(Errors.E718.format(before=before, after=after))
    return {
        "model": model,
        "batch_size": batch_size,
        "batches": batches,
        "replay": updater.replay,
        "update_steps": updater.update_steps,
        "seconds": quantiles(seconds),
        "first_batch_seconds": seconds[0],
    }


def _updater_and_targets(records: Sequence[dict], model: str, n: int) -> tuple:
    from spacy_al.corpus import set_hashes
    from spacy_al.textcat.learner import IDF_TEXTS
    from spacy_al.textcat.model import (
        ARCHITECTURES,
        DEFAULT_LEARN_RATE,
        TextcatModel,
        build_textcat,
    )
    from spacy_al.updater import Updater

    if model in ARCHITECTURES:
        from spacy_al.textcat.targets import TextcatTarget

        labelled = [(r["text"], gold_labels(r)) for r in records]
        labelled = [(t, g) for t, g in labelled if g]
        labels = _labels_of(labelled)
        textcat = TextcatModel(build_textcat(labels, architecture=model))
        if model == "linear":  # idf from the pool's first texts, as the loop does
            textcat.fit_idf(t for t, _ in labelled[:IDF_TEXTS])
        updater = Updater(textcat, learn_rate=DEFAULT_LEARN_RATE.get(model, 0.01))
        targets = [
            TextcatTarget(
                text=t,
                input_key=set_hashes({"text": t})["_input_key"],
                cats={label: float(label in g) for label in labels},
                is_gold=True,
            )
            for t, g in labelled[:n]
        ]
        return updater, targets
    if model == "ner":
        from spacy_al.ner.fit import SESSION_FIT_EXAMPLES, SESSION_FIT_SECONDS
        from spacy_al.ner.model import DEFAULT_BEAM_WIDTH, NERModel, build_ner
        from spacy_al.ner.model import DEFAULT_LEARN_RATE as NER_LEARN_RATE
        from spacy_al.ner.model import SESSION_FACTORY as NER_FACTORY
        from spacy_al.ner.targets import NERTarget

        spanned = [r for r in records if isinstance(r.get("spans"), list)]
        labels = sorted({s["label"] for r in spanned for s in r["spans"]})
        if not labels:
            raise ValueError(Errors.E717.format(n=0, need=n, model=model))
        # As ner.teach/ner.correct set it up: a fit on every answer after each
        # batch, capped at SESSION_FIT_SECONDS (no pool vectors here).
        nlp = build_ner(labels, factory=NER_FACTORY, beam_width=DEFAULT_BEAM_WIDTH)
        updater = Updater(
            NERModel(
                nlp,
                beam_width=DEFAULT_BEAM_WIDTH,
                fit_examples=SESSION_FIT_EXAMPLES,
                fit_seconds=SESSION_FIT_SECONDS,
            ),
            learn_rate=NER_LEARN_RATE,
            drop=0.1,
            use_averages=True,
            refit_seconds=float("inf"),
        )
        targets = [
            NERTarget(
                text=r["text"],
                input_key=set_hashes({"text": r["text"]})["_input_key"],
                spans=[
                    {"start": s["start"], "end": s["end"], "label": s["label"]}
                    for s in r["spans"]
                ],
                tokens=r.get("tokens"),
                is_gold=True,
            )
            for r in spanned[:n]
        ]
        return updater, targets
    raise ValueError(Errors.E719.format(model=model))


# --- 3. scoring throughput -----------------------------------------------------


def measure_scoring(
    records: Sequence[tuple[str, list[str]]],
    *,
    n_docs: int = 20_000,
    repeats: int = 3,
    measure: str = "margin",
) -> dict[str, Any]:
    """Uncertainty scoring vs raw ``nlp.pipe`` on the same texts (textcat bow).

    Times (median of ``repeats``): ``nlp.pipe`` over the texts (tokenizer and
    textcat, nothing else); the scoring path the loop runs, from texts
    (``score_stream``: tokenize and score a batch of 512 at a time); the same
    with every Doc made first and then scored (the loop's path before
    ``score_stream``, ``all_docs_first``); and the scorer alone on Docs
    tokenized beforehand (the loop caches a pool's Docs up to 100k texts).
    ``ratio`` is scoring throughput over raw throughput (higher is better).
    """
    if repeats < 1 or n_docs < 1:
        raise ValueError(Errors.E720.format(repeats=repeats, n_docs=n_docs))
    from spacy_al.textcat.model import TextcatModel, build_textcat
    from spacy_al.textcat.scoring import ModelScorer, score_stream

    texts = replicate_texts([t for t, _ in records], n_docs)
    nlp = build_textcat(_labels_of(records), architecture="bow")
    model = TextcatModel(nlp)
    scorer = ModelScorer(measure, multilabel=not model.exclusive)

    def raw() -> None:
        for _ in nlp.pipe(texts, batch_size=512):
            pass

    def scoring() -> None:
        score_stream(scorer, model, (nlp.make_doc(text) for text in texts))

    def scoring_all_first() -> None:
        scorer(model, model.make_docs(texts))

    docs = model.make_docs(texts)

    def scoring_docs() -> None:
        scorer(model, docs)

    paths = (
        ("raw", raw),
        ("scoring", scoring),
        ("scoring_all_docs_first", scoring_all_first),
        ("scoring_pretokenized", scoring_docs),
    )
    times: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _ in range(repeats):  # interleaved, so load changes hit all alike
        for name, fn in paths:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: float(statistics.median(v)) for name, v in times.items()}
    return {
        "n_docs": n_docs,
        "repeats": repeats,
        "measure": measure,
        "seconds": med,
        "docs_per_second": {name: n_docs / s for name, s in med.items()},
        "ratio": med["raw"] / med["scoring"],
        "ratio_all_docs_first": med["raw"] / med["scoring_all_docs_first"],
        "ratio_pretokenized": med["raw"] / med["scoring_pretokenized"],
    }


# --- 4. time to first question and peak memory -------------------------------------


def measure_startup(
    pool_path: str | Path,
    *,
    labels: Sequence[str],
    build: SessionBuilder | str,
    workdir: str | Path | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Read a pool, build the session (``build``) and serve its first question.

    Returns the seconds to build the session (open the store, build the model,
    read, hash and deduplicate the source, or its first part when the pool goes
    on reading in the background), to the first question (build plus the first
    selection), to the whole pool read (``pool_read_seconds``; the same as the
    build when the pool is read first), and this process's peak RSS before and
    after, the whole pool read. Run it in a fresh process
    (``measure_startup_subprocess``) for a pool's own peak.
    """
    from spacy_al.serve.feed import Feed

    rss_before = peak_rss_bytes()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_start_") as tmp:
        start = time.perf_counter()
        components = resolve_builder(build)(
            Path(pool_path), Path(tmp) / "bench.db", list(labels)
        )
        feed = Feed.from_components(components, checkpoint=None)
        built = time.perf_counter() - start
        pool = components["loop"].pool
        try:
            task = feed.next_task("first", timeout=timeout)
            first = time.perf_counter() - start
            wait = getattr(pool, "wait", None)
            if wait is not None and not wait(timeout):
                raise RuntimeError(Errors.E801.format(timeout=timeout))
            read = time.perf_counter() - start
            if hasattr(pool, "check"):
                pool.check()
        finally:
            feed.close()
        pool_size = len(pool)
    if task is None:
        raise RuntimeError(Errors.E715.format(timeout=timeout))
    return {
        "pool_size": pool_size,
        "session_build_seconds": built,
        "first_question_seconds": first,
        "pool_read_seconds": read,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_before_bytes": rss_before,
    }


def measure_startup_subprocess(
    records: Sequence[tuple[str, list[str]]],
    *,
    pool_size: int,
    build: str,
    workdir: str | Path | None = None,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """``measure_startup`` for a pool of ``pool_size`` texts, in a fresh Python.

    ``build`` names the session builder as ``"module:function"``. The pool file
    is written here first, so the child's peak RSS is the session's alone (plus
    the interpreter and spaCy, reported as ``peak_rss_before_bytes``).
    """
    resolve_builder(build)  # a bad name fails here, not in the child
    texts = replicate_texts([t for t, _ in records], pool_size)
    labels = _labels_of(records)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spacy_al_pool_") as tmp:
        pool_path = write_pool(Path(tmp) / "pool.jsonl", texts)
        del texts
        out_path = Path(tmp) / "result.json"
        code = (
            "import sys, srsly\n"
            "from spacy_al.benchmarks.speed import measure_startup\n"
            "r = measure_startup(sys.argv[1], labels=sys.argv[2].split('\\x1f'),"
            " workdir=sys.argv[3], build=sys.argv[5])\n"
            "srsly.write_json(sys.argv[4], r)\n"
        )
        args = [str(pool_path), "\x1f".join(labels), tmp, str(out_path), build]
        return run_in_fresh_python(
            code, args, out_path=out_path, pool_size=pool_size, timeout=timeout
        )


def run_in_fresh_python(
    code: str,
    args: Sequence[str],
    *,
    out_path: Path,
    pool_size: int,
    timeout: float,
) -> dict[str, Any]:
    """Run ``python -c CODE ARGS`` (a measurement that writes its result to
    ``out_path`` as JSON, so that its peak RSS is its own) and read the result;
    a timeout or a failed child raises RuntimeError with its last lines (E721)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(
            Errors.E721.format(pool_size=pool_size, err=f"timed out ({e})")
        ) from e
    if done.returncode != 0 or not out_path.exists():
        err = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(Errors.E721.format(pool_size=pool_size, err=" | ".join(err)))
    return dict(srsly.read_json(out_path))


# --- 5. NER scoring: beam search against the greedy fallback ----------------------

#: The document measures whose error ranking ``measure_ner_scoring`` reports.
NER_RANKING_MEASURES = (
    "mnlp",
    "max_token_entropy",
    "sequence_least_confidence",
    "entity",
)


def measure_ner_scoring(
    train_records: Sequence[dict],
    doc_records: Sequence[dict],
    *,
    epochs: int = 8,
    repeats: int = 3,
    widths: Sequence[int] = (1, 4, 8),
    seed: int = 0,
) -> dict[str, Any]:
    """NER uncertainty scoring speed and quality, on one model and the same Docs.

    Trains a ``beam_ner`` (width 4) on ``train_records`` (gold ``spans``; early
    stopping on the first tenth of them, up to ``epochs`` epochs), then times on
    the Docs of ``doc_records`` (median of ``repeats``): plain prediction (no
    uncertainty), and ``NERModel.score`` at each of ``widths`` (1 is the greedy
    per-step entropy). Each row also gives, per document measure, the AUROC of
    ranking the documents the model gets wrong (predicted entities differ from
    the gold ones) above those it gets right (0.5 is chance; None when every
    document is right, or every one wrong).
    """
    from sklearn.metrics import roc_auc_score

    from spacy_al.ner.fit import train_ner
    from spacy_al.ner.model import NERModel, build_ner, gold_docs
    from spacy_al.ner.scores import ner_doc_scores
    from spacy_al.ner.targets import NERTarget

    if repeats < 1 or epochs < 1:
        raise ValueError(Errors.E951.format(repeats=repeats, epochs=epochs))
    train = [r for r in train_records if isinstance(r.get("spans"), list)]
    records = [r for r in doc_records if isinstance(r.get("spans"), list)]
    labels = sorted({s["label"] for r in [*train, *records] for s in r["spans"]})
    if len(train) < 2 or not records or not labels:
        raise ValueError(Errors.E952.format(n_train=len(train), n_docs=len(records)))
    model = NERModel(build_ner(labels, beam_width=4, seed=seed))
    targets = [
        NERTarget(
            text=r["text"],
            input_key=i,
            spans=r["spans"],
            tokens=r.get("tokens"),
            is_gold=True,
        )
        for i, r in enumerate(train)
    ]
    n_dev = max(1, len(targets) // 10)
    dev = gold_docs(model.nlp, train[:n_dev], labels=model.labels)
    start = time.perf_counter()
    trained = train_ner(
        model,
        targets[n_dev:],
        lambda m: float(m.evaluate(dev)["ents_f"]),
        max_epochs=epochs,
        patience=2,
        seed=seed,
    )
    train_seconds = time.perf_counter() - start
    gold = gold_docs(model.nlp, records, labels=labels)
    docs = [model.make_doc(r) for r in records]
    n_tokens = sum(len(doc) for doc in docs)
    wrong = [
        int(sorted(p) != sorted((e.start, e.end, e.label_) for e in g.ents))
        for p, g in zip(model.predict(docs), gold, strict=True)
    ]

    def median_seconds(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(statistics.median(times))

    rows: list[dict[str, Any]] = [
        {
            "method": "nlp.pipe (no uncertainty)",
            "seconds": median_seconds(lambda: model.predict(docs)),
        }
    ]
    for width in widths:
        scorer = NERModel(model.nlp, beam_width=width)
        scores = scorer.score(docs)
        row: dict[str, Any] = {
            "method": "greedy step entropy" if width == 1 else f"beam width {width}",
            "beam_width": width,
            "seconds": median_seconds(lambda s=scorer: s.score(docs)),
        }
        for measure in NER_RANKING_MEASURES:
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
    return {
        "n_docs": len(docs),
        "n_tokens": n_tokens,
        "train_docs": len(train),
        "train_epochs": epochs,
        "train_seconds": train_seconds,
        "train_dev_ents_f": trained.best_score,
        "docs_ents_f": model.evaluate(gold)["ents_f"],
        "share_of_docs_wrong": sum(wrong) / len(wrong),
        "rows": rows,
    }
