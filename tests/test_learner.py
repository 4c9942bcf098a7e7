"""spacy_al.TextCatCharLinear.v1 (logistic regression on tf-idf of char
n-grams), .v2 (chars and words, a linear SVM: many labels) and .v3 (v2 with
the pool's LSA), refit on every answer; save, load and train as spaCy's
textcat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from spacy.training import Example

from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.textcat import learner
from spacy_al.textcat.learner import (
    ABSENT_BIAS,
    LINEAR,
    LINEAR_V2,
    LINEAR_V3,
    build_char_linear_classifier,
    build_char_word_linear_classifier,
    build_char_word_lsa_linear_classifier,
)
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.updater import Updater

LABELS = ["ham", "spam"]
TRAIN = [
    ("WIN a FREE prize now, txt WIN to 80082", "spam"),
    ("free entry to win cash, call 09061701461", "spam"),
    ("URGENT! claim your prize, reply STOP to end", "spam"),
    ("are we still on for lunch", "ham"),
    ("see you at the station later", "ham"),
    ("ok lar, i'm on the bus home", "ham"),
]


def _target(i: int, text: str, cats: dict[str, float]) -> TextcatTarget:
    return TextcatTarget(text, i, cats, {}, True)


def _gold(i: int, text: str, label: str, labels=LABELS) -> TextcatTarget:
    return _target(i, text, {x: float(x == label) for x in labels})


def _fitted(labels=LABELS, exclusive=True) -> TextcatModel:
    model = TextcatModel(
        build_textcat(labels, exclusive=exclusive, architecture="linear")
    )
    model.fit_idf(text for text, _ in TRAIN)
    model.fit([_gold(i, t, y) for i, (t, y) in enumerate(TRAIN)])
    return model


def test_learner_is_the_textcat_model_of_the_linear_arch():
    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    assert model.refits
    config = model.nlp.config["components"]["textcat"]["model"]
    assert config["@architectures"] == LINEAR
    assert config["C"] == 10  # chosen on the SMS dev split (BENCHMARKS.md)
    assert not TextcatModel(build_textcat(LABELS, architecture="bow")).refits


def test_learner_learns_from_six_labels():
    probs = _fitted().predict_texts(
        ["FREE cash prize, txt WIN now", "lunch at the station?"]
    )
    assert probs[0, 1] > 0.5 > probs[1, 1]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_learner_reject_among_exclusive_labels_teaches_only_that_label():
    labels = ["a", "b", "c"]
    model = TextcatModel(build_textcat(labels, architecture="linear"))
    model.fit_idf(["red apple", "green pear", "blue plum", "red cherry"])
    targets = [
        _gold(0, "red apple", "a", labels),
        _gold(1, "red cherry", "a", labels),
        _gold(2, "green pear", "b", labels),
        # "not c": nothing about a or b
        _target(3, "blue plum", {"c": 0.0}),
    ]
    model.fit(targets)
    W = model.thinc_model.get_param("W")
    b = model.thinc_model.get_param("b")
    # c is known only as negative: no weights, a low bias; a and b never saw "blue plum"
    assert not W[:, 2].any() and b[2] == -ABSENT_BIAS
    model_b = TextcatModel(build_textcat(labels, architecture="linear"))
    model_b.fit_idf(["red apple", "green pear", "blue plum", "red cherry"])
    model_b.fit(targets[:3])
    np.testing.assert_allclose(
        model.thinc_model.get_param("W")[:, :2],
        model_b.thinc_model.get_param("W")[:, :2],
    )


def test_learner_updater_refits_on_every_answer_and_on_retrain():
    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    model.fit_idf(text for text, _ in TRAIN)
    updater = Updater(model, snapshots=False)
    targets = [_gold(i, t, y) for i, (t, y) in enumerate(TRAIN)]
    updater.update(targets[:2] + targets[3:5])
    first = model.thinc_model.get_param("W").copy()
    updater.update(targets[2:3] + targets[5:])
    # the refit equals a fit on everything known (not steps on the new batch)
    reference = _fitted()
    np.testing.assert_allclose(
        model.thinc_model.get_param("W"),
        reference.thinc_model.get_param("W"),
        atol=1e-4,
    )
    assert not np.allclose(first, model.thinc_model.get_param("W"))
    # a restart without a checkpoint: the same learner, the same model
    restarted = Updater(TextcatModel(build_textcat(LABELS, architecture="linear")))
    restarted.model.fit_idf(text for text, _ in TRAIN)
    restarted.retrain(targets)
    np.testing.assert_allclose(
        restarted.model.thinc_model.get_param("W"),
        reference.thinc_model.get_param("W"),
        atol=1e-4,
    )


def test_learner_refit_budget_counts_its_own_cpu_time_not_waiting(monkeypatch):
    """A busy machine (the refit waits for a core) doesn't switch the learner to
    online steps: the budget counts the refit's CPU time, not the wall clock."""
    import time

    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    model.fit_idf(text for text, _ in TRAIN)
    fit = model.fit

    def waiting_fit(targets):
        time.sleep(0.3)  # waiting, as for a core other processes hold
        return fit(targets)

    monkeypatch.setattr(model, "fit", waiting_fit)
    updater = Updater(model, snapshots=False, refit_seconds=0.2)
    targets = [_gold(i, t, y) for i, (t, y) in enumerate(TRAIN)]
    updater.update(targets[:2] + targets[3:5])
    updater.update(targets[2:3] + targets[5:])
    np.testing.assert_allclose(  # refit on everything, no online steps
        model.thinc_model.get_param("W"),
        _fitted().thinc_model.get_param("W"),
        atol=1e-4,
    )


