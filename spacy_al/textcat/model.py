"""Text-classification models: build a pipeline with a ``textcat`` or
``textcat_multilabel`` component, predict probabilities, and update it with a
*masked* loss, so that partial answers ("not SPORTS") train only what they say.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model, Optimizer, set_dropout_rate

from spacy_al.errors import Errors
from spacy_al.pipelines import load_base
from spacy_al.protocols import YieldPoint
from spacy_al.textcat import architectures, learner
from spacy_al.textcat.targets import TextcatTarget

ARCHITECTURES = ("linear", "bow", "ensemble")
#: The learn rate of gradient steps (``linear`` takes them only beyond its refit
#: budget, see ``Updater``).
DEFAULT_LEARN_RATE = {"linear": 0.01, "bow": 0.01, "ensemble": 0.002}
#: The architecture recipes, ``simulate`` and ``bench labels`` build by default.
DEFAULT_ARCHITECTURE = "linear"
#: Docs per call of the classifier's model in ``predict``.
PREDICT_BATCH = 512


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


def _linear_config(*, exclusive: bool, n_labels: int = 2) -> dict:
    # a linear model on tf-idf of hashed char n-grams (and words with many
    # labels), refit on every answer (learner.py)
    return learner.linear_config(n_labels, exclusive=exclusive)


def architecture_config(
    architecture: str, *, exclusive: bool, n_labels: int = 2
) -> dict:
    """The thinc model config for a named architecture (``linear``, ``bow`` or
    ``ensemble``) over ``n_labels`` labels."""
    if architecture == "linear":
        return _linear_config(exclusive=exclusive, n_labels=n_labels)
    if architecture == "bow":
        return _bow_config(exclusive=exclusive)
    if architecture == "ensemble":
        return _ensemble_config(exclusive=exclusive)
    raise ValueError(
        Errors.E301.format(architecture=architecture, valid=list(ARCHITECTURES))
    )


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
    model = architecture_config(architecture, exclusive=exclusive, n_labels=len(labels))
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


def _accepted(target: TextcatTarget) -> str | None:
    """The label a target accepts (value 1), if any: its class."""
    for label, value in target.cats.items():
        if value == 1.0:
            return label
    return None


class TextcatModel:
    """A pipeline plus the name of its text classifier (a ``protocols.Model``).

    ``yield_point`` (None: none) is called between prediction batches; the
    updater sets it (``Updater.set_yield_point``) and snapshots keep it.
    """

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
        yield_point: YieldPoint | None = None,
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
        self.yield_point = yield_point

    @property
    def refits(self) -> bool:
        """Whether the model is refit on every known target (``linear``) rather
        than trained by gradient steps: ``Updater`` then calls ``fit``."""
        return bool(self.thinc_model.attrs.get("refits", False))

    def fit(self, targets: Sequence[TextcatTarget], *, max_iter: int = 100) -> float:
        """Refit on ``targets`` (a ``refits`` model); each label learns only from
        the targets that know its value. Returns the share of known values the
        refit model gets wrong."""
        if not self.refits:
            raise ValueError(Errors.E444.format(component=self.component))
        if not targets:
            return 0.0
        truths, known = self.truths(targets)
        texts = [t.text for t in targets]
        learner.fit_linear(self.thinc_model, texts, truths, known, max_iter=max_iter)
        probs = self.predict(self.make_docs(texts))
        wrong = ((probs >= 0.5) != (truths >= 0.5)) * known
        return float(wrong.sum() / max(known.sum(), 1.0))

    def fit_idf(self, texts: Iterable[str]) -> int:
        """Fit the idf of a ``refits`` model on unlabelled texts (the pool); the
        number of texts used (0 for a model without idf)."""
        if not self.refits:
            return 0
        return learner.fit_idf(self.thinc_model, texts)

    @property
    def members(self) -> tuple[TextcatModel, ...]:
        """The models whose predictions this one's are: itself alone."""
        return (self,)

    def snapshot(self) -> TextcatModel:
        """A copy of the weights (about 2 ms for bow) sharing the tokenizer."""
        return TextcatModel(
            self.nlp,
            component=self.component,
            thinc_model=copy.deepcopy(self.thinc_model),
            yield_point=self.yield_point,
        )

    def make_docs(self, texts: Iterable[str]) -> list[Doc]:
        return [self.nlp.make_doc(text) for text in texts]

    def make_doc(self, task: dict[str, Any]) -> Doc:
        """The Doc of a pool task's text."""
        return self.nlp.make_doc(task["text"])

    def target_doc(self, target: TextcatTarget) -> Doc:
        """The Doc a target trains on."""
        return self.nlp.make_doc(target.text)

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint records beside the pipeline: nothing more for textcat."""
        return {}

    @classmethod
    def from_checkpoint(cls, nlp: Language, state: dict[str, Any]) -> TextcatModel:
        """The model of a checkpoint's pipeline (see :mod:`spacy_al.checkpoints`)."""
        return cls(nlp, component=state["component"])

    def predict(
        self, docs: Sequence[Doc], *, predict_batch: int = PREDICT_BATCH
    ) -> np.ndarray:
        """Probabilities, shape (n_docs, n_labels), columns in ``self.labels`` order."""
        model = self.thinc_model
        out = np.zeros((len(docs), len(self.labels)), dtype="f")
        for i in range(0, len(docs), predict_batch):
            if self.yield_point is not None:
                self.yield_point()  # e.g. an annotator's request goes first
            batch = docs[i : i + predict_batch]
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
        return TextcatModel(nlp, component=self.component, yield_point=self.yield_point)
