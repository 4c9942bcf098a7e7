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


# --- expected errors: one clean message, status 1 ------------------------------


def _bad_source(tmp_path, kind: str) -> str:
    path = tmp_path / f"{kind}.jsonl"
    if kind == "utf8":
        path.write_bytes(b'{"text": "caf\xe9"}\n')
    elif kind == "line":
        path.write_text('{"text": "fine"}\n{"text": 3}\n')
    elif kind == "folder":
        path.mkdir()
    elif kind == "docbin":
        path = tmp_path / "corrupt.spacy"
        path.write_bytes(b"not a DocBin")
    return str(path)  # "missing": never written


@pytest.mark.parametrize("kind", ["utf8", "line", "folder", "docbin", "missing"])
@pytest.mark.parametrize("recipe", ["textcat.teach", "ner.manual"])
def test_cli_bad_source_is_one_message_and_status_1(tmp_path, kind, recipe):
    db = str(tmp_path / "answers.db")
    source = _bad_source(tmp_path, kind)
    proc = run(recipe, "ds", source, "--label", "A,B", "--db", db, "--port", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "[E0" in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "answers.models").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["train", "OUT", "--textcat", "nope"],
        ["data-to-spacy", "OUT", "--textcat", "nope"],
    ],
)
def test_cli_unknown_dataset_is_one_message_and_status_1(tmp_path, command):
    db = str(tmp_path / "answers.db")
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    proc = run(*args, "--db", db)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "nope" in out and "[E" in out


# --- the app runs in the command's own process -----------------------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_cli_serves_the_app_in_its_own_process_and_frees_the_port_on_ctrl_c(
    tmp_path,
):
    import signal
    import socket
    import time
    import urllib.request

    from spacy_al.demo_corpus import LABELS, corpus_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = str(tmp_path / "answers.db")
    log = tmp_path / "out.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "spacy_al", "textcat.teach", "ds"]
        + [corpus_path("support.jsonl"), "--label", LABELS, "--db", db]
        + ["--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "Ctrl+C" not in log.read_text():
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        health = f"http://127.0.0.1:{port}/_stcore/health"
        with urllib.request.urlopen(health, timeout=30) as response:
            assert response.status == 200
        out = log.read_text()
        assert _children(process.pid) == [], out  # no Streamlit child to outlive it
        assert f"http://127.0.0.1:{port}/" in out and "?session=NAME" in out, out
        assert "YOUR_NAME" not in out and f"{port}/?session=" not in out
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with socket.socket() as sock:  # the same command can start again at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        sock.bind(("127.0.0.1", port))
        sock.listen()
