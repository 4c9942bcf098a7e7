import pytest

from spacy_al.errors import SourceError
from spacy_al.loop import StrategySpec
from spacy_al.ner.loop import NERLoop, oracle_answer
from spacy_al.ner.model import NERModel, build_ner, gold_docs
from spacy_al.ner.patterns import EntityPatterns
from spacy_al.pool import Pool
from spacy_al.store import Store
from spacy_al.updater import Updater

LABELS = ["GPE", "PERSON"]
CITIES = ["Paris", "London", "Berlin", "Tokyo", "Rome", "Madrid", "Vienna", "Oslo"]
PEOPLE = ["Alice", "Bob", "Maria", "John", "Sarah", "Omar", "Yuki", "Lena"]
GPE_TEMPLATES = ["I visited {} today .", "We flew to {} last week ."]
PERSON_TEMPLATES = ["{} said hello .", "I called {} yesterday ."]


def _record(template: str, name: str, label: str) -> dict:
    text = template.format(name)
    start = text.index(name)
    return {
        "text": text,
        "spans": [{"start": start, "end": start + len(name), "label": label}],
    }


RECORDS = [_record(t, c, "GPE") for c in CITIES for t in GPE_TEMPLATES] + [
    _record(t, p, "PERSON") for p in PEOPLE for t in PERSON_TEMPLATES
]
GOLD = {r["text"]: r["spans"] for r in RECORDS}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.create_dataset("ents")
    yield s
    s.close()


def make_loop(
    mode="teach", strategy="entity", store=None, patterns=None, **kwargs
) -> NERLoop:
    pool = Pool({"text": r["text"]} for r in RECORDS)
    model = NERModel(build_ner(LABELS, seed=0))
    updater = Updater(model, learn_rate=0.001, seed=0)
    loop = NERLoop(
        pool,
        updater,
        spec=StrategySpec.parse(strategy, task="ner"),
        mode=mode,
        store=store,
        dataset="ents" if store else None,
        **kwargs,
    )
    if patterns is not None:
        loop.patterns = EntityPatterns(model.nlp, patterns, labels=LABELS)
    return loop


def answer_with_gold(tasks: list[dict], mode: str) -> list[dict]:
    return [oracle_answer(t, GOLD[t["text"]], mode=mode) for t in tasks]


@pytest.mark.parametrize(
    "strategy",
    [
        "entity",
        "mnlp",
        "token-entropy",
        "any_entity",
        "greedy_mnlp",
        "random",
        "diverse",
    ],
)
def test_ner_loop_teach_asks_about_one_entity_per_text(strategy):
    loop = make_loop(strategy=strategy)
    tasks = loop.select(6)
    assert 0 < len(tasks) <= 6
    assert len({t["_input_key"] for t in tasks}) == len(tasks)
    for task in tasks:
        assert task["_view_id"] == "ner" and len(task["spans"]) == 1
        (span,) = task["spans"]
        assert task["label"] == span["label"] in LABELS
        assert task["text"][span["start"] : span["end"]].strip()
        assert 0.0 <= span["score"] <= 1.0
        assert task["meta"]["strategy"] == strategy
        # Token scores for shading: one entry per token, offsets into the text.
        for token in task["tokens"]:
            assert task["text"][token["start"] : token["end"]] == token["text"]
            assert token["entropy"] >= 0.0 and 0.0 <= token["p_entity"] <= 1.0


def test_ner_loop_teach_ranks_the_most_uncertain_entity_first():
    loop = make_loop(strategy="entity")
    tasks = loop.select(8)
    uncertainty = [t["meta"]["uncertainty"] for t in tasks]
    assert uncertainty == sorted(uncertainty, reverse=True)
    for task in tasks:
        assert task["meta"]["uncertainty"] == pytest.approx(
            1 - 2 * abs(task["spans"][0]["score"] - 0.5), abs=1e-3
        )


def test_ner_loop_correct_shows_the_model_analysis():
    # (a trained model's: an untrained one's suggests nothing, see below)
    loop = make_loop(mode="correct", strategy="mnlp", pretrained=True)
    served, _ = loop.updater.serving()
    tasks = loop.select(4)
    assert len(tasks) == 4
    for task in tasks:
        assert task["_view_id"] == "ner_manual" and "label" not in task
        doc = served.make_doc(task)
        (scores,) = served.score([doc])
        assert [
            (s["token_start"], s["token_end"] + 1, s["label"]) for s in task["spans"]
        ] == [tuple(p) for p in scores.predicted]
        assert all("entropy" in tok for tok in task["tokens"])


