"""Recipes for the answer database: import, export, inspect and drop datasets.

    python -m spacy_al db-in news ./answers.jsonl --answer accept
    python -m spacy_al db-out news ./news_answers.jsonl
    python -m spacy_al stats            # every dataset and its number of answers
    python -m spacy_al stats news       # one dataset in detail (and its agreement)
    python -m spacy_al drop news --yes

Every recipe takes ``--db``: an SQLite file or an SQLAlchemy URL such as
``postgresql+psycopg://user@host/dbname``. Without it, ``$SPACY_AL_DB`` is used, or
else ``spacy_al.db`` in the current directory.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import srsly
import typer
from wasabi import msg

from spacy_al.answers import ANSWERS, AnswerError, check_answer_value, validate_answer
from spacy_al.corpus import Source, write_jsonl
from spacy_al.errors import Errors, SourceError
from spacy_al.pipelines import load_base
from spacy_al.registry import recipe
from spacy_al.spans import check_answer_spans
from spacy_al.store import Store
from spacy_al.team.agreement import agreement_summary, consensus
from spacy_al.team.consensus import review_answers, review_datasets

from ._options import DEFAULT_DB, Db

MAX_REASONS = 5  # skipped records whose reasons db-in prints


@contextmanager
def _exit_on_error() -> Iterator[None]:
    """Print a library error the way the CLI prints errors, and exit with status 1."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise  # click's own exits are RuntimeErrors too
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        msg.fail(str(e), exits=1)


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


@recipe("db-in")
def db_in(
    dataset: Annotated[
        str, typer.Argument(help="Dataset to import into (created if missing)")
    ],
    source: Annotated[
        Path,
        typer.Argument(help="JSONL, CSV, TXT or .spacy file of tasks or answers"),
    ],
    answer: Annotated[
        str,
        typer.Option(
            "--answer",
            help="Answer for records that don't carry one (accept, reject, ignore)",
        ),
    ] = "accept",
    annotator: Annotated[
        str, typer.Option("--annotator", help="Annotator the answers are stored under")
    ] = "db-in",
    loader: Annotated[
        str | None,
        typer.Option("--loader", help="File format, if the suffix doesn't tell it"),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Skip malformed records instead of stopping"
        ),
    ] = False,
    lang: Annotated[
        str,
        typer.Option("--lang", help="Language whose tokens entity spans must fit"),
    ] = "en",
    db: Db = DEFAULT_DB,
) -> None:
    """Import answers from a file into a dataset.

    Records that carry an "answer" keep it; the others get --answer. Everything is
    read and checked before anything is written: a malformed record stops the
    import with its file, line and field, and the database stays as it was (unless
    --skip-invalid is given, which skips such records and counts them). Entity
    spans are checked as export and training will use them: on token boundaries
    (of --lang's tokenizer, or the record's own "tokens") and not overlapping.
    """
    try:
        check_answer_value(answer, field="--answer", fix="Pass one of them.")
    except AnswerError as e:
        msg.fail(str(e), exits=1)
    # 1. Read every record. The Source checks each one and names the file and line
    #    of a bad one. dedupe=False: several answers may share a text.
    tasks: list[dict[str, Any]] = []
    invalid: list[str] = []
    with _exit_on_error():
        nlp = load_base(f"blank:{lang}")  # the tokens entity spans must fit
        stream = Source(source, loader=loader, skip_invalid=skip_invalid, dedupe=False)
        for n, record in enumerate(stream, start=1):
            # 2. Records without an answer get --answer; then check the record as the
            #    store will, so that a bad one is reported before anything is written.
            try:
                task = validate_answer({"answer": answer, **record})
            except AnswerError as e:
                message = Errors.E118.format(n=n, path=source, err=e)
                if not skip_invalid:
                    msg.fail(message, exits=1)
                invalid.append(message)
                continue
            # 3. Entity spans must make the Doc that export and train will build:
            #    a span that cuts a word, or two that overlap, stop the import here.
            try:
                check_answer_spans(nlp, task, path=str(source), line=stream.line)
            except SourceError as e:
                if not skip_invalid:
                    msg.fail(str(e), exits=1)
                invalid.append(str(e))
                continue
            tasks.append(task)
    # 4. Write them all in one transaction: all of them, or none.
    with _exit_on_error(), Store(db) as store:
        ids = store.add_answers(dataset, tasks, annotator=annotator)
    msg.good(
        f"Imported {len(tasks)} answers into dataset '{dataset}' ({len(set(ids))} "
        f"distinct tasks) in {store.url}"
    )
    # 5. Say what was skipped, with the first few reasons.
    n_skipped = stream.n_skipped + len(invalid)
    if n_skipped:
        msg.warn(f"Skipped {n_skipped} malformed records (--skip-invalid), e.g.:")
        for reason in [*stream.skipped_errors, *invalid][:MAX_REASONS]:
            msg.text(f"  {reason}")


