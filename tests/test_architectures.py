"""spacy_al.TextCatBOW.v1: spaCy's bag-of-words over lower-cased uni- and bigrams."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.training import Example

from spacy_al.textcat.architectures import BOW, build_bow_text_classifier
from spacy_al.textcat.model import TextcatModel, build_textcat

LABELS = ["ham", "spam"]
TRAIN = [
    ("WIN a FREE prize now", "spam"),
    ("free entry to win cash", "spam"),
    ("are we still on for lunch", "ham"),
    ("see you at the station later", "ham"),
]


def _trained_nlp(seed: int = 0):
    nlp = build_textcat(LABELS)
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {x: float(x == y) for x in LABELS}}
        )
        for text, y in TRAIN
    ]
    spacy.util.fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_textcat_is_built_on_the_lowercase_bigram_bow():
    nlp = build_textcat(LABELS)
    config = nlp.config["components"]["textcat"]["model"]
    assert config["@architectures"] == BOW
    assert config["attr"] == "LOWER" and config["ngram_size"] == 2


def test_bow_features_ignore_case_and_see_word_pairs():
    nlp = _trained_nlp()
    model = TextcatModel(nlp)
    probs = model.predict_texts(["FREE PRIZE now", "free prize NOW", "free now prize"])
    # Case doesn't change a feature: the same probabilities.
    np.testing.assert_allclose(probs[0], probs[1], rtol=1e-6)
    # Word order does, through the bigrams.
    assert not np.allclose(probs[0], probs[2])
    spam = model.predict_texts(["win a free prize"])[0][LABELS.index("spam")]
    assert spam > 0.5


def _trained_with(model: dict) -> TextcatModel:
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": {"exclusive_classes": True, **model}})
    for label in LABELS:
        nlp.get_pipe("textcat").add_label(label)
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {x: float(x == y) for x in LABELS}})
        for t, y in TRAIN
    ]
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    return TextcatModel(nlp)


def test_orth_unigrams_are_spacys_bow():
    # With attr ORTH and unigrams it learns and predicts as spaCy's TextCatBOW.v3.
    ours = _trained_with({"@architectures": BOW, "attr": "ORTH", "ngram_size": 1})
    spacys = _trained_with(
        {
            "@architectures": "spacy.TextCatBOW.v3",
            "ngram_size": 1,
            "no_output_layer": False,
        }
    )
    texts = ["WIN a FREE PRIZE", "win a free prize", "lunch at the station"]
    np.testing.assert_allclose(
        ours.predict_texts(texts), spacys.predict_texts(texts), rtol=1e-6
    )
    probs = ours.predict_texts(["PRIZE", "prize"])  # case matters again
    assert not np.allclose(probs[0], probs[1])


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"attr": "CASELESS"}, "E316"),
        ({"attr": ""}, "E316"),
        ({"ngram_size": 0}, "E317"),
        ({"length": 0}, "E317"),
    ],
)
def test_bow_refuses_bad_settings(kwargs, code):
    with pytest.raises(ValueError, match=code):
        build_bow_text_classifier(True, **kwargs)


def test_a_saved_pipeline_loads_without_the_user_importing_spacy_al(tmp_path: Path):
    # spaCy finds the architecture through the entry point (pyproject.toml).
    nlp = _trained_nlp()
    nlp.to_disk(tmp_path / "model")
    expected = TextcatModel(nlp).predict_texts(["WIN a FREE prize"])[0]
    script = (
        "import sys, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'model')!r})\n"
        "cats = nlp('WIN a FREE prize').cats\n"
        "print(cats['ham'], cats['spam'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: spacy_al is found as installed
    )
    assert out.returncode == 0, out.stderr
    got = [float(x) for x in out.stdout.split()]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
