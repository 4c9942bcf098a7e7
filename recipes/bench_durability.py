"""bench durability: kill -9 trials and a team under load, on SQLite and PostgreSQL.

    python -m spacy_al bench durability [--db sqlite,postgresql://USER@HOST/DB] \\
        [--trials 100] [--annotators 20] [--minutes 5] [--source FILE] \\
        [--label A,B] [--think 1.0] [--output DIR]

For each database (``sqlite`` is a fresh file in DIR):

1. **kill -9 trials.** The JSON API of ``textcat.teach`` runs as its own process
   (``python -m spacy_al textcat.teach ... --api``, bow model, batch 5, model
   saved every 0.5 s); ``--trial-annotators`` clients label through it while it
   is killed with SIGKILL ``--trials`` times at random moments (a fifth of them
   while it starts), and started again each time.
2. **A team under load.** ``--annotators`` clients label for ``--minutes``
   through one server that is never killed, each taking ``--think`` seconds
   (on average) per answer.

Both compare what every client was told with what the database holds, and print
answers acknowledged, answers stored, lost, duplicates, errors and the p95
latency of an answer (``spacy_al.benchmarks.durability``). Writes DIR/results.json.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import srsly
import typer
from wasabi import msg

from spacy_al.benchmarks.durability import TrialReport, run_trials
from spacy_al.corpus import Source, gold_labels
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.registry import recipe
from spacy_al.store import Store

from ._options import Seed, split_commas


def _labels(source: Path) -> list[str]:
    found: set[str] = set()
    for task in Source(source, skip_invalid=True):
        found.update(gold_labels(task) or ())
    return sorted(found)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(kind: str, report: TrialReport) -> list[str]:
    return [
        report.backend,
        kind,
        str(report.kills),
        str(report.annotators),
        f"{report.seconds:.0f}",
        str(report.acknowledged),
        str(report.stored),
        str(report.lost),
        str(report.duplicates),
        str(report.errors),
        str(report.version_regressions),
        str(report.unlearnt),
        f"{report.answer_p95_ms:.0f}",
        f"{report.next_p95_ms:.0f}",
    ]


HEADER = [
    "db",
    "run",
    "kills",
    "annot.",
    "s",
    "acknowledged",
    "stored",
    "lost",
    "dupl.",
    "errors",
    "version back",
    "unlearnt",
    "answer p95 ms",
    "next p95 ms",
]


@recipe("bench.durability")
def bench_durability(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="Comma-separated databases: 'sqlite' (a fresh file) or URLs",
        ),
    ] = "sqlite",
    trials: Annotated[int, typer.Option("--trials", help="kill -9 trials")] = 100,
    trial_annotators: Annotated[
        int, typer.Option("--trial-annotators", help="Clients during the trials")
    ] = 4,
    annotators: Annotated[
        int, typer.Option("--annotators", help="Clients in the load run")
    ] = 20,
    minutes: Annotated[
        float, typer.Option("--minutes", help="Length of the load run")
    ] = 5.0,
    think: Annotated[
        float,
        typer.Option("--think", help="Mean seconds per answer in the load run"),
    ] = 1.0,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Texts to label (default: the demo corpus)"),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="Labels (default: the source's gold labels)"),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", help="Directory for results.json")
    ] = Path("bench_durability"),
    seed: Seed = 0,
) -> None:
    """Kill -9 trials and a team under load against each database: answers
    acknowledged, stored, lost, duplicated, errors, p95 latency."""
    source = source or corpus_path("support.jsonl")
    labels = split_commas(label) if label else _labels(source)
    if not labels:
        labels = LABELS.split(",")
    output.mkdir(parents=True, exist_ok=True)
    msg.info(
        f"bench durability on {source}: labels {labels}; {trials} kill -9 trials "
        f"({trial_annotators} clients), {annotators} annotators for {minutes:g} min "
        f"(think {think:g} s); load {_load()} on {os.cpu_count()} CPUs"
    )
    results: list[dict] = []
    rows: list[list[str]] = []
    for url in split_commas(db):
        for kind in ("kill -9", "load"):
            work = Path(tempfile.mkdtemp(prefix="durability_", dir=output))
            target = f"sqlite:///{work / 'answers.db'}" if url == "sqlite" else url
            dataset = f"durability_{int(time.time())}_{os.getpid()}"
            load_before = _load()
            started = time.monotonic()
            try:
                report = run_trials(
                    db=target,
                    source=source,
                    labels=labels,
                    workdir=work,
                    kills=trials if kind == "kill -9" else 0,
                    annotators=trial_annotators if kind == "kill -9" else annotators,
                    seconds=None if kind == "kill -9" else minutes * 60,
                    think=0.3 if kind == "kill -9" else think,
                    dataset=dataset,
                    seed=seed,
                    progress=(lambda line: msg.text(f"  {line}"))
                    if kind == "kill -9"
                    else None,
                )
            finally:
                if url != "sqlite":
                    with Store(target) as store:
                        if store.has_dataset(dataset):
                            store.drop_dataset(dataset)
            record = {
                **report.as_dict(),
                "run": kind,
                "load_before": load_before,
                "load_after": _load(),
                "wall_seconds": round(time.monotonic() - started, 1),
            }
            results.append(record)
            rows.append(_row(kind, report))
            verdict = "ok" if report.ok else "PROBLEM"
            msg.text(
                f"{report.backend} {kind}: {verdict}; load before {load_before}, "
                f"after {record['load_after']}"
            )
            for sample in report.error_samples:
                msg.warn(sample)
    srsly.write_json(output / "results.json", results)
    msg.table(rows, header=HEADER, divider=True)
    msg.good(f"Wrote {output / 'results.json'}")
