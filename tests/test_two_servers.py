"""Two labelling servers on one database: leases hold across processes (#11, fault 8).

Two real ``python -m spacy_al textcat.teach ... --api`` processes serve one
dataset from one database (SQLite, and PostgreSQL when
``SPACY_AL_TEST_POSTGRES_URL`` is set), with annotator threads split between
them. At overlap 1 no example is answered twice; at overlap 2 each example gets
at most two answers, from different annotators; every acknowledged answer is
stored; and ``drop`` refuses the dataset while the servers use it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from spacy_al.benchmarks.processes import ServerProcess, free_port, request
from spacy_al.demo_corpus import LABELS, corpus_path
from spacy_al.store import Store

SUPPORT = corpus_path("support.jsonl")
CLIENTS = 6  # annotator threads, split between the two servers
SECONDS = 20.0  # labelling time at most
ENOUGH = 90  # answers: stop once this many were acknowledged


def _servers(db: str, dataset: str, workdir: Path, *, overlap: int) -> list:
    servers = []
    for i in range(2):
        argv = [
            "textcat.teach",
            dataset,
            str(SUPPORT),
            "--label",
            LABELS,
            "--db",
            db,
            "--batch-size",
            "5",
            "--overlap",
            str(overlap),
        ]
        env = {
            # Each server its own model folder (one learner per dataset is #13).
            "SPACY_AL_HOME": str(workdir / f"home{i}"),
            "PYTHONUNBUFFERED": "1",
        }
        servers.append(
            ServerProcess(
                argv,
                port=free_port(),
                log=workdir / f"server{i}.log",
                env=env,
                fork=False,
            )
        )
    for server in servers:
        server.start()
    for i, server in enumerate(servers):
        if not server.wait_ready():
            log = (workdir / f"server{i}.log").read_text(errors="replace")
            for other in servers:
                other.close()
            pytest.fail(f"server {i} didn't start:\n{log[-3000:]}")
    return servers


def _label(ports: list[int]) -> tuple[dict[tuple[str, int], int], list[str]]:
    """Annotator threads, split between the servers, label until enough answers
    are acknowledged: ({(annotator, input key): id}, unexpected replies)."""
    acked: dict[tuple[str, int], int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + SECONDS

    def client(i: int) -> None:
        who, port = f"annotator{i}", ports[i % len(ports)]
        empty = 0
        while not stop.is_set() and time.monotonic() < deadline and empty < 5:
            status, reply = request(
                port, "POST", "/next", {"annotator": who, "wait": 1.0}
            )
            if status != 200:
                with lock:
                    errors.append(f"/next {status}: {reply}")
                return
            task = reply["task"]
            if task is None:
                empty += 1
                continue
            empty = 0
            answer = {"_input_key": task["_input_key"], "answer": "accept"}
            status, reply = request(
                port, "POST", "/answer", {"annotator": who, "task": answer}
            )
            with lock:
                if status != 200 or reply["duplicate"]:
                    errors.append(f"/answer {status}: {reply}")
                    return
                acked[(who, task["_input_key"])] = reply["id"]
                if len(acked) >= ENOUGH:
                    stop.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acked, errors


def _drop(db: str, dataset: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spacy_al", "drop", dataset, "--yes", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("overlap", [1, 2])
def test_two_servers_share_leases_and_answers(database, tmp_path, overlap):
    db, dataset = database
    if overlap == 2 and db.startswith("postgresql"):
        pytest.skip("overlap 2 runs on SQLite only (the same code, the same locks)")
    servers = _servers(db, dataset, tmp_path, overlap=overlap)
    try:
        acked, errors = _label([server.port for server in servers])
        # drop refuses a dataset the servers are using (a clean message, status 1).
        dropped = _drop(db, dataset)
        assert dropped.returncode == 1, dropped.stdout + dropped.stderr
        assert "E985" in dropped.stdout + dropped.stderr
        assert "Traceback" not in dropped.stdout + dropped.stderr
    finally:
        for server in servers:
            server.close()
    assert errors == []
    assert len(acked) >= 30  # both servers did serve
    with Store(db) as store:
        stored = store.get_answers(dataset)
    # Acknowledged = stored.
    assert {eg["_id"] for eg in stored} == set(acked.values())
    per_example = Counter(eg["_input_key"] for eg in stored)
    assert max(per_example.values()) <= overlap  # never answered twice at overlap 1
    pairs = Counter((eg["_input_key"], eg["_annotator_id"]) for eg in stored)
    assert max(pairs.values()) == 1  # overlap N: N different annotators
    # Both servers' annotators labelled.
    annotators = {eg["_annotator_id"] for eg in stored}
    assert {"annotator0", "annotator1"} <= annotators
