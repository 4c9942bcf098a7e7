import pytest
import spacy
from thinc.api import Adam

from spacy_al.checkpoints import load_updater, save_updater
from spacy_al.corpus import set_hashes
from spacy_al.ner.model import NERModel, build_ner, gold_docs
from spacy_al.ner.targets import NERTarget, answers_to_ner_targets
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.updater import Updater

LABELS = ["GPE", "PERSON"]
SEEN = ["Paris", "London", "Berlin", "Tokyo", "Rome", "Madrid"]
UNSEEN = ["Vienna", "Oslo"]
TEMPLATES = [
    "I visited {} today .",
    "We flew to {} last week .",
    "{} is lovely in spring .",
]


def teach_answer(city: str, template: str, answer: str) -> dict:
    text = template.format(city)
    start = text.index(city)
    span = {"start": start, "end": start + len(city), "label": "GPE"}
    return set_hashes(
        {"text": text, "spans": [span], "answer": answer, "_view_id": "ner"}
    )


def p_gpe(model: NERModel, city: str, template: str = TEMPLATES[0]) -> float:
    """The model's probability that ``city`` is a GPE in the template."""
    text = template.format(city)
    doc = model.make_doc({"text": text})
    (scores,) = model.score([doc])
    i = next(t.i for t in doc if t.text == city)
    return sum(
        p for s, e, label, p in scores.entities if (s, e, label) == (i, i + 1, "GPE")
    )


def train(model: NERModel, targets: list[NERTarget], steps: int = 15) -> list[float]:
    optimizer = Adam(0.001)
    docs = [model.target_doc(t) for t in targets]
    return [model.update(docs, targets, sgd=optimizer) for _ in range(steps)]


def accepted_targets() -> list[NERTarget]:
    answers = [teach_answer(c, t, "accept") for c in SEEN for t in TEMPLATES]
    return answers_to_ner_targets(answers, LABELS)


@pytest.fixture
def model() -> NERModel:
    return NERModel(build_ner(LABELS, seed=0))


@pytest.fixture(scope="module")
def taught() -> NERModel:
    """A model taught, by accepts alone, that the template slot holds a GPE."""
    model = NERModel(build_ner(LABELS, seed=0))
    train(model, accepted_targets())
    return model


def test_ner_models_build_fixes_the_labels_and_the_reject_key(model):
    assert model.labels == ("GPE", "PERSON")
    assert model.component == "ner" and model.beam_width == 4
    assert model.incorrect_spans_key == "incorrect_spans"
    assert model.nlp.config["components"]["ner"]["factory"] == "beam_ner"


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"labels": []}, "E535"),
        ({"labels": LABELS, "factory": "crf"}, "E533"),
        ({"labels": LABELS, "beam_width": 0}, "E534"),
        ({"labels": LABELS, "base": "blank:zz-not-a-language"}, "E302"),
    ],
)
def test_ner_models_build_refuses_bad_settings(kwargs, code):
    with pytest.raises(ValueError, match=code):
        build_ner(**kwargs)


def test_ner_models_needs_an_entity_recognizer():
    with pytest.raises(ValueError, match="E532"):
        NERModel(build_textcat(["a", "b"]))


def test_ner_models_learns_from_accept_only_answers(model):
    targets = accepted_targets()
    assert all(not t.is_gold and not t.rejected for t in targets)
    before = [p_gpe(model, city) for city in SEEN + UNSEEN]
    train(model, targets)
    after = [p_gpe(model, city) for city in SEEN + UNSEEN]
    assert max(before) < 0.5
    # The accepted cities, and cities never seen, in the same slot.
    assert min(after) > 0.9


def test_ner_models_learns_from_reject_only_answers(taught):
    model = taught.snapshot()
    assert p_gpe(model, "Paris") > 0.9
    answers = [teach_answer(c, t, "reject") for c in SEEN[:3] for t in TEMPLATES]
    targets = answers_to_ner_targets(answers, LABELS)
    assert all(not t.spans and t.rejected for t in targets)
    train(model, targets)
    assert max(p_gpe(model, c, t) for c in SEEN[:3] for t in TEMPLATES) < 0.1


