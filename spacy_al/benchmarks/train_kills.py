"""Durability of ``train``: kill it with SIGKILL and check that the pipeline it was
replacing still loads.

:func:`run_train_kills` runs ``python -m spacy_al train OUT --textcat DATASET``,
kills it at random moments (some of them aimed at the write of the pipeline) and
loads OUT with ``spacy.load`` after every kill. The process is real
(:mod:`spacy_al.benchmarks.processes`). This module prints nothing: the ``bench
durability`` recipe and the crash tests report its :class:`TrainKillReport`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spacy_al.benchmarks.processes import CliProcess, log_tail
from spacy_al.errors import Errors


@dataclass
class TrainKillReport:
    """What killing ``train`` did to the pipeline it was replacing.

    Each trial starts ``python -m spacy_al train OUT --textcat DATASET`` over a
    pipeline a complete run saved to OUT, and kills it with SIGKILL at a random
    moment. ``kill_moments`` says where each kill landed, read from what the
    killed process left beside OUT: ``writing`` (its temporary folder was
    there: the new pipeline was being written), ``between renames`` (the
    previous pipeline moved aside, the new one not yet in place), ``removing
    old`` (the new one in place, the previous one being removed), ``saved`` (the
    new pipeline in place, the process ending) or ``training`` (before the save:
    starting, reading the answers, training). ``during_write`` counts the first
    three. ``loadable``: kills after which ``spacy.load(OUT)`` worked (the
    previous pipeline, or the new one when the kill came after its rename);
    ``not_loadable``: the others, with samples. ``completed``: runs that ended on
    their own (the first, the last, and any that finished before its kill
    moment), ``completed_loadable`` of them loadable after.
    ``leftovers_after``: folders of killed runs still beside OUT after the last
    complete run (it removes them).
    """

    backend: str
    dataset: str = ""
    answers: int = 0
    trials: int = 0
    kills: int = 0
    during_write: int = 0
    aimed_at_write: int = 0
    loadable: int = 0
    kept_previous: int = 0
    not_loadable: int = 0
    not_loadable_samples: list[str] = field(default_factory=list)
    completed: int = 0
    completed_loadable: int = 0
    leftovers_after: int = 0
    train_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0
    kill_moments: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return (
            self.not_loadable == 0
            and self.completed >= 1
            and self.completed_loadable == self.completed
            and self.leftovers_after == 0
        )


WRITING, BETWEEN, REMOVING = "writing", "between renames", "removing old"


def run_train_kills(
    *,
    db: str,
    dataset: str,
    workdir: str | Path,
    trials: int = 10,
    write_share: float = 0.5,
    max_epochs: int = 10,
    fork: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> TrainKillReport:
    """Kill ``train`` ``trials`` times and check OUT loads after every kill (see
    :class:`TrainKillReport`).

    A first complete run of ``python -m spacy_al train OUT --textcat DATASET
    --db DB`` saves the pipeline the kills must not destroy, and times the run
    and its write. Each trial then starts the same command and kills it with
    SIGKILL: for ``write_share`` of the trials at a random moment of the write
    (once its temporary folder beside OUT appears, within the first run's write
    time), for the others at a random moment of the whole run. After every kill
    OUT is loaded with ``spacy.load``. A last complete run must save a loadable
    pipeline and remove what the killed runs left.
    """
    from spacy_al.store import Store

    if trials < 1 or not 0.0 <= write_share <= 1.0:
        raise ValueError(Errors.E956.format(trials=trials, write_share=write_share))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    say = progress or (lambda _: None)
    output = workdir / "model"
    backend = "postgresql" if db.startswith("postgresql") else "sqlite"
    with Store(db) as store:
        n_answers = store.count_answers(dataset) if store.has_dataset(dataset) else 0
    report = TrainKillReport(backend=backend, dataset=dataset, answers=n_answers)
    argv = ["train", str(output), "--textcat", dataset, "--db", db]
    argv += ["--max-epochs", str(max_epochs), "--seed", str(seed)]
    log = workdir / "train.log"
    train = CliProcess(argv, log=log, env={"PYTHONUNBUFFERED": "1"}, fork=fork)
    began = time.monotonic()
    try:
        # 1. A complete run: the pipeline to protect, and how long a run and its
        #    write take.
        report.train_seconds, report.write_seconds = _complete(train, output, log)
        report.completed += 1
        report.completed_loadable += _loads(output) is None
        for _ in range(trials):
            report.trials += 1
            before = _inode(output)
            train.start()
            pid = train.pid
            if rng.random() < write_share:
                report.aimed_at_write += 1
                _wait_for(_beside(output, _tmp_kind(), pid).exists, train)
                time.sleep(rng.uniform(0.0, report.write_seconds))
            else:
                time.sleep(rng.uniform(0.0, report.train_seconds))
            if not train.alive():  # it finished before its kill moment
                code = train.wait()
                report.completed += 1
                problem = _loads(output)
                report.completed_loadable += problem is None and code == 0
                report.kill_moments.append("ended first")
                continue
            train.kill()
            report.kills += 1
            moment = _where(output, pid, before)
            report.kill_moments.append(moment)
            report.during_write += moment in (WRITING, BETWEEN, REMOVING)
            problem = _loads(output)
            if problem is None:
                report.loadable += 1
                report.kept_previous += _inode(output) == before
            else:
                report.not_loadable += 1
                report.not_loadable_samples.append(f"{moment}: {problem}"[:300])
            say(f"train kill {report.kills}: {moment}")
        # 2. A last complete run saves a new pipeline and tidies what the kills left.
        _complete(train, output, log)
        report.completed += 1
        report.completed_loadable += _loads(output) is None
        report.leftovers_after = sum(
            1
            for path in output.parent.iterdir()
            if path.name.startswith(f".{output.name}.")
        )
    finally:
        train.close()
    report.seconds = round(time.monotonic() - began, 1)
    return report


def _tmp_kind() -> str:
    from spacy_al.training import _TMP

    return _TMP


def _beside(output: Path, kind: str, pid: int | None) -> Path:
    """The folder ``save_pipeline`` of process ``pid`` writes beside ``output``."""
    return output.parent / f".{output.name}{kind}{pid}"


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _wait_for(condition: Callable[[], bool], process: CliProcess) -> None:
    """Poll ``condition`` every 2 ms while ``process`` runs."""
    while process.alive() and not condition():
        time.sleep(0.002)


def _complete(train: CliProcess, output: Path, log: Path) -> tuple[float, float]:
    """Run ``train`` to its end: (seconds of the run, seconds of its write, from
    the temporary folder's appearance to its rename into place)."""
    train.start()  # the first start also starts the forkserver: not timed
    started = time.monotonic()
    tmp = _beside(output, _tmp_kind(), train.pid)
    _wait_for(tmp.exists, train)
    writing = time.monotonic()
    _wait_for(lambda: not tmp.exists(), train)
    written = time.monotonic()
    code = train.wait()
    if code != 0:
        tail = log_tail(log, 2000, what=f"the end of {log}")
        raise RuntimeError(Errors.E957.format(code=code, tail=tail))
    return round(time.monotonic() - started, 2), round(max(written - writing, 0.0), 3)


def _where(output: Path, pid: int | None, before: int | None) -> str:
    """Where a killed ``train`` was, from what it left beside ``output``."""
    from spacy_al.training import _OLD, _TMP

    if _beside(output, _TMP, pid).exists():
        return WRITING
    if _beside(output, _OLD, pid).exists():
        return REMOVING if output.exists() else BETWEEN
    return "saved" if _inode(output) != before else "training"


def _loads(output: Path) -> str | None:
    """None if ``spacy.load(output)`` gives a pipeline that classifies a text,
    else what went wrong."""
    import spacy

    try:
        nlp = spacy.load(output)
        doc = nlp("Where is my order? It has not arrived.")
    except Exception as e:  # any failure to load is the finding
        return f"{type(e).__name__}: {e}"
    if not doc.cats:
        return f"the pipeline at {output} has no text classifier ({nlp.pipe_names})"
    return None
