import subprocess
import sys

import pytest

from spacy_al.cli import split_recipe_files

USER_RECIPE = '''
from typing import Annotated
import typer
from spacy_al.registry import recipe

@recipe("count-lines")
def count_lines(path: Annotated[str, typer.Argument(help="A file")]) -> None:
    """Count the lines of a file (a user's own recipe)."""
    with open(path) as f:
        print(f"{sum(1 for _ in f)} lines")
'''


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "spacy_al", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_loads_a_users_recipe_file_with_F(tmp_path):
    recipe_file = tmp_path / "my_recipes.py"
    recipe_file.write_text(USER_RECIPE)
    data = tmp_path / "data.txt"
    data.write_text("a\nb\nc\n")
    proc = run("-F", str(recipe_file), "count-lines", str(data))
    assert proc.returncode == 0, proc.stderr
    assert "3 lines" in proc.stdout
    listing = run("-F", str(recipe_file), "--help")
    assert "count-lines" in listing.stdout and "textcat.teach" in listing.stdout


def test_cli_missing_recipe_file_is_a_clear_error(tmp_path):
    proc = run("-F", str(tmp_path / "nope.py"), "--help")
    assert proc.returncode != 0
    assert "E401" in proc.stderr and "nope.py" in proc.stderr


@pytest.mark.parametrize(
    "argv,files,rest",
    [
        (["-F", "a.py", "train", "x"], ["a.py"], ["train", "x"]),
        (["-Fa.py", "stats"], ["a.py"], ["stats"]),
        (["stats", "--db", "x.db"], [], ["stats", "--db", "x.db"]),
    ],
)
def test_cli_split_recipe_files(argv, files, rest):
    assert split_recipe_files(argv) == (files, rest)
