"""Text-classification models: build or load a pipeline, train it online, serve it.

Three pieces, one concept (the model in the loop):

* ``build_textcat`` makes a pipeline from ``blank:LANG`` or any installed pipeline
  (name or path) with a ``textcat`` or ``textcat_multilabel`` component;
* ``TextcatModel`` wraps the pipeline: predict probabilities, and update with a
  *masked* loss, so that partial answers ("not SPORTS") train only what they say;
* ``Updater`` owns the training model (one thread trains it), keeps a serving
  snapshot that is swapped under a lock after each update (scoring never waits for
  training), stamps a model version, and checkpoints to disk.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import random
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, Model, Optimizer, set_dropout_rate

from spacy_al import architectures, priority
from spacy_al.errors import Errors
from spacy_al.targets import TextcatTarget

ARCHITECTURES = ("bow", "ensemble")
DEFAULT_LEARN_RATE = {"bow": 0.01, "ensemble": 0.002}


def _bow_config(*, exclusive: bool) -> dict:
    # spaCy's bag-of-words over lower-cased unigrams and bigrams (architectures.py)
    return {
        "@architectures": architectures.BOW,
        "exclusive_classes": exclusive,
        "ngram_size": architectures.DEFAULT_NGRAM_SIZE,
        "attr": architectures.DEFAULT_ATTR,
        "no_output_layer": False,
        "length": architectures.DEFAULT_LENGTH,
    }


def _ensemble_config(*, exclusive: bool) -> dict:
    return {
        "@architectures": "spacy.TextCatEnsemble.v2",
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {
                "@architectures": "spacy.MultiHashEmbed.v2",
                "width": 64,
                "rows": [2000, 2000, 500, 1000, 500],
                "attrs": ["NORM", "LOWER", "PREFIX", "SUFFIX", "SHAPE"],
                "include_static_vectors": False,
            },
            "encode": {
                "@architectures": "spacy.MaxoutWindowEncoder.v2",
                "width": 64,
                "window_size": 1,
                "maxout_pieces": 3,
                "depth": 2,
            },
        },
        "linear_model": _bow_config(exclusive=exclusive),
    }


def architecture_config(architecture: str, *, exclusive: bool) -> dict:
    """The thinc model config for a named architecture (``bow`` or ``ensemble``)."""
    if architecture == "bow":
        return _bow_config(exclusive=exclusive)
    if architecture == "ensemble":
        return _ensemble_config(exclusive=exclusive)
    raise ValueError(
        Errors.E301.format(architecture=architecture, valid=list(ARCHITECTURES))
    )


def load_base(base: str) -> Language:
    """``blank:LANG`` or an installed pipeline's package name or path."""
    if base.startswith("blank:"):
        lang = base.split(":", 1)[1]
        try:
            return spacy.blank(lang)
        except Exception as e:  # spaCy raises ImportError or ValueError here
            raise ValueError(Errors.E302.format(base=base, err=e)) from e
    try:
        return spacy.load(base)
    except OSError as e:
        raise ValueError(Errors.E303.format(base=base)) from e


def build_textcat(
    labels: Sequence[str],
    *,
    exclusive: bool = True,
    base: str = "blank:en",
    architecture: str = "bow",
    component: str | None = None,
) -> Language:
    """A pipeline with an initialized text classifier over ``labels``.

    The classifier is added to the base pipeline under ``component`` (default
    ``textcat`` or ``textcat_multilabel``). If the base already has a component of
    that name, it is used as it is and must know every label.
    """
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise ValueError(Errors.E304)
    if exclusive and len(labels) < 2:
        raise ValueError(Errors.E305.format(labels=labels))
    factory = "textcat" if exclusive else "textcat_multilabel"
    name = component or factory
    nlp = load_base(base)
    if name in nlp.pipe_names:
        existing = nlp.get_pipe(name)
        missing = [label for label in labels if label not in existing.labels]
        if missing:
            raise ValueError(
                Errors.E306.format(
                    name=name, missing=missing, labels=list(existing.labels)
                )
            )
        return nlp
    model = architecture_config(architecture, exclusive=exclusive)
    textcat = nlp.add_pipe(factory, name=name, config={"model": model})
    for label in labels:
        textcat.add_label(label)
    # Shapes only: one tiny example per label lets thinc infer the output width.
    examples = [
        Example.from_dict(
            nlp.make_doc(label), {"cats": {x: float(x == label) for x in labels}}
        )
        for label in labels
    ]
    textcat.initialize(lambda: examples, nlp=nlp, labels=labels)
    return nlp


