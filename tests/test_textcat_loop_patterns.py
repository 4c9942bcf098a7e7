"""textcat.teach --patterns: while a label has few positives, half of each batch
is random pattern matches (each label in turn), then the model's uncertainty."""

import itertools
from pathlib import Path

import srsly

from spacy_al.loop import StrategySpec
from spacy_al.pool import Pool
from spacy_al.textcat.loop import ActiveLoop
from spacy_al.textcat.model import TextcatModel, build_textcat
from spacy_al.textcat.patterns import PatternMatcher
from spacy_al.updater import Updater

LABELS = ["ham", "spam"]
HAM = [
    f"see you at {h} tonight, bring the {x}"
    for h in range(6, 12)
    for x in ("keys", "cake", "book")
]
SPAM = [
    f"WIN a {p} prize now, call 0800{n}"
    for p in ("cash", "car", "trip")
    for n in range(100, 106)
]


def make_loop(tmp_path, patterns: list[dict], *, seed: int = 0) -> ActiveLoop:
    path = tmp_path / "patterns.jsonl"
    srsly.write_jsonl(path, patterns)
    model = TextcatModel(build_textcat(LABELS))
    return ActiveLoop(
        Pool({"text": t} for t in HAM + SPAM),
        Updater(model, seed=0),
        spec=StrategySpec.parse("margin"),
        patterns=PatternMatcher.from_file(model.nlp, path),
        seed=seed,
    )


def pattern_tasks(tasks: list[dict]) -> list[dict]:
    return [t for t in tasks if t["meta"].get("pattern")]


def test_textcat_loop_patterns_ask_random_matches_not_the_first_or_least_sure(
    tmp_path,
):
    # An untrained model is equally unsure of every match: asking the least
    # sure ones asked the same first matches of the pool every time.
    asked = []
    for seed in range(12):
        loop = make_loop(tmp_path, [{"label": "spam", "pattern": "prize"}], seed=seed)
        tasks = pattern_tasks(loop.select(10))
        assert len(tasks) == 5
        assert all(t["label"] == "spam" and t["text"] in SPAM for t in tasks)
        asked.append(frozenset(t["text"] for t in tasks))
    assert len(set(asked)) > 6  # a different sample for most seeds ...
    assert len(frozenset().union(*asked)) == len(SPAM)  # ... over all matches
    again = make_loop(tmp_path, [{"label": "spam", "pattern": "prize"}], seed=0)
    assert {t["text"] for t in pattern_tasks(again.select(10))} == asked[0]


def test_textcat_loop_patterns_take_each_label_in_turn(tmp_path):
    # The ham texts come first in the pool and match too: both labels get turns.
    patterns = [
        {"label": "ham", "pattern": "tonight"},
        {"label": "spam", "pattern": "prize"},
    ]
    for seed in range(3):
        tasks = pattern_tasks(make_loop(tmp_path, patterns, seed=seed).select(10))
        labels = [t["label"] for t in tasks]
        assert sorted(labels) in (
            ["ham"] * 3 + ["spam"] * 2,
            ["ham"] * 2 + ["spam"] * 3,
        )
        assert all((t["text"] in SPAM) == (t["label"] == "spam") for t in tasks)


def test_textcat_loop_patterns_stop_once_a_label_has_enough_positives(tmp_path):
    loop = make_loop(tmp_path, [{"label": "spam", "pattern": "prize"}])
    tasks = loop.select(10)
    loop.answer(
        [
            {
                **t,
                "answer": "accept"
                if (t["label"] == "spam") == (t["text"] in SPAM)
                else "reject",
            }
            for t in tasks
        ],
        annotator="alice",
    )
    loop.learn()
    assert loop.label_counts()[LABELS.index("spam")] >= loop.min_label_answers
    assert pattern_tasks(loop.select(10)) == []  # the model's uncertainty now


def test_textcat_loop_patterns_simulate_margin_patterns_runs_the_loops_picks(
    corpora_dir, monkeypatch
):
    """``margin+patterns`` in simulate and bench labels measures what
    textcat.teach --patterns asks: the loop's own pattern picks."""
    from spacy_al.simulate import SimulationConfig, simulate

    picked: list[list] = []
    picks = ActiveLoop._pattern_picks

    def spy(self, docs, limit):
        found = picks(self, docs, limit)
        picked.append([docs[j].text for j, _ in found])
        return found

    monkeypatch.setattr(ActiveLoop, "_pattern_picks", spy)
    records = list(
        itertools.islice(
            srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl"), 600
        )
    )
    ham = [r for r in records if r["label"] == "ham"][:300]
    spam = [r for r in records if r["label"] == "spam"][:12]
    patterns = Path(__file__).parent.parent / "corpora" / "sms_spam_patterns.jsonl"
    config = SimulationConfig(
        strategies=("margin+patterns",),
        seed_size=20,
        batch_size=10,
        budget=40,
        seeds=1,
        positive_label="spam",
        stop_set_size=20,
        patterns=str(patterns),
        patterns_for_all=False,
    )
    simulate(ham + spam, spam[:6] + ham[:30], config)
    # the random seed set of 20 from 4% spam: the first batch asks 5 matches
    assert len(picked[0]) == 5
    texts = {r["text"]: r["label"] for r in ham + spam}
    assert sum(texts[t] == "spam" for t in picked[0]) >= 3


def test_textcat_loop_patterns_are_half_of_each_batch_of_a_long_ranking(tmp_path):
    # A feed asks for many batches at once and serves them in order: each batch
    # an annotator gets holds 5 matches, not all matches first.
    loop = make_loop(tmp_path, [{"label": "spam", "pattern": "prize"}])
    tasks = loop.select(30)
    assert len({t["text"] for t in tasks}) == 30
    for start in (0, 10, 20):
        assert len(pattern_tasks(tasks[start : start + 10])) == 5
