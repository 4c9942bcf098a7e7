"""The checkpoint folder: safe folder names, nothing removed outside the models
folder, the earlier layout still read, and a wrong task refused by its own type."""

from __future__ import annotations

import json
import os

import pytest

from spacy_al.checkpoints import (
    Checkpoints,
    WrongTaskError,
    folder_name,
    models_dir,
    save_updater,
    write_version_mark,
)
from spacy_al.ner.model import NERModel
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Updater

ODD_NAMES = [
    "../victim",
    "/abs/path",
    ".",
    "..",
    "a/b",
    "a\\b",
    "nul\x00byte",
    "x" * 5000,
    "News",
    "news",
    "",
    "日本語",
    "con",
]


def _updater(version: int = 0) -> Updater:
    model = TextcatModel(build_textcat(["A", "B"], exclusive=True))
    return Updater(model, version=version)


def _tree(path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else b""
        for p in sorted(path.rglob("*"))
    }


def test_checkpoints_odd_names_get_distinct_folders_inside_the_models_folder(
    tmp_path,
):
    root = tmp_path / "answers.models"
    folders = [Checkpoints(root, name).folder for name in ODD_NAMES]
    assert len(set(folders)) == len(ODD_NAMES)
    assert len({f.name.lower() for f in folders}) == len(ODD_NAMES)
    for folder in folders:
        assert folder.parent == root
        assert len(folder.name.encode()) <= 64
        assert folder.name not in (".", "..") and "/" not in folder.name
        assert "\x00" not in folder.name and "\\" not in folder.name


def test_checkpoints_folder_name_is_readable_and_stable():
    assert folder_name("news").startswith("news-")
    assert folder_name("news") == folder_name("news")


@pytest.mark.parametrize("name", ["../victim", "VICTIM_ABS"])
def test_checkpoints_a_path_like_dataset_name_never_touches_the_folder_it_names(
    tmp_path, name
):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (tmp_path / "victim.old").mkdir()  # what the old save removed, beside it
    before = _tree(tmp_path / "victim"), _tree(tmp_path / "victim.old")
    if name == "VICTIM_ABS":
        name = str(victim)
    db = str(tmp_path / "answers.db")  # models in answers.models: ../victim is victim
    checkpoints = Checkpoints.for_db(db, name)
    updater = _updater()
    for version in range(3):  # each save renames and removes the previous one
        updater._version = version
        checkpoints.save(updater)
        checkpoints.write_version(version)
        checkpoints.write_tokens({"alice": "t"})
        checkpoints.write_progress({"version": version})
    assert (_tree(tmp_path / "victim"), _tree(tmp_path / "victim.old")) == before
    assert checkpoints.folder.parent == models_dir(db)
    assert checkpoints.load().version == 2


def test_checkpoints_dataset_named_dot_leaves_other_datasets_alone(tmp_path):
    db = str(tmp_path / "answers.db")
    other = Checkpoints.for_db(db, "other")
    other.save(_updater(version=4))
    other.write_tokens({"alice": "secret"})
    before = _tree(models_dir(db) / other.folder.name)
    for name in (".", "..", ""):
        dot = Checkpoints.for_db(db, name)
        dot.save(_updater(version=1))
        dot.save(_updater(version=2))
        dot.write_tokens({"bob": "x"})
    assert _tree(models_dir(db) / other.folder.name) == before
    assert other.read_tokens() == {"alice": "secret"}
    assert other.load().version == 4


def test_checkpoints_refuse_to_remove_outside_their_root(tmp_path):
    outside = tmp_path / "outside"
    (outside.with_name("outside.old")).mkdir()
    with pytest.raises(ValueError, match="E920"):
        save_updater(_updater(), outside, root=tmp_path / "models")
    assert outside.with_name("outside.old").is_dir()


def test_checkpoints_earlier_layout_of_a_plain_name_is_moved_in(tmp_path):
    db = str(tmp_path / "answers.db")
    root = models_dir(db)
    save_updater(_updater(version=3), root / "news")
    write_version_mark(root / "news", 5)
    (root / "news.tokens.json").write_text(json.dumps({"alice": "tok"}))
    stopping = {"version": 5, "stop_set": [1, 2], "points": []}
    (root / "news.stopping.json").write_text(json.dumps(stopping))
    checkpoints = Checkpoints.for_db(db, "news")
    assert checkpoints.load().version == 5  # the last version served goes on
    assert checkpoints.read_version() == 5
    assert checkpoints.read_tokens() == {"alice": "tok"}
    assert checkpoints.read_progress() == {"stopping": stopping}
    assert sorted(p.name for p in root.iterdir()) == [checkpoints.folder.name]
    assert json.loads((checkpoints.folder / "dataset.json").read_text()) == {
        "dataset": "news"
    }


def test_checkpoints_of_another_task_raise_their_own_error(tmp_path):
    checkpoints = Checkpoints(tmp_path / "models", "ds")
    checkpoints.save(_updater())
    with pytest.raises(WrongTaskError, match="E543"):
        checkpoints.load(model_class=NERModel)


def test_checkpoints_tokens_are_private_and_progress_round_trips(tmp_path):
    checkpoints = Checkpoints(tmp_path / "models", "ds")
    assert checkpoints.read_tokens() == {} and checkpoints.read_progress() is None
    checkpoints.write_tokens({"alice": "t1"})
    assert os.stat(checkpoints.tokens_path).st_mode & 0o777 == 0o600
    state = {"version": 3, "curve": [{"answers": 10, "version": 1, "score": 0.5}]}
    checkpoints.write_progress(state)
    assert checkpoints.read_progress() == state
    assert checkpoints.learnt() is None
    checkpoints.save(_updater())
    assert checkpoints.learnt() == {}


def test_checkpoints_models_folder_beside_sqlite_or_under_home(tmp_path):
    assert models_dir(str(tmp_path / "a.db")) == tmp_path / "a.models"
    assert models_dir(f"sqlite:///{tmp_path / 'a.db'}") == tmp_path / "a.models"
    url = "postgresql://u@h/db"
    assert models_dir(url, home=tmp_path) == tmp_path / "models"
    assert Checkpoints.for_db(url, "ds", home=tmp_path).folder.parent == (
        tmp_path / "models"
    )
