from __future__ import annotations

import math
import random

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.training import Example

from spacy_al.ner.scores import (
    DocNERScores,
    beam_ner_scores,
    doc_scores,
    entity_candidates,
    greedy_scores,
    ner_doc_scores,
    score_docs,
)

# Paris is a GPE in many contexts, including the ambiguous "I visited _ today"
# slot, which holds people as often as places.
GPE_TEMPLATES = [
    "I live in {} .",
    "She flew to {} last week .",
    "{} is a beautiful city .",
    "We drove through {} at night .",
    "The train to {} was late .",
]
PERSON_TEMPLATES = [
    "{} said hello .",
    "I called {} yesterday .",
    "{} is my best friend .",
    "We had lunch with {} .",
]
AMBIGUOUS = "I visited {} today ."
CITIES = ["London", "Berlin", "Tokyo", "Rome"]
PEOPLE = ["Alice", "Bob", "Maria", "John", "Sarah"]

SEEN = "I visited Paris today ."
UNSEEN = "I visited Quexaldo today ."
TEXTS = [
    SEEN,
    UNSEEN,
    "I live in Paris .",
    "They talked about Zorbium and Paris .",
    "Bob said hello to Maria in Rome .",
    "Nothing at all happened here .",
]


def _training_data() -> list[tuple[str, list[tuple[int, int, str]]]]:
    filled = []
    for i, template in enumerate(GPE_TEMPLATES):
        filled += [(template, "Paris", "GPE"), (template, CITIES[i % 4], "GPE")]
    for i, template in enumerate(PERSON_TEMPLATES):
        filled += [
            (template, PEOPLE[i], "PERSON"),
            (template, PEOPLE[(i + 2) % 5], "PERSON"),
        ]
    filled += [
        (AMBIGUOUS, name, "GPE") for name in ["Paris", "Paris", "London", "Berlin"]
    ]
    filled += [(AMBIGUOUS, name, "PERSON") for name in PEOPLE[:4]]
    data = [("Nothing happened here .", []), ("The weather is nice today .", [])]
    for template, word, label in filled:
        text = template.format(word)
        start = text.index(word)
        data.append((text, [(start, start + len(word), label)]))
    return data


