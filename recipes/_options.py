"""The command-line arguments and options the recipes share, declared once.

Each is an ``Annotated`` alias: typer reads the flag, help text and env var from
the annotation, and the recipe gives the default, as in::

    def teach(dataset: Dataset, source: SourceArg, db: Db = DEFAULT_DB) -> dict: ...

An option that means something else in another recipe (``--annotators`` in bench
speed is a number of threads) keeps its own declaration there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from spacy_al.models import ARCHITECTURES
from spacy_al.store import DB_ENV_VAR, DEFAULT_DB

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


# --- the stopping signal (stabilizing predictions, spacy_al.stopping) -----------
StopWindow = Annotated[
    int, typer.Option("--stop-window", help="Stopping signal: kappas averaged")
]
StopThreshold = Annotated[
    float, typer.Option("--stop-threshold", help="Stopping signal: stop at mean kappa")
]
StopSetSize = Annotated[
    int, typer.Option("--stop-set-size", help="Stopping signal: pool examples")
]


def session_settings(
    *,
    host: str,
    port: int,
    annotators: str | None,
    overlap: int,
    **extra: Any,
) -> dict[str, Any]:
    """An interactive recipe's serving settings, for its components' config
    (read by the server and ``Feed.from_components``)."""
    return {
        "host": host,
        "port": port,
        "annotators": annotators,
        "overlap": overlap,
        **extra,
    }


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
