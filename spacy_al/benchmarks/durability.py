"""Durability trials: kill real API servers and ``train`` with SIGKILL.

What a team lead needs to trust: every answer a client was told is stored
survives ``kill -9`` at any moment, nothing is stored twice, the model's version
never goes backwards, and a killed ``train`` never destroys the pipeline it was
replacing. :func:`run_trials` starts the JSON API of an interactive recipe
(``python -m spacy_al RECIPE ... --api``) as one or more separate processes on
one database, lets client threads label through them (each annotator talks to
one server and keeps a ledger of what it was told), kills a server at random
moments and starts it again with the same command, and at the end compares the
ledgers with what the database holds. With ``kills=0`` it is a plain load run:
N annotators for a while, with latencies. ``train`` is killed the same way in
:mod:`spacy_al.benchmarks.train_kills`.

The processes are real (:mod:`spacy_al.benchmarks.processes`), killed with
SIGKILL. This module prints nothing: the ``bench durability`` recipe and the
crash tests report its :class:`TrialReport` and :class:`TrainKillReport`. It is
long because it is one concept, the durability benchmark: its trials share the
clients, the ledger of what was acknowledged and the checks against the store.
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
    log_tail,
    request,
)
from spacy_al.checkpoints import Checkpoints, target_digest
from spacy_al.errors import Errors


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
    ``failed_starts``: starts (with the same command) after which a server died
    on its own before answering its health check (it is started again, up to
    three times in a row), with the end of its log in ``error_samples``;
    ``unlearnt``: stored answers the final checkpoint hasn't learnt (with
    several servers, summed over their checkpoints). ``servers``: server
    processes on the one database; ``versions`` and ``final_versions`` are
    per server start (each server has a model of its own).
    """

    backend: str
    servers: int = 1
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
    failed_starts: int = 0
    error_samples: list[str] = field(default_factory=list)
    interrupted: int = 0
    version_regressions: int = 0
    versions: list[int] = field(default_factory=list)
    final_version: int = 0
    final_versions: list[int] = field(default_factory=list)
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
            and self.failed_starts == 0
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
        self.max_version: dict[int, int] = {}  # per server: the newest version seen

    def saw(self, server: int, version: int) -> None:
        with self.lock:
            self.max_version[server] = max(self.max_version.get(server, 0), version)

    def seen(self, server: int) -> int:
        with self.lock:
            return self.max_version.get(server, 0)


def _client(
    port_of: Callable[[], int],
    who: str,
    token: Callable[[], str | None],
    ledger: _Ledger,
    stop: threading.Event,
    *,
    server: int = 0,
    seed: int,
    think: float,
) -> None:
    """One annotator of ``server``: ask, answer (naming the task by its
    ``_input_key``, as the API asks), and after a broken reply send it again."""
    rng = random.Random(seed)
    unsent: dict | None = None  # the task of an answer whose reply was cut off
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
                ledger.saw(server, int(task.get("_model_version") or 0))
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
                {
                    "annotator": who,
                    "token": token(),
                    "task": {
                        "_input_key": unsent["_input_key"],
                        "answer": unsent["answer"],
                    },
                },
            )
            elapsed = (time.perf_counter() - start) * 1000
            if status != 200:
                _error(ledger, f"{who} /answer {status}: {reply}")
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


@dataclass
class _Server:
    """One server process of a trial, and what its annotators need from it."""

    index: int
    process: ServerProcess
    names: list[str]
    checkpoints: Checkpoints
    restricted: bool
    tokens: dict[str, str] = field(default_factory=dict)

    def read_tokens(self) -> None:
        if self.restricted:  # kept in the checkpoint folder: the same after restarts
            self.tokens.update(self.checkpoints.read_tokens())

    def version(self) -> int | None:
        """The model version the server serves now (None if it doesn't answer)."""
        if not self.names:
            return None
        who = self.names[0]
        query = f"/stats?annotator={who}&token={self.tokens.get(who, '')}"
        try:
            status, reply = request(self.process.port, "GET", query, timeout=5.0)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        return int(reply["version"]) if status == 200 else None


