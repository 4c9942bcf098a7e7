"""The command-line arguments and options the recipes share, declared once.

Each is an ``Annotated`` alias: typer reads the flag, help text and env var from
the annotation, and the recipe gives the default, as in::

    def teach(dataset: Dataset, source: SourceArg, db: Db = DEFAULT_DB) -> dict: ...

An option that means something else in another recipe (``--annotators`` in bench
speed is a number of threads) keeps its own declaration there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from wasabi import msg

from spacy_al.errors import Errors
from spacy_al.stopping import (
    DEFAULT_STOP_SET_SIZE,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    StabilizingPredictions,
    sample_stop_set,
)
from spacy_al.store import DB_ENV_VAR, DEFAULT_DB
from spacy_al.textcat.model import ARCHITECTURES

__all__ = ["DEFAULT_DB"]


def split_commas(value: str | None) -> list[str]:
    """A comma-separated option's items: ``"A, B,,C"`` → ``["A", "B", "C"]``."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


# --- what to label, and where the answers go ------------------------------------
Dataset = Annotated[str, typer.Argument(help="Dataset to save answers to")]
SourceArg = Annotated[
    Path, typer.Argument(help="Texts to label: JSONL, CSV, TXT or .spacy (DocBin)")
]
Db = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=DB_ENV_VAR,
        help="Answer database: an SQLite file or an SQLAlchemy URL "
        f"(default: ${DB_ENV_VAR}, else {DEFAULT_DB})",
    ),
]
SkipInvalid = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Skip malformed source lines (and count them)"),
]

# --- the model ------------------------------------------------------------------
Base = Annotated[
    str,
    typer.Option("--base", help="blank:LANG, or an installed pipeline's name or path"),
]
Arch = Annotated[
    str, typer.Option("--arch", help=f"Architecture: {', '.join(ARCHITECTURES)}")
]
Multilabel = Annotated[
    bool, typer.Option("--multilabel", help="Labels are not mutually exclusive")
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", help="Answers per model update")
]
Eval = Annotated[
    Path | None,
    typer.Option("--eval", help="Labelled JSONL for the live learning curve"),
]

# --- the labelling server -------------------------------------------------------
Host = Annotated[str, typer.Option("--host", help="Address the app listens on")]
Port = Annotated[int, typer.Option("--port", help="Port the app listens on")]
Annotators = Annotated[
    str | None,
    typer.Option("--annotators", help="Comma-separated names allowed to label"),
]
Overlap = Annotated[int, typer.Option("--overlap", help="Answers wanted per example")]
Dask = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Score the pool on Dask: a scheduler's address (tcp://HOST:8786) or "
        "local:N (N worker processes here); text classification, JSONL sources",
    ),
]
LearnerMode = Annotated[
    str,
    typer.Option(
        "--learner",
        help="thread: select and learn in this server; process: in a learner "
        "process started beside it; remote: serve only (python -m spacy_al "
        "learner ... runs elsewhere)",
    ),
]


# --- text classification (textcat.teach/correct/manual, and their learner) -----
TextcatLabels = Annotated[
    str, typer.Option("--label", "-l", help="Comma-separated labels")
]
TextcatStrategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="margin, entropy, least_confidence, diverse, balanced, cost, power, "
        "random-start, random, vote_entropy, bald, or STRATEGY:MEASURE",
    ),
]
TextcatPatterns = Annotated[
    Path | None, typer.Option("--patterns", help="JSONL patterns for the cold start")
]


