import srsly

from spacy_al.simulate import simulate
from spacy_al.simulate.runner import SimulationConfig


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