@recipe("db-out")
def db_out(
    dataset: Annotated[str, typer.Argument(help="Dataset to export")],
    output: Annotated[
        Path | None,
        typer.Argument(help="JSONL file to write (default: standard output)"),
    ] = None,
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer", help="Only these answers, comma-separated, e.g. accept,reject"
        ),
    ] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Export a dataset's answers as Prodigy-style JSONL.

    One answered task per line, with "answer", "_input_key", "_task_key" (the
    task's identity), "_input_hash", "_task_hash" (Prodigy's),
    "_annotator_id", "_session_id", "_timestamp" and "_model_version".
    """
    answers = [value.strip() for value in answer.split(",")] if answer else None
    with _exit_on_error(), Store(db) as store:
        # Stream the answers in batches: a large dataset is never all in memory.
        tasks = store.iter_answers(dataset, answers=answers)
        if output is None:
            for task in tasks:
                sys.stdout.write(srsly.json_dumps(task) + "\n")
            return
        n = write_jsonl(output, tasks)
    msg.good(f"Exported {n} answers from dataset '{dataset}' to {output}")


@recipe("stats")
def db_stats(
    dataset: Annotated[
        str | None,
        typer.Argument(help="Dataset to describe (default: list all datasets)"),
    ] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Show the datasets and their answers, or one dataset in detail."""
    with _exit_on_error(), Store(db) as store:
        if dataset is None:
            counts = store.dataset_counts()
            if not counts:
                msg.info(f"No datasets yet in {store.url}")
                return
            msg.divider(f"Datasets in {store.url}")
            msg.table(
                list(counts.items()), header=("Dataset", "Answers"), aligns=("l", "r")
            )
            return
        stats = store.stats(dataset)
        team = team_agreement(store, dataset)
    msg.divider(f"Dataset '{dataset}'")
    overview = [
        ("Answers", stats["total"]),
        *[(f"  {value}", n) for value, n in stats["answers"].items()],
        ("Created", _when(stats["created"])),
        ("First answer", _when(stats["first_timestamp"])),
        ("Last answer", _when(stats["last_timestamp"])),
    ]
    msg.table(overview, aligns=("l", "r"))
    if stats["annotators"]:
        msg.table(
            list(stats["annotators"].items()),
            header=("Annotator", "Answers"),
            aligns=("l", "r"),
        )
    if stats["labels"]:
        rows = [
            (label, *(counts[value] for value in ANSWERS))
            for label, counts in stats["labels"].items()
        ]
        msg.table(rows, header=("Label", *ANSWERS), aligns=("l", "r", "r", "r"))
    if stats["choices"]:
        msg.table(
            list(stats["choices"].items()),
            header=("Chosen (accept)", "Answers"),
            aligns=("l", "r"),
        )
    if team is not None:
        _print_agreement(team)


def team_agreement(store: Store, dataset: str) -> dict[str, Any] | None:
    """Agreement figures of a dataset several annotators answered, or None.

    :func:`spacy_al.team.agreement.agreement_summary` (conflicts need the dataset's
    overlap in answers, at least 2), plus ``dataset``, ``overlap``, ``reviewed`` (conflicts a
    reviewer adjudicated) and ``review_datasets``.
    """
    answers = store.get_answers(dataset)
    overlap = int(store.dataset_meta(dataset).get("overlap") or 1)
    min_answers = max(overlap, 2)
    summary = agreement_summary(answers, min_answers=min_answers)
    if not summary["n_shared"]:
        return None
    _, conflicts = consensus(answers, min_answers=min_answers)
    reviewed = {eg["_input_key"] for eg in review_answers(store, dataset)}
    summary["dataset"] = dataset
    summary["overlap"] = overlap
    summary["reviewed"] = len(reviewed & set(conflicts))
    summary["review_datasets"] = review_datasets(store, dataset)
    return summary


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_agreement(team: dict[str, Any]) -> None:
    msg.divider(f"Agreement (overlap {team['overlap']})")
    reviewers = ", ".join(team["review_datasets"])
    rows = [
        ("Examples answered by 2+ annotators", team["n_shared"]),
        ("Agreed (majority)", team["n_agreed"]),
        ("Conflicts (no majority)", team["n_conflicts"]),
        (f"  reviewed{f' in {reviewers}' if reviewers else ''}", team["reviewed"]),
        ("Fleiss' kappa", _figure(team["fleiss_kappa"])),
        ("Krippendorff's alpha", _figure(team["krippendorff_alpha"])),
    ]
    msg.table(rows, aligns=("l", "r"))
    msg.table(
        [
            (name, _figure(found["kappa"]), _figure(found["observed"]), found["n"])
            for name, found in team["annotators"].items()
        ],
        header=("Annotator", "Kappa w/ consensus", "Observed", "Examples"),
        aligns=("l", "r", "r", "r"),
    )
    if team["n_conflicts"] > team["reviewed"]:
        msg.text(
            f"{team['n_conflicts'] - team['reviewed']} conflict(s) aren't learnt until "
            f"reviewed: python -m spacy_al review {team['dataset']}_review --input "
            f"{team['dataset']}"
        )


@recipe("drop")
def db_drop(
    dataset: Annotated[str, typer.Argument(help="Dataset to delete")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Don't ask for confirmation")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Delete it even while a labelling server is using it"
        ),
    ] = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Delete a dataset and all its answers.

    A dataset a labelling server is using (a live lease, or a server seen in the
    last 30 seconds) is kept unless --force is given: deleting it under a server
    loses the answers it goes on collecting.
    """
    with _exit_on_error(), Store(db) as store:
        n = store.count_answers(dataset)
        question = f"Delete dataset '{dataset}' and its {n} answers from {store.url}?"
        if not yes and not typer.confirm(question):
            msg.info(f"Kept dataset '{dataset}'")
            raise typer.Exit(1)
        # Refused (a clean message, exit status 1) while the dataset is in use.
        removed = store.drop_dataset(dataset, force=force)
    msg.good(f"Deleted dataset '{dataset}' and its {removed} answers")
