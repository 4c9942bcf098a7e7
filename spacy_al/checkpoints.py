"""The checkpoint folder of a dataset, and everything a labelling session keeps in it.

One :class:`Checkpoints` owns one dataset's folder inside the project's models
folder (``NAME.models/`` beside an SQLite file, ``$SPACY_AL_HOME/models/`` for a
database server). Nothing else reads or writes these files::

    MODELS/<slug>-<hash>/
        dataset.json      the exact dataset name (the folder's name is an encoding)
        model/            the in-loop model: model/ (the pipeline) and state.json
        model.version     the last model version served (written after every update)
        tokens.json       the annotators' tokens (readable by the owner only)
        progress.json     the learning curve and the stopping signal's history

The folder's name is a safe encoding of the dataset name: a readable slug plus a
hash of the exact name, so ``../victim``, ``/abs/path``, ``.``, names with
slashes or NUL, very long names and names differing only in case each get a folder
of their own inside the models folder. Nothing outside the models folder is ever
removed or renamed (checked before every removal and rename). The folders of the
earlier layout (``MODELS/NAME`` and its ``NAME.version``, ``NAME.tokens.json``,
``NAME.stopping.json`` siblings) are moved into the new one when a plain name is
opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import spacy
import srsly

from spacy_al.errors import Errors, SpacyALError
from spacy_al.textcat.model import TextcatModel
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.updater import Committee, Updater

#: Characters kept in a folder's readable slug; anything else becomes "_".
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")
SLUG_LENGTH = 40
#: Names the earlier layout used as they were (and that are safe as they are).
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
MODEL = "model"
VERSION = "model.version"
TOKENS = "tokens.json"
PROGRESS = "progress.json"
NAME_FILE = "dataset.json"


class WrongTaskError(SpacyALError, ValueError):
    """A checkpoint holds a model of another task than the one asked for (E543):
    the user must act (another dataset, or delete the checkpoint)."""


def models_dir(db: str, *, home: str | Path | None = None) -> Path:
    """The project's models folder: beside an SQLite file, else under ``home``
    (default ``$SPACY_AL_HOME``, else ``.spacy_al``) as ``HOME/models``."""
    if "://" not in db or db.startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite:///"))
        return path.parent / f"{path.stem}.models"
    home = home if home is not None else os.environ.get("SPACY_AL_HOME", ".spacy_al")
    return Path(home) / "models"


def folder_name(dataset: str) -> str:
    """The folder name of ``dataset``: a readable slug and a hash of the exact name
    (distinct for distinct names, safe on every file system)."""
    digest = hashlib.sha256(dataset.encode("utf-8", "surrogatepass")).hexdigest()
    slug = _SLUG_UNSAFE.sub("_", dataset).strip("_-")[:SLUG_LENGTH] or "dataset"
    return f"{slug}-{digest[:12]}"


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is strictly inside ``root`` (after resolving both)."""
    path, root = path.resolve(), root.resolve()
    return path != root and path.is_relative_to(root)


def _guard(path: Path, root: Path) -> Path:
    if not _inside(path, root):
        raise ValueError(Errors.E920.format(path=path, root=root))
    return path


