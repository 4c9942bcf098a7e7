"""Representations learnt from the pool: floret subword vectors of its texts.

Active learning starts with a large unlabelled pool; a model trained from
scratch on a few hundred answers knows nothing of the words it has not seen.
floret (fastText with hashed subword buckets, the vectors spaCy loads natively
in ``mode="floret"``) learns a vector for every character n-gram of the pool's
texts in seconds to minutes on 2 cores, so that every word, even one never seen
in training or in the pool, gets a vector from its pieces. The NER model reads
them through ``include_static_vectors`` (``spacy_al.ner.model.build_ner``).

* :func:`train_floret` trains the vectors on texts (tokenized by the pipeline's
  tokenizer, lower-cased: user-generated text is noisy in case);
* :func:`pool_vectors` does the same, cached in a folder (the dataset's
  checkpoint folder) under a key of the texts and the settings;
* :func:`set_vectors` puts them into a pipeline's vocab.

The library never prints: ``on_progress(stage, fraction)`` reports the stages.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from spacy.language import Language
from spacy.vectors import Vectors

from spacy_al.errors import Errors

#: Called with a stage name ("tokenize", "train", "load", "cached") and the
#: share done so far (0 to 1).
VectorsProgress = Callable[[str, float], None]

#: Pools smaller than this (in tokens) get no vectors by default: too little
#: text to learn from (WNUT-17's 5,690 texts have 101,857 tokens).
MIN_POOL_TOKENS = 20_000
VECTORS_DIR = "vectors"
#: A file of every saved table (saved whole, then renamed into place).
VECTORS_CFG = "vectors.cfg"


@dataclass(frozen=True)
class FloretSettings:
    """floret's training settings.

    ``dim`` vector width; ``minn``/``maxn`` character n-gram lengths; ``bucket``
    rows of the hashed table (every word and n-gram shares them); ``hash_count``
    rows each piece is hashed to; ``epochs`` passes over the texts (None: see
    ``target_tokens``); ``model`` ``cbow`` or ``skipgram``; ``min_count``: words
    seen fewer times get only their subword vectors; ``window`` context words
    on each side; ``lower``: train on lower-cased text (spaCy looks vectors up
    by the token's text, so a cased word then shares only its subwords).
    """

    dim: int = 100
    minn: int = 3
    maxn: int = 5
    bucket: int = 50_000
    hash_count: int = 2
    epochs: int | None = None
    #: With ``epochs`` None: enough epochs for about this many tokens in all
    #: (5 to 50): a small pool needs many passes (WNUT-17's 62,730 tokens at
    #: 10 epochs gave every word nearly the same vector).
    target_tokens: int = 3_000_000
    model: str = "skipgram"
    min_count: int = 2
    window: int = 5
    lower: bool = False


def _key(texts: list[str], settings: FloretSettings) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(settings), sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _read_floret(path: Path, vocab) -> Vectors:
    """A floret ``.floret`` table (header: rows dim minn maxn hash_count
    hash_seed BOW EOW) as spaCy ``Vectors``."""
    with path.open(encoding="utf8") as f:
        header = f.readline().split()
        rows, dim = int(header[0]), int(header[1])
        data = np.zeros((rows, dim), dtype="float32")
        for i, line in enumerate(f):
            pieces = line.rstrip().rsplit(" ", dim)
            data[i] = np.asarray(pieces[1:], dtype="float32")
    return Vectors(
        strings=vocab.strings,
        data=data,
        mode="floret",
        minn=int(header[2]),
        maxn=int(header[3]),
        hash_count=int(header[4]),
        hash_seed=int(header[5]),
        bow=header[6],
        eow=header[7],
    )


def epochs_for(n_tokens: int, target_tokens: int) -> int:
    """Passes over ``n_tokens`` for about ``target_tokens`` in all (5 to 50)."""
    return max(5, min(50, round(target_tokens / max(n_tokens, 1))))


def train_floret(
    nlp: Language,
    texts: Iterable[str],
    *,
    settings: FloretSettings = FloretSettings(),
    threads: int = 1,
    on_progress: VectorsProgress | None = None,
) -> Vectors:
    """floret vectors trained on ``texts`` (tokenized by ``nlp``'s tokenizer,
    one text per line, tokens joined by spaces as floret reads them)."""
    import floret  # an optional dependency: only this function needs it

    texts = list(texts)
    if not texts:
        raise ValueError(Errors.E546)
    if settings.model not in ("cbow", "skipgram"):
        raise ValueError(Errors.E547.format(model=settings.model))
    report = on_progress or (lambda stage, done: None)
    with tempfile.TemporaryDirectory(prefix="spacy_al-floret-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        total = 0
        with corpus.open("w", encoding="utf8") as f:
            for i, doc in enumerate(nlp.tokenizer.pipe(texts, batch_size=1000)):
                words = [t.text for t in doc if not t.is_space]
                total += len(words)
                line = " ".join(words)
                f.write((line.lower() if settings.lower else line) + "\n")
                if i % 2000 == 0:
                    report("tokenize", i / len(texts))
        report("train", 0.0)
        model = floret.train_unsupervised(
            str(corpus),
            model=settings.model,
            mode="floret",
            dim=settings.dim,
            minn=settings.minn,
            maxn=settings.maxn,
            bucket=settings.bucket,
            hashCount=settings.hash_count,
            epoch=settings.epochs or epochs_for(total, settings.target_tokens),
            minCount=settings.min_count,
            ws=settings.window,
            thread=threads,
            verbose=0,
        )
        report("load", 0.0)
        table = Path(tmp) / "vectors.floret"
        model.save_floret_vectors(str(table))
        vectors = _read_floret(table, nlp.vocab)
    report("load", 1.0)
    return vectors


def set_vectors(nlp: Language, vectors: Vectors) -> Language:
    """Give ``nlp`` the vectors (its vocab's table is replaced); returns it."""
    nlp.vocab.vectors = vectors
    return nlp


@dataclass
class PoolVectors:
    """Vectors for a pool, where they are cached and what they cost."""

    vectors: Vectors
    path: Path | None
    seconds: float
    cached: bool
    n_texts: int


def pool_vectors(
    nlp: Language,
    texts: Iterable[str],
    *,
    folder: str | Path | None = None,
    settings: FloretSettings = FloretSettings(),
    threads: int = 1,
    on_progress: VectorsProgress | None = None,
) -> PoolVectors:
    """floret vectors of the pool's ``texts``, read from ``folder`` if trained
    there before on the same texts with the same settings, else trained (and
    saved there, under ``vectors/<key>``, when a folder is given)."""
    texts = list(texts)
    start = time.perf_counter()
    path = None
    if folder is not None:
        path = Path(folder) / VECTORS_DIR / _key(texts, settings)
        if (path / VECTORS_CFG).exists():
            vectors = Vectors(strings=nlp.vocab.strings).from_disk(path)
            if on_progress is not None:
                on_progress("cached", 1.0)
            return PoolVectors(
                vectors, path, time.perf_counter() - start, True, len(texts)
            )
    vectors = train_floret(
        nlp, texts, settings=settings, threads=threads, on_progress=on_progress
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            vectors.to_disk(tmp)
            if not path.exists():  # another process may have saved them first
                os.replace(tmp, path)
                Path(tmp).mkdir()  # for the context manager to remove
    return PoolVectors(vectors, path, time.perf_counter() - start, False, len(texts))


VECTOR_CHOICES = ("auto", "pool", "base", "none")


def n_tokens(nlp: Language, texts: Iterable[str]) -> int:
    """Tokens of ``texts`` by ``nlp``'s tokenizer (what the vectors learn from)."""
    return sum(len(doc) for doc in nlp.tokenizer.pipe(texts, batch_size=1000))


def wants_pool_vectors(
    choice: str, nlp: Language, texts: list[str], *, min_tokens: int = MIN_POOL_TOKENS
) -> bool:
    """Whether ``--vectors CHOICE`` trains floret vectors on the pool: "pool"
    always; "auto" when the base pipeline has no vectors of its own and the
    pool has at least ``min_tokens`` tokens; "base" and "none" never."""
    if choice not in VECTOR_CHOICES:
        raise ValueError(Errors.E548.format(vectors=choice, min_tokens=min_tokens))
    if choice == "pool":
        return True
    if choice != "auto" or nlp.vocab.vectors.shape[0] > 0:
        return False
    return n_tokens(nlp, texts) >= min_tokens


def prepare_vectors(
    nlp: Language,
    texts: Iterable[str],
    choice: str,
    *,
    folder: str | Path | None = None,
    settings: FloretSettings = FloretSettings(),
    on_progress: VectorsProgress | None = None,
) -> PoolVectors | None:
    """Put the vectors ``choice`` asks for into ``nlp``: floret vectors of the
    pool's ``texts`` (see :func:`wants_pool_vectors`; cached in ``folder``),
    else the base's own are kept as they are (with "none" a new ner doesn't
    read them: ``build_ner(static_vectors=False)``). Returns the pool vectors
    when trained or read from the cache."""
    texts = list(texts)
    if not wants_pool_vectors(choice, nlp, texts):
        return None
    found = pool_vectors(
        nlp, texts, folder=folder, settings=settings, on_progress=on_progress
    )
    set_vectors(nlp, found.vectors)
    return found
