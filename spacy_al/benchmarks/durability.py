"""Durability trials: kill a real API server with SIGKILL while annotators answer.

What a team lead needs to trust: every answer a client was told is stored
survives ``kill -9`` at any moment, nothing is stored twice, and the model's
version never goes backwards. :func:`run_trials` starts the JSON API of an
interactive recipe (``python -m spacy_al RECIPE ... --api``) as a separate
process, lets several client threads label through it (each keeping a ledger
of what it was told), kills the process at random moments and starts it again,
and at the end compares the ledgers with what the database holds. With
``kills=0`` it is a plain load run: N annotators for a while, with latencies.

The server is a real process (:class:`~spacy_al.benchmarks.processes.ServerProcess`),
killed with SIGKILL. This module prints nothing: the ``bench durability`` recipe
and the crash test report its :class:`TrialReport`.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spacy_al.benchmarks.processes import (
    REQUEST_TIMEOUT,
    ServerProcess,
    free_port,
    request,
)
from spacy_al.checkpoints import Checkpoints, target_digest


@dataclass
class TrialReport:
    """What a trial run saw, and what the database held at the end.

    ``acknowledged``: answers whose reply carried an id; ``stored``: answers in
    the database; ``lost``: acknowledged answers not stored as told (missing, or
    another answer); ``duplicates``: rows beyond the first per (example,
    annotator), plus examples answered by more annotators than asked for;
    ``unconfirmed``: answers sent whose reply a kill cut off (stored or not: both
    are fine, each at most once); ``errors``: replies with an error status
    (kills' broken connections are not errors); ``version_regressions``:
    restarts that served an older model version than one seen before the kill;
    ``unlearnt``: stored answers the final checkpoint hasn't learnt.
    """

    backend: str
    kills: int = 0
    starts: int = 0
    annotators: int = 0
    seconds: float = 0.0
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0
    duplicates: int = 0
    unconfirmed: int = 0
    unconfirmed_stored: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    interrupted: int = 0
    version_regressions: int = 0
    versions: list[int] = field(default_factory=list)
    final_version: int = 0
    unlearnt: int = 0
    learnt_after_restart: bool = False
    answer_p50_ms: float = 0.0
    answer_p95_ms: float = 0.0
    next_p95_ms: float = 0.0
    start_seconds_mean: float = 0.0
    kill_moments: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.errors == 0
            and self.version_regressions == 0
            and self.unlearnt == 0
        )


class _Ledger:
    """What the clients were told, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[tuple[str, int], tuple[int, str]] = {}
        self.unconfirmed: set[tuple[str, int]] = set()
        self.errors: list[str] = []
        self.interrupted = 0
        self.answer_ms: list[float] = []
        self.next_ms: list[float] = []
        self.max_version = 0


def _client(
    port_of: Callable[[], int],
    who: str,
    token: Callable[[], str | None],
    ledger: _Ledger,
    stop: threading.Event,
    *,
    seed: int,
    think: float,
) -> None:
    """One annotator: ask, answer, and after a broken reply send it again."""
    rng = random.Random(seed)
    unsent: dict | None = None  # an answer whose reply was cut off
    while not stop.is_set():
        try:
            if unsent is None:
                start = time.perf_counter()
                status, reply = request(
                    port_of(),
                    "POST",
                    "/next",
                    {"annotator": who, "token": token(), "wait": 1.0},
                )
                if status != 200:
                    _error(ledger, f"/next {status}: {reply}")
                    time.sleep(0.2)
                    continue
                with ledger.lock:
                    ledger.next_ms.append((time.perf_counter() - start) * 1000)
                task = reply["task"]
                if task is None:
                    time.sleep(0.2)
                    continue
                with ledger.lock:
                    ledger.max_version = max(
                        ledger.max_version, int(task.get("_model_version") or 0)
                    )
                if think:
                    time.sleep(rng.uniform(0.5 * think, 1.5 * think))
                choice = rng.random()
                task["answer"] = (
                    "accept" if choice < 0.6 else "reject" if choice < 0.9 else "ignore"
                )
                unsent = task
            key = (who, int(unsent["_task_key"]))
            with ledger.lock:
                ledger.unconfirmed.add(key)
            start = time.perf_counter()
            status, reply = request(
                port_of(),
                "POST",
                "/answer",
                {"annotator": who, "token": token(), "task": unsent},
            )
            elapsed = (time.perf_counter() - start) * 1000
            if status != 200:
                _error(ledger, f"/answer {status}: {reply}")
                unsent = None
                continue
            with ledger.lock:
                if reply.get("id") is not None:
                    ledger.unconfirmed.discard(key)
                    if not reply.get("duplicate"):
                        ledger.answer_ms.append(elapsed)
                    previous = ledger.acked.get(key)
                    told = (int(reply["id"]), unsent["answer"])
                    if previous is not None and previous != told:
                        ledger.errors.append(
                            f"{who}: task {key[1]} acknowledged twice, as {previous} "
                            f"and {told}"
                        )
                    ledger.acked[key] = told
            unsent = None
        except (OSError, http.client.HTTPException, ValueError):
            with ledger.lock:
                ledger.interrupted += 1
            time.sleep(0.05)  # the server is down or restarting: try again


def _error(ledger: _Ledger, message: str) -> None:
    with ledger.lock:
        ledger.errors.append(message[:300])


def run_trials(
    *,
    db: str,
    source: str | Path,
    labels: Sequence[str],
    workdir: str | Path,
    kills: int = 20,
    annotators: int = 4,
    seconds: float | None = None,
    uptime: tuple[float, float] = (0.3, 2.5),
    startup_kill_share: float = 0.2,
    batch_size: int = 5,
    checkpoint_seconds: float = 0.5,
    think: float = 0.0,
    dataset: str = "durability",
    recipe: str = "textcat.teach",
    restricted: bool = True,
    fork: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> TrialReport:
    """Kill the server ``kills`` times while ``annotators`` clients label, then
    compare what they were told with the database (see :class:`TrialReport`).

    Each kill comes at a random moment: ``uptime`` seconds (uniform) after the
    server answered its first health check, or, for ``startup_kill_share`` of
    the kills, while it is still starting (loading the checkpoint, learning the
    answers stored after it). With ``kills=0`` the server runs ``seconds`` and
    is never killed (a load run). ``think`` is each annotator's mean seconds per
    answer (0: as fast as the server replies). At the end the server starts once
    more (learning what the last checkpoint missed) and is stopped with SIGTERM.
    """
    from spacy_al.store import Store

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    port = free_port()
    names = [f"annotator{i:02d}" for i in range(annotators)]
    argv = [
        recipe,
        dataset,
        str(source),
        "--label",
        ",".join(labels),
        "--db",
        db,
        "--batch-size",
        str(batch_size),
    ]
    if restricted:
        argv += ["--annotators", ",".join(names)]
    env = {
        "SPACY_AL_CHECKPOINT_SECONDS": str(checkpoint_seconds),
        "SPACY_AL_HOME": str(workdir / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    server = ServerProcess(
        argv, port=port, log=workdir / "server.log", env=env, fork=fork
    )
    backend = "postgresql" if db.startswith("postgresql") else "sqlite"
    report = TrialReport(backend=backend, annotators=annotators)
    ledger = _Ledger()
    tokens: dict[str, str] = {}
    stop = threading.Event()
    say = progress or (lambda _: None)

    checkpoints = _checkpoints(db, dataset, workdir)

    def read_tokens() -> None:
        if restricted:  # kept in the checkpoint folder: the same after every restart
            tokens.update(checkpoints.read_tokens())

    def stats_version() -> int | None:
        who = names[0]
        query = f"/stats?annotator={who}&token={tokens.get(who, '')}"
        try:
            status, reply = request(port, "GET", query, timeout=5.0)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        return int(reply["version"]) if status == 200 else None

    threads = [
        threading.Thread(
            target=_client,
            args=(lambda: port, who, lambda who=who: tokens.get(who), ledger, stop),
            kwargs={"seed": seed * 1000 + i, "think": think},
            daemon=True,
        )
        for i, who in enumerate(names)
    ]
    start_times: list[float] = []
    began = time.monotonic()
    last_start = 3.0
    try:
        for trial in range(max(kills, 1)):
            started = time.monotonic()
            server.start()
            if kills and trial > 0 and rng.random() < startup_kill_share:
                time.sleep(rng.uniform(0.0, last_start))
                if not server.wait_ready(timeout=0.01):
                    server.kill()
                    report.kills += 1
                    report.kill_moments.append("starting")
                    continue
            if not server.wait_ready():
                raise RuntimeError(_tail(workdir / "server.log"))
            last_start = time.monotonic() - started
            start_times.append(last_start)
            read_tokens()
            version = stats_version()
            with ledger.lock:
                seen = ledger.max_version
            if version is not None:
                report.versions.append(version)
                if version < seen:
                    report.version_regressions += 1
            if trial == 0:
                for thread in threads:
                    thread.start()
            if not kills:
                deadline = time.monotonic() + float(seconds or 60.0)
                while time.monotonic() < deadline:
                    _watch_version(stats_version, ledger)
                    time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
                break
            up = rng.uniform(*uptime)
            deadline = time.monotonic() + up
            while time.monotonic() < deadline:
                _watch_version(stats_version, ledger)
                time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
            server.kill()
            report.kills += 1
            report.kill_moments.append(f"{up:.2f}s up")
            say(f"kill {report.kills}/{kills}: acknowledged {len(ledger.acked)}")
        stop.set()  # the clients stop: what they were told is now fixed
        for thread in threads:
            if thread.is_alive():
                thread.join(REQUEST_TIMEOUT + 5)
        if server.alive():  # a load run ends as a service stop does: SIGTERM
            server.stop()
        # The last start learns what the last checkpoint missed.
        with ledger.lock:
            seen = ledger.max_version
        server.start()
        if not server.wait_ready():
            raise RuntimeError(_tail(workdir / "server.log"))
        version = stats_version()
        if version is not None:
            report.versions.append(version)
            if version < seen:
                report.version_regressions += 1
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(REQUEST_TIMEOUT + 5)
        version = stats_version()
        report.final_version = version if version is not None else -1
        server.close()
    report.seconds = round(time.monotonic() - began, 1)
    report.starts = server.starts
    report.start_seconds_mean = round(float(np.mean(start_times or [0.0])), 2)

    # --- compare the ledgers with the database ----------------------------------
    with Store(db) as store:
        rows = store.get_answers(dataset) if store.has_dataset(dataset) else []
    by_id = {row["_id"]: row for row in rows}
    per_key = Counter((row["_annotator_id"], row["_input_key"]) for row in rows)
    per_input = Counter(row["_input_key"] for row in rows)
    stored_keys = Counter((row["_annotator_id"], row["_task_key"]) for row in rows)
    report.acknowledged = len(ledger.acked)
    report.stored = len(rows)
    for (who, task_key), (answer_id, answer) in ledger.acked.items():
        row = by_id.get(answer_id)
        if (
            row is None
            or row["_annotator_id"] != who
            or row["_task_key"] != task_key
            or row["answer"] != answer
        ):
            report.lost += 1
    report.duplicates = sum(n - 1 for n in per_key.values() if n > 1) + sum(
        n - 1 for n in per_input.values() if n > 1
    )
    report.unconfirmed = len(ledger.unconfirmed)
    report.unconfirmed_stored = sum(stored_keys[k] for k in ledger.unconfirmed)
    report.errors = len(ledger.errors)
    report.error_samples = ledger.errors[:5]
    report.interrupted = ledger.interrupted
    report.answer_p50_ms = _percentile(ledger.answer_ms, 50)
    report.answer_p95_ms = _percentile(ledger.answer_ms, 95)
    report.next_p95_ms = _percentile(ledger.next_ms, 95)
    # --- what the final checkpoint learnt ------------------------------------------
    learnt = checkpoints.learnt()
    if rows and learnt is not None:
        from spacy_al.textcat.targets import answers_to_textcat_targets

        with Store(db) as store:
            meta = store.dataset_meta(dataset)
        targets = answers_to_textcat_targets(
            rows, meta.get("labels") or list(labels), exclusive=meta.get("exclusive")
        )
        report.unlearnt = sum(
            learnt.get(str(t.input_key)) != target_digest(t) for t in targets
        )
    elif rows:
        report.unlearnt = len(rows)
    report.learnt_after_restart = report.unlearnt == 0
    return report


def _watch_version(stats_version: Callable[[], int | None], ledger: _Ledger) -> None:
    version = stats_version()
    if version is not None:
        with ledger.lock:
            ledger.max_version = max(ledger.max_version, version)


def _checkpoints(db: str, dataset: str, workdir: Path) -> Checkpoints:
    """The server's checkpoints of ``dataset`` (its ``SPACY_AL_HOME`` is the
    trial's own ``workdir/home``)."""
    return Checkpoints.for_db(db, dataset, home=workdir / "home")


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def _tail(path: Path, n: int = 3000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"the server didn't start (no log at {path})"
    return "the server didn't start:\n" + text[-n:]
