"""NER models: build or load a pipeline with an entity recognizer, train it online.

The NER counterpart of ``spacy_al.textcat.model``, a ``spacy_al.protocols.Model``
as it is, so that the shared ``Updater`` (online steps, replay, snapshots swapped
under a lock, checkpoints) and the loop drive it unchanged:

* ``build_ner`` makes a pipeline from ``blank:LANG``, an installed pipeline (name
  or path), or a ``Language`` already built (e.g. with a text classifier), with a
  ``beam_ner`` (default) or greedy ``ner`` component whose labels are fixed at
  start: adding an entity label while another thread reads the model crashed the
  process (spacy-facts §5), so a label the model doesn't know is refused instead;
* ``NERModel`` scores Docs (token marginals and entropies, entity candidates,
  document measures: ``spacy_al.ner.scores``), predicts entities, evaluates entity
  F1 (spaCy's own scorer), and updates from ``NERTarget``s: partial answers train
  only what they say (other tokens missing, rejected spans through the ner's
  ``incorrect_spans_key``), gold answers train every token. Which updates it
  takes after each batch, and training to convergence, are
  ``spacy_al.ner.fit``'s.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import get_lang_class
from thinc.api import Model, Optimizer, fix_random_seed

from spacy_al.errors import Errors
from spacy_al.ner.fit import (
    DEFAULT_FIT_MAX_EPOCHS,
    DEFAULT_LEARN_RATE,
    FIT_SETTINGS,
    FitSchedule,
)
from spacy_al.ner.scores import PREDICT_BATCH, DocNERScores, score_docs
from spacy_al.ner.targets import NERTarget, reference_doc
from spacy_al.pipelines import load_base
from spacy_al.pretraining import (
    TOK2VEC,
    TOK2VEC_WIDTH,
    PoolTok2Vec,
    add_pretrained_tok2vec,
    tok2vec_config,
)
from spacy_al.protocols import YieldPoint
from spacy_al.spans import make_ner_doc

FACTORIES = ("beam_ner", "ner")
#: The entity recognizer of the labelling recipes and ``simulate ner``: spaCy's
#: greedy ``ner``, its uncertainty scored with a beam of ``DEFAULT_BEAM_WIDTH``
#: (any ner can be): what the in-loop measurements on WNUT-17 ran (issue #12;
#: ``beam_ner`` was not measured in the loop), and a fit step costs about 4/5
#: of ``beam_ner``'s (2.9 vs 3.7 ms of CPU per WNUT-17 text).
SESSION_FACTORY = "ner"
DEFAULT_BEAM_WIDTH = 4
DEFAULT_BEAM_DENSITY = 1e-4
INCORRECT_SPANS_KEY = "incorrect_spans"

Entity = tuple[int, int, str]


def _check_beam_width(beam_width: Any) -> int:
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int)
        or beam_width < 1
    ):
        raise ValueError(Errors.E534.format(beam_width=beam_width))
    return beam_width


def _init_examples(nlp: Language, labels: Sequence[str]) -> list[Example]:
    """One tiny example per label: enough for the ner to infer its shapes."""
    examples = []
    for label in labels:
        doc = nlp.make_doc(f"x {label} y")
        examples.append(
            Example.from_dict(doc, {"entities": [(2, 2 + len(label), label)]})
        )
    return examples


def ner_model_config(
    *, static_vectors: bool = False, listen: str | None = None
) -> dict[str, Any]:
    """spaCy's default model of a ner (``TransitionBasedParser.v2`` over its own
    ``HashEmbedCNN.v2``), reading the static vectors when asked; with ``listen``
    the name of a ``tok2vec`` component (of the same architecture) it listens
    to instead of an own tok2vec."""
    if listen is not None:
        return {
            **ner_model_config(),
            "tok2vec": {
                "@architectures": "spacy.Tok2VecListener.v1",
                "width": TOK2VEC_WIDTH,
                "upstream": listen,
            },
        }
    return {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 64,
        "maxout_pieces": 2,
        "use_upper": True,
        "tok2vec": tok2vec_config(static_vectors=static_vectors),
    }


def _set_incorrect_spans_key(nlp: Language, name: str, key: str) -> None:
    """Let an existing ner learn from rejected spans (kept in its saved config)."""
    ner = nlp.get_pipe(name)
    ner.cfg["incorrect_spans_key"] = key
    ner.moves.cfg["neg_key"] = key
    nlp.get_pipe_config(name)["incorrect_spans_key"] = key


def build_ner(
    labels: Sequence[str],
    *,
    base: str | Language = "blank:en",
    factory: str = "beam_ner",
    beam_width: int = DEFAULT_BEAM_WIDTH,
    component: str | None = None,
    incorrect_spans_key: str = INCORRECT_SPANS_KEY,
    static_vectors: bool | None = None,
    tok2vec: PoolTok2Vec | None = None,
    seed: int | None = None,
) -> Language:
    """A pipeline with an initialized entity recognizer over ``labels``.

    ``factory`` is ``beam_ner`` (beam search of ``beam_width`` for training and
    prediction) or ``ner`` (greedy). The component is added under ``component``
    (default ``ner``). If the base already has an entity recognizer of that name
    (or, without a name, any), it is used with its weights: labels it lacks are
    added now, before the model is shared, and it is given an
    ``incorrect_spans_key`` if it has none, so that rejections train it.

    ``static_vectors``: whether a new component's own tok2vec reads the
    pipeline's static vectors (``include_static_vectors``: the vocab's table,
    e.g. floret vectors of the pool from ``spacy_al.representations``, or an
    installed pipeline's) beside its hashed embeddings. None: whenever the
    vocab has vectors.

    ``tok2vec``: weights pretrained on the pool (``spacy_al.pretraining``) for a
    new component: they go into a ``tok2vec`` component the ner listens to
    (and into the config's ``init_tok2vec``, for ``spacy train``); whether it
    reads static vectors is the pretraining's, not ``static_vectors``.
    """
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise ValueError(Errors.E535)
    if factory not in FACTORIES:
        raise ValueError(Errors.E533.format(factory=factory, valid=list(FACTORIES)))
    beam_width = _check_beam_width(beam_width)
    if seed is not None:
        fix_random_seed(seed)
    nlp = load_base(base) if isinstance(base, str) else base
    if component is None:
        found = [n for n, p in nlp.pipeline if isinstance(p, EntityRecognizer)]
        component = found[-1] if found else "ner"
    if component in nlp.pipe_names:
        ner = nlp.get_pipe(component)
        if not isinstance(ner, EntityRecognizer):
            raise ValueError(Errors.E536.format(name=component, cls=type(ner).__name__))
        if tok2vec is not None:  # its own weights would be kept, these unused
            raise ValueError(Errors.E1233.format(name=component))
        missing = [label for label in labels if label not in ner.labels]
        for label in missing:
            ner.add_label(label)
        if not ner.cfg.get("incorrect_spans_key"):
            _set_incorrect_spans_key(nlp, component, incorrect_spans_key)
        if not ner.model.get_ref("lower").has_param("W"):  # added, never initialized
            ner.initialize(lambda: _init_examples(nlp, labels), nlp=nlp)
        return nlp
    config: dict[str, Any] = {"incorrect_spans_key": incorrect_spans_key}
    if static_vectors is None:
        static_vectors = nlp.vocab.vectors.shape[0] > 0
    if tok2vec is not None:
        add_pretrained_tok2vec(nlp, tok2vec)
        config["model"] = ner_model_config(listen=TOK2VEC)
    elif static_vectors:
        config["model"] = ner_model_config(static_vectors=True)
    if factory == "beam_ner":
        config.update(beam_width=max(beam_width, 2), beam_density=DEFAULT_BEAM_DENSITY)
    ner = nlp.add_pipe(factory, name=component, config=config)
    for label in labels:
        ner.add_label(label)
    if tok2vec is not None:
        nlp._link_components()  # the listener to its tok2vec, as nlp.initialize does
    ner.initialize(lambda: _init_examples(nlp, labels), nlp=nlp)
    return nlp


def _trainable(nlp: Language, component: str) -> list[str]:
    """The ner and the tok2vec components it listens to: what updates train."""
    names = [component]
    for node in nlp.get_pipe(component).model.walk():
        if isinstance(node, Tok2VecListener) and node.upstream_name in nlp.pipe_names:
            names.append(node.upstream_name)
    return names


def _fresh(doc: Doc, vocab) -> Doc:
    return Doc(
        vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]
    )


class NERModel:
    """A pipeline plus the name of its entity recognizer.

    ``beam_width`` is the width used for *scoring* (uncertainty): 2 or more runs a
    beam search (any ner can, even a greedy-trained one); 1 uses the greedy
    per-step entropy, the cheap fallback. By default: the component's own beam
    width for ``beam_ner``, greedy for ``ner``. ``yield_point`` (None: none) is
    called between scoring batches; the updater sets it and snapshots keep it.
    """

    task = "ner"
    #: The Updater's defaults for this model: no taper, no class balancing (a
    #: ner's loss is per transition, not per example, so it isn't weighed).
    taper = 0
    class_weight = 0.0

    def __init__(
        self,
        nlp: Language,
        *,
        component: str | None = None,
        beam_width: int | None = None,
        initial: bytes | None = None,
        yield_point: YieldPoint | None = None,
        fit_examples: int = 0,
        fit_max_epochs: int = DEFAULT_FIT_MAX_EPOCHS,
        fit_seconds: float | None = None,
        learn_rate: float = DEFAULT_LEARN_RATE,
        drop: float = 0.1,
        seed: int = 0,
    ) -> None:
        if component is None:
            names = [n for n, p in nlp.pipeline if isinstance(p, EntityRecognizer)]
            if not names:
                raise ValueError(Errors.E532.format(pipes=nlp.pipe_names))
            component = names[-1]
        if component not in nlp.pipe_names:
            raise ValueError(Errors.E532.format(pipes=nlp.pipe_names))
        pipe = nlp.get_pipe(component)
        if not isinstance(pipe, EntityRecognizer):
            raise ValueError(
                Errors.E536.format(name=component, cls=type(pipe).__name__)
            )
        self.nlp = nlp
        self.component = component
        self.labels: tuple[str, ...] = tuple(pipe.labels)
        self.exclusive = False
        if beam_width is None:
            beam_width = max(int(pipe.cfg.get("beam_width", 1)), 1)
        self.beam_width = _check_beam_width(beam_width)
        self.incorrect_spans_key: str | None = pipe.cfg.get("incorrect_spans_key")
        # copy.deepcopy (and pickle) of a ner drops its transition system's cfg,
        # so the key that makes rejected spans count must be set again.
        pipe.moves.cfg["neg_key"] = self.incorrect_spans_key
        self._trainable = _trainable(nlp, component)
        self._frozen = [name for name in nlp.pipe_names if name not in self._trainable]
        # The weights as built: what ``reset`` returns to (random for a blank
        # pipeline, the pretrained ones for an installed one).
        self._initial = nlp.to_bytes() if initial is None else initial
        self.yield_point = yield_point
        self.schedule = FitSchedule(
            examples=fit_examples,
            max_epochs=fit_max_epochs,
            seconds=fit_seconds,
            learn_rate=learn_rate,
            drop=drop,
            seed=seed,
        )

    @property
    def refits(self) -> bool:
        """Whether the updater calls :meth:`fit` on every known answer after
        each batch (``fit_examples`` > 0) instead of a few online steps."""
        return self.schedule.examples > 0

    def _settings(self) -> dict[str, Any]:
        return self.schedule.settings()

    def fit_plan(self, n_targets: int) -> tuple[int, int]:
        """Epochs and examples per epoch of a :meth:`fit` on ``n_targets``
        (:meth:`FitSchedule.plan`)."""
        return self.schedule.plan(n_targets)

    def fit(self, targets: Sequence[NERTarget], *, minibatch: int = 16) -> float:
        """Train on every known answer as the schedule plans it
        (:meth:`FitSchedule.fit`); returns the summed loss."""
        return self.schedule.fit(self, targets, minibatch=minibatch)

    @property
    def members(self) -> tuple[NERModel, ...]:
        """The models whose predictions this one's are: itself alone."""
        return (self,)

    @property
    def thinc_model(self) -> Model:
        """The ner's weights (with its own tok2vec unless it listens to one)."""
        return self.nlp.get_pipe(self.component).model

    @property
    def ner(self) -> EntityRecognizer:
        return self.nlp.get_pipe(self.component)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"beam_width": self.beam_width, **self._settings()}

    @classmethod
    def from_checkpoint(cls, nlp: Language, state: dict[str, Any]) -> NERModel:
        settings = {k: state[k] for k in FIT_SETTINGS if k in state}
        return cls(
            nlp,
            component=state["component"],
            beam_width=state.get("beam_width"),
            **settings,
        )

    # --- docs ----------------------------------------------------------------

    def make_docs(self, texts: Iterable[str]) -> list[Doc]:
        return [self.nlp.make_doc(text) for text in texts]

    def make_doc(self, task: dict[str, Any]) -> Doc:
        """A Doc of a task's text, with the task's own ``tokens`` when it has them."""
        return make_ner_doc(self.nlp, {**task, "spans": []}, missing=True)

    def target_doc(self, target: NERTarget) -> Doc:
        """The Doc a target trains on (its tokens, if it carries them)."""
        task = {"text": target.text, "spans": []}
        if target.tokens:
            task["tokens"] = target.tokens
        return make_ner_doc(self.nlp, task, missing=True)

    # --- predicting ------------------------------------------------------------

    def score(
        self,
        docs: Sequence[Doc],
        *,
        predict_batch: int = PREDICT_BATCH,
        beam_width: int | None = None,
    ) -> list[DocNERScores]:
        """Token marginals and entropies, entity candidates and document
        measures; with the model's beam width unless ``beam_width`` is given
        (1: greedy)."""
        return score_docs(
            self.nlp,
            docs,
            component=self.component,
            beam_width=self.beam_width if beam_width is None else beam_width,
            beam_density=DEFAULT_BEAM_DENSITY,
            predict_batch=predict_batch,
            yield_point=self.yield_point,
        )

    def predict(
        self, docs: Sequence[Doc], *, predict_batch: int = PREDICT_BATCH
    ) -> list[list[Entity]]:
        """The entities the pipeline annotates, as token offsets, per Doc."""
        return [
            [(e.start, e.end, e.label_) for e in doc.ents]
            for doc in self.annotate(docs, predict_batch=predict_batch)
        ]

    def annotate(
        self, docs: Sequence[Doc], *, predict_batch: int = PREDICT_BATCH
    ) -> list[Doc]:
        """Fresh copies of ``docs`` run through the pipeline up to the ner."""
        keep = self.nlp.pipe_names[: self.nlp.pipe_names.index(self.component) + 1]
        disable = [name for name in self.nlp.pipe_names if name not in keep]
        fresh = [_fresh(doc, self.nlp.vocab) for doc in docs]
        with self.nlp.select_pipes(disable=disable):
            return list(self.nlp.pipe(fresh, batch_size=predict_batch))

    def evaluate(
        self, gold: Sequence[Doc], *, predict_batch: int = PREDICT_BATCH
    ) -> dict[str, Any]:
        """Entity precision, recall and F1 (spaCy's scorer) against gold Docs.

        Tokens whose annotation is missing in a gold Doc are not counted, as in
        ``spacy train``. Returns ``ents_p``, ``ents_r``, ``ents_f`` and
        ``ents_per_type``.
        """
        predicted = self.annotate(gold, predict_batch=predict_batch)
        return get_ner_prf(
            [Example(p, g) for p, g in zip(predicted, gold, strict=True)]
        )

    def evaluate_targets(self, targets: Sequence[NERTarget]) -> dict[str, Any]:
        """Entity P/R/F1 against answered targets: gold ones count every token,
        partial ones only the entities that were accepted (rejections aside)."""
        references = [
            reference_doc(self.nlp, t, incorrect_spans_key=None)[0] for t in targets
        ]
        return self.evaluate(references)

    # --- training --------------------------------------------------------------

    def check_target(self, target: NERTarget) -> None:
        """Refuse labels the model doesn't know (spaCy would add them mid-update)."""
        for span in target.spans + target.rejected:
            if span["label"] not in self.labels:
                raise ValueError(
                    Errors.E530.format(
                        label=span["label"],
                        labels=list(self.labels),
                        where=f"the target for '{target.text[:40]}'",
                    )
                )

    def examples(
        self, docs: Sequence[Doc], targets: Sequence[NERTarget]
    ) -> list[Example]:
        """Training examples: ``docs`` as predicted, the targets as reference."""
        out = []
        for doc, target in zip(docs, targets, strict=True):
            self.check_target(target)
            reference, _ = reference_doc(
                self.nlp, target, incorrect_spans_key=self.incorrect_spans_key
            )
            if [t.text for t in doc] != [
                t.text for t in reference
            ] or doc.has_annotation("ENT_IOB"):
                doc = _fresh(reference, self.nlp.vocab)
            out.append(Example(doc, reference))
        return out

    def update(
        self,
        docs: Sequence[Doc],
        targets: Sequence[NERTarget],
        *,
        sgd: Optimizer,
        drop: float = 0.0,
        weights: np.ndarray | None = None,
    ) -> float:
        """One gradient step on the targets; returns the ner's loss.

        Partial targets leave the tokens nobody answered about missing (no
        gradient there) and teach rejected spans through ``incorrect_spans_key``;
        gold targets teach every token. ``weights`` must be None: the ner's loss
        isn't weighed per target (``balance_weights`` gives none).
        """
        if weights is not None:
            raise ValueError(Errors.E900)
        examples = self.examples(docs, targets)
        losses: dict[str, float] = {}
        self.nlp.update(
            examples, sgd=sgd, drop=drop, losses=losses, exclude=self._frozen
        )
        return float(losses.get(self.component, 0.0))

    def balance_weights(
        self,
        targets: Sequence[NERTarget],
        known: Iterable[NERTarget],
        *,
        power: float,
    ) -> None:
        """No per-target weights: a ner's loss isn't weighed per example."""
        return None

    def snapshot(self) -> NERModel:
        """A private copy of the whole pipeline, to serve while this one trains."""
        optimizer = self.schedule.optimizer
        averages = optimizer.averages if optimizer is not None else None
        if averages:  # what fit trained, averaged (as spacy train evaluates)
            with self.nlp.use_params(averages):
                nlp = copy.deepcopy(self.nlp)
        else:
            nlp = copy.deepcopy(self.nlp)
        return NERModel(
            nlp,
            component=self.component,
            beam_width=self.beam_width,
            initial=self._initial,
            yield_point=self.yield_point,
            **self._settings(),
        )

    def reset(self) -> NERModel:
        """The model as it was built (untrained for a blank pipeline), same labels."""
        nlp = get_lang_class(self.nlp.lang).from_config(self.nlp.config)
        nlp.from_bytes(self._initial)
        return NERModel(
            nlp,
            component=self.component,
            beam_width=self.beam_width,
            initial=self._initial,
            yield_point=self.yield_point,
            **self._settings(),
        )


def gold_docs(
    nlp: Language,
    tasks: Iterable[dict[str, Any]],
    *,
    labels: Sequence[str] | None = None,
) -> list[Doc]:
    """Complete reference Docs from tasks with gold ``spans`` (others outside)."""
    return [make_ner_doc(nlp, task, labels=labels, missing=False) for task in tasks]