# --- the stopping signal (stabilizing predictions, spacy_al.stopping) -----------
def check_stop_settings(
    *,
    stop_window: Any = DEFAULT_WINDOW,
    stop_threshold: Any = DEFAULT_THRESHOLD,
    stop_set_size: Any = DEFAULT_STOP_SET_SIZE,
) -> dict[str, Any]:
    """The stopping signal's settings, checked as spacy_al.stopping checks them
    (a ValueError E759 naming the flag), as a recipe config's entries."""
    checks = (
        ("--stop-window", stop_window, lambda v: StabilizingPredictions(window=v)),
        (
            "--stop-threshold",
            stop_threshold,
            lambda v: StabilizingPredictions(threshold=v),
        ),
        ("--stop-set-size", stop_set_size, lambda v: sample_stop_set(1, size=v)),
    )
    for flag, value, check in checks:
        try:
            check(value)
        except ValueError as e:
            raise ValueError(Errors.E759.format(flag=flag, err=e)) from e
    return {
        "stop_window": stop_window,
        "stop_threshold": stop_threshold,
        "stop_set_size": stop_set_size,
    }


def _stop_option(key: str) -> Callable[[Any], Any]:
    """Refuse a bad value on the command line, before the recipe runs."""

    def callback(value: Any) -> Any:
        try:
            check_stop_settings(**{key: value})
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
        return value

    return callback


StopWindow = Annotated[
    int,
    typer.Option(
        "--stop-window",
        help="Stopping signal: kappas averaged",
        callback=_stop_option("stop_window"),
    ),
]
StopThreshold = Annotated[
    float,
    typer.Option(
        "--stop-threshold",
        help="Stopping signal: stop at mean kappa",
        callback=_stop_option("stop_threshold"),
    ),
]
StopSetSize = Annotated[
    int,
    typer.Option(
        "--stop-set-size",
        help="Stopping signal: pool examples",
        callback=_stop_option("stop_set_size"),
    ),
]


def session_settings(
    *,
    host: str,
    port: int,
    annotators: str | None,
    overlap: int,
    stop_window: int = DEFAULT_WINDOW,
    stop_threshold: float = DEFAULT_THRESHOLD,
    stop_set_size: int = DEFAULT_STOP_SET_SIZE,
    **extra: Any,
) -> dict[str, Any]:
    """An interactive recipe's serving settings, for its components' config
    (read by the server and ``Feed.from_components``); bad stop settings raise
    ValueError E759 before anything is built."""
    stop = check_stop_settings(
        stop_window=stop_window,
        stop_threshold=stop_threshold,
        stop_set_size=stop_set_size,
    )
    return {
        "host": host,
        "port": port,
        "annotators": annotators,
        "overlap": overlap,
        **stop,
        **extra,
    }


def report(components: dict) -> None:
    """One line on what an interactive recipe is about to serve, and a warning
    for the source's skipped lines."""
    src = components["source"]
    loop = components["loop"]
    msg.info(
        f"{components['dataset']}: {len(loop.pool)} texts from {src['path']}, "
        f"{loop.pool.n_done} already answered, labels {components['labels']} "
        f"({components['view_id']})"
    )
    if src["skipped"]:
        msg.warn(f"Skipped {src['skipped']} malformed line(s) of {src['path']}")


# --- exporting and training from datasets (train, data-to-spacy) ----------------
TextcatSets = Annotated[
    str | None,
    typer.Option("--textcat", help="Comma-separated datasets for textcat"),
]
NerSets = Annotated[
    str | None, typer.Option("--ner", help="Comma-separated datasets for ner")
]
MultilabelOverride = Annotated[
    bool | None,
    typer.Option("--multilabel/--exclusive", help="Override the datasets' setting"),
]
Seed = Annotated[int, typer.Option("--seed")]

# --- replaying gold labels (simulate, bench labels) -----------------------------
SeedSize = Annotated[int, typer.Option("--seed-size")]
Budget = Annotated[
    int, typer.Option("--budget", help="Labels per run, seed set included")
]
Target = Annotated[float, typer.Option("--target", help="Share of the full-data score")]

# --- benchmarks (bench labels, bench speed) --------------------------------------
Corpus = Annotated[
    Path | None,
    typer.Option("--corpus", help="Directory with train.jsonl and test.jsonl"),
]