def _train(nlp: Language, *, epochs: int = 12) -> Language:
    spacy.util.fix_random_seed(0)
    examples = [
        Example.from_dict(nlp.make_doc(text), {"entities": ents})
        for text, ents in _training_data()
    ]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    for _ in range(epochs):
        rng.shuffle(examples)
        for batch in spacy.util.minibatch(examples, size=8):
            nlp.update(batch, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def beam_nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("beam_ner", config={"beam_width": 8, "beam_density": 1e-4})
    return _train(nlp)


@pytest.fixture(scope="module")
def greedy_nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    return _train(nlp)


@pytest.fixture(scope="module")
def listener_nlp() -> Language:
    """tok2vec + a ner that listens to it (the layout of `spacy init config`)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    tok2vec = {
        "@architectures": "spacy.Tok2VecListener.v1",
        "width": 96,
        "upstream": "*",
    }
    model = {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 64,
        "maxout_pieces": 2,
        "use_upper": True,
        "tok2vec": tok2vec,
    }
    nlp.add_pipe("ner", config={"model": model})
    return _train(nlp)


def _scored(request, model: str, method: str) -> tuple[Language, list[DocNERScores]]:
    nlp = request.getfixturevalue(f"{model}_nlp")
    ner = nlp.get_pipe(nlp.pipe_names[-1])
    docs = [nlp.make_doc(text) for text in TEXTS]
    if method == "greedy":
        return nlp, greedy_scores(ner, docs)
    return nlp, beam_ner_scores(ner, docs, beam_width=int(method[-1]))


SCORERS = [
    ("beam", "beam4"),
    ("beam", "beam8"),
    ("beam", "greedy"),
    ("greedy", "beam4"),
    ("greedy", "beam8"),
    ("greedy", "greedy"),
]


@pytest.mark.parametrize("model,method", SCORERS)
def test_ner_scores_token_marginals_are_distributions(request, model, method):
    nlp, scores = _scored(request, model, method)
    for text, s in zip(TEXTS, scores, strict=True):
        n = len(nlp.make_doc(text))
        assert s.labels == ("O", "GPE", "PERSON")
        assert s.token_marginals.shape == (n, 3)
        assert (s.token_marginals >= 0).all()
        np.testing.assert_allclose(s.token_marginals.sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("model,method", SCORERS)
def test_ner_scores_one_score_per_token_for_shading(request, model, method):
    nlp, scores = _scored(request, model, method)
    for text, s in zip(TEXTS, scores, strict=True):
        assert s.token_entropy.shape == (len(nlp.make_doc(text)),)
        assert s.n_tokens == len(nlp.make_doc(text))
        assert (s.token_entropy >= 0).all()
    unseen = scores[TEXTS.index(UNSEEN)]
    assert int(np.argmax(unseen.token_entropy)) == 2  # the token "Quexaldo"


@pytest.mark.parametrize("model,method", SCORERS)
def test_ner_scores_seen_entity_is_surer_than_unseen_word(request, model, method):
    _, scores = _scored(request, model, method)
    seen, unseen = scores[TEXTS.index(SEEN)], scores[TEXTS.index(UNSEEN)]
    assert seen.predicted == [(2, 3, "GPE")]
    assert unseen.token_entropy[2] > 3 * seen.token_entropy[2]
    assert unseen.token_entropy[2] > 0.01
    for measure in (
        "max_token_entropy",
        "mean_token_entropy",
        "sequence_least_confidence",
        "mnlp",
    ):
        ranked = doc_scores([seen, unseen], measure)
        assert ranked[1] > ranked[0], measure


@pytest.mark.parametrize("model,method", SCORERS)
def test_ner_scores_doc_scores_are_bounded_and_finite(request, model, method):
    _, scores = _scored(request, model, method)
    for s in scores:
        assert 0.0 <= s.sequence_least_confidence <= 1.0
        assert math.isfinite(s.mnlp) and s.mnlp >= 0.0
        assert s.max_token_entropy <= math.log(len(s.labels) * 4) + 1e-9
        assert s.mean_token_entropy <= s.max_token_entropy
        assert all(
            isinstance(v, float)
            for v in (
                s.max_token_entropy,
                s.mean_token_entropy,
                s.sequence_least_confidence,
                s.mnlp,
            )
        )
        assert all(0.0 <= prob <= 1.0 + 1e-9 for *_, prob in s.entities)


@pytest.mark.parametrize("model,method", [("beam", "beam4"), ("greedy", "greedy")])
def test_ner_scores_beam_marginals_match_token_entropy(request, model, method):
    _, scores = _scored(request, model, method)
    for s in scores:
        m = s.token_marginals
        entropy = -(m * np.log(np.where(m > 0, m, 1))).sum(axis=1)
        if s.method == "beam":
            np.testing.assert_allclose(s.token_entropy, entropy, atol=1e-9)
        else:  # greedy: the move entropy, which counts boundary decisions too
            assert (s.token_entropy >= entropy - 1e-9).all()


def test_ner_scores_greedy_parse_is_the_pipeline_parse(greedy_nlp):
    ner = greedy_nlp.get_pipe("ner")
    texts = TEXTS + ["Quexaldo met Zorbium in Berlin and Tokyo .", "They went ."]
    scores = greedy_scores(
        ner, [greedy_nlp.make_doc(t) for t in texts], predict_batch=3
    )
    for text, s in zip(texts, scores, strict=True):
        expected = [(e.start, e.end, e.label_) for e in greedy_nlp(text).ents]
        assert s.predicted == expected
        assert [(start, end, label) for start, end, label, _ in s.entities] == expected


@pytest.mark.parametrize("set_annotations", [False, True])
def test_ner_scores_beam_parse_is_the_pipeline_parse(beam_nlp, set_annotations):
    ner = beam_nlp.get_pipe("beam_ner")
    docs = [beam_nlp.make_doc(t) for t in TEXTS]
    scores = beam_ner_scores(ner, docs, beam_width=8, set_annotations=set_annotations)
    for doc, s in zip(docs, scores, strict=True):
        expected = [(e.start, e.end, e.label_) for e in beam_nlp(doc.text).ents]
        assert s.predicted == expected
        annotated = [(e.start, e.end, e.label_) for e in doc.ents]
        assert annotated == (expected if set_annotations else [])
        entities = {(start, end, label): p for start, end, label, p in s.entities}
        assert set(expected) <= set(entities)


def test_ner_scores_entity_probabilities_add_up_to_marginals(beam_nlp):
    ner = beam_nlp.get_pipe("beam_ner")
    (s,) = beam_ner_scores(ner, [beam_nlp.make_doc(UNSEEN)], beam_width=8)
    token = 2
    for column, label in enumerate(s.labels[1:], start=1):
        mass = sum(
            p
            for start, end, lab, p in s.entities
            if lab == label and start <= token < end
        )
        assert s.token_marginals[token, column] == pytest.approx(mass)
    assert s.token_marginals[token, 1] > 0 and s.token_marginals[token, 2] > 0


@pytest.mark.parametrize("method", ["beam", "greedy"])
def test_ner_scores_empty_docs_score_zero(greedy_nlp, method):
    ner = greedy_nlp.get_pipe("ner")
    docs = [greedy_nlp.make_doc(""), greedy_nlp.make_doc(SEEN), greedy_nlp.make_doc("")]
    scores = (
        beam_ner_scores(ner, docs) if method == "beam" else greedy_scores(ner, docs)
    )
    assert [s.n_tokens for s in scores] == [0, 5, 0]
    for s in (scores[0], scores[2]):
        assert s.token_marginals.shape == (0, 3)
        assert (
            s.max_token_entropy,
            s.mean_token_entropy,
            s.sequence_least_confidence,
            s.mnlp,
        ) == (0.0, 0.0, 0.0, 0.0)
        assert s.entities == [] and s.predicted == []
    assert scores[1].predicted == [(2, 3, "GPE")]
    only_empty = (
        beam_ner_scores(ner, docs[:1])
        if method == "beam"
        else greedy_scores(ner, docs[:1])
    )
    assert only_empty[0].n_tokens == 0


def test_ner_scores_doc_scores_measures_and_alias(beam_nlp):
    scores = score_docs(beam_nlp, TEXTS, component="beam_ner")
    np.testing.assert_array_equal(
        doc_scores(scores, "token-entropy"), doc_scores(scores, "max_token_entropy")
    )
    values = doc_scores(scores, "mnlp")
    assert values.shape == (len(TEXTS),) and values.dtype == float
    expected = [-math.log(1 - s.sequence_least_confidence) / s.n_tokens for s in scores]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="E524") as info:
        doc_scores(scores, "entropy")
    assert "sequence_least_confidence" in str(info.value)


def test_ner_scores_entity_candidates_most_uncertain_first(beam_nlp):
    scores = score_docs(beam_nlp, TEXTS, component="beam_ner")
    candidates = entity_candidates(scores)
    assert len(candidates) == sum(len(s.entities) for s in scores)
    distances = [abs(prob - 0.5) for *_, prob in candidates]
    assert distances == sorted(distances)
    for i, start, end, label, prob in candidates:
        assert (start, end, label, prob) in scores[i].entities
    kept = entity_candidates(scores, min_prob=0.2)
    assert kept and all(prob >= 0.2 for *_, prob in kept)
    assert len(kept) < len(candidates)
    with pytest.raises(ValueError, match="E527"):
        entity_candidates(scores, min_prob=2)


@pytest.mark.parametrize("beam_width", [1, 4, 8])
def test_ner_scores_score_docs_runs_the_listened_tok2vec(listener_nlp, beam_width):
    texts = [SEEN, UNSEEN, "Bob said hello ."]
    scores = score_docs(listener_nlp, texts, beam_width=beam_width, predict_batch=2)
    assert [s.method for s in scores] == ["greedy" if beam_width == 1 else "beam"] * 3
    assert [s.predicted for s in scores] == [
        [(e.start, e.end, e.label_) for e in listener_nlp(text).ents] for text in texts
    ]
    assert scores[0].predicted == [(2, 3, "GPE")]
    # The same as scoring docs that went through the tok2vec only.
    ner = listener_nlp.get_pipe("ner")
    with listener_nlp.select_pipes(disable=["ner"]):
        processed = list(listener_nlp.pipe(texts))
    direct = (
        greedy_scores(ner, processed)
        if beam_width == 1
        else beam_ner_scores(ner, processed, beam_width=beam_width)
    )
    for a, b in zip(scores, direct, strict=True):
        np.testing.assert_allclose(a.token_entropy, b.token_entropy, atol=1e-6)
    # Docs that went through the whole pipeline score as if fresh: the ner's
    # own entities on them would otherwise pin their tokens.
    annotated = list(listener_nlp.pipe(texts))
    assert annotated[0].ents
    again = score_docs(listener_nlp, annotated, beam_width=beam_width)
    for a, b in zip(scores, again, strict=True):
        np.testing.assert_allclose(a.token_entropy, b.token_entropy, atol=1e-6)
        assert a.predicted == b.predicted


def test_ner_scores_listener_without_tok2vec_raises(listener_nlp):
    ner = listener_nlp.get_pipe("ner")
    docs = [listener_nlp.make_doc(SEEN), listener_nlp.make_doc("")]
    for scorer in (beam_ner_scores, greedy_scores):
        with pytest.raises(ValueError, match="E525") as info:
            scorer(ner, docs)
        assert "1 of the 1 non-empty docs" in str(info.value)


def test_ner_scores_bad_arguments(beam_nlp):
    ner = beam_nlp.get_pipe("beam_ner")
    docs = [beam_nlp.make_doc(SEEN)]
    with pytest.raises(ValueError, match="E522"):
        beam_ner_scores(ner, docs, beam_width=1)
    with pytest.raises(ValueError, match="E526"):
        beam_ner_scores(ner, docs, beam_density=1.5)
    with pytest.raises(ValueError, match="E523") as info:
        score_docs(beam_nlp, [SEEN], component="ner")
    assert "beam_ner" in str(info.value)
    with pytest.raises(ValueError, match="E522"):
        score_docs(beam_nlp, [SEEN], component="beam_ner", beam_width=0)


def test_ner_scores_needs_a_trained_ner_component():
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat")
    ner = nlp.add_pipe("ner")
    docs = [nlp.make_doc(SEEN)]
    with pytest.raises(ValueError, match="E520") as info:
        greedy_scores(textcat, docs)
    assert "TextCategorizer" in str(info.value)
    with pytest.raises(ValueError, match="E521"):
        beam_ner_scores(ner, docs)


WORDS = [
    "Paris",
    "Quexaldo",
    "Bob",
    "visited",
    "I",
    "today",
    ".",
    "the",
    "Rome",
    "and",
    "ZZ",
]


@pytest.mark.parametrize("method", ["beam", "greedy"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    words=st.lists(
        st.lists(st.sampled_from(WORDS), max_size=12), min_size=1, max_size=4
    )
)
def test_ner_scores_any_docs_give_valid_scores(greedy_nlp, method, words):
    ner = greedy_nlp.get_pipe("ner")
    docs = [greedy_nlp.make_doc(" ".join(w)) for w in words]
    scores = (
        beam_ner_scores(ner, docs) if method == "beam" else greedy_scores(ner, docs)
    )
    assert [s.n_tokens for s in scores] == [len(doc) for doc in docs]
    for s in scores:
        np.testing.assert_allclose(s.token_marginals.sum(axis=1), 1.0, atol=1e-9)
        assert np.isfinite(s.token_entropy).all() and (s.token_entropy >= 0).all()
        assert 0.0 <= s.sequence_least_confidence <= 1.0
        assert math.isfinite(s.mnlp) and s.mnlp >= 0.0
        assert all(0 <= start < end <= s.n_tokens for start, end, *_ in s.entities)


@pytest.mark.parametrize("beam_width", [1, 4])
def test_ner_scores_give_way_at_the_yield_point(beam_nlp, beam_width):
    # Once per batch of docs scored (and once more per inner batch), never
    # without one: the caller decides what giving way means.
    calls: list[int] = []
    texts = [*TEXTS, *TEXTS][:5]
    plain = score_docs(beam_nlp, texts, component="beam_ner", beam_width=beam_width)
    scores = score_docs(
        beam_nlp,
        texts,
        component="beam_ner",
        beam_width=beam_width,
        predict_batch=2,
        yield_point=lambda: calls.append(1),
    )
    assert len(calls) == 2 * 3  # 3 batches of at most 2, each scored in one step
    assert [s.predicted for s in scores] == [s.predicted for s in plain]


def test_ner_scores_any_entity_and_greedy_mnlp(beam_nlp, greedy_nlp):
    scores = score_docs(beam_nlp, TEXTS, component="beam_ner")
    values = ner_doc_scores(scores, "any_entity")
    expected = [
        max(1 - abs(1 - 2 * (1 - s.token_marginals[t, 0])) for t in range(s.n_tokens))
        for s in scores
    ]
    np.testing.assert_allclose(values, expected)
    assert ((values >= 0) & (values <= 1)).all()
    greedy = score_docs(greedy_nlp, TEXTS, beam_width=1)
    np.testing.assert_array_equal(
        ner_doc_scores(greedy, "greedy_mnlp"), doc_scores(greedy, "mnlp")
    )