def test_ner_models_without_the_reject_key_rejects_teach_nothing(taught):
    # The control for the test above: spaCy's ner learns "not this span" only
    # through its incorrect_spans_key.
    model = taught.snapshot()
    model.incorrect_spans_key = None
    answers = [teach_answer(c, t, "reject") for c in SEEN[:3] for t in TEMPLATES]
    losses = train(model, answers_to_ner_targets(answers, LABELS), steps=3)
    assert losses == [0.0, 0.0, 0.0]
    assert p_gpe(model, "Paris") > 0.9


def test_ner_models_snapshot_serves_while_the_original_trains(model):
    snapshot = model.snapshot()
    train(model, accepted_targets())
    assert p_gpe(model, "Paris") > 0.9
    assert p_gpe(snapshot, "Paris") < 0.5
    assert snapshot.nlp is not model.nlp and snapshot.labels == model.labels


def test_ner_models_reset_returns_to_the_model_as_built(taught):
    fresh = taught.reset()
    assert fresh.labels == taught.labels
    assert p_gpe(taught, "Paris") > 0.9
    assert p_gpe(fresh, "Paris") < 0.5


def test_ner_models_refuse_a_label_they_dont_know(model):
    target = NERTarget("I met Ann .", 1, [{"start": 6, "end": 9, "label": "ORG"}])
    with pytest.raises(ValueError, match=r"E530.*'ORG'"):
        model.update([model.target_doc(target)], [target], sgd=Adam(0.001))
    # Nothing was added: the label set stays fixed while the model is shared.
    assert model.ner.labels == ("GPE", "PERSON")


def test_ner_models_evaluate_gives_entity_f1(taught):
    tasks = [
        {
            "text": "I visited Oslo today .",
            "spans": [{"start": 10, "end": 14, "label": "GPE"}],
        },
        {
            "text": "We flew to Rome last week .",
            "spans": [{"start": 11, "end": 15, "label": "GPE"}],
        },
    ]
    # Taught by accepts alone, the model also marks other tokens (nothing told it
    # they are outside): complete gold counts those as false positives ...
    scores = taught.evaluate(gold_docs(taught.nlp, tasks))
    assert scores["ents_r"] == pytest.approx(1.0) and scores["ents_p"] < 1.0
    assert set(scores["ents_per_type"]) >= {"GPE"}
    # ... partial gold (other tokens missing) judges only what is known.
    targets = answers_to_ner_targets(
        [
            teach_answer(c, t, "accept")
            for c, t in (("Oslo", TEMPLATES[0]), ("Rome", TEMPLATES[1]))
        ],
        LABELS,
    )
    partial = [taught.target_doc(t) for t in targets]
    for doc, target in zip(partial, targets, strict=True):
        doc.set_ents(
            [
                doc.char_span(s["start"], s["end"], label=s["label"])
                for s in target.spans
            ],
            default="missing",
        )
    assert taught.evaluate(partial)["ents_f"] == pytest.approx(1.0)


def test_ner_models_greedy_ner_scores_with_the_fallback():
    model = NERModel(build_ner(LABELS, factory="ner", seed=0))
    assert model.beam_width == 1
    (scores,) = model.score([model.make_doc({"text": "I visited Paris today ."})])
    assert scores.method == "greedy"
    assert (
        NERModel(model.nlp, beam_width=4)
        .score([model.make_doc({"text": "I visited Paris today ."})])[0]
        .method
        == "beam"
    )


def test_ner_models_use_the_task_tokens():
    model = NERModel(build_ner(LABELS, seed=0))
    doc = model.make_doc({"text": "New York-based", "tokens": ["New", "York-based"]})
    assert [t.text for t in doc] == ["New", "York-based"]


