"""bench ui: a labelling server and Chromium, keyboard answers timed in the page.

Needs /usr/bin/chromium and the playwright package, as tests/test_browser.py
does; skipped when either is missing (the option check runs without them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import srsly
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.store import Store

CHROMIUM = Path("/usr/bin/chromium")
runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


def test_bench_ui_names_the_views_it_knows(app, tmp_path):
    result = runner.invoke(
        app, ["bench.ui", "--views", "ner.nope", "--output", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "E1300" in result.output and "ner.manual" in result.output


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
@pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None, reason="playwright not installed"
)
def test_bench_ui_times_keyboard_answers_in_ner_manual(app, tmp_path):
    """Three ner.manual answers by keyboard (→ Shift+→ Enter marks the first two
    words, then A): each one stored as typed, each timed from the key press to
    the next text, with the server's part inside it, and the screenshots."""
    args = ["bench.ui", "--views", "ner.manual", "--answers", "3", "--think", "0.1"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [row] = srsly.read_json(tmp_path / "results.json")
    assert row["view"] == "ner.manual" and row["timeouts"] == 0
    assert len(row["next_ms"]) == len(row["server_ms"]) == 3
    for next_ms, server_ms in zip(row["next_ms"], row["server_ms"], strict=True):
        assert 0 < server_ms < next_ms < 30_000
    db = row["command"][row["command"].index("--db") + 1]
    with Store(db) as store:
        stored = store.get_answers("ui")
    assert len(stored) == 3
    for eg in stored:
        [span] = eg["spans"]
        words = eg["text"][span["start"] : span["end"]].split()
        assert eg["answer"] == "accept" and span["label"] == "DELIVERY"
        assert words == eg["text"].split()[:2]
    for name in ("ner.manual_first.png", "ner.manual.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
