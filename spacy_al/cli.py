"""The command line: ``python -m spacy_al RECIPE ...`` or ``spacy-al RECIPE ...``.

Every registered recipe becomes a command. Built-in recipes live in the
``spacy_al.recipes`` package (the repository's ``recipes/`` folder); a user's own
recipe file loads with ``-F FILE`` (as in Prodigy), and installed packages add
recipes through the ``spacy_al_recipes`` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from spacy_al import registry
from spacy_al.errors import Errors


def load_builtin_recipes() -> None:
    """Import every module of the built-in recipes package so they register."""
    import spacy_al.recipes as package

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


def split_recipe_files(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Take ``-F FILE`` pairs out of the arguments; return (files, other args)."""
    files: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-F":
            value = next(args, None)
            if value is None:
                raise SystemExit("-F needs a recipe file: -F path/to/recipe.py")
            files.append(value)
        elif arg.startswith("-F") and len(arg) > 2:
            files.append(arg[2:])
        else:
            rest.append(arg)
    return files, rest


def build_app() -> typer.Typer:
    """A typer app with one command per registered recipe."""
    app = typer.Typer(
        name="spacy-al",
        help="spaCy-native active learning: label less, train spaCy pipelines.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name, func in sorted(registry.recipes.get_all().items()):
        doc = (func.__doc__ or "").strip()
        app.command(name=name, help=doc, short_help=doc.splitlines()[0] if doc else "")(
            _command(name, func)
        )
    return app


def _command(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a recipe; if it returns components (a ``view_id``), serve them in the app."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        result = func(*args, **kwargs)
        if isinstance(result, dict) and "view_id" in result:
            from spacy_al.server import serve_recipe

            raise SystemExit(serve_recipe(name, kwargs, result))

    return run


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    files, rest = split_recipe_files(argv)
    load_builtin_recipes()
    for path in files:
        try:
            load_recipe_file(path)
        except (FileNotFoundError, ImportError) as e:
            raise SystemExit(str(e)) from e
    app = build_app()
    app(args=rest, prog_name="python -m spacy_al")
