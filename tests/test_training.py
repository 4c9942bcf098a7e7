"""train's logic from Python, saving that never destroys the previous pipeline
(issue #11 fault 6), and stored answers that can't be used (fault 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes
from spacy_al.export import load_ner_targets
from spacy_al.store import Store
from spacy_al.training import save_pipeline, train_pipeline

SPORTS = ["Goal in the last minute", "The match ended in a draw", "A new coach"]
OTHER = ["Parliament votes today", "Taxes rise again", "The minister resigns"]
GOOD = {
    "text": "Alice met Bob in Paris.",
    "spans": [{"start": 0, "end": 5, "label": "PERSON"}],
    "_view_id": "ner_manual",
    "answer": "accept",
}
CUTS_A_WORD = {
    "text": "Carol visited Berlin.",
    "spans": [{"start": 0, "end": 3, "label": "PERSON"}],
    "_view_id": "ner_manual",
    "answer": "accept",
}


def _textcat_store(path: Path) -> Store:
    store = Store(path)
    answers = [{"text": t, "label": "SPORTS", "answer": "accept"} for t in SPORTS]
    answers += [{"text": t, "label": "SPORTS", "answer": "reject"} for t in OTHER]
    choices = [
        {"text": t, "accept": [label], "answer": "accept", "options": []}
        for texts, label in ((SPORTS, "SPORTS"), (OTHER, "POLITICS"))
        for t in texts
    ]
    store.create_dataset("news", meta={"labels": ["SPORTS", "POLITICS"]})
    store.add_answers("news", answers + choices, annotator="al")
    return store


def test_training_train_pipeline_is_callable_from_python(tmp_path: Path) -> None:
    epochs: list[int] = []
    with _textcat_store(tmp_path / "a.db") as store:
        result = train_pipeline(
            store,
            textcat=["news"],
            eval_split=0.5,
            max_epochs=3,
            on_epoch=lambda epoch, loss, score: epochs.append(epoch),
        )
    (run,) = result.runs
    assert run.component == "textcat" and run.n_eval > 0
    assert 0.0 <= run.best_score <= 1.0 and epochs[0] == 0
    save_pipeline(result.nlp, tmp_path / "model")
    nlp = spacy.load(tmp_path / "model")
    assert set(nlp("Goal!").cats) == {"SPORTS", "POLITICS"}


def test_training_train_pipeline_needs_datasets(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store, pytest.raises(ValueError, match="E967"):
        train_pipeline(store)


def test_training_unusable_answers_are_named_and_left_out(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        store.add_answers("ents", [GOOD, CUTS_A_WORD], annotator="al")
        bad_id = store.get_answers("ents")[1]["_id"]
        loaded = load_ner_targets(store, ["ents"], nlp=spacy.blank("en"))
    assert [t.text for t in loaded.targets] == [GOOD["text"]]
    (skipped,) = loaded.skipped
    assert (skipped.dataset, skipped.answer_id) == ("ents", bad_id)
    assert "E510" in skipped.error
    notes = " ".join(text for _, text in loaded.notes(["ents"]))
    assert (
        "Left out 1 answer" in notes and f"Answer {bad_id} of dataset 'ents'" in notes
    )


def test_training_data_to_spacy_goes_on_without_an_unusable_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store("a.db") as store:
        store.add_answers("ents", [GOOD, CUTS_A_WORD], annotator="al")
        store.add_answers(
            "ents", [{**GOOD, "text": GOOD["text"] + " "}], annotator="al"
        )
    load_builtin_recipes()
    result = CliRunner().invoke(
        build_app(),
        [
            "data-to-spacy",
            "corpus",
            "--ner",
            "ents",
            "--db",
            "a.db",
            "--eval-split",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Left out 1 answer(s) that can't be used" in output
    assert "Answer 2 of dataset 'ents'" in output
    assert (tmp_path / "corpus" / "train.spacy").exists()


# --- saving -------------------------------------------------------------------------


def _pipeline(label: str):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_multilabel").add_label(label)
    nlp.initialize()
    return nlp


def test_training_failed_save_keeps_the_previous_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "model"
    save_pipeline(_pipeline("OLD"), output)
    new = _pipeline("NEW")
    real = type(new).to_disk

    def half_written(self, path, **kwargs):  # writes, then the disk "fills up"
        real(self, path, **kwargs)
        (Path(path) / "config.cfg").write_text("[nlp")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(new), "to_disk", half_written)
    with pytest.raises(ValueError, match="E966"):
        save_pipeline(new, output)
    assert spacy.load(output).get_pipe("textcat_multilabel").labels == ("OLD",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_training_save_refuses_to_replace_a_folder_that_isnt_a_pipeline(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="E973"):
        save_pipeline(_pipeline("A"), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import spacy
    from spacy.language import Language
    from spacy_al.training import save_pipeline

    real = Language.to_disk

    def slow(self, path, **kwargs):
        real(self, path, **kwargs)
        (Path(path) / "config.cfg").write_text("[nlp")  # half written
        print("writing", flush=True)
        time.sleep(60)

    Language.to_disk = slow
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_multilabel").add_label("NEW")
    nlp.initialize()
    save_pipeline(nlp, sys.argv[1])
    """
)


def test_training_kill_during_save_leaves_the_previous_pipeline(
    tmp_path: Path,
) -> None:
    output = tmp_path / "model"
    save_pipeline(_pipeline("OLD"), output)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(output)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert spacy.load(output).get_pipe("textcat_multilabel").labels == ("OLD",)
    # The next save tidies what the killed one left beside it.
    save_pipeline(_pipeline("NEXT"), output)
    assert spacy.load(output).get_pipe("textcat_multilabel").labels == ("NEXT",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_training_save_restores_a_pipeline_moved_aside_by_a_killed_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "model"
    save_pipeline(_pipeline("OLD"), output)
    # Killed between its two renames: the previous pipeline is beside OUTPUT.
    os.rename(output, tmp_path / ".model.old-999999999")
    new = _pipeline("NEW")

    def fails(self, path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(new), "to_disk", fails)
    with pytest.raises(ValueError, match="E966"):
        save_pipeline(new, output)
    assert spacy.load(output).get_pipe("textcat_multilabel").labels == ("OLD",)