def test_learner_shares_one_feature_slice_across_exclusive_labels():
    """Fifty labels known on the same rows are each solved on the same slice:
    the same weights as solving one label alone."""
    labels = ["a", "b", "c"]
    texts = ["red apple", "green pear", "blue plum", "red cherry", "green lime"]
    gold = ["a", "b", "c", "a", "b"]
    model = TextcatModel(build_textcat(labels, architecture="linear"))
    model.fit_idf(texts)
    model.fit(
        [
            _gold(i, t, y, labels)
            for i, (t, y) in enumerate(zip(texts, gold, strict=True))
        ]
    )
    alone = TextcatModel(build_textcat(labels, architecture="linear"))
    alone.fit_idf(texts)
    # only "b" known: b's binary model on the same rows
    alone.fit(
        [
            _target(i, t, {"b": float(y == "b")})
            for i, (t, y) in enumerate(zip(texts, gold, strict=True))
        ]
    )
    np.testing.assert_allclose(
        model.thinc_model.get_param("W")[:, 1],
        alone.thinc_model.get_param("W")[:, 1],
        atol=1e-6,
    )


def test_learner_takes_its_idf_from_the_pool():
    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    idf = model.thinc_model.get_param("idf")
    assert np.all(idf == 1.0)
    pool = Pool([{"text": t} for t, _ in TRAIN])
    ActiveLoop(pool, Updater(model), spec=StrategySpec.parse("margin"))
    assert model.thinc_model.get_param("idf").max() > 1.0


def _cats_after_spacy_load(model, path: Path, texts, labels) -> list[list[float]]:
    """``model``'s pipeline saved to ``path``, loaded by ``spacy.load`` in a fresh
    interpreter whose script never imports spacy_al (spaCy finds the
    architecture through its entry point): its cats for ``texts``, in
    ``labels`` order. The saved pipeline holds no pickle."""
    model.nlp.to_disk(path)
    assert not list(path.rglob("*.pkl"))
    script = (
        "import json, spacy\n"
        f"nlp = spacy.load({str(path)!r})\n"
        f"for doc in nlp.pipe({list(texts)!r}):\n"
        f"    print(json.dumps([doc.cats[x] for x in {list(labels)!r}]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path.parent,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("many_labels", [False, True])
def test_learner_saved_pipeline_loads_without_importing_spacy_al(
    tmp_path: Path, monkeypatch, many_labels
):
    if many_labels:  # two labels count as many: v3
        monkeypatch.setattr(learner, "MANY_LABELS", 2)
    model = _fitted()
    arch = model.nlp.config["components"]["textcat"]["model"]["@architectures"]
    assert arch == (LINEAR_V3 if many_labels else LINEAR)
    texts = ["WIN a FREE prize"]
    got = _cats_after_spacy_load(model, tmp_path / "model", texts, ["ham", "spam"])
    np.testing.assert_allclose(got, model.predict_texts(texts), rtol=1e-5)


@pytest.mark.parametrize("exclusive", [True, False])
def test_learner_trains_by_gradient_as_spacy_train_does(exclusive):
    nlp = build_textcat(LABELS, exclusive=exclusive, architecture="linear")
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {x: float(x == y) for x in LABELS}})
        for t, y in TRAIN
    ]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.05  # features are L2-normalised: small per column
    losses: list[float] = []
    for _ in range(30):
        out = nlp.update(examples, sgd=optimizer)
        losses.append(sum(out.values()))
    assert losses[-1] < losses[0] / 2
    assert nlp("FREE prize, txt WIN").cats["spam"] > 0.5


