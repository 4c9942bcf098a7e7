"""The base pipeline a model starts from: ``blank:LANG`` or any installed pipeline."""

from __future__ import annotations

import spacy
from spacy.language import Language

from spacy_al.errors import Errors


def load_base(base: str) -> Language:
    """``blank:LANG`` or an installed pipeline's package name or path."""
    if base.startswith("blank:"):
        lang = base.split(":", 1)[1]
        try:
            return spacy.blank(lang)
        except Exception as e:  # spaCy raises ImportError or ValueError here
            raise ValueError(Errors.E302.format(base=base, err=e)) from e
    try:
        return spacy.load(base)
    except OSError as e:
        raise ValueError(Errors.E303.format(base=base)) from e
