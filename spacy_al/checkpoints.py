"""Checkpoints of the in-loop model: where they live, the version mark, resuming."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

import spacy
import srsly

from spacy_al.errors import Errors
from spacy_al.textcat.model import TextcatModel
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.updater import Committee, Updater


def target_digest(target: object) -> str:
    """A fingerprint of what a target teaches: every field but its ``meta``."""
    fields = {k: v for k, v in dataclasses.asdict(target).items() if k != "meta"}
    data = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(data.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _version_mark_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".version")


def write_version_mark(path: str | Path, version: int) -> None:
    """Record (atomically) that ``version`` was served from checkpoint ``path``'s
    model: cheap enough after every update, so that a restarted server never
    serves an older version number than one already shown."""
    mark = _version_mark_path(path)
    mark.parent.mkdir(parents=True, exist_ok=True)
    tmp = mark.with_name(mark.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": int(version)}), encoding="utf-8")
    os.replace(tmp, mark)


def read_version_mark(path: str | Path) -> int:
    """The version recorded by :func:`write_version_mark` (0 if none)."""
    try:
        data = json.loads(_version_mark_path(path).read_text(encoding="utf-8"))
        return int(data["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def load_checkpoint(path: str | Path, **kwargs) -> Updater | None:
    """Resume from checkpoint ``path`` (see :func:`load_updater`), or from the one
    before it if it is broken; None, with a warning, when neither can be read
    (the caller starts a new model and learns every stored answer again).

    ``save`` never leaves ``path`` half-written (it renames a finished folder),
    but a crash between its two renames leaves only ``path.old``, and a disk
    fault can break a file: both are handled here.
    """
    path = Path(path)
    old = path.with_name(path.name + ".old")
    tried = [p for p in (path, old) if (p / "state.json").exists() or p.exists()]
    for i, candidate in enumerate(tried):
        try:
            updater = load_updater(candidate, **kwargs)
        except ValueError as e:
            if "E543" in str(e):  # a checkpoint of another task: the user must act
                raise
            error: Exception = e
        except Exception as e:  # a truncated or garbled file of any kind
            error = e
        else:
            if i > 0:  # the version served last is recorded beside ``path``
                updater._version = max(updater.version, read_version_mark(path))
            return updater
        warnings.warn(
            Errors.E840.format(path=candidate, err=f"{type(error).__name__}: {error}"),
            stacklevel=2,
        )
    if tried:
        warnings.warn(Errors.E841.format(path=path), stacklevel=2)
    return None


def learn_stored_answers(
    updater: Updater | Committee,
    targets: Iterable[TextcatTarget],
    *,
    resumed: bool,
    checkpoint: str | Path | None = None,
) -> int:
    """Bring the model up to date with the answers stored so far; return how many
    targets it learnt now.

    A new model (``resumed=False``) is trained on all of them. A model resumed
    from a checkpoint remembers those the checkpoint had learnt (for replay) and
    learns the rest now, in one update: the answers stored after the checkpoint
    was written (up to ``checkpoint_seconds`` of them, or more after a crash).
    Then the checkpoint is saved again, so the next start needn't repeat this.
    """
    targets = list(targets)
    if not targets:
        return 0
    if not resumed:
        updater.retrain(targets)
        learnt = len(targets)
    elif getattr(updater, "learnt", None) is None:
        # A checkpoint that didn't record what it learnt: replay only, as before.
        for member in getattr(updater, "members", [updater]):
            member.add_targets(targets)
        return 0
    else:
        known = updater.learnt or {}
        new = [t for t in targets if known.get(t.input_hash) != target_digest(t)]
        updater.add_targets(t for t in targets if t not in new)
        if not new:
            return 0
        updater.update(new)
        learnt = len(new)
    if checkpoint is not None and isinstance(updater, Updater):
        save_updater(updater, checkpoint)
    return learnt


def save_updater(updater: Updater, path: str | Path) -> Path:
    """Checkpoint the training model and the version, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    updater.model.nlp.to_disk(tmp / "model")
    srsly.write_json(
        tmp / "state.json",
        {
            "version": updater.version,
            "task": getattr(updater.model, "task", "textcat"),
            "component": updater.model.component,
            "labels": list(updater.model.labels),
            "n_targets": updater.n_targets,
            # What this model has learnt: each input's target, fingerprinted,
            # so a restart learns only the answers stored after this save.
            "learnt": {
                str(key): target_digest(target)
                for key, target in list(updater._targets.items())
            },
            **getattr(updater.model, "checkpoint_state", dict)(),
        },
    )
    old = path.with_name(path.name + ".old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_updater(
    path: str | Path, *, model_class: type | None = None, **kwargs
) -> Updater:
    """Resume from a checkpoint written by :func:`save_updater`; the version continues.

    ``model_class`` is the model type to rebuild (``TextcatModel`` by default,
    or e.g. ``spacy_al.ner.model.NERModel``); it must match what was saved.
    A class with a ``from_checkpoint(nlp, state)`` constructor gets the saved
    state (e.g. the NER scoring beam width).
    """
    path = Path(path)
    state_path = path / "state.json"
    if not state_path.exists():
        raise ValueError(Errors.E308.format(path=path))
    state = srsly.read_json(state_path)
    model_class = model_class or TextcatModel
    saved = state.get("task", "textcat")
    wanted = getattr(model_class, "task", "textcat")
    if saved != wanted:
        raise ValueError(Errors.E543.format(path=path, saved=saved, wanted=wanted))
    nlp = spacy.load(path / "model")
    if hasattr(model_class, "from_checkpoint"):
        model = model_class.from_checkpoint(nlp, state)
    else:
        model = model_class(nlp, component=state["component"])
    # The version continues from the last one served (see write_version_mark),
    # which may be newer than the checkpoint.
    version = max(int(state["version"]), read_version_mark(path))
    updater = Updater(model, version=version, **kwargs)
    learnt = state.get("learnt")
    updater.learnt = (
        {int(k): str(v) for k, v in learnt.items()}
        if isinstance(learnt, dict)
        else None
    )
    return updater
