"""The layout's rules, checked on the source: layers, no import circles, no printing.

A reader relies on these: the ML core (models, scoring, loops, the store) knows
nothing of serving, benchmarks or recipes; serving knows nothing of benchmarks or
recipes; no recipe imports another; no two modules import each other, directly
or through others; the library never imports Streamlit and never prints.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spacy_al"
RECIPES = ROOT / "recipes"

#: Subpackages of spacy_al that sit above the core, highest last.
SERVE = "spacy_al.serve"
BENCHMARKS = "spacy_al.benchmarks"
TOP = ("spacy_al.cli", "spacy_al.__main__", "spacy_al.recipes")


def module_name(path: Path) -> str:
    if path.is_relative_to(RECIPES):
        parts = (
            "spacy_al",
            "recipes",
            *path.relative_to(RECIPES).with_suffix("").parts,
        )
    else:
        parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth except ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # ``from spacy_al import feed`` imports the module spacy_al.feed
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def all_modules() -> dict[str, Path]:
    files = [*PACKAGE.rglob("*.py"), *RECIPES.glob("*.py")]
    return {module_name(p): p for p in files}


MODULES = all_modules()
GRAPH = {
    name: {m for m in imports_of(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def layer(name: str) -> int:
    if name.startswith(TOP) or name == "spacy_al.cli":
        return 3
    if name.startswith(BENCHMARKS):
        return 2
    if name.startswith(SERVE):
        return 1
    return 0


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layout_no_import_from_a_higher_layer(name):
    if name in ("spacy_al", "spacy_al.recipes"):
        return
    higher = sorted(m for m in GRAPH[name] if layer(m) > layer(name))
    assert not higher, f"{name} (layer {layer(name)}) imports {higher}"


def test_layout_no_recipe_imports_another_recipe():
    edges = sorted(
        (name, m)
        for name in MODULES
        if name.startswith("spacy_al.recipes.")
        for m in GRAPH[name]
        if m.startswith("spacy_al.recipes.") and m != "spacy_al.recipes._options"
    )
    assert not edges


def test_layout_no_import_circles():
    # Tarjan's strongly connected components; a component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            # A package's __init__ and its own submodules are not a circle.
            if v.startswith(w + "."):
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            strongconnect(v)
    assert not circles


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if not n.startswith("spacy_al.recipes"))
)
def test_layout_library_never_imports_streamlit_nor_prints(name):
    path = MODULES[name]
    imported = {m.split(".")[0] for m in imports_of(path)}
    assert "streamlit" not in imported
    if (
        name == "spacy_al.cli"
    ):  # the command line is where the library's words are printed
        return
    assert "wasabi" not in imported, f"{name} prints through wasabi"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prints = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert not prints, f"{name} prints on lines {prints}"
