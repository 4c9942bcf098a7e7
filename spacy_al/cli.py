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
from collections.abc import Callable, Iterable, Sequence
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


def split_api_flag(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """Take ``--api`` out of the arguments; return (whether it was there, the rest).

    ``--api`` works with every interactive recipe: the recipe's feed is served as
    a JSON API (spacy_al.serve.api) in this process instead of the Streamlit app.
    """
    rest = [arg for arg in argv if arg != "--api"]
    return len(rest) != len(argv), rest


def join_subcommand(argv: Sequence[str], names: Iterable[str]) -> list[str]:
    """``bench durability ...`` → ``bench.durability ...`` when a recipe of that
    name exists (two-word commands of recipes registered with a dot)."""
    argv = list(argv)
    if len(argv) >= 2 and f"{argv[0]}.{argv[1]}" in set(names):
        return [f"{argv[0]}.{argv[1]}", *argv[2:]]
    return argv


def build_app(*, api: bool = False) -> typer.Typer:
    """A typer app with one command per registered recipe (served as a JSON API
    instead of the app with ``api``)."""
    app = typer.Typer(
        name="spacy-al",
        help="spaCy-native active learning: label less, train spaCy pipelines. "
        "Add --api to an interactive recipe to serve a JSON API instead of the app.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name, func in sorted(registry.recipes.get_all().items()):
        doc = (func.__doc__ or "").strip()
        app.command(name=name, help=doc, short_help=doc.splitlines()[0] if doc else "")(
            _command(name, func, api=api)
        )
    return app


def _command(
    name: str, func: Callable[..., Any], *, api: bool = False
) -> Callable[..., Any]:
    """Run a recipe; if it returns components (a ``view_id``), serve them in the
    app (or as a JSON API with ``api``)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        result = func(*args, **kwargs)
        if isinstance(result, dict) and "view_id" in result:
            from spacy_al.serve.launcher import serve_api, serve_recipe

            if api:
                raise SystemExit(serve_api(name, result))
            raise SystemExit(serve_recipe(name, kwargs, result))

    return run


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    files, rest = split_recipe_files(argv)
    api, rest = split_api_flag(rest)
    load_builtin_recipes()
    for path in files:
        try:
            load_recipe_file(path)
        except (FileNotFoundError, ImportError) as e:
            raise SystemExit(str(e)) from e
    rest = join_subcommand(rest, registry.recipes.get_all())
    app = build_app(api=api)
    app(args=rest, prog_name="python -m spacy_al")
