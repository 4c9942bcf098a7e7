"""Every message the library raises or warns with, each under a code.

The style is spaCy's: say what happened, show the values, say what to do next.
Codes are grouped by module so that a code tells a reader where to look:

    E0xx corpus (sources, hashing)      E1xx store (database)
    E2xx uncertainty and strategies     E3xx models and updater
    E4xx recipes, loop and simulate     E5xx spans and NER
    E6xx feed and app                   W0xx warnings
"""

from __future__ import annotations


class ErrorsWithCodes(type):
    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):  # python system attributes like __class__
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=ErrorsWithCodes):
    # --- E0xx corpus -----------------------------------------------------
    # (corpus.py adds its messages here)

    # --- E1xx store ------------------------------------------------------
    # (store.py adds its messages here)

    # --- E2xx uncertainty and strategies ---------------------------------
    # (uncertainty.py and strategies.py add their messages here)

    # --- E3xx models and updater -----------------------------------------
    # (models.py adds its messages here)

    # --- E4xx recipes, loop and simulate ---------------------------------
    # (loop.py, simulate.py and recipes add their messages here)
    E401 = "Can't load the recipe file {path}: it doesn't exist or isn't a Python file. Pass -F with the path to a .py file that defines recipes with @spacy_al.registry.recipe."

    # --- E5xx spans and NER ----------------------------------------------
    # (spans.py and ner_scores.py add their messages here)

    # --- E6xx feed and app -----------------------------------------------
    # (feed.py adds its messages here)
    pass


class Warnings(metaclass=ErrorsWithCodes):
    # (W0xx)
    pass


class SpacyALError(Exception):
    """Base class of the few errors a caller is expected to catch."""


class SourceError(SpacyALError, ValueError):
    """A record in a source file is malformed.

    Carries where it is, so that a reader can skip it (``--skip-invalid``) and
    count it, and a person can find and fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = ", ".join(
            part
            for part in (
                f"file {path}" if path is not None else "",
                f"line {line}" if line is not None else "",
                f"field '{field}'" if field is not None else "",
            )
            if part
        )
        super().__init__(f"{message} ({where})" if where else message)
