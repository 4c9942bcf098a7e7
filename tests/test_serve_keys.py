"""A server that follows a learner process holds of the pool only its input keys
and done marks (spacy_al.scale.keys.KeyPool) and no model (ServingLoop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spacy_al.corpus import Source
from spacy_al.errors import SourceError
from spacy_al.pool import Pool
from spacy_al.scale.keys import KeyPool
from spacy_al.serve.follower import ServingLoop
from spacy_al.serve.launcher import build_components

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "corpora" / "support.jsonl"

MIXED = [
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 1}}\r\n',
    "\n",
    '{"text": "second line, CRLF ended"}\r\n',
    '{"text": "Grüße aus Köln — 東京 🚀", "meta": {"id": 2}}\n',  # a duplicate
    '{"text": "last, no newline at the end"}',
]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(lines).encode("utf-8"))
    return path


def test_serve_keys_pool_has_the_in_process_pools_keys(tmp_path):
    for path in (SUPPORT, _write(tmp_path, MIXED)):
        source = Source(path)
        pool = Pool(source)
        keys = KeyPool.read(path)
        assert len(keys) == len(pool)
        assert sorted(keys.keys.tolist()) == sorted(pool.index)
        assert (keys.n_read, keys.n_duplicates) == (
            source.n_read,
            source.n_duplicates,
        )
        assert all(k in keys.index for k in pool.index)
        assert 12345 not in keys.index and "12345" not in keys.index


def test_serve_keys_marks_done_by_key(tmp_path):
    tasks = list(Pool(Source(SUPPORT)).tasks)
    first, second = tasks[0]["_input_key"], tasks[1]["_input_key"]
    pool = KeyPool.read(SUPPORT, answered={first})
    assert pool.n_done == 1
    pool.mark([second, second, first, 999])  # repeats and strangers count once
    assert pool.n_done == 2 == int(pool.done.sum())
    pool.mark([first], False)
    assert pool.n_done == 1 == int(pool.done.sum())


def test_serve_keys_bad_line_names_file_and_line_as_in_process(tmp_path):
    path = _write(tmp_path, [*MIXED[:-1], "{not json}\n", '{"text": "after"}\n'])
    with pytest.raises(SourceError) as here:
        list(Source(path))
    with pytest.raises(SourceError) as there:
        KeyPool.read(path)
    assert str(there.value) == str(here.value) and there.value.line == 5
    skipped = KeyPool.read(path, skip_invalid=True)
    assert skipped.n_skipped == 1 and len(skipped) == 3


def test_serve_keys_remote_server_builds_no_model_and_no_texts(tmp_path):
    components = build_components(
        "textcat.teach",
        {
            "dataset": "tickets",
            "source": SUPPORT,
            "label": "billing,bug",
            "db": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "learner": "remote",
        },
    )
    loop = components["loop"]
    assert isinstance(loop, ServingLoop) and loop.updater is None
    assert isinstance(loop.pool, KeyPool) and len(loop.pool) > 300
    assert components["labels"] == ["billing", "bug"]
    assert components["source"]["read"] == len(loop.pool)
    with pytest.raises(RuntimeError, match="E1108"):
        loop.select(1)
    components["store"].close()


def test_serve_keys_remote_server_builds_no_spacy_pipeline(tmp_path, monkeypatch):
    import spacy.language

    built = []
    original = spacy.language.Language.__init__

    def spy(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(spacy.language.Language, "__init__", spy)
    components = build_components(
        "textcat.teach",
        {
            "dataset": "tickets",
            "source": SUPPORT,
            "label": "billing,bug",
            "db": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "learner": "remote",
        },
    )
    components["store"].close()
    assert built == []