def run_trials(
    *,
    db: str,
    source: str | Path,
    labels: Sequence[str],
    workdir: str | Path,
    kills: int = 20,
    annotators: int = 4,
    servers: int = 1,
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
    """Kill a server ``kills`` times while ``annotators`` clients label, then
    compare what they were told with the database (see :class:`TrialReport`).

    ``servers`` server processes (the same command, each on its own port and
    with its own model folder) serve one dataset from one database; annotator
    ``i`` talks to server ``i % servers`` only. Each kill hits one server (at
    random with several) at a random moment: ``uptime`` seconds (uniform) after
    the previous kill's server answered its first health check, or, for
    ``startup_kill_share`` of the kills, while it is still starting (loading
    the checkpoint, learning the answers stored after it); the killed server is
    started again with the same command. With ``kills=0`` the servers run
    ``seconds`` and are never killed (a load run). ``think`` is each annotator's
    mean seconds per answer (0: as fast as the server replies). At the end every
    server starts once more (learning what its last checkpoint missed) and is
    stopped with SIGTERM.
    """
    from spacy_al.store import Store

    if servers < 1 or annotators < servers:
        raise ValueError(Errors.E955.format(servers=servers, annotators=annotators))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
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
    backend = "postgresql" if db.startswith("postgresql") else "sqlite"
    report = TrialReport(backend=backend, annotators=annotators, servers=servers)
    ledger = _Ledger()
    stop = threading.Event()
    say = progress or (lambda _: None)

    group: list[_Server] = []
    for index in range(servers):
        # One server keeps the single-server layout (workdir/home, server.log);
        # several get a model folder each (one learner per dataset is #13).
        suffix = "" if servers == 1 else str(index)
        home = workdir / f"home{suffix}"
        mine = names[index::servers]
        server_argv = list(argv)
        if restricted:
            server_argv += ["--annotators", ",".join(mine)]
        env = {
            "SPACY_AL_CHECKPOINT_SECONDS": str(checkpoint_seconds),
            "SPACY_AL_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        process = ServerProcess(
            server_argv,
            port=free_port(),
            log=workdir / f"server{suffix}.log",
            env=env,
            fork=fork,
        )
        group.append(
            _Server(
                index=index,
                process=process,
                names=mine,
                checkpoints=_checkpoints(db, dataset, home),
                restricted=restricted,
            )
        )

    def check_version(server: _Server) -> None:
        """A (re)started server must not serve a version older than one seen."""
        seen = ledger.seen(server.index)
        version = server.version()
        if version is not None:
            report.versions.append(version)
            if version < seen:
                report.version_regressions += 1

    start_failures: list[str] = []

    def failed_start(server: _Server) -> None:
        report.failed_starts += 1
        tail = log_tail(Path(server.process.log), 600)
        start_failures.append(f"server {server.index} died while starting: {tail}")

    def ready_or_retry(server: _Server, attempts: int = 3) -> None:
        """Wait for ``server`` (started) to answer; a server that died while
        starting is counted and started again with the same command."""
        for _ in range(attempts):
            if server.process.wait_ready():
                return
            if server.process.alive():  # no health reply within READY_TIMEOUT
                break
            failed_start(server)
            server.process.start()
        raise RuntimeError(log_tail(Path(server.process.log)))

    def watch(until: float, step: float) -> None:
        while time.monotonic() < until:
            for server in group:
                _watch_version(server, ledger)
            time.sleep(min(step, max(until - time.monotonic(), 0)))

    threads = []
    for i, who in enumerate(names):
        server = group[i % servers]
        threads.append(
            threading.Thread(
                target=_client,
                args=(
                    lambda port=server.process.port: port,
                    who,
                    lambda who=who, server=server: server.tokens.get(who),
                    ledger,
                    stop,
                ),
                kwargs={
                    "server": server.index,
                    "seed": seed * 1000 + i,
                    "think": think,
                },
                daemon=True,
            )
        )
    start_times: list[float] = []
    began = time.monotonic()
    last_start = 3.0
    victim = group[0]
    try:
        for trial in range(max(kills, 1)):
            started = time.monotonic()
            starting = group if trial == 0 else [victim]
            for server in starting:
                server.process.start()
            if kills and trial > 0 and rng.random() < startup_kill_share:
                time.sleep(rng.uniform(0.0, last_start))
                if not victim.process.wait_ready(timeout=0.01):
                    if victim.process.alive():
                        victim.process.kill()
                        report.kills += 1
                        moment = _moment("starting", victim, servers)
                        report.kill_moments.append(moment)
                        continue
                    failed_start(victim)  # it died on its own: start it again
                    victim.process.start()
            for server in starting:
                ready_or_retry(server)
            last_start = time.monotonic() - started
            start_times.append(last_start)
            for server in starting:
                server.read_tokens()
                check_version(server)
            if trial == 0:
                for thread in threads:
                    thread.start()
            if not kills:
                watch(time.monotonic() + float(seconds or 60.0), 1.0)
                break
            up = rng.uniform(*uptime)
            watch(time.monotonic() + up, 0.1)
            if servers > 1:
                victim = group[rng.randrange(servers)]
            victim.process.kill()
            report.kills += 1
            report.kill_moments.append(_moment(f"{up:.2f}s up", victim, servers))
            say(f"kill {report.kills}/{kills}: acknowledged {len(ledger.acked)}")
        stop.set()  # the clients stop: what they were told is now fixed
        for thread in threads:
            if thread.is_alive():
                thread.join(REQUEST_TIMEOUT + 5)
        for server in group:
            if server.process.alive():  # a load run ends as a service stop: SIGTERM
                server.process.stop()
        # The last start learns what the last checkpoint missed.
        for server in group:
            server.process.start()
        for server in group:
            ready_or_retry(server)
            check_version(server)
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(REQUEST_TIMEOUT + 5)
        for server in group:
            version = server.version()
            report.final_versions.append(version if version is not None else -1)
            server.process.close()
    report.final_version = max(report.final_versions)
    report.seconds = round(time.monotonic() - began, 1)
    report.starts = sum(server.process.starts for server in group)
    report.start_seconds_mean = round(float(np.mean(start_times or [0.0])), 2)

    # --- compare the ledgers with the database ----------------------------------
    with Store(db) as store:
        rows = store.get_answers(dataset) if store.has_dataset(dataset) else []
        meta = store.dataset_meta(dataset) if rows else {}
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
    report.error_samples = [*start_failures[:2], *ledger.errors][:5]
    report.interrupted = ledger.interrupted
    report.answer_p50_ms = _percentile(ledger.answer_ms, 50)
    report.answer_p95_ms = _percentile(ledger.answer_ms, 95)
    report.next_p95_ms = _percentile(ledger.next_ms, 95)
    # --- what the final checkpoints learnt -----------------------------------------
    report.unlearnt = sum(
        _unlearnt(rows, server.checkpoints, meta, labels) for server in group
    )
    report.learnt_after_restart = report.unlearnt == 0
    return report


def _moment(when: str, server: _Server, servers: int) -> str:
    return when if servers == 1 else f"server {server.index} {when}"


def _unlearnt(
    rows: list[dict], checkpoints: Checkpoints, meta: dict, labels: Sequence[str]
) -> int:
    """Stored answers the checkpoint hasn't learnt (all, without a checkpoint)."""
    if not rows:
        return 0
    learnt = checkpoints.learnt()
    if learnt is None:
        return len(rows)
    from spacy_al.textcat.targets import answers_to_textcat_targets

    targets = answers_to_textcat_targets(
        rows, meta.get("labels") or list(labels), exclusive=meta.get("exclusive")
    )
    return sum(learnt.get(str(t.input_key)) != target_digest(t) for t in targets)


def _watch_version(server: _Server, ledger: _Ledger) -> None:
    version = server.version()
    if version is not None:
        ledger.saw(server.index, version)


def _checkpoints(db: str, dataset: str, home: Path) -> Checkpoints:
    """A server's checkpoints of ``dataset`` (its ``SPACY_AL_HOME`` is ``home``,
    a folder of the trial's own)."""
    return Checkpoints.for_db(db, dataset, home=home)


def _percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0