@pytest.mark.parametrize(
    "kwargs", [{"n_features": 0}, {"min_n": 3, "max_n": 2}, {"C": 0.0}]
)
def test_learner_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError, match="E440"):
        build_char_linear_classifier(True, **kwargs)
    with pytest.raises(ValueError, match="E448"):
        build_char_word_linear_classifier(True, loss="hinge")
    with pytest.raises(ValueError, match="E449"):
        build_char_word_lsa_linear_classifier(True, lsa_share=1.0)


def test_learner_checkpoint_restores_weights_and_pool_idf(tmp_path: Path):
    from spacy_al.checkpoints import load_updater, save_updater

    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    model.fit_idf(text for text, _ in TRAIN)
    updater = Updater(model)
    updater.update([_gold(i, t, y) for i, (t, y) in enumerate(TRAIN)])
    save_updater(updater, tmp_path / "ckpt")
    restored = load_updater(tmp_path / "ckpt")
    assert restored.model.refits
    np.testing.assert_allclose(
        restored.serving()[0].predict_texts(["FREE prize"]),
        updater.serving()[0].predict_texts(["FREE prize"]),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        restored.model.thinc_model.get_param("idf"),
        model.thinc_model.get_param("idf"),
    )


def test_learner_many_labels_refit_small_texts_model_on_chars_and_words():
    """From MANY_LABELS (3) labels on, --arch linear is v3: each label's refit is a
    linear SVM (squared hinge, C = 1, no class weights) on char n-grams and
    words, each half of the features normalised on its own, with the pool's
    LSA vector beside them (a third of each row's squared norm)."""
    labels = [f"L{i}" for i in range(max(learner.MANY_LABELS, 5))]
    texts = [f"question {i} about topic {i % 3}" for i in range(12)] + ["ok !!"]
    gold = [labels[i % 3] for i in range(12)] + [labels[3]]
    model = TextcatModel(build_textcat(labels, architecture="linear"))
    config = model.nlp.config["components"]["textcat"]["model"]
    assert config["@architectures"] == LINEAR_V3
    assert (config["loss"], config["C"], config["balance"]) == ("squared_hinge", 1, 0)
    model.fit_idf(texts)
    X = learner.featurize(model.thinc_model, texts).toarray()
    n_features = model.thinc_model.attrs["n_features"]
    half, share = n_features // 2, config["lsa_share"]
    each = ((1 - share) / 2) ** 0.5
    np.testing.assert_allclose(np.linalg.norm(X[:3, :half], axis=1), each, 1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(X[:3, half:n_features], axis=1), each, 1e-5
    )
    np.testing.assert_allclose(
        np.linalg.norm(X[:3, n_features:], axis=1), share**0.5, 1e-5
    )
    pairs = enumerate(zip(texts, gold, strict=True))
    model.fit([_gold(i, t, y, labels) for i, (t, y) in pairs])
    from sklearn.svm import LinearSVC

    y = np.array([g == labels[1] for g in gold])
    svm = LinearSVC(C=1.0, tol=1e-4, random_state=0).fit(X, y)
    W = model.thinc_model.get_param("W")
    np.testing.assert_allclose(W[:, 1], svm.coef_[0], atol=1e-4)
    assert not W[:, 4].any()  # never seen: no weights
    probs = model.predict_texts(["question 5 about topic 1"])[0]
    assert probs.argmax() == 1