@dataclass
class UpdateStats:
    version: int
    loss: float
    n_new: int
    n_replayed: int
    seconds: float
    retrained: bool = False


def _accepted(target: TextcatTarget) -> str | None:
    """The label a target accepts (value 1), if any: its class."""
    for label, value in target.cats.items():
        if value == 1.0:
            return label
    return None


class TextcatModel:
    """A pipeline plus the name of its text classifier."""

    task = "textcat"
    #: The Updater's defaults for this model (see ``Updater``): extra steps while
    #: few targets are known; no class balancing (it helped SMS spam's rare
    #: positive class but hurt TREC-6's macro F1, see BENCHMARKS.md).
    taper = 150
    class_weight = 0.0

    def __init__(
        self,
        nlp: Language,
        *,
        component: str | None = None,
        thinc_model: Model | None = None,
    ) -> None:
        if component is None:
            names = [
                name
                for name, pipe in nlp.pipeline
                if isinstance(pipe, (TextCategorizer, MultiLabel_TextCategorizer))
            ]
            if not names:
                raise ValueError(Errors.E307.format(pipes=nlp.pipe_names))
            component = names[-1]
        self.nlp = nlp
        self.component = component
        pipe = nlp.get_pipe(component)
        self.labels: tuple[str, ...] = tuple(pipe.labels)
        self.exclusive = not isinstance(pipe, MultiLabel_TextCategorizer)
        # The weights: the pipe's own model, or a snapshot's private copy of it.
        self.thinc_model: Model = pipe.model if thinc_model is None else thinc_model
        self._label_index = {label: i for i, label in enumerate(self.labels)}

    def snapshot(self) -> TextcatModel:
        """A copy of the weights (about 2 ms for bow) sharing the tokenizer."""
        return TextcatModel(
            self.nlp,
            component=self.component,
            thinc_model=copy.deepcopy(self.thinc_model),
        )

    def make_docs(self, texts: Iterable[str]) -> list[Doc]:
        return [self.nlp.make_doc(text) for text in texts]

    def predict(self, docs: Sequence[Doc], *, batch_size: int = 512) -> np.ndarray:
        """Probabilities, shape (n_docs, n_labels), columns in ``self.labels`` order."""
        model = self.thinc_model
        out = np.zeros((len(docs), len(self.labels)), dtype="f")
        for i in range(0, len(docs), batch_size):
            priority.pause()  # an annotator's request goes first
            batch = docs[i : i + batch_size]
            # As TextCategorizer.predict: a batch of empty docs scores all zeros.
            if any(len(doc) for doc in batch):
                out[i : i + len(batch)] = model.ops.to_numpy(model.predict(batch))
        return out

    def predict_texts(self, texts: Iterable[str]) -> np.ndarray:
        return self.predict(self.make_docs(texts))

    def truths(self, targets: Sequence[TextcatTarget]) -> tuple[np.ndarray, np.ndarray]:
        """Target values and a mask of the known ones, shape (n, n_labels) each."""
        truths = np.zeros((len(targets), len(self.labels)), dtype="f")
        known = np.zeros_like(truths)
        for i, target in enumerate(targets):
            for label, value in target.cats.items():
                j = self._label_index.get(label)
                if j is None:
                    raise ValueError(
                        Errors.E402.format(
                            label=label,
                            labels=list(self.labels),
                            where=f"the target for '{target.text[:40]}'",
                        )
                    )
                truths[i, j] = value
                known[i, j] = 1.0
        return truths, known

    def update(
        self,
        docs: Sequence[Doc],
        targets: Sequence[TextcatTarget],
        *,
        sgd: Optimizer,
        drop: float = 0.0,
        weights: np.ndarray | None = None,
    ) -> float:
        """One gradient step with the squared error masked to the known labels.

        This is spaCy's own textcat loss (``scores - truths``), but with the mask that
        spaCy applies only for multilabel models applied to exclusive ones too: a
        reject of one label among three trains that label towards 0 and leaves the
        others alone, where spaCy would train them all towards 0. ``weights`` (one
        per target) scale each target's gradient, e.g. ``balance_weights``.
        """
        model = self.thinc_model
        truths, known = self.truths(targets)
        if weights is not None:
            known = known * np.asarray(weights, dtype="f").reshape(-1, 1)
        if drop:
            set_dropout_rate(model, drop)
        scores, backprop = model.begin_update(list(docs))
        if drop:
            set_dropout_rate(model, 0.0)
        ops = model.ops
        d_scores = (scores - ops.asarray(truths)) * ops.asarray(known)
        backprop(d_scores)
        model.finish_update(sgd)
        return float((ops.to_numpy(d_scores) ** 2).sum() / max(known.sum(), 1.0))

    def balance_weights(
        self,
        targets: Sequence[TextcatTarget],
        known: Iterable[TextcatTarget],
        *,
        power: float,
        cap: float = 10.0,
    ) -> np.ndarray | None:
        """Per-target weights that balance the classes among the ``known`` targets.

        A target whose accepted label ``c`` is held by ``n_c`` of the ``n`` known
        targets that have one weighs ``(n / (K * n_c)) ** power`` (K: the number
        of labels), at most ``cap``; a reject-only target weighs 1. With few labels
        and a rare class (3 spam among 20 texts) the unweighted loss is met by
        scoring every text as the common class, so the rare class is never
        predicted and margin sampling can't find more of it. ``None`` (no
        weights) for multilabel models, whose labels are each their own
        yes/no question, and when ``power`` is 0.
        """
        if not self.exclusive or not power:
            return None
        counts: dict[str, int] = {}
        for target in known:
            label = _accepted(target)
            if label is not None:
                counts[label] = counts.get(label, 0) + 1
        n = sum(counts.values())
        weights = np.ones(len(targets), dtype="f")
        for i, target in enumerate(targets):
            label = _accepted(target)
            if label is not None and counts.get(label):
                share = n / (len(self.labels) * counts[label])
                weights[i] = min(cap, share**power)
        return weights

    def reset(self) -> TextcatModel:
        """A fresh, untrained model with the same pipeline config and labels."""
        nlp = copy.deepcopy(self.nlp)
        pipe = nlp.get_pipe(self.component)
        examples = [
            Example.from_dict(
                nlp.make_doc(label),
                {"cats": {x: float(x == label) for x in self.labels}},
            )
            for label in self.labels
        ]
        pipe.initialize(lambda: examples, nlp=nlp, labels=list(self.labels))
        return TextcatModel(nlp, component=self.component)


