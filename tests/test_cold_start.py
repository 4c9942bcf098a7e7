"""Cold-start seed sets: pattern matches in the seed set."""

from pathlib import Path

import numpy as np
import pytest

from spacy_al.seed_sets import pattern_seed


def test_cold_start_pattern_seed_fills_half_with_matches_each_label_in_turn():
    # rows 0-9 match spam, row 10 matches promo; the random seed set is 20..29
    matched = [["spam"]] * 10 + [["promo"]] + [[]] * 30
    base = np.arange(20, 30)
    seed = pattern_seed(matched, base, rng=np.random.default_rng(0))
    assert len(seed) == 10 and len(set(seed.tolist())) == 10
    assert 10 in seed  # the one promo match gets its turn
    assert sum(i < 10 for i in seed) == 4  # five matches in all: half the set
    assert seed[5:].tolist() == [20, 21, 22, 23, 24]  # then base, in order


def test_cold_start_pattern_seed_without_matches_is_the_base_seed_set():
    base = [7, 3, 5]
    seed = pattern_seed([[]] * 10, base, rng=np.random.default_rng(0))
    assert seed.tolist() == base


def test_cold_start_pattern_seed_takes_a_match_in_base_once():
    matched = [["spam"]] + [[]] * 9
    seed = pattern_seed(matched, [0, 4, 5, 6], rng=np.random.default_rng(0))
    assert sorted(seed.tolist()) == [0, 4, 5, 6]


def test_cold_start_pattern_seed_rejects_a_share_outside_0_1():
    with pytest.raises(ValueError, match="E447"):
        pattern_seed([[]], [0], share=1.5, rng=np.random.default_rng(0))


def test_cold_start_simulate_with_patterns_puts_matches_in_the_seed_set(corpora_dir):
    """A pool where spam is rare: the random seed set holds none, so the first
    model finds no spam; with a patterns file its matches join the seed set and
    the first model already does."""
    import itertools

    import srsly

    from spacy_al.simulate import SimulationConfig, simulate

    records = list(
        itertools.islice(
            srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl"), 600
        )
    )
    ham = [r for r in records if r["label"] == "ham"][:300]
    spam = [r for r in records if r["label"] == "spam"][:12]
    pool = ham + spam  # 4% spam: a random seed set of 20 may hold none
    evaluation = [r for r in records if r["label"] == "spam"][12:40] + ham[:60]
    # the patterns file shipped for SMS spam (written as a user would)
    patterns = Path(__file__).parent.parent / "corpora" / "sms_spam_patterns.jsonl"

    def first_score(**kwargs):
        config = SimulationConfig(
            strategies=("margin",),
            seed_size=20,
            batch_size=10,
            budget=20,
            seeds=1,
            positive_label="spam",
            stop_set_size=20,
            **kwargs,
        )
        results = simulate(pool, evaluation, config)
        return results["strategies"]["margin"]["curve"][0][1]

    assert first_score() == 0.0
    assert first_score(patterns=str(patterns)) > 0.0