def test_learner_reads_every_digit_as_zero_for_two_labels():
    """--arch linear for two labels reads digits as 0 (chosen on the SMS spam
    dev split): phone numbers and prices of one shape share their n-grams, so a
    spam text's number teaches about every other; a pipeline saved before the
    option (no ``digits`` in its config) keeps reading digits as they are."""
    model = TextcatModel(build_textcat(LABELS, architecture="linear"))
    assert model.nlp.config["components"]["textcat"]["model"]["digits"] is True
    texts = ["call 09061701461 now for £1000", "call 08712300220 now for £2500"]
    X = learner.featurize(model.thinc_model, texts).toarray()
    np.testing.assert_array_equal(X[0], X[1])
    assert learner.digits_as_zero("Txt 87121, WIN £250") == "txt 00000, win £000"
    old = build_char_linear_classifier(True, nO=2)
    old.initialize()
    X = learner.featurize(old, texts).toarray()
    assert np.abs(X[0] - X[1]).sum() > 0
    many = TextcatModel(build_textcat(["a", "b", "c"], architecture="linear"))
    assert many.nlp.config["components"]["textcat"]["model"]["digits"] is False


def _linear_pipeline(labels, architecture, **settings):
    """A textcat pipeline with ``architecture``'s defaults (and ``settings``)."""
    import spacy

    nlp = spacy.blank("en")
    model = {"@architectures": architecture, "exclusive_classes": True, **settings}
    textcat = nlp.add_pipe("textcat", config={"model": model})
    for label in labels:
        textcat.add_label(label)
    examples = [
        Example.from_dict(nlp.make_doc(x), {"cats": {y: float(x == y) for y in labels}})
        for x in labels
    ]
    textcat.initialize(lambda: examples, nlp=nlp, labels=labels)
    return nlp


# A pool where "soccer" shares texts with "goal", and "oven" with "dough"
# (no two of these four words share a character n-gram).
LSA_POOL = [
    "soccer goal match",
    "soccer goal team",
    "soccer team league",
    "goal match league",
    "oven dough bread",
    "oven dough cake",
    "oven bread flour",
    "dough cake flour",
] * 3


def _lsa_fitted(architecture):
    labels = ["FOOD", "SPORT"]
    settings = {"lsa_dims": 4} if architecture == LINEAR_V3 else {}
    model = TextcatModel(_linear_pipeline(labels, architecture, **settings))
    model.fit_idf(LSA_POOL)
    model.fit([_gold(0, "goal", "SPORT", labels), _gold(1, "dough", "FOOD", labels)])
    return model


def test_learner_v3_learns_from_words_that_share_pool_texts_with_the_answers():
    """v3 appends each text's LSA vector (a truncated SVD of the pool's
    tf-idf rows): a text none of whose n-grams an answer has (``soccer``,
    ``oven``) is placed by the pool's texts it shares words with; v2 gives
    every such text the same scores."""
    v3 = _lsa_fitted(LINEAR_V3).predict_texts(["soccer", "oven"])
    assert v3[0].argmax() == 1 and v3[1].argmax() == 0
    v2 = _lsa_fitted(LINEAR_V2).predict_texts(["soccer", "oven"])
    np.testing.assert_allclose(v2[0], v2[1], atol=1e-6)


def test_learner_v3_saved_pipeline_loads_and_predicts_the_same(tmp_path: Path):
    """A saved v3 pipeline (the pool's LSA components are parameters) loads
    with spacy.load without importing spacy_al and predicts what it did."""
    model = _lsa_fitted(LINEAR_V3)
    texts = ["soccer", "oven bread"]
    got = _cats_after_spacy_load(model, tmp_path / "model", texts, ["FOOD", "SPORT"])
    np.testing.assert_allclose(got, model.predict_texts(texts), rtol=1e-5)
