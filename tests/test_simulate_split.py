"""simulate --split: tune on a dev split carved from TRAIN (no evaluation file
read) or on a corpus's own dev file, seeds from 0; report on --eval with seeds
never tuned on (from 100)."""

import itertools
import json

import pytest
import srsly
from typer.testing import CliRunner

from spacy_al.cli import build_app, load_builtin_recipes

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    load_builtin_recipes()
    return build_app()


@pytest.fixture(scope="module")
def sms_train(corpora_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("sms") / "train.jsonl"
    records = srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl")
    srsly.write_jsonl(path, itertools.islice(records, 300))
    return path


def _simulate(app, train, out, *extra):
    return runner.invoke(
        app,
        [
            "simulate",
            "textcat",
            str(train),
            *extra,
            "--strategies",
            "margin",
            "--seeds",
            "1",
            "--budget",
            "30",
            "--positive-label",
            "spam",
            "--output",
            str(out),
        ],
    )


def test_simulate_split_dev_scores_on_a_split_of_train_from_seed_0(
    app, sms_train, tmp_path
):
    result = _simulate(app, sms_train, tmp_path / "out", "--split", "dev")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["split"] == "dev"
    assert results["config"]["first_seed"] == 0
    # 20% of the 300 training records (less their duplicates) is the dev set,
    # the rest the pool
    assert 50 <= results["eval_size"] <= 60
    assert results["pool_size"] + results["eval_size"] <= 300


def test_simulate_split_test_needs_an_eval_file(app, sms_train, tmp_path):
    result = _simulate(app, sms_train, tmp_path / "out")
    assert result.exit_code == 1
    assert "needs --eval" in result.output
    assert not (tmp_path / "out").exists()


def test_simulate_split_dev_with_a_dev_file_records_dev_and_scores_on_it(
    app, sms_train, corpora_dir, tmp_path
):
    # A corpus's own dev file (as WNUT-17's dev.jsonl): scored on it, whole,
    # with the tuning seeds, and recorded as dev, not as test.
    dev = tmp_path / "dev.jsonl"
    records = srsly.read_jsonl(corpora_dir / "sms_spam" / "train.jsonl")
    srsly.write_jsonl(dev, itertools.islice(records, 300, 380))
    result = _simulate(
        app, sms_train, tmp_path / "out", "--split", "dev", "--eval", str(dev)
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["split"] == "dev"
    assert results["eval_path"] == str(dev)
    assert results["config"]["first_seed"] == 0
    assert results["eval_size"] == len({r["text"] for r in srsly.read_jsonl(dev)})