class Updater:
    """Trains one model online and serves snapshots of it.

    After each batch of answers: ``update_steps`` gradient steps, each on the new
    targets plus ``replay`` earlier ones drawn at random (so that the model doesn't
    forget what it learnt first), then a new snapshot is made off the lock and
    swapped in under it, and the version goes up by one. Every ``retrain_every``
    updates (0: never) the model is instead retrained from scratch on everything
    known, for ``retrain_epochs`` epochs, which undoes the drift of many small
    online steps.

    While few targets are known, three steps leave a model far from what its few
    labels can teach it (SMS spam: F1 0.31 after 50 labels where a retrained
    linear SVM has 0.67), so the number of steps tapers: with ``n`` targets known,
    ``update_steps * taper / n`` steps, at least ``update_steps`` and at most
    ``max_update_steps`` (``taper`` 150, steps 3, at most 10: 10 steps up to 45
    targets, 4 at 100, 3 from 150 on). ``taper=0`` turns it off. More steps for
    longer (a larger ``taper``) over-fit the newest batches: on TREC-6 they made
    margin sampling worse.

    ``class_weight`` (a power, 0 for none) weighs every target by how rare its
    class is among the known targets (``TextcatModel.balance_weights``), so that
    a rare class is predicted at all from its first few examples. ``None`` (the
    default for both) takes the model's own defaults (``TextcatModel.taper``
    and ``.class_weight``; a model without them, e.g. NER, gets neither).

    With ``use_averages`` (and ``snapshots``) the snapshot holds the optimizer's
    moving average of the weights instead of the last step's (as ``spacy train``
    evaluates); the NER recipes use it, since single online steps make a ner's
    predictions swing from one batch to the next.

    The updater is not itself thread-safe for training: one thread (the loop's
    trainer) calls ``update``; any number of threads call ``serving``.
    """

    def __init__(
        self,
        model: TextcatModel,
        *,
        learn_rate: float = 0.01,
        update_steps: int = 3,
        replay: int = 30,
        taper: int | None = None,
        max_update_steps: int = 10,
        class_weight: float | None = None,
        retrain_every: int = 0,
        retrain_epochs: int = 10,
        batch_size: int = 32,
        drop: float = 0.0,
        seed: int = 0,
        version: int = 0,
        snapshots: bool = True,
        use_averages: bool = False,
    ) -> None:
        self.model = model
        self.use_averages = use_averages
        self.learn_rate = learn_rate
        self.update_steps = update_steps
        self.replay = replay
        self.taper = getattr(model, "taper", 0) if taper is None else taper
        self.max_update_steps = max(max_update_steps, update_steps)
        self.class_weight = (
            getattr(model, "class_weight", 0.0)
            if class_weight is None
            else class_weight
        )
        self.retrain_every = retrain_every
        self.retrain_epochs = retrain_epochs
        self.batch_size = batch_size
        self.drop = drop
        self.snapshots = snapshots
        self.optimizer = self._new_optimizer()
        self._rng = random.Random(seed)
        self._targets: dict[int, TextcatTarget] = {}
        self._docs: dict[int, Doc] = {}
        self._lock = threading.Lock()
        self._version = version
        self._n_updates = 0
        self._serving = model.snapshot() if snapshots else model
        self.history: list[UpdateStats] = []
        # Set by load: {input hash: target_digest} of what the checkpoint had
        # learnt (None for a checkpoint that didn't record it).
        self.learnt: dict[int, str] | None = None

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def n_targets(self) -> int:
        return len(self._targets)

    def serving(self) -> tuple[TextcatModel, int]:
        """The current serving model and its version; safe from any thread."""
        with self._lock:
            return self._serving, self._version

    def _doc(self, target: TextcatTarget) -> Doc:
        doc = self._docs.get(target.input_hash)
        if doc is None or doc.text != target.text:
            # A model may tokenize its targets itself (NER: the answer's tokens).
            make = getattr(self.model, "target_doc", None)
            doc = (
                make(target)
                if make is not None
                else self.model.nlp.make_doc(target.text)
            )
            self._docs[target.input_hash] = doc
        return doc

    def _new_optimizer(self) -> Optimizer:
        # thinc's Adam keeps a moving average of every weight by default, which
        # costs more than the Adam step itself on bow's 262k-row table: keep it
        # only when it is served.
        return Adam(self.learn_rate, use_averages=self.use_averages)

    def steps_for(self, n_targets: int) -> int:
        """Gradient steps for an update when ``n_targets`` are known (the taper)."""
        if not self.taper or n_targets <= 0:
            return self.update_steps
        steps = round(self.update_steps * self.taper / n_targets)
        return max(self.update_steps, min(self.max_update_steps, steps))

    def _step(self, targets: Sequence[TextcatTarget]) -> float:
        balance = getattr(self.model, "balance_weights", None)
        weights = None
        if balance is not None and self.class_weight:
            weights = balance(targets, self._targets.values(), power=self.class_weight)
        loss = 0.0
        for i in range(0, len(targets), self.batch_size):
            batch = targets[i : i + self.batch_size]
            priority.pause()  # an annotator's request goes first
            docs = [self._doc(t) for t in batch]
            kwargs = {}
            if weights is not None:  # only textcat's update takes weights
                kwargs["weights"] = weights[i : i + self.batch_size]
            loss += self.model.update(
                docs, batch, sgd=self.optimizer, drop=self.drop, **kwargs
            )
        return loss

    def add_targets(self, targets: Iterable[TextcatTarget]) -> list[TextcatTarget]:
        """Remember targets for replay (newest wins per input); return the new ones."""
        new = []
        for target in targets:
            self._targets[target.input_hash] = target
            new.append(target)
        return new

    def update(self, targets: Sequence[TextcatTarget]) -> UpdateStats:
        """Learn from newly answered targets; swap in a new serving snapshot."""
        start = time.perf_counter()
        new = self.add_targets(targets)
        self._n_updates += 1
        retrain = bool(self.retrain_every) and self._n_updates % self.retrain_every == 0
        if retrain:
            loss, n_replayed = self._retrain(), len(self._targets)
        else:
            new_keys = {t.input_hash for t in new}
            old = [t for k, t in self._targets.items() if k not in new_keys]
            loss = 0.0
            n_replayed = 0
            for _ in range(self.steps_for(len(self._targets))):
                replayed = self._rng.sample(old, min(self.replay, len(old)))
                batch = list(new) + replayed
                self._rng.shuffle(batch)
                loss += self._step(batch)
                n_replayed += len(replayed)
        self._publish()
        stats = UpdateStats(
            version=self.version,
            loss=loss,
            n_new=len(new),
            n_replayed=n_replayed,
            seconds=time.perf_counter() - start,
            retrained=retrain,
        )
        self.history.append(stats)
        return stats

    def retrain(self, targets: Iterable[TextcatTarget] = ()) -> UpdateStats:
        """Train a fresh model on everything known (plus ``targets``) and serve it."""
        start = time.perf_counter()
        self.add_targets(targets)
        loss = self._retrain()
        self._publish()
        stats = UpdateStats(
            self.version, loss, 0, len(self._targets), time.perf_counter() - start, True
        )
        self.history.append(stats)
        return stats

    def _retrain(self) -> float:
        self.model = self.model.reset()
        self._docs.clear()
        self.optimizer = self._new_optimizer()
        everything = list(self._targets.values())
        loss = 0.0
        for _ in range(self.retrain_epochs):
            self._rng.shuffle(everything)
            loss = self._step(everything)
        return loss

    def _publish(self) -> None:
        if self.snapshots and self.use_averages and self.optimizer.averages:
            # Serve the optimizer's moving average of the weights, as spacy train
            # evaluates: far steadier than the last step's weights (NER).
            with self.model.nlp.use_params(self.optimizer.averages):
                snapshot = self.model.snapshot()
        else:
            snapshot = self.model.snapshot() if self.snapshots else self.model
        with self._lock:
            self._serving = snapshot
            self._version += 1

    def save(self, path: str | Path) -> Path:
        """Checkpoint the training model and the version, atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.model.nlp.to_disk(tmp / "model")
        srsly.write_json(
            tmp / "state.json",
            {
                "version": self.version,
                "task": getattr(self.model, "task", "textcat"),
                "component": self.model.component,
                "labels": list(self.model.labels),
                "n_targets": self.n_targets,
                # What this model has learnt: each input's target, fingerprinted,
                # so a restart learns only the answers stored after this save.
                "learnt": {
                    str(key): target_digest(target)
                    for key, target in list(self._targets.items())
                },
                **getattr(self.model, "checkpoint_state", dict)(),
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

    @classmethod
    def load(
        cls, path: str | Path, *, model_class: type | None = None, **kwargs
    ) -> Updater:
        """Resume from a checkpoint written by ``save``; the version continues.

        ``model_class`` is the model type to rebuild (``TextcatModel`` by default,
        or e.g. ``spacy_al.ner_models.NERModel``); it must match what was saved.
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
        updater = cls(model, version=version, **kwargs)
        learnt = state.get("learnt")
        updater.learnt = (
            {int(k): str(v) for k, v in learnt.items()}
            if isinstance(learnt, dict)
            else None
        )
        return updater


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
    """Resume from checkpoint ``path`` (see :meth:`Updater.load`), or from the one
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
            updater = Updater.load(candidate, **kwargs)
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
        updater.save(checkpoint)
    return learnt


class Committee:
    """K updaters trained on bootstrap resamples of the same answers.

    Each member sees every new target a Poisson(1)-distributed number of times (the
    online form of bootstrapping), so members differ by data, not only by seed:
    ``bow`` members start from zero weights, so seeds alone would give near-identical
    members. ``serving`` returns the members' snapshots as a list.
    """

    def __init__(self, members: Sequence[Updater], *, seed: int = 0) -> None:
        if len(members) < 2:
            raise ValueError(Errors.E309.format(n=len(members)))
        self.members = list(members)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._version = max(m.version for m in members)

    @classmethod
    def build(
        cls, model: TextcatModel, *, size: int = 3, seed: int = 0, **updater_kwargs
    ) -> Committee:
        members = [
            Updater(model.reset(), seed=seed + i, **updater_kwargs) for i in range(size)
        ]
        return cls(members, seed=seed)

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.members[0].labels

    @property
    def model(self) -> TextcatModel:
        return self.members[0].model

    @property
    def n_targets(self) -> int:
        return self.members[0].n_targets

    def serving(self) -> tuple[list[TextcatModel], int]:
        with self._lock:
            return [m.serving()[0] for m in self.members], self._version

    def update(self, targets: Sequence[TextcatTarget]) -> UpdateStats:
        start = time.perf_counter()
        losses = []
        for member in self.members:
            counts = self._rng.poisson(1.0, size=len(targets))
            resampled = [
                t for t, c in zip(targets, counts, strict=True) for _ in range(c)
            ]
            losses.append(member.update(resampled).loss)
        with self._lock:
            self._version += 1
            version = self._version
        return UpdateStats(
            version,
            float(np.mean(losses)),
            len(targets),
            0,
            time.perf_counter() - start,
        )

    def retrain(self, targets: Iterable[TextcatTarget] = ()) -> UpdateStats:
        targets = list(targets)
        start = time.perf_counter()
        for member in self.members:
            member.retrain(targets)
        with self._lock:
            self._version += 1
            version = self._version
        return UpdateStats(version, 0.0, 0, 0, time.perf_counter() - start, True)
