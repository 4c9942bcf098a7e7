"""The command line: ``python -m spacy_al RECIPE ...`` or ``spacy-al RECIPE ...``.

Every registered recipe becomes a command. Built-in recipes live in the
``spacy_al.recipes`` package (the repository's ``recipes/`` folder); a user's own
recipe file loads with ``-F FILE`` (as in Prodigy), and installed packages add
recipes through the ``spacy_al_recipes`` entry-point group.

An interactive recipe's components are served here, in this process: in the
labelling app (Streamlit's server runs in this process) or, with ``--api``, as
a JSON API. Every expected error of every command (a message of
``spacy_al.errors``, with its code) is printed as one line, and the command
exits with status 1: no traceback. An error without a code is a bug, and keeps
its traceback.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from wasabi import msg

from spacy_al import registry
from spacy_al.errors import SpacyALError
from spacy_al.registry import load_builtin_recipes, load_recipe_file

__all__ = ["load_builtin_recipes", "load_recipe_file", "main"]

#: Messages of spacy_al.errors start with their code: "[E123] ...".
_CODED = re.compile(r"\[[EW]\d{3,4}\]")
#: The errors a command may end with: a person can act on their message.
EXPECTED = (SpacyALError, ValueError, OSError, ImportError, KeyError)


def expected_error(error: BaseException) -> bool:
    """Whether ``error`` is one a person can act on (a spacy_al error, or one
    raised with a coded message of ``spacy_al.errors``), not a bug."""
    if isinstance(error, SpacyALError):
        return True
    return isinstance(error, EXPECTED) and bool(_CODED.search(str(error)))


def fail(text: str) -> None:
    """Print an error's message to stderr, as one clean line."""
    print(f"\u2718 {text}", file=sys.stderr, flush=True)


def report(kind: str, text: str) -> None:
    """Print a line for the person at the terminal (the launcher's reporter)."""
    if kind == "fail":
        fail(text)
        return
    printers = {"good": msg.good, "info": msg.info, "warn": msg.warn}
    printers.get(kind, msg.text)(text)
    sys.stdout.flush()


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
    app (or as a JSON API with ``api``). An expected error ends the command
    with its message and status 1."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            result = func(*args, **kwargs)
            if isinstance(result, dict) and "view_id" in result:
                raise SystemExit(serve(name, result, api=api))
        except EXPECTED as e:
            if not expected_error(e):
                raise
            fail(str(e))
            raise SystemExit(1) from None

    return run


def serve(name: str, components: dict[str, Any], *, api: bool = False) -> int:
    """Serve an interactive recipe's components in this process until stopped."""
    from spacy_al.serve.launcher import serve_api, serve_app

    if api:
        return serve_api(name, components, report=report)
    from spacy_al.recipes._streamlit import run_server

    return serve_app(name, components, run_server=run_server, report=report)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    files, rest = split_recipe_files(argv)
    api, rest = split_api_flag(rest)
    load_builtin_recipes()
    for path in files:
        try:
            load_recipe_file(path)
        except (FileNotFoundError, ImportError) as e:
            fail(str(e))
            raise SystemExit(1) from e
    rest = join_subcommand(rest, registry.recipes.get_all())
    app = build_app(api=api)
    app(args=rest, prog_name="python -m spacy_al")
