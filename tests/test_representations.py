import pytest
import spacy

from spacy_al.ner.model import NERModel, build_ner
from spacy_al.representations import (
    FloretSettings,
    epochs_for,
    pool_vectors,
    prepare_vectors,
    train_floret,
    wants_pool_vectors,
)

TEXTS = [
    f"{name} flew to {city} on {day} ."
    for name in ("Anna", "Boris", "Chen", "Dana")
    for city in ("Paris", "Oslo", "Lima", "Kyiv", "Quito")
    for day in ("Monday", "Friday")
]
SMALL = FloretSettings(dim=16, bucket=2000, epochs=5, min_count=1)


def test_representations_floret_gives_every_word_a_vector():
    nlp = spacy.blank("en")
    vectors = train_floret(nlp, TEXTS, settings=SMALL)
    assert vectors.mode == "floret" and vectors.shape == (2000, 16)
    nlp.vocab.vectors = vectors
    # A word never seen in the pool still has a vector from its character n-grams.
    doc = nlp("Osloville flew to Parisian")
    assert all(token.has_vector for token in doc)
    assert doc[0].vector.any() and not (doc[0].vector == doc[3].vector).all()


def test_representations_pool_vectors_are_cached_by_texts_and_settings(tmp_path):
    nlp = spacy.blank("en")
    stages = []
    first = pool_vectors(
        nlp,
        TEXTS,
        folder=tmp_path,
        settings=SMALL,
        on_progress=lambda s, f: stages.append(s),
    )
    assert not first.cached and first.path.parent.parent == tmp_path
    assert "train" in stages
    again = pool_vectors(nlp, TEXTS, folder=tmp_path, settings=SMALL)
    assert again.cached and again.path == first.path
    assert (again.vectors.data == first.vectors.data).all()
    other = pool_vectors(nlp, TEXTS[:-1], folder=tmp_path, settings=SMALL)
    assert not other.cached and other.path != first.path


def test_representations_auto_wants_a_big_enough_pool_without_base_vectors():
    nlp = spacy.blank("en")
    assert not wants_pool_vectors("auto", nlp, TEXTS)  # 280 tokens: too few
    assert wants_pool_vectors("auto", nlp, TEXTS, min_tokens=100)
    assert wants_pool_vectors("pool", nlp, TEXTS)
    assert not wants_pool_vectors("none", nlp, TEXTS, min_tokens=1)
    nlp.vocab.vectors = train_floret(nlp, TEXTS, settings=SMALL)
    assert not wants_pool_vectors("auto", nlp, TEXTS, min_tokens=1)  # the base's
    with pytest.raises(ValueError, match="E548"):
        wants_pool_vectors("glove", nlp, TEXTS)
    with pytest.raises(ValueError, match="E546"):
        train_floret(nlp, [], settings=SMALL)


def test_representations_small_pools_get_more_epochs():
    assert epochs_for(62_730, 3_000_000) == 48
    assert epochs_for(10, 3_000_000) == 50 and epochs_for(10**8, 3_000_000) == 5


def test_representations_ner_reads_the_pool_vectors(tmp_path):
    nlp = spacy.blank("en")
    found = prepare_vectors(nlp, TEXTS, "pool", folder=tmp_path, settings=SMALL)
    assert found is not None and nlp.vocab.vectors.shape == (2000, 16)
    model = NERModel(build_ner(["GPE"], base=nlp, seed=0))
    tok2vec_cfg = model.nlp.config["components"]["ner"]["model"]["tok2vec"]
    assert tok2vec_cfg["pretrained_vectors"] is True
    # The vectors change what the ner sees: zeroing them changes its tok2vec.
    tok2vec = model.ner.model.get_ref("tok2vec")
    doc = model.make_doc({"text": "Anna flew to Oslo on Monday ."})
    before = tok2vec.predict([doc])[0].copy()
    model.nlp.vocab.vectors.data[:] = 0
    assert not (tok2vec.predict([doc])[0] == before).all()
    # --vectors none keeps the base's vectors out of a new ner.
    plain = build_ner(["GPE"], base=spacy.blank("en"), static_vectors=False, seed=0)
    assert (
        plain.config["components"]["ner"]["model"]["tok2vec"]["pretrained_vectors"]
        is None
    )
