"""Cold-start seed sets: pattern matches in the seed set."""

import numpy as np
import pytest

from spacy_al.strategies import pattern_seed


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
