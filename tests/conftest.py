from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


# Property tests draw the same cases on every run, so a change fails or passes on
# its merits, never on the draw. To look for new failures, draw afresh:
#   python -m pytest --hypothesis-profile=explore tests/test_fuzz.py
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


def _corpora_dir() -> Path:
    """The shared real corpora: ../shared/corpora beside the checkout."""
    env = os.environ.get("SPACY_AL_CORPORA")
    return Path(env) if env else ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    path = _corpora_dir()
    if not (path / "sms_spam" / "train.jsonl").exists():
        pytest.skip(f"shared corpora not found at {path}")
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'test.db'}"


SERVER_BACKENDS: list[Any] = ["sqlite"]
if os.environ.get("SPACY_AL_TEST_POSTGRES_URL"):
    SERVER_BACKENDS.append(
        pytest.param(
            os.environ["SPACY_AL_TEST_POSTGRES_URL"],
            marks=pytest.mark.postgres,
            id="postgres",
        )
    )


@pytest.fixture(params=SERVER_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    """(database URL, dataset name) for servers sharing one database: an SQLite
    file, or PostgreSQL when SPACY_AL_TEST_POSTGRES_URL is set (a dataset of its
    own, dropped after). The dataset is named after the test module
    (test_two_servers: two_servers)."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'answers.db'}", name
        return
    dataset = f"{name}_{os.getpid()}_{time.monotonic_ns()}"
    yield request.param, dataset
    from spacy_al.store import Store

    with Store(request.param) as store:
        if store.has_dataset(dataset):
            store.drop_dataset(dataset, force=True)