def test_ner_loop_manual_prehighlights_patterns_in_source_order():
    patterns = [
        {"label": "GPE", "pattern": "paris"},
        {"label": "PERSON", "pattern": [{"LOWER": "bob"}]},
    ]
    loop = make_loop(mode="manual", strategy="sequential", patterns=patterns)
    tasks = loop.select(len(loop.pool))
    assert [t["text"] for t in tasks] == [r["text"] for r in RECORDS]
    marked = {
        t["text"]: [(s["label"], t["text"][s["start"] : s["end"]]) for s in t["spans"]]
        for t in tasks
    }
    assert marked["I visited Paris today ."] == [("GPE", "Paris")]
    assert marked["Bob said hello ."] == [("PERSON", "Bob")]
    assert marked["I visited Oslo today ."] == []
    # Nothing was scored: no token shading from a model.
    assert "entropy" not in tasks[0]["tokens"][0]


def test_ner_loop_answers_are_stored_before_answer_returns(store):
    loop = make_loop(mode="correct", strategy="mnlp", store=store, batch_size=4)
    tasks = loop.select(4)
    loop.answer(answer_with_gold(tasks, "correct"), annotator="alice")
    stored = store.get_answers("ents")
    assert len(stored) == 4 and {a["_view_id"] for a in stored} == {"ner_manual"}
    assert loop.pool.n_done == 4 and loop.ready_to_learn
    assert all(t.is_gold for t in loop.targets)
    rest = loop.select(len(loop.pool))
    assert not {t["_input_key"] for t in tasks} & {t["_input_key"] for t in rest}


@pytest.mark.parametrize(
    "spans,error,code",
    [
        (
            [{"start": 11, "end": 14, "label": "GPE"}],
            SourceError,
            "E510",
        ),  # "ari" in "Paris"
        ([{"start": 10, "end": 15, "label": "ORG"}], ValueError, "E530"),
        (
            [
                {"start": 10, "end": 15, "label": "GPE"},
                {"start": 2, "end": 15, "label": "GPE"},
            ],
            SourceError,
            "E509",
        ),
        ([{"start": 10, "end": 99, "label": "GPE"}], SourceError, "E505"),
    ],
)
def test_ner_loop_refuses_bad_spans_before_storing(store, spans, error, code):
    loop = make_loop(mode="manual", strategy="sequential", store=store)
    (task,) = [
        t for t in loop.select(len(loop.pool)) if t["text"] == "I visited Paris today ."
    ]
    with pytest.raises(error, match=code):
        loop.answer([{**task, "spans": spans, "answer": "accept"}], annotator="alice")
    assert store.count_answers("ents") == 0
    assert loop.pool.n_done == 0 and loop.n_pending == 0


def test_ner_loop_refuses_an_unknown_answer(store):
    loop = make_loop(store=store)
    (task,) = loop.select(1)
    with pytest.raises(ValueError, match="E960"):
        loop.answer([{**task, "answer": "maybe"}], annotator="alice")
    assert store.count_answers("ents") == 0


def test_ner_loop_undo_before_learning_serves_the_text_again(store):
    loop = make_loop(store=store, batch_size=10)
    (task,) = loop.select(1)
    (eg,) = answer_with_gold([task], "teach")
    loop.answer([eg], annotator="alice")
    assert loop.undo(eg, annotator="alice")
    assert store.count_answers("ents") == 0 and loop.n_pending == 0
    assert task["_input_key"] in {t["_input_key"] for t in loop.select(len(loop.pool))}


def test_ner_loop_task_hash_names_the_question_not_the_scores():
    loop = make_loop(mode="correct", strategy="sequential")
    first = loop.select(3)
    loop.updater.update(
        [t for t in loop.targets]
        + [loop._make_target(answer_with_gold([t], "correct")) for t in first]
    )
    again = loop.select(3)
    assert [t["_model_version"] for t in again] == [1, 1, 1]
    assert [t["_task_hash"] for t in again] == [t["_task_hash"] for t in first]


def test_ner_loop_patterns_surface_a_label_at_cold_start():
    patterns = [{"label": "PERSON", "pattern": name} for name in ("Omar", "Yuki")]
    loop = make_loop(strategy="random", patterns=patterns, min_label_answers=3)
    tasks = loop.select(6)
    from_patterns = [t for t in tasks if t["meta"].get("pattern")]
    # Four texts match; at most half of a batch comes from patterns.
    assert len(from_patterns) == 3 and len(tasks) == 6
    assert {
        t["text"][t["spans"][0]["start"] : t["spans"][0]["end"]] for t in from_patterns
    } == {"Omar", "Yuki"}
    assert all(t["label"] == "PERSON" for t in from_patterns)


