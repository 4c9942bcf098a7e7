"""Registries that user packages can extend without forking spacy_al.

Names are namespaced and versioned, as in thinc: ``spacy_al.margin.v1``. A change
in behaviour gets a new version, never an edit. Entry points in the groups
``spacy_al_strategies`` and ``spacy_al_recipes`` are loaded on lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import catalogue

strategies = catalogue.create("spacy_al", "strategies", entry_points=True)
recipes = catalogue.create("spacy_al", "recipes", entry_points=True)

F = TypeVar("F", bound=Callable[..., Any])


def recipe(name: str) -> Callable[[F], F]:
    """Register a recipe under ``name`` (``task.verb``, e.g. ``textcat.teach``).

    The function's parameters are declared with typer's ``Annotated`` syntax, so the
    CLI can build a command from it; its docstring's first line is its help line.
    A recipe that returns a components dict (with a ``view_id``) is interactive: the
    CLI starts the labelling app with it. Any other recipe does its work and returns
    ``None``.
    """

    def register(func: F) -> F:
        recipes.register(name, func=func)
        return func

    return register
