"""The options the recipes share (recipes/_options.py), and the stopping signal's
flags (--stop-window, --stop-threshold, --stop-set-size) on the way to the feed."""

from __future__ import annotations

import pytest
from spacy_al.recipes import ner, textcat
from spacy_al.recipes.demo import corpus_path
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.serve.feed import Feed

runner = CliRunner()
SUPPORT = corpus_path("support.jsonl")
RECIPES = {
    "textcat.teach": (textcat.teach, "BILLING,SHIPPING"),
    "textcat.correct": (textcat.correct, "BILLING,SHIPPING"),
    "ner.teach": (ner.teach, "PERSON,ORG"),
    "ner.correct": (ner.correct, "PERSON,ORG"),
}


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_options_stop_flags_reach_the_feed(name, tmp_path) -> None:
    func, labels = RECIPES[name]
    components = func(
        dataset="stop_flags",
        source=SUPPORT,
        label=labels,
        db=str(tmp_path / "al.db"),
        stop_window=5,
        stop_threshold=0.9,
        stop_set_size=7,
    )
    assert components["config"]["stop_window"] == 5
    feed = Feed.from_components(components, checkpoint=None, start=False)
    try:
        feed.progress.start_stopping()  # samples the stop set from the pool
        stopping = feed.stats()["stopping"]
        assert (stopping["window"], stopping["threshold"]) == (5, 0.9)
        assert stopping["stop_set_size"] == 7
    finally:
        feed.close()


def test_recipes_options_stop_defaults_are_the_stopping_modules(tmp_path) -> None:
    components = textcat.teach(
        dataset="stop_defaults",
        source=SUPPORT,
        label="BILLING,SHIPPING",
        db=str(tmp_path / "d"),
    )
    feed = Feed.from_components(components, checkpoint=None, start=False)
    try:
        stopping = feed.stats()["stopping"]
        assert (stopping["window"], stopping["threshold"]) == (3, 0.99)
    finally:
        feed.close()


@pytest.mark.parametrize(
    "kwargs,flag",
    [
        ({"stop_window": 0}, "--stop-window"),
        ({"stop_threshold": 1.5}, "--stop-threshold"),
        ({"stop_set_size": 0}, "--stop-set-size"),
    ],
)
@pytest.mark.parametrize("name", ["textcat.teach", "ner.correct"])
def test_recipes_options_bad_stop_value_is_refused_before_anything_starts(
    name, kwargs, flag, tmp_path
) -> None:
    func, labels = RECIPES[name]
    db = tmp_path / "al.db"
    with pytest.raises(ValueError, match="E759") as e:
        func(dataset="x", source=SUPPORT, label=labels, db=str(db), **kwargs)
    assert flag in str(e.value)
    assert not db.exists()  # refused before the store was opened


@pytest.mark.parametrize(
    "args",
    [
        ["textcat.correct", "x", SUPPORT, "-l", "A", "--stop-threshold", "2"],
        ["ner.teach", "x", SUPPORT, "-l", "ORG", "--stop-window", "0"],
        ["simulate", "textcat", SUPPORT, "--eval", SUPPORT, "--stop-set-size", "0"],
    ],
)
def test_recipes_options_cli_refuses_bad_stop_value(app, args, tmp_path) -> None:
    db, out = tmp_path / "al.db", tmp_path / "out"
    result = runner.invoke(
        app,
        [*args, "--output", str(out)] if args[0] == "simulate" else args,
        env={"SPACY_AL_DB": str(db)},
    )
    assert result.exit_code == 2  # a usage error: nothing ran
    assert "E759" in result.output
    assert not db.exists() and not out.exists()