def test_ner_loop_learns_from_teach_answers():
    loop = make_loop(strategy="entity", batch_size=8)
    eval_docs = gold_docs(loop.updater.model.nlp, RECORDS)
    # A few gold texts first (as simulate's seed set), then binary answers only.
    seed = [
        t
        for t in make_loop(mode="manual", strategy="sequential").select(len(loop.pool))
    ][::4]
    loop.answer(
        answer_with_gold([{**t, "_view_id": "ner_manual"} for t in seed], "manual"),
        annotator="o",
    )
    loop.learn()
    loop.updater.retrain()
    before = loop.updater.serving()[0].evaluate(eval_docs)["ents_f"]
    n_accepted = 0
    for _ in range(4):
        tasks = loop.select(8)
        answers = answer_with_gold(tasks, "teach")
        n_accepted += sum(a["answer"] == "accept" for a in answers)
        loop.answer(answers, annotator="oracle")
        loop.learn()
    after = loop.updater.serving()[0].evaluate(eval_docs)["ents_f"]
    assert loop.version >= 5
    assert n_accepted > 0
    assert after >= before and after > 0.8
    assert loop.label_counts().sum() >= n_accepted


def test_ner_loop_label_counts_count_accepted_entities():
    loop = make_loop(mode="manual", strategy="sequential")
    tasks = loop.select(4)  # two GPE texts of Paris, two of London
    loop.answer(answer_with_gold(tasks, "manual"), annotator="a")
    assert loop.label_counts().tolist() == [4, 0]


@pytest.mark.parametrize(
    "name,strategy,measure",
    [
        ("mnlp", "spacy_al.top_k.v1", "mnlp"),
        ("token-entropy", "spacy_al.top_k.v1", "token-entropy"),
        ("entity", "spacy_al.top_k.v1", "entity"),
        ("diverse", "spacy_al.diverse.v1", "sequence_least_confidence"),
        (
            "cost:sequence_least_confidence",
            "spacy_al.cost_aware.v1",
            "sequence_least_confidence",
        ),
        ("random", "spacy_al.random.v1", "none"),
    ],
)
def test_ner_loop_strategy_names(name, strategy, measure):
    spec = StrategySpec.parse(name, task="ner")
    assert (spec.strategy, spec.measure) == (strategy, measure)
    assert spec.needs_scores is (strategy != "spacy_al.random.v1")


def test_ner_loop_unknown_measure_or_mode_is_refused():
    with pytest.raises(ValueError, match="E531"):
        StrategySpec.parse("diverse:margin", task="ner")
    with pytest.raises(ValueError, match="E538"):
        make_loop(mode="review")
    # The text-classification names are unchanged.
    assert StrategySpec.parse("margin").measure == "margin"


def test_ner_loop_exclude_holds_back_texts():
    loop = make_loop(mode="correct", strategy="mnlp")
    held = {t["_input_key"] for t in loop.select(20)}
    rest = loop.select(len(loop.pool), exclude=held)
    assert len(rest) == len(loop.pool) - 20 and not held & {
        t["_input_key"] for t in rest
    }


def test_ner_loop_correct_suggests_nothing_while_untrained():
    loop = make_loop(mode="correct", strategy="mnlp")
    assert not loop.trained
    tasks = loop.select(4)
    assert tasks and all(t["spans"] == [] for t in tasks)
    assert all(t["meta"]["untrained"] for t in tasks)
    patterns = [{"label": "GPE", "pattern": c} for c in CITIES]
    loop = make_loop(mode="correct", strategy="sequential", patterns=patterns)
    [task] = loop.select(1)
    assert [
        (s["label"], task["text"][s["start"] : s["end"]]) for s in task["spans"]
    ] == [("GPE", "Paris")]


def test_ner_loop_teach_cold_start_asks_for_whole_analyses():
    loop = make_loop(mode="teach", cold_start=True, min_label_answers=1)
    tasks = loop.select(3)
    assert [t["_view_id"] for t in tasks] == ["ner_manual"] * 3
    assert all(t["spans"] == [] and t["meta"]["cold_start"] for t in tasks)
    # answered with their entities (as the manual view does), the model learns
    answers = [oracle_answer(t, GOLD[t["text"]], mode="teach") for t in tasks]
    loop.answer(answers, annotator="a")
    person = [t for t in loop.select(40) if t["meta"].get("cold_start")]
    assert person  # PERSON not seen yet: still asking for whole analyses
    assert make_loop(mode="teach").select(1)[0]["_view_id"] == "ner"  # off by default
