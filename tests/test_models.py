import random

import numpy as np
import pytest

from spacy_al.checkpoints import load_updater, save_updater
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.scoring import BALDScorer
from spacy_al.textcat.targets import TextcatTarget
from spacy_al.updater import Committee, Updater

LABELS = ["SPORTS", "POLITICS", "TECH"]
TRAIN = [
    ("The striker scored twice in the final", "SPORTS"),
    ("A late goal won the cup for the visitors", "SPORTS"),
    ("Parliament passed the budget after a long debate", "POLITICS"),
    ("The senator resigned over the election scandal", "POLITICS"),
    ("The new phone ships with a faster chip", "TECH"),
    ("Developers released a patch for the browser bug", "TECH"),
]


def gold(text, label, i):
    return TextcatTarget(text, i, {x: float(x == label) for x in LABELS}, {}, True)


@pytest.fixture
def targets():
    return [gold(text, label, i) for i, (text, label) in enumerate(TRAIN)]


def test_models_updater_overfits_and_survives_save_and_reload(targets, tmp_path):
    updater = Updater(TextcatModel(build_textcat(LABELS)), seed=0)
    losses = [updater.update(targets).loss for _ in range(30)]
    assert losses[-1] < losses[0] / 5
    served, version = updater.serving()
    assert version == 30
    probs = served.predict_texts([text for text, _ in TRAIN])
    predicted = [served.labels[i] for i in probs.argmax(1)]
    assert predicted == [label for _, label in TRAIN]
    save_updater(updater, tmp_path / "ckpt")
    resumed = load_updater(tmp_path / "ckpt")
    assert resumed.version == 30
    again = resumed.serving()[0].predict_texts([text for text, _ in TRAIN])
    np.testing.assert_allclose(again, probs, atol=1e-6)
    # The version continues after a restart.
    assert resumed.update(targets[:2]).version == 31


def test_models_reject_trains_only_the_rejected_label():
    model = TextcatModel(build_textcat(LABELS))
    updater = Updater(model, seed=0, replay=0)
    text = "An article about something"
    reject = TextcatTarget(text, 1, {"SPORTS": 0.0}, {}, False)
    before = model.predict_texts([text])[0]
    for _ in range(20):
        updater.update([reject])
    after = updater.serving()[0].predict_texts([text])[0]
    assert after[0] < before[0] / 2  # "not SPORTS" was learnt
    # ... and it didn't invent a gold label: the other two stay balanced.
    assert abs(after[1] - after[2]) < 0.1


def test_models_serving_snapshot_is_not_changed_by_training(targets):
    updater = Updater(TextcatModel(build_textcat(LABELS)), seed=0)
    updater.update(targets)
    old, old_version = updater.serving()
    before = old.predict_texts(["The striker scored"])
    for _ in range(10):
        updater.update(targets)
    np.testing.assert_array_equal(old.predict_texts(["The striker scored"]), before)
    new, version = updater.serving()
    assert version == old_version + 10
    assert not np.allclose(new.predict_texts(["The striker scored"]), before)


def test_models_retrain_from_scratch_learns_everything(targets):
    updater = Updater(TextcatModel(build_textcat(LABELS)), retrain_epochs=20)
    stats = updater.retrain(targets)
    assert stats.retrained and updater.version == 1
    probs = updater.serving()[0].predict_texts([t.text for t in targets])
    assert [LABELS[i] for i in probs.argmax(1)] == [label for _, label in TRAIN]


def test_models_committee_members_differ_by_bootstrap(targets):
    committee = Committee.build(TextcatModel(build_textcat(LABELS)), size=3, seed=1)
    for _ in range(3):
        committee.update(targets)
    served, version = committee.serving()
    members = served.members
    assert version == 3 and len(members) == 3
    probs = np.stack([m.predict_texts(["A chip for the cup final"]) for m in members])
    assert np.ptp(probs[:, 0, :], axis=0).max() > 1e-4
    # The committee answers like one model: the mean of its members.
    mean = served.predict_texts(["A chip for the cup final"])
    np.testing.assert_allclose(mean, probs.mean(axis=0), rtol=1e-6)


def test_models_bald_needs_dropout(targets):
    bow = TextcatModel(build_textcat(LABELS))
    docs = bow.make_docs(["The striker scored"])
    with pytest.raises(ValueError, match="E404"):
        BALDScorer()(bow, docs)
    ensemble = TextcatModel(build_textcat(LABELS, architecture="ensemble"))
    updater = Updater(ensemble, learn_rate=0.002)
    for _ in range(3):
        updater.update(targets)
    scores = BALDScorer(n_samples=8)(updater.serving()[0], docs)
    assert scores.scores.shape == (1,) and scores.scores[0] > 0
    np.testing.assert_allclose(scores.probs.sum(1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"labels": ["ONLY"], "exclusive": True}, "E305"),
        ({"labels": LABELS, "architecture": "transformer"}, "E301"),
        ({"labels": LABELS, "base": "no_such_pipeline_xyz"}, "E303"),
        ({"labels": []}, "E304"),
    ],
)
def test_models_build_errors_say_what_to_do(kwargs, code):
    with pytest.raises(ValueError, match=code):
        build_textcat(**kwargs)