def test_ner_models_updater_checkpoints_and_resumes(tmp_path):
    model = NERModel(build_ner(LABELS, seed=0))
    updater = Updater(model, learn_rate=0.001, update_steps=5, replay=0)
    for _ in range(3):
        updater.update(accepted_targets())
    served, version = updater.serving()
    assert version == 3 and p_gpe(served, "Oslo") > 0.9
    save_updater(updater, tmp_path / "ckpt")
    resumed = load_updater(tmp_path / "ckpt", model_class=NERModel, learn_rate=0.001)
    assert resumed.version == 3 and resumed.labels == model.labels
    assert resumed.model.beam_width == 4
    assert p_gpe(resumed.model, "Oslo") == pytest.approx(p_gpe(updater.model, "Oslo"))
    with pytest.raises(ValueError, match="E543"):
        load_updater(tmp_path / "ckpt")  # a textcat model was asked for


def test_ner_models_updater_retrain_starts_from_the_model_as_built():
    model = NERModel(build_ner(LABELS, seed=0))
    updater = Updater(model, learn_rate=0.001, retrain_epochs=15, snapshots=False)
    stats = updater.retrain(accepted_targets())
    assert stats.retrained and updater.model is not model
    assert p_gpe(updater.model, "Vienna") > 0.9


def test_ner_models_extend_an_existing_pipeline(tmp_path):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    ner.add_label("GPE")
    nlp.initialize()
    nlp.to_disk(tmp_path / "base")
    built = build_ner(LABELS, base=str(tmp_path / "base"))
    model = NERModel(built)
    assert model.labels == ("GPE", "PERSON")
    assert model.incorrect_spans_key == "incorrect_spans"
    # The key is in the config, so a saved checkpoint keeps learning from rejects.
    assert built.config["components"]["ner"]["incorrect_spans_key"] == "incorrect_spans"


def test_ner_models_join_a_text_classifier_without_training_it():
    nlp = build_textcat(["a", "b"])
    textcat = TextcatModel(nlp)
    before = textcat.predict(textcat.make_docs(["I visited Paris today ."]))
    model = NERModel(build_ner(LABELS, base=nlp, seed=0))
    assert nlp.pipe_names == ["textcat", "ner"]
    train(model, accepted_targets(), steps=3)
    after = textcat.predict(textcat.make_docs(["I visited Paris today ."]))
    assert (before == after).all()


def test_ner_models_fit_plans_many_epochs_while_answers_are_few():
    model = NERModel(build_ner(LABELS, seed=0), fit_examples=180)
    assert model.refits and not NERModel(build_ner(LABELS, seed=0)).refits
    assert model.fit_plan(18) == (10, 18)  # at most fit_max_epochs
    assert model.fit_plan(90) == (2, 90)
    assert model.fit_plan(400) == (1, 180)  # a sample, the newest answers in


@pytest.mark.parametrize("fit_examples,learnt", [(0, False), (200, True)])
def test_ner_models_fit_learns_a_first_batch_the_online_steps_dont(
    fit_examples, learnt
):
    # A small learn rate: three online steps leave the unseen city unsure;
    # a fit (ten epochs over the 18 answers) learns the slot.
    lr = 0.0001
    model = NERModel(
        build_ner(LABELS, seed=0), fit_examples=fit_examples, learn_rate=lr
    )
    updater = Updater(model, learn_rate=lr, use_averages=True, refit_seconds=1e9)
    updater.update(accepted_targets())  # one batch of 18 answers
    served, version = updater.serving()
    assert version == 1
    assert (p_gpe(served, "Vienna") > 0.9) is learnt
    # The checkpoint keeps the fit settings (a resumed model fits the same way).
    assert served.checkpoint_state()["fit_examples"] == fit_examples


def test_ner_models_fit_keeps_to_its_seconds():
    model = NERModel(build_ner(LABELS, seed=0), fit_examples=10_000, fit_seconds=0.0)
    targets = accepted_targets()
    model.fit(targets)  # stops after its first minibatch
    assert model.schedule.seconds_per_example is not None
    epochs, per_epoch = model.fit_plan(len(targets))
    # The next fit plans for what fit_seconds allows (here: one example).
    assert epochs * per_epoch == 1
