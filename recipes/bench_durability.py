"""bench durability: kill -9 of servers and of train, a team under load, on
SQLite and PostgreSQL.

    python -m spacy_al bench durability [--db sqlite,postgresql://USER@HOST/DB] \\
        [--runs kill,load,servers,train] [--trials 100] [--annotators 20] \\
        [--minutes 5] [--server-kills 20] [--train-kills 10] [--source FILE] \\
        [--label A,B] [--think 1.0] [--output DIR]

For each database (``sqlite`` is a fresh file in DIR per run), the runs named
by ``--runs``, in this order:

1. ``kill``: **kill -9 trials.** The JSON API of ``textcat.teach`` runs as its
   own process (``python -m spacy_al textcat.teach ... --api``, bow model,
   batch 5, model saved every 0.5 s); ``--trial-annotators`` clients label
   through it while it is killed with SIGKILL ``--trials`` times at random
   moments (a fifth of them while it starts), and started again each time.
2. ``load``: **a team under load.** ``--annotators`` clients label for
   ``--minutes`` through one server that is never killed, each taking
   ``--think`` seconds (on average) per answer.
3. ``servers``: **two servers on one database.** Two server processes (the same
   command, overlap 1) serve one dataset; ``--annotators`` clients are split
   between them (each talks to one server) and either server is killed with
   SIGKILL ``--server-kills`` times at random moments, then started again with
   the same command.
4. ``train``: **kill -9 of train.** ``python -m spacy_al train OUT --textcat
   DATASET`` on the answers of the run before it (the two servers' when they
   ran) is killed ``--train-kills`` times at random moments, half of them
   aimed at the write of the pipeline; after every kill OUT must load with
   ``spacy.load``, and after a complete run the new pipeline too.

The demo corpus (322 texts, the default ``--source``) is labelled through in
well under a minute by 20 annotators: give the two-server run a larger source
(``../shared/corpora/sms_spam/train.jsonl``, 4,460 texts) so that its kills
land while the team is still labelling.

The server runs compare what every client was told with what the database holds,
and print answers acknowledged, answers stored, lost, duplicates, errors and the
p95 latency of an answer (``spacy_al.benchmarks.durability``). Each run records
the load average before and after it. Writes DIR/results.json.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import srsly
import typer
from wasabi import msg

from spacy_al.benchmarks.durability import TrialReport, run_trials
from spacy_al.benchmarks.train_kills import TrainKillReport, run_train_kills
from spacy_al.corpus import Source, gold_labels
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.errors import Errors
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


class _LoadWatch:
    """The 1-minute load average, sampled every ``every`` seconds during a run
    (what else the machine was doing bears on every figure)."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while True:
            self.samples.append(round(os.getloadavg()[0], 2))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> _LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def during(self) -> list[float]:
        """[lowest, highest] 1-minute load average seen."""
        return [min(self.samples), max(self.samples)] if self.samples else []


RUNS = {"kill": "kill -9", "load": "load", "servers": "2 servers kill -9"}
TRAIN = "train kill -9"


