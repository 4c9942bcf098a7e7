"""Registries that user packages can extend without forking spacy_al.

Names are namespaced and versioned, as in thinc: ``spacy_al.margin.v1``. A change
in behaviour gets a new version, never an edit. Entry points in the groups
``spacy_al_strategies`` and ``spacy_al_recipes`` are loaded on lookup.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import catalogue

from spacy_al.errors import Errors

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


#: The package of the built-in recipes (the repository's ``recipes/`` folder),
#: imported by name as the entry points are: the registry sits below them.
BUILTIN_RECIPES = "spacy_al.recipes"


def load_builtin_recipes() -> None:
    """Import every module of the built-in recipes package so they register."""
    package = importlib.import_module(BUILTIN_RECIPES)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def load_recipe_file(path: str | Path) -> None:
    """Import a user's recipe file (``-F FILE``) so its recipes register."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(Errors.E401.format(path=path))
    spec = importlib.util.spec_from_file_location(f"spacy_al_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(Errors.E401.format(path=path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
