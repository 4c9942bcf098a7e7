from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