def _write_json(path: Path, data: Any, *, private: bool = False) -> None:
    """Write ``data`` as JSON atomically (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644
    )
    # json (not srsly's ujson): floats read back exactly as written
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class Checkpoints:
    """The checkpoint folder of one dataset (see the module's docstring).

    ``Checkpoints.for_db(db, dataset)`` is the folder of ``dataset`` in the
    database ``db``; ``Checkpoints(root, dataset)`` the one under the models
    folder ``root``.
    """

    def __init__(self, root: str | Path, dataset: str) -> None:
        self.root = Path(root)
        self.dataset = dataset
        self.folder: Path | None = self.root / folder_name(dataset)
        self.model_path = self.folder / MODEL
        self.tokens_path = self.folder / TOKENS
        self.progress_path = self.folder / PROGRESS

    @classmethod
    def for_db(
        cls, db: str, dataset: str, *, home: str | Path | None = None
    ) -> Checkpoints:
        """The checkpoints of ``dataset`` in database ``db`` (see
        :func:`models_dir` for ``home``); a folder of the earlier layout is
        moved in first."""
        checkpoints = cls(models_dir(db, home=home), dataset)
        checkpoints.migrate()
        return checkpoints

    @classmethod
    def at(cls, path: str | Path) -> Checkpoints:
        """Checkpoints with the model in the folder ``path`` and the other files
        beside it (``PATH.version``, ``PATH.tokens.json``, ``PATH.progress.json``):
        for a folder chosen by the caller, as in tests and benchmarks."""
        path = Path(path)
        self = cls.__new__(cls)
        self.root = path.parent
        self.dataset = path.name
        self.folder = None
        self.model_path = path
        self.tokens_path = path.with_name(path.name + ".tokens.json")
        self.progress_path = path.with_name(path.name + ".progress.json")
        return self

    def __repr__(self) -> str:
        return f"Checkpoints(model_path={str(self.model_path)!r})"

    def _mark_dataset(self) -> None:
        """Record the exact dataset name in the folder (for people and tools)."""
        if self.folder is None:
            return
        path = self.folder / NAME_FILE
        if not path.exists():
            _guard(self.folder, self.root)
            _write_json(path, {"dataset": self.dataset})

    # --- the model ---------------------------------------------------------------

    def save(self, updater: Updater) -> Path:
        """Checkpoint the training model, what it learnt and the version, atomically."""
        self._mark_dataset()
        return save_updater(updater, self.model_path, root=self.root)

    def load(
        self, *, model_class: type = TextcatModel, **kwargs: Any
    ) -> Updater | None:
        """The model of the last checkpoint (see :func:`load_checkpoint`), or None."""
        return load_checkpoint(self.model_path, model_class=model_class, **kwargs)

    def learnt(self) -> dict[str, str] | None:
        """What the checkpointed model had learnt: {input key: target digest},
        or None without a checkpoint (or one that didn't record it)."""
        try:
            state = _read_json(self.model_path / "state.json")
        except (OSError, ValueError):
            return None
        learnt = state.get("learnt") if isinstance(state, dict) else None
        return learnt if isinstance(learnt, dict) else None

    def read_version(self) -> int:
        """The last model version served (0 if none)."""
        return read_version_mark(self.model_path)

    def write_version(self, version: int) -> None:
        """Record that ``version`` was served: a restart never serves an older
        version number than one already shown."""
        self._mark_dataset()
        write_version_mark(self.model_path, version)

    def learn_stored_answers(
        self,
        updater: Updater | Committee,
        targets: Iterable[TextcatTarget],
        *,
        resumed: bool,
    ) -> int:
        """:func:`learn_stored_answers`, saving the model here afterwards."""
        learnt = learn_stored_answers(updater, targets, resumed=resumed)
        if learnt and isinstance(updater, Updater):
            self.save(updater)
        return learnt

    # --- tokens --------------------------------------------------------------------

    def read_tokens(self) -> dict[str, str]:
        """The annotators' saved tokens ({} if none)."""
        path = self.tokens_path
        try:
            saved = _read_json(path) if path.exists() else {}
        except (OSError, ValueError) as e:
            raise ValueError(Errors.E852.format(path=path, err=e)) from e
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(v, str)}

    def write_tokens(self, tokens: Mapping[str, str]) -> None:
        """Save the annotators' tokens (readable by the owner only)."""
        self._mark_dataset()
        try:
            _write_json(self.tokens_path, dict(tokens), private=True)
        except OSError as e:
            raise ValueError(Errors.E852.format(path=self.tokens_path, err=e)) from e

    # --- progress ------------------------------------------------------------------

    def read_progress(self) -> dict[str, Any] | None:
        """The saved learning curve and stopping history (None if none or unreadable)."""
        try:
            state = _read_json(self.progress_path)
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def write_progress(self, state: Mapping[str, Any]) -> None:
        """Save the learning curve and stopping history (atomically)."""
        self._mark_dataset()
        _write_json(self.progress_path, dict(state))

    # --- the earlier layout ------------------------------------------------------

    def migrate(self) -> bool:
        """Move the files of the earlier layout (``MODELS/NAME``, ``NAME.version``,
        ``NAME.tokens.json``, ``NAME.stopping.json``) into this folder; True if
        anything moved. Only plain names had folders of their own there."""
        name = self.dataset
        if self.folder is None or self.folder.exists():
            return False
        if not _PLAIN.match(name) or name in (".", ".."):
            return False
        old = self.root / name
        moves = [
            (old, self.model_path),
            (self.root / f"{name}.old", self.folder / f"{MODEL}.old"),
            (self.root / f"{name}.version", self.folder / VERSION),
            (self.root / f"{name}.tokens.json", self.tokens_path),
        ]
        stopping = self.root / f"{name}.stopping.json"
        found = [(a, b) for a, b in moves if a.exists()] + (
            [(stopping, None)] if stopping.exists() else []
        )
        if not found or (old.exists() and not (old / "state.json").exists()):
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        self._mark_dataset()
        for source, target in found:
            _guard(source, self.root)
            try:
                if target is None:  # the stopping signal becomes the progress file
                    try:
                        self.write_progress({"stopping": _read_json(source)})
                    except ValueError:
                        pass
                    source.unlink()
                else:
                    source.rename(_guard(target, self.root))
            except FileNotFoundError:  # another server, starting too, moved it
                continue
        return True


# --- an updater's folder -----------------------------------------------------------


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
    serves an older version number than one already shown. The mark only goes
    up: servers of one dataset on one SQLite file share the folder, and one that
    learnt less must not lower what the other showed."""
    version = max(int(version), read_version_mark(path))
    _write_json(_version_mark_path(path), {"version": version})


def read_version_mark(path: str | Path) -> int:
    """The version recorded by :func:`write_version_mark` (0 if none)."""
    try:
        data = _read_json(_version_mark_path(path))
        return int(data["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def load_checkpoint(path: str | Path, **kwargs: Any) -> Updater | None:
    """Resume from checkpoint ``path`` (see :func:`load_updater`), or from the one
    before it if it is broken; None, with a warning, when neither can be read
    (the caller starts a new model and learns every stored answer again).

    ``save`` never leaves ``path`` half-written (it renames a finished folder),
    but a crash between its two renames leaves only ``path.old``, and a disk
    fault can break a file: both are handled here. A checkpoint of another task
    raises :class:`WrongTaskError`: the user must act.
    """
    path = Path(path)
    old = path.with_name(path.name + ".old")
    tried = [p for p in (path, old) if p.exists()]
    for i, candidate in enumerate(tried):
        try:
            updater = load_updater(candidate, **kwargs)
        except WrongTaskError:
            raise
        except Exception as e:  # a truncated or garbled file of any kind
            error: Exception = e
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
    checkpoint: str | Path | Checkpoints | None = None,
) -> int:
    """Bring the model up to date with the answers stored so far; return how many
    targets it learnt now.

    A new model (``resumed=False``) is trained on all of them. A model resumed
    from a checkpoint remembers those the checkpoint had learnt (for replay) and
    learns the rest now, in one update: the answers stored after the checkpoint
    was written (up to ``checkpoint_seconds`` of them, or more after a crash).
    Then the checkpoint is saved again (``checkpoint``: a :class:`Checkpoints` or
    an updater folder), so the next start needn't repeat this. A committee is
    never resumed (it isn't saved).
    """
    targets = list(targets)
    if not targets:
        return 0
    if not resumed:
        updater.retrain(targets)
        learnt = len(targets)
    elif updater.learnt is None:
        # A checkpoint that didn't record what it learnt: replay only, as before.
        updater.add_targets(targets)
        return 0
    else:
        known = updater.learnt or {}
        new = [t for t in targets if known.get(t.input_key) != target_digest(t)]
        updater.add_targets(t for t in targets if t not in new)
        if not new:
            return 0
        updater.update(new)
        learnt = len(new)
    if isinstance(checkpoint, Checkpoints) and isinstance(updater, Updater):
        checkpoint.save(updater)
    elif checkpoint is not None and isinstance(updater, Updater):
        save_updater(updater, checkpoint)
    return learnt


def save_updater(
    updater: Updater, path: str | Path, *, root: str | Path | None = None
) -> Path:
    """Checkpoint the training model and the version to the folder ``path``,
    atomically (a finished ``PATH.tmp`` is renamed over it). Only folders inside
    ``root`` (default: ``path``'s parent) are ever removed or renamed."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    tmp = _guard(path.with_name(path.name + ".tmp"), root)
    old = _guard(path.with_name(path.name + ".old"), root)
    _guard(path, root)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model = updater.model
    model.nlp.to_disk(tmp / "model")
    srsly.write_json(
        tmp / "state.json",
        {
            "version": updater.version,
            "task": model.task,
            "component": model.component,
            "labels": list(model.labels),
            "n_targets": updater.n_targets,
            # What this model has learnt: each input's target, fingerprinted,
            # so a restart learns only the answers stored after this save.
            "learnt": {
                str(key): target_digest(target)
                for key, target in list(updater._targets.items())
            },
            **model.checkpoint_state(),
        },
    )
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_updater(
    path: str | Path, *, model_class: type = TextcatModel, **kwargs: Any
) -> Updater:
    """Resume from a checkpoint written by :func:`save_updater`; the version continues.

    ``model_class`` is the model type to rebuild (``TextcatModel`` by default,
    or e.g. ``spacy_al.ner.model.NERModel``); it must match what was saved, else
    :class:`WrongTaskError`. Its ``from_checkpoint(nlp, state)`` gets the saved
    state (e.g. the NER scoring beam width).
    """
    path = Path(path)
    state_path = path / "state.json"
    if not state_path.exists():
        raise ValueError(Errors.E308.format(path=path))
    state = srsly.read_json(state_path)
    saved = state.get("task", "textcat")
    if saved != model_class.task:
        raise WrongTaskError(
            Errors.E543.format(path=path, saved=saved, wanted=model_class.task)
        )
    nlp = spacy.load(path / "model")
    model = model_class.from_checkpoint(nlp, state)
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
