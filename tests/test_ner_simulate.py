from dataclasses import replace

import srsly

from spacy_al.simulate import simulate
from spacy_al.simulate.ner import token_auc
from spacy_al.simulate.runner import SimulationConfig


def test_token_auc_holds_each_model_until_the_next_batch():
    # (texts, tokens, F1): a model scoring 0.1 from 100 tokens, 0.3 from 300;
    # over 100..500 tokens: (200 * 0.1 + 200 * 0.3) / 400.
    curve = [(10, 100, 0.1), (20, 300, 0.3)]
    assert abs(token_auc(curve, low=100, high=500) - 0.2) < 1e-12
    # A strategy that read more tokens is cut at the same horizon...
    longer = [(10, 100, 0.1), (20, 450, 0.5), (30, 900, 0.9)]
    assert (
        abs(token_auc(longer, low=100, high=500) - (350 * 0.1 + 50 * 0.5) / 400) < 1e-12
    )
    # ...and one that reaches the same F1 after fewer tokens scores higher.
    assert token_auc([(10, 100, 0.1), (20, 200, 0.3)], low=100, high=500) > 0.2


def test_ner_simulate_pool_vectors_and_auc_against_random(corpora_dir, tmp_path):
    records = list(srsly.read_jsonl(corpora_dir / "wnut17" / "train.jsonl"))
    config = SimulationConfig(
        task="ner",
        architecture="ner",
        beam_width=1,
        strategies=("sequence_least_confidence", "random"),
        seeds=2,
        seed_size=10,
        batch_size=10,
        budget=20,
        max_epochs=1,
        vectors="pool",
        vectors_dir=str(tmp_path),
        fit_examples=60,
    )
    results = simulate(records[:60], records[60:90], config)
    # Every model read floret vectors of the pool's texts, trained once, cached.
    assert results["vectors"]["kind"] == "floret (pool texts)"
    assert not results["vectors"]["cached"]
    assert len(list((tmp_path / "vectors").iterdir())) == 1
    slc = results["strategies"]["sequence_least_confidence"]
    assert len(slc["auc_per_seed"]) == 2 and len(slc["final_per_seed"]) == 2
    diff = slc["auc_vs_random"]
    assert diff["low"] <= diff["diff"] <= diff["high"]
    random_aucs = results["strategies"]["random"]["auc_per_seed"]
    assert abs(diff["diff"] - (sum(slc["auc_per_seed"]) - sum(random_aucs)) / 2) < 1e-9
    # Every seed's curve is kept, and its AUC over tokens is read from it.
    assert results["seeds"] == [0, 1]
    for name in ("sequence_least_confidence", "random"):
        entry = results["strategies"][name]
        for curve, auc in zip(
            entry["curves_per_seed"], entry["auc_tokens_per_seed"], strict=True
        ):
            assert [n for n, _, _ in curve] == [10, 20]
            high = results["auc_tokens_to"]
            assert auc == token_auc(curve, low=curve[0][1], high=high)
    assert "auc_tokens_vs_random" in slc
    assert not results["full_data_training"]["cached"]
    # A second command on the same data (other seeds) reads the full-data
    # reference from the cache instead of training it again.
    again = simulate(
        records[:60],
        records[60:90],
        replace(config, strategies=("random",), seeds=1, first_seed=5),
    )
    assert again["full_data_training"]["cached"]
    assert again["full_data_score"] == results["full_data_score"]
    assert again["seeds"] == [5]
    # ... but not for another evaluation set.
    other = simulate(
        records[:60],
        records[90:120],
        replace(config, strategies=("random",), seeds=1, max_epochs=1),
    )
    assert not other["full_data_training"]["cached"]


def test_ner_bench_labels_defaults_are_what_the_recipes_use():
    # bench.labels --task ner without --strategies/--arch runs what ner.correct
    # and simulate ner run: greedy ner, the default NER measure against random.
    from spacy_al.recipes.simulate import DEFAULT_ARCH as SIMULATE_ARCH
    from spacy_al.recipes.simulate import DEFAULT_STRATEGIES as SIMULATE_STRATEGIES

    from spacy_al.benchmarks.labels import DEFAULT_ARCH, DEFAULT_STRATEGIES

    assert (
        DEFAULT_STRATEGIES["ner"]
        == SIMULATE_STRATEGIES["ner"]
        == "sequence_least_confidence,random"
    )
    assert DEFAULT_ARCH["ner"] == SIMULATE_ARCH["ner"] == "ner"
