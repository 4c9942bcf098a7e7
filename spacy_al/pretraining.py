"""Representations learnt from the pool: a tok2vec pretrained on its texts.

``spacy pretrain`` trains the token-to-vector layer of a pipeline on raw text:
with the characters objective (``spacy.PretrainCharacters.v1``) each token's
vector must predict the first and last characters of the word, which needs no
vectors (a blank pipeline has none) and no labels. Active learning starts with
a large unlabelled pool, so the NER model's tok2vec can learn the pool's words
before the first question.

* :func:`pretrain_tok2vec` runs spaCy's pretraining loop (its own
  ``create_pretraining_model`` and ``make_update``, the objective and optimizer
  of ``[pretraining]``) on texts, reporting progress through a callback (the
  library never prints);
* :func:`pool_tok2vec` does the same, cached in a folder (the dataset's
  checkpoint folder) under a key of the texts, the settings and the vectors;
* :func:`add_pretrained_tok2vec` gives a pipeline a ``tok2vec`` component with
  those weights, for a ner to listen to, and writes ``[pretraining]`` and
  ``[initialize] init_tok2vec`` into its config, so that ``spacy train`` on the
  saved config loads the same weights.

The weights are those of a ``tok2vec`` component of the same architecture as
the ner's own (``spacy_al.ner.model.ner_model_config``): pretraining reaches a
layer through ``[pretraining] component`` and ``layer`` only, and a ner's
internal tok2vec is wrapped in a projection no ``layer`` name reaches.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.training.batchers import minibatch_by_words
from spacy.training.pretrain import create_pretraining_model, make_update
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_al.errors import Errors

#: Called with a stage ("tokenize", "pretrain", "cached") and the share of it
#: done (0 to 1): the recipes show it as a progress bar.
PretrainProgress = Callable[[str, float], None]

PRETRAIN_DIR = "pretrain"
WEIGHTS_FILE = "tok2vec.bin"
SETTINGS_FILE = "settings.json"
#: The component the pretrained weights live in (``[pretraining] component``).
TOK2VEC = "tok2vec"
TOK2VEC_WIDTH = 96


@dataclass(frozen=True)
class PretrainSettings:
    """``[pretraining]`` settings (spaCy's defaults but the epochs).

    ``epochs`` passes over the texts (None: enough for about ``target_words``
    words in all, 1 to ``max_epochs``); ``batch_words`` words per batch;
    ``n_characters`` characters predicted from each end of a word;
    ``hidden_size``/``maxout_pieces`` the objective's output layer; ``dropout``
    and ``learn_rate`` as in spaCy's default ``[pretraining]``; texts shorter
    than ``min_length`` tokens are skipped, as spaCy's pretraining corpus does.
    """

    epochs: int | None = None
    target_words: int = 1_000_000
    max_epochs: int = 30
    batch_words: int = 3000
    n_characters: int = 4
    hidden_size: int = 300
    maxout_pieces: int = 3
    dropout: float = 0.2
    learn_rate: float = 0.001
    min_length: int = 5
    max_length: int = 500
    seed: int = 0

    def n_epochs(self, n_words: int) -> int:
        """Passes over ``n_words`` words (see ``epochs``)."""
        if self.epochs is not None:
            return max(1, int(self.epochs))
        return max(1, min(self.max_epochs, round(self.target_words / max(n_words, 1))))


def tok2vec_config(*, static_vectors: bool = False) -> dict[str, Any]:
    """The tok2vec pretrained and then listened to: the ner's own
    ``HashEmbedCNN.v2`` (``spacy_al.ner.model.ner_model_config``)."""
    return {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "pretrained_vectors": True if static_vectors else None,
        "width": TOK2VEC_WIDTH,
        "depth": 4,
        "embed_size": 2000,
        "window_size": 1,
        "maxout_pieces": 3,
        "subword_features": True,
    }


def pretraining_config(settings: PretrainSettings, epochs: int) -> dict[str, Any]:
    """The ``[pretraining]`` block of these settings (every field spaCy's schema
    asks for), with ``component`` the ``tok2vec`` pipe."""
    return {
        "max_epochs": epochs,
        "dropout": settings.dropout,
        "n_save_every": None,
        "n_save_epoch": None,
        "component": TOK2VEC,
        "layer": "",
        "corpus": "corpora.pretrain",
        "batcher": {
            "@batchers": "spacy.batch_by_words.v1",
            "size": settings.batch_words,
            "discard_oversize": False,
            "tolerance": 0.2,
            "get_length": None,
        },
        "objective": {
            "@architectures": "spacy.PretrainCharacters.v1",
            "maxout_pieces": settings.maxout_pieces,
            "hidden_size": settings.hidden_size,
            "n_characters": settings.n_characters,
        },
        "optimizer": {
            "@optimizers": "Adam.v1",
            "beta1": 0.9,
            "beta2": 0.999,
            "L2_is_weight_decay": True,
            "L2": 0.01,
            "grad_clip": 1.0,
            "use_averages": True,
            "eps": 1e-8,
            "learn_rate": settings.learn_rate,
        },
    }


def _pipeline(nlp: Language, static_vectors: bool) -> Language:
    """A pipeline of ``nlp``'s language and vocab (its vectors) with only the
    ``tok2vec`` to pretrain."""
    new = type(nlp)(vocab=nlp.vocab)
    new.add_pipe(
        "tok2vec",
        name=TOK2VEC,
        config={"model": tok2vec_config(static_vectors=static_vectors)},
    )
    return new


@dataclass
class PretrainResult:
    """Pretrained tok2vec weights and what they cost."""

    weights: bytes
    epochs: int
    n_texts: int
    n_words: int
    losses: list[float]
    seconds: float


def pretrain_tok2vec(
    nlp: Language,
    texts: Iterable[str],
    *,
    settings: PretrainSettings = PretrainSettings(),
    static_vectors: bool = False,
    on_progress: PretrainProgress | None = None,
) -> PretrainResult:
    """Pretrain a ``tok2vec`` (:func:`tok2vec_config`) on ``texts`` with the
    characters objective, as ``spacy pretrain`` does: the same model, objective,
    optimizer (its averaged weights are kept) and update step; the texts are
    shuffled every epoch. ``nlp`` gives the tokenizer and vocab (with
    ``static_vectors``, its vectors are read too)."""
    start = time.perf_counter()
    report = on_progress or (lambda stage, done: None)
    texts = list(texts)
    fix_random_seed(settings.seed)
    pipe_nlp = _pipeline(nlp, static_vectors)
    docs = []
    for i, doc in enumerate(pipe_nlp.tokenizer.pipe(texts, batch_size=1000)):
        if settings.min_length <= len(doc) <= settings.max_length:
            docs.append(doc)
        if i % 2000 == 0:
            report("tokenize", i / max(len(texts), 1))
    if not docs:
        raise ValueError(
            Errors.E1230.format(n=len(texts), min_length=settings.min_length)
        )
    n_words = sum(len(doc) for doc in docs)
    epochs = settings.n_epochs(n_words)
    P = registry.resolve(pretraining_config(settings, epochs))
    model = create_pretraining_model(pipe_nlp, P)
    optimizer = P["optimizer"]
    objective = model.attrs["loss"]
    rng = random.Random(settings.seed)
    losses: list[float] = []
    done, total = 0, n_words * epochs
    report("pretrain", 0.0)
    for _ in range(epochs):
        rng.shuffle(docs)
        loss = 0.0
        for batch in minibatch_by_words(docs, settings.batch_words, tolerance=0.2):
            loss += make_update(model, batch, optimizer, objective)
            done += sum(len(doc) for doc in batch)
            report("pretrain", done / total)
        losses.append(loss / n_words)
    with model.use_params(optimizer.averages):
        weights = model.get_ref("tok2vec").to_bytes()
    return PretrainResult(
        weights, epochs, len(docs), n_words, losses, time.perf_counter() - start
    )


def _vectors_key(nlp: Language) -> str:
    vectors = nlp.vocab.vectors
    if vectors.shape[0] == 0:
        return "none"
    digest = hashlib.sha256(repr((vectors.mode, vectors.shape)).encode())
    digest.update(memoryview(vectors.data).cast("B"))
    return digest.hexdigest()[:16]


def _key(texts: list[str], settings: PretrainSettings, lang: str, vectors: str) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(settings), sort_keys=True).encode())
    digest.update(f"{lang}\0{vectors}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass
class PoolTok2Vec:
    """Pretrained weights for a pool: the file, whether they read the vocab's
    static vectors, what they cost (``seconds``: this call; ``info``: the
    pretraining's own record, epochs, words, losses and seconds)."""

    path: Path
    static_vectors: bool
    seconds: float
    cached: bool
    n_texts: int
    info: dict[str, Any]
    settings: PretrainSettings

    @property
    def weights(self) -> bytes:
        return self.path.read_bytes()


def pool_tok2vec(
    nlp: Language,
    texts: Iterable[str],
    *,
    folder: str | Path,
    settings: PretrainSettings = PretrainSettings(),
    static_vectors: bool | None = None,
    on_progress: PretrainProgress | None = None,
) -> PoolTok2Vec:
    """A tok2vec pretrained on the pool's ``texts`` (:func:`pretrain_tok2vec`),
    read from ``folder`` if pretrained there before on the same texts with the
    same settings and vectors, else pretrained and saved under
    ``pretrain/<key>/``. ``static_vectors`` None: whenever ``nlp``'s vocab has
    vectors (they must be the vectors the model will read)."""
    texts = list(texts)
    start = time.perf_counter()
    if static_vectors is None:
        static_vectors = nlp.vocab.vectors.shape[0] > 0
    vectors = _vectors_key(nlp) if static_vectors else "none"
    path = Path(folder) / PRETRAIN_DIR / _key(texts, settings, nlp.lang, vectors)
    if (path / WEIGHTS_FILE).exists():
        info = json.loads((path / SETTINGS_FILE).read_text(encoding="utf8"))
        if on_progress is not None:
            on_progress("cached", 1.0)
        return PoolTok2Vec(
            path / WEIGHTS_FILE,
            static_vectors,
            time.perf_counter() - start,
            True,
            len(texts),
            info["result"],
            settings,
        )
    result = pretrain_tok2vec(
        nlp,
        texts,
        settings=settings,
        static_vectors=static_vectors,
        on_progress=on_progress,
    )
    info = {
        "epochs": result.epochs,
        "n_texts": result.n_texts,
        "n_words": result.n_words,
        "losses": result.losses,
        "seconds": result.seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        (Path(tmp) / WEIGHTS_FILE).write_bytes(result.weights)
        record = {"settings": asdict(settings), "vectors": vectors, "result": info}
        (Path(tmp) / SETTINGS_FILE).write_text(json.dumps(record), encoding="utf8")
        if not path.exists():  # another process may have saved them first
            os.replace(tmp, path)
            Path(tmp).mkdir()  # for the context manager to remove
    return PoolTok2Vec(
        path / WEIGHTS_FILE,
        static_vectors,
        time.perf_counter() - start,
        False,
        len(texts),
        info,
        settings,
    )


def add_pretrained_tok2vec(
    nlp: Language,
    pretrained: PoolTok2Vec,
    *,
    before: str | None = None,
) -> Language:
    """Add a ``tok2vec`` component holding the ``pretrained`` weights to
    ``nlp`` (before the component ``before``, if given), and record them in the
    config (``[initialize] init_tok2vec`` and ``[pretraining]``) so that
    ``spacy train`` on the saved config starts from them too. Returns ``nlp``."""
    if TOK2VEC in nlp.pipe_names:
        raise ValueError(Errors.E1231.format(name=TOK2VEC, pipes=nlp.pipe_names))
    tok2vec = nlp.add_pipe(
        "tok2vec",
        name=TOK2VEC,
        before=before,
        config={"model": tok2vec_config(static_vectors=pretrained.static_vectors)},
    )
    tok2vec.model.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    tok2vec.model.from_bytes(pretrained.weights)
    config = nlp.config
    config["initialize"]["init_tok2vec"] = str(pretrained.path.resolve())
    config["pretraining"] = pretraining_config(
        pretrained.settings, int(pretrained.info.get("epochs", 1))
    )
    return nlp


PRETRAIN_CHOICES = ("auto", "pool", "none")
#: ``--pretrain``'s default in the NER recipes (BENCHMARKS.md, wnut17,
#: "Representations": what it measured against none and floret vectors).
DEFAULT_PRETRAIN = "none"
#: Pools smaller than this (in tokens) aren't pretrained on by ``auto``: too
#: little text to learn from (as ``spacy_al.representations.MIN_POOL_TOKENS``).
MIN_PRETRAIN_TOKENS = 20_000


def wants_pretrain(
    choice: str,
    nlp: Language,
    texts: list[str],
    *,
    min_tokens: int = MIN_PRETRAIN_TOKENS,
) -> bool:
    """Whether ``--pretrain CHOICE`` pretrains a tok2vec on the pool: "pool"
    always; "auto" when the base pipeline has no trained ner nor a ``tok2vec``
    of its own and the pool has at least ``min_tokens`` tokens; "none" never."""
    if choice not in PRETRAIN_CHOICES:
        raise ValueError(Errors.E1232.format(pretrain=choice, min_tokens=min_tokens))
    if choice != "auto":
        return choice == "pool"
    if TOK2VEC in nlp.pipe_names or any(
        isinstance(pipe, EntityRecognizer) for _, pipe in nlp.pipeline
    ):
        return False
    n = sum(len(doc) for doc in nlp.tokenizer.pipe(texts, batch_size=1000))
    return n >= min_tokens


def prepare_tok2vec(
    nlp: Language,
    texts: Iterable[str],
    choice: str,
    *,
    folder: str | Path,
    settings: PretrainSettings = PretrainSettings(),
    on_progress: PretrainProgress | None = None,
) -> PoolTok2Vec | None:
    """The tok2vec weights ``choice`` asks for (:func:`wants_pretrain`),
    pretrained on the pool's ``texts`` over ``nlp``'s vectors, if it has any
    (put them in first), or read from the cache in ``folder``; None when
    ``choice`` asks for none."""
    texts = list(texts)
    if not wants_pretrain(choice, nlp, texts):
        return None
    return pool_tok2vec(
        nlp, texts, folder=folder, settings=settings, on_progress=on_progress
    )
