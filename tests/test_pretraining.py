"""A tok2vec pretrained on the pool (spacy pretrain's characters objective):
cached by texts and settings, the ner starts from it, and spaCy's own
initialization (spacy train) loads the same weights from the saved config."""

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config
from thinc.api import Adam

from spacy_al.ner.model import NERModel, build_ner
from spacy_al.ner.targets import NERTarget
from spacy_al.pretraining import (
    TOK2VEC,
    PretrainSettings,
    pool_tok2vec,
    pretrain_tok2vec,
    wants_pretrain,
)

TEXTS = [
    f"{name} flew to {city} on {day} ."
    for name in ("Anna", "Boris", "Chen", "Dana")
    for city in ("Paris", "Oslo", "Lima", "Kyiv", "Quito")
    for day in ("Monday", "Friday")
]
ONE_EPOCH = PretrainSettings(epochs=1, batch_words=100)


def test_pretraining_characters_objective_learns_from_raw_text():
    nlp = spacy.blank("en")
    result = pretrain_tok2vec(nlp, TEXTS, settings=PretrainSettings(epochs=4))
    assert result.epochs == 4 and result.n_texts == len(TEXTS)
    assert result.n_words == 7 * len(TEXTS)
    # The loss per word falls: the tok2vec learns to predict the words' ends.
    assert result.losses[-1] < result.losses[0]


def test_pretraining_is_cached_by_texts_and_settings(tmp_path):
    nlp = spacy.blank("en")
    stages = []
    first = pool_tok2vec(
        nlp,
        TEXTS,
        folder=tmp_path,
        settings=ONE_EPOCH,
        on_progress=lambda stage, done: stages.append((stage, done)),
    )
    assert not first.cached and first.path.is_file()
    assert first.path.parent.parent == tmp_path / "pretrain"
    assert ("pretrain", 1.0) in stages and first.info["epochs"] == 1
    again = pool_tok2vec(nlp, TEXTS, folder=tmp_path, settings=ONE_EPOCH)
    assert again.cached and again.path == first.path
    assert again.weights == first.weights
    other = pool_tok2vec(nlp, TEXTS[:-1], folder=tmp_path, settings=ONE_EPOCH)
    assert not other.cached and other.path != first.path
    longer = PretrainSettings(epochs=2, batch_words=100)
    assert pool_tok2vec(nlp, TEXTS, folder=tmp_path, settings=longer).path not in (
        first.path,
        other.path,
    )


def test_pretraining_ner_listens_to_the_pretrained_tok2vec(tmp_path):
    found = pool_tok2vec(spacy.blank("en"), TEXTS, folder=tmp_path, settings=ONE_EPOCH)
    nlp = build_ner(["GPE"], base="blank:en", factory="ner", tok2vec=found, seed=0)
    assert nlp.pipe_names == [TOK2VEC, "ner"]
    assert nlp.get_pipe(TOK2VEC).model.to_bytes() == found.weights
    tok2vec_cfg = nlp.config["components"]["ner"]["model"]["tok2vec"]
    assert tok2vec_cfg["@architectures"] == "spacy.Tok2VecListener.v1"
    model = NERModel(nlp, seed=0)
    # Updates train the pretrained tok2vec too (it isn't frozen).
    docs = model.make_docs(["Anna flew to Oslo on Monday ."])
    target = NERTarget(
        docs[0].text, 1, [{"start": 13, "end": 17, "label": "GPE"}], [], None, {}, True
    )
    sgd = Adam(0.001)
    for _ in range(3):
        model.update(docs, [target], sgd=sgd)
    assert nlp.get_pipe(TOK2VEC).model.to_bytes() != found.weights
    # The served copy and a reset one keep the listener working.
    assert model.snapshot().predict(docs) is not None
    reset = model.reset()
    assert reset.nlp.pipe_names == [TOK2VEC, "ner"]
    assert reset.nlp.get_pipe(TOK2VEC).model.to_bytes() == found.weights
    # Saved and loaded as spaCy loads any pipeline, it predicts the same.
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert [e.text for e in loaded("Anna flew to Oslo on Monday .").ents] == [
        e.text for e in nlp("Anna flew to Oslo on Monday .").ents
    ]


def test_pretraining_saved_config_initializes_from_the_same_weights(tmp_path):
    """What spacy train does first (init_nlp) loads init_tok2vec from the
    saved config: training the exported pipeline starts from the pretraining."""
    found = pool_tok2vec(spacy.blank("en"), TEXTS, folder=tmp_path, settings=ONE_EPOCH)
    nlp = build_ner(["GPE"], base="blank:en", factory="ner", tok2vec=found, seed=0)
    nlp.to_disk(tmp_path / "model")
    corpus = tmp_path / "train.spacy"
    doc = nlp.make_doc("Anna flew to Oslo on Monday .")
    doc.ents = [doc.char_span(13, 17, label="GPE")]
    DocBin(docs=[doc]).to_disk(corpus)
    config = load_config(
        tmp_path / "model" / "config.cfg",
        overrides={"paths.train": str(corpus), "paths.dev": str(corpus)},
        interpolate=False,
    )
    assert config["initialize"]["init_tok2vec"] == str(found.path.resolve())
    assert config["pretraining"]["component"] == TOK2VEC
    fresh = init_nlp(config)
    assert fresh.get_pipe(TOK2VEC).model.to_bytes() == found.weights


def test_pretraining_auto_wants_a_big_enough_pool_and_a_new_model():
    nlp = spacy.blank("en")
    assert not wants_pretrain("auto", nlp, TEXTS)  # 280 tokens: too few
    assert wants_pretrain("auto", nlp, TEXTS, min_tokens=100)
    assert wants_pretrain("pool", nlp, TEXTS)
    assert not wants_pretrain("none", nlp, TEXTS, min_tokens=1)
    trained = build_ner(["GPE"], base="blank:en", factory="ner", seed=0)
    assert not wants_pretrain("auto", trained, TEXTS, min_tokens=1)  # has a ner
    with pytest.raises(ValueError, match="E1232"):
        wants_pretrain("bert", nlp, TEXTS)
    with pytest.raises(ValueError, match="E1230"):
        pretrain_tok2vec(nlp, ["hi", "a b"], settings=ONE_EPOCH)


def test_pretraining_refuses_a_base_with_its_own_tok2vec_or_ner(tmp_path):
    found = pool_tok2vec(spacy.blank("en"), TEXTS, folder=tmp_path, settings=ONE_EPOCH)
    base = spacy.blank("en")
    base.add_pipe("tok2vec")
    with pytest.raises(ValueError, match="E1231"):
        build_ner(["GPE"], base=base, factory="ner", tok2vec=found)
    # A base with a trained ner keeps its own weights: pretrained ones are refused.
    trained = build_ner(["GPE"], base="blank:en", factory="ner", seed=0)
    with pytest.raises(ValueError, match="E1233"):
        build_ner(["GPE"], base=trained, tok2vec=found)
