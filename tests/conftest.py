from __future__ import annotations

import os
from pathlib import Path

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
