"""The small corpus shipped with spacy_al: customer-support messages.

``corpora/support.jsonl`` (the pool, 322 messages) and ``corpora/support_eval.jsonl``
(80 held-out messages) are written for this project and installed as package data
of ``spacy_al.corpora``. The ``demo`` recipe labels them, ``bench durability``
labels them by default, and the tests use them: all three find them here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from spacy_al.errors import Errors

#: The labels the corpus's texts were written for.
LABELS = "BILLING,SHIPPING,TECHNICAL,ACCOUNT"

_CHECKOUT = Path(__file__).resolve().parent.parent / "corpora"


def corpus_path(name: str) -> str:
    """The path of a file of the bundled corpus (``"support.jsonl"``, ...).

    An installed wheel has it as package data of ``spacy_al.corpora``; a source
    checkout installed in editable mode has it in the repository's ``corpora/``.
    """
    places: list[str] = []
    try:
        path = resources.files("spacy_al.corpora") / name
        places.append(str(path))
        if path.is_file():
            return str(path)
    except ModuleNotFoundError:
        places.append("package spacy_al.corpora (not installed)")
    path = _CHECKOUT / name
    places.append(str(path))
    if path.is_file():
        return str(path)
    raise FileNotFoundError(Errors.E950.format(name=name, places=", ".join(places)))