def _row(kind: str, report: TrialReport) -> list[str]:
    return [
        report.backend,
        kind,
        str(report.servers),
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
    "servers",
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


def _train_row(report: TrainKillReport) -> list[str]:
    return [
        report.backend,
        str(report.answers),
        str(report.trials),
        str(report.kills),
        str(report.during_write),
        str(report.loadable),
        str(report.not_loadable),
        f"{report.completed_loadable}/{report.completed}",
        f"{report.train_seconds:.1f}",
        f"{report.write_seconds * 1000:.0f}",
    ]


TRAIN_HEADER = [
    "db",
    "answers",
    "trials",
    "kills",
    "during write",
    "loadable after kill",
    "not loadable",
    "complete runs loadable",
    "run s",
    "write ms",
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
    runs: Annotated[
        str,
        typer.Option("--runs", help="Comma-separated runs: kill,load,servers,train"),
    ] = "kill,load,servers,train",
    trials: Annotated[int, typer.Option("--trials", help="kill -9 trials")] = 100,
    trial_annotators: Annotated[
        int, typer.Option("--trial-annotators", help="Clients during the trials")
    ] = 4,
    annotators: Annotated[
        int,
        typer.Option("--annotators", help="Clients in the load and two-server runs"),
    ] = 20,
    minutes: Annotated[
        float, typer.Option("--minutes", help="Length of the load run")
    ] = 5.0,
    server_kills: Annotated[
        int, typer.Option("--server-kills", help="kill -9 of a server of two")
    ] = 20,
    train_kills: Annotated[
        int, typer.Option("--train-kills", help="kill -9 trials of train")
    ] = 10,
    think: Annotated[
        float,
        typer.Option(
            "--think", help="Mean seconds per answer (load and two-server runs)"
        ),
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
    """Kill -9 of servers and of train, and a team under load, per database.

    Servers: one, and either of two on one database. Reports answers
    acknowledged, stored, lost and duplicated, errors, p95 latency, and whether
    the pipeline still loads after every kill of train."""
    wanted = split_commas(runs)
    unknown = [run for run in wanted if run not in (*RUNS, "train")]
    if unknown or not wanted:
        known = ", ".join((*RUNS, "train"))
        msg.fail(Errors.E958.format(run=runs, reason=f"the runs are {known}"), exits=1)
    source = source or corpus_path("support.jsonl")
    labels = split_commas(label) if label else _labels(source)
    if not labels:
        labels = LABELS.split(",")
    output.mkdir(parents=True, exist_ok=True)
    planned = {
        "kill": f"{trials} kill -9 trials ({trial_annotators} clients)",
        "load": f"{annotators} annotators for {minutes:g} min (think {think:g} s)",
        "servers": f"{server_kills} kills of one of two servers ({annotators} "
        f"annotators, think {think:g} s)",
        "train": f"{train_kills} kills of train",
    }
    msg.info(
        f"bench durability on {source}: labels {labels}; "
        f"{'; '.join(planned[run] for run in planned if run in wanted)}; "
        f"load {_load()} on {os.cpu_count()} CPUs"
    )
    results: list[dict] = []
    rows: list[list[str]] = []
    train_rows: list[list[str]] = []
    for url in split_commas(db):
        made: list[tuple[str, str]] = []  # (database, dataset) of each run
        try:
            for run in (run for run in RUNS if run in wanted):
                kind = RUNS[run]
                work = Path(tempfile.mkdtemp(prefix="durability_", dir=output))
                target = f"sqlite:///{work / 'answers.db'}" if url == "sqlite" else url
                dataset = f"durability_{int(time.time())}_{os.getpid()}_{run}"
                made.append((target, dataset))
                load_before = _load()
                started = time.monotonic()
                if run == "kill":
                    options = {"kills": trials, "annotators": trial_annotators}
                    options.update(think=0.3, seconds=None)
                elif run == "load":
                    options = {"kills": 0, "annotators": annotators}
                    options.update(think=think, seconds=minutes * 60)
                else:  # two servers, either killed: a restart every 1-5 s
                    options = {"kills": server_kills, "annotators": annotators}
                    options.update(think=think, seconds=None, servers=2)
                    options.update(uptime=(1.0, 5.0))
                with _LoadWatch() as watch:
                    report = run_trials(
                        db=target,
                        source=source,
                        labels=labels,
                        workdir=work,
                        dataset=dataset,
                        seed=seed,
                        progress=(lambda line: msg.text(f"  {line}"))
                        if options["kills"]
                        else None,
                        **options,
                    )
                record = {
                    **report.as_dict(),
                    "run": kind,
                    "load_before": load_before,
                    "load_during": watch.during(),
                    "load_after": _load(),
                    "wall_seconds": round(time.monotonic() - started, 1),
                }
                results.append(record)
                srsly.write_json(output / "results.json", results)  # after each run
                rows.append(_row(kind, report))
                verdict = "ok" if report.ok else "PROBLEM"
                msg.text(
                    f"{report.backend} {kind}: {verdict}; load before {load_before}, "
                    f"during {watch.during()}, after {record['load_after']}"
                )
                for sample in report.error_samples:
                    msg.warn(sample)
            if "train" in wanted:
                if not made:
                    reason = "it trains on the answers of a run before it"
                    msg.fail(Errors.E958.format(run="train", reason=reason), exits=1)
                target, dataset = made[-1]
                load_before = _load()
                started = time.monotonic()
                work = Path(tempfile.mkdtemp(prefix="durability_train_", dir=output))
                with _LoadWatch() as watch:
                    train_report = run_train_kills(
                        db=target,
                        dataset=dataset,
                        workdir=work,
                        trials=train_kills,
                        seed=seed,
                        progress=lambda line: msg.text(f"  {line}"),
                    )
                results.append(
                    {
                        **train_report.as_dict(),
                        "run": TRAIN,
                        "load_before": load_before,
                        "load_during": watch.during(),
                        "load_after": _load(),
                        "wall_seconds": round(time.monotonic() - started, 1),
                    }
                )
                srsly.write_json(output / "results.json", results)
                train_rows.append(_train_row(train_report))
                verdict = "ok" if train_report.ok else "PROBLEM"
                msg.text(
                    f"{train_report.backend} {TRAIN}: {verdict}; load before "
                    f"{load_before}, during {watch.during()}, after {_load()}"
                )
                for sample in train_report.not_loadable_samples:
                    msg.warn(sample)
        finally:
            if url != "sqlite":  # the runs' own datasets (their servers are gone)
                with Store(url) as store:
                    for _, dataset in made:
                        if store.has_dataset(dataset):
                            store.drop_dataset(dataset, force=True)
    srsly.write_json(output / "results.json", results)
    if rows:
        msg.table(rows, header=HEADER, divider=True)
    if train_rows:
        msg.table(train_rows, header=TRAIN_HEADER, divider=True)
    msg.good(f"Wrote {output / 'results.json'}")