def test_models_single_label_multilabel_works():
    model = TextcatModel(build_textcat(["SPAM"], exclusive=False))
    assert model.labels == ("SPAM",) and not model.exclusive
    assert model.predict_texts(["win a prize"]).shape == (1, 1)


def test_models_update_schedule_gives_more_steps_early_then_tapers(targets):
    updater = Updater(TextcatModel(build_textcat(LABELS)), seed=0)
    steps = [updater.steps_for(n) for n in (10, 30, 45, 60, 100, 150, 500, 5000)]
    assert steps[0] == updater.max_update_steps == 10
    assert steps == sorted(steps, reverse=True)  # never more steps for more labels
    assert steps[-3:] == [updater.update_steps] * 3 == [3, 3, 3]
    assert Updater(updater.model, taper=0).steps_for(10) == 3  # the taper is off
    # An update really takes those steps: each replays the (5) earlier targets.
    updater.update(targets[:5])
    assert updater.update(targets[5:]).n_replayed == 5 * updater.steps_for(6)


def test_models_balance_weights_favour_the_rare_class():
    labels = ["ham", "spam"]
    model = TextcatModel(build_textcat(labels))
    known = [
        TextcatTarget(
            f"text {i}", i, {"ham": float(i >= 2), "spam": float(i < 2)}, {}, True
        )
        for i in range(20)
    ]
    reject = TextcatTarget("a reject", 99, {"spam": 0.0}, {}, False)
    weights = model.balance_weights([known[0], known[10], reject], known, power=1.0)
    # 2 spam and 18 ham: spam weighs 20 / (2 * 2) = 5, ham 20 / (2 * 18).
    np.testing.assert_allclose(weights, [5.0, 20 / 36, 1.0], rtol=1e-5)
    half = model.balance_weights([known[0]], known, power=0.5)
    np.testing.assert_allclose(half, [5.0**0.5], rtol=1e-5)
    assert model.balance_weights([known[0]], known, power=0.0) is None
    multilabel = TextcatModel(build_textcat(["SPAM"], exclusive=False))
    assert multilabel.balance_weights([reject], [reject], power=1.0) is None


def _toy_spam(n: int, n_spam: int, rng) -> list[tuple[str, str]]:
    """Texts of 8 words: 6 of 60 filler words, then 2 more fillers (ham) or 2 of
    5 spam words (spam)."""
    ham_words = [f"word{i}" for i in range(60)]
    spam_words = [f"prize{i}" for i in range(5)]
    out = []
    for i in range(n):
        extra = rng.sample(spam_words if i < n_spam else ham_words, 2)
        words = rng.sample(ham_words, 6) + extra
        rng.shuffle(words)
        out.append((" ".join(words), "spam" if i < n_spam else "ham"))
    rng.shuffle(out)
    return out


def _toy_spam_f1(seed: int, **updater_kwargs) -> float:
    """F1 (spam) on 200 unseen texts after 50 labels, 10% spam: online updates
    on a seed set of 20, then on three batches of 10, as the loop does."""
    rng = random.Random(seed)
    labels = ["ham", "spam"]
    train, test = _toy_spam(50, 5, rng), _toy_spam(200, 20, rng)
    targets = [
        TextcatTarget(text, i, {x: float(x == label) for x in labels}, {}, True)
        for i, (text, label) in enumerate(train)
    ]
    model = TextcatModel(build_textcat(labels))
    updater = Updater(model, seed=seed, snapshots=False, **updater_kwargs)
    for i in (0, 20, 30, 40):
        updater.update(targets[i : i + 10] if i else targets[:20])
    probs = updater.serving()[0].predict_texts([text for text, _ in test])
    predicted = probs[:, 1] > 0.5
    gold = np.array([label == "spam" for _, label in test])
    return float(2 * (predicted & gold).sum() / (predicted.sum() + gold.sum()))


def test_models_learn_a_rare_class_from_few_labels():
    # The default taper against plain 3-step updates; then class weights on top.
    old = [_toy_spam_f1(seed, taper=0) for seed in range(4)]
    new = [_toy_spam_f1(seed) for seed in range(4)]
    assert all(n > o for n, o in zip(new, old, strict=True)), (new, old)
    assert np.mean(new) >= 0.25 and np.mean(new) > np.mean(old) + 0.2, (new, old)
    weighted = [_toy_spam_f1(seed, class_weight=0.5) for seed in range(4)]
    assert np.mean(weighted) > np.mean(new), (weighted, new)


def test_models_updater_keeps_weight_averages_only_when_served(targets):
    plain = Updater(TextcatModel(build_textcat(LABELS)), seed=0)
    plain.update(targets)
    assert not plain.optimizer.averages  # not kept: they cost more than the step
    averaged = Updater(TextcatModel(build_textcat(LABELS)), use_averages=True)
    averaged.update(targets)
    assert averaged.optimizer.averages
