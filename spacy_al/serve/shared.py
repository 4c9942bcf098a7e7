"""What a feed or a learner shares with its selector, trainer and team threads.

A :class:`~spacy_al.serve.feed.Feed` selects and learns in threads of the
serving process; a :class:`~spacy_al.serve.learner.Learner` runs the same
three workers in a process of its own. Both are a :class:`Shared`: it holds
the loop and the settings the workers read, the locks, the candidate queue and
the counts they share (what their Protocols name), the model's progress, and
the workers themselves, which their owner starts.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spacy_al.checkpoints import Checkpoints
from spacy_al.protocols import Loop
from spacy_al.serve.progress import ModelProgress
from spacy_al.serve.selector import Selector, default_prefetch
from spacy_al.serve.team import TeamThread
from spacy_al.serve.trainer import Trainer
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from spacy_al.team.consensus import Consensus


class Shared:
    """The loop, settings and state of a feed or learner that its selector,
    trainer and team thread use, and those three (see the module).

    ``serve_lag`` is the seconds from a selection's end until its servers can
    serve it (0 in a feed; a learner's queue is published and read). The
    other settings mean what they mean for the feed.
    """

    def __init__(
        self,
        loop: Loop,
        *,
        overlap: int = 1,
        lease_seconds: float = 120.0,
        prefetch: int | None = None,
        preselect: bool = False,
        serve_lag: float = 0.0,
        checkpoint: Checkpoints | str | Path | None = None,
        checkpoint_seconds: float = 30.0,
        eval_path: str | Path | None = None,
        curve_window: int = 100,
        stop_set_size: int = DEFAULT_STOP_SET_SIZE,
        stop_window: int = DEFAULT_WINDOW,
        stop_threshold: float = DEFAULT_THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
        close_store: bool = False,
    ) -> None:
        self.loop = loop
        self.store = loop.store
        self.dataset: str = loop.dataset
        self.labels: tuple[str, ...] = tuple(loop.labels)
        self.exclusive: bool = loop.exclusive
        self.overlap = int(overlap)
        # With overlap N, the loop learns an example once N annotators agree.
        loop.consensus = Consensus(self.overlap)
        self.lease_seconds = float(lease_seconds)
        # The first queue, and the least a selection asks for: enough for
        # everyone while the next selection runs (see default_prefetch).
        self.prefetch = prefetch or default_prefetch(loop)
        self.serve_lag = serve_lag
        # NER tasks carry the model's analysis in their spans already.
        self.preselect = preselect and loop.task != "ner"
        # The dataset's checkpoint folder (a folder path: the model there, the
        # version mark, tokens and progress beside it).
        self.checkpoint: Checkpoints | None = (
            Checkpoints.at(checkpoint)
            if isinstance(checkpoint, str | Path)
            else checkpoint
        )
        self.checkpoint_seconds = checkpoint_seconds
        self.eval_path = Path(eval_path) if eval_path else None
        self._clock = clock
        self._close_store = close_store
        # _lock guards the shared state; _loop_lock every call that changes the
        # loop (answer, undo, pop_targets). Never one inside the other.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop_lock = threading.Lock()
        self._stop = False
        self._error: str | None = None  # the last background error, shown
        self._candidates: deque[dict] = deque()
        self._cand_version = -1  # the model version the candidates were chosen by
        self._exhausted = False  # the last selection found nothing new
        self._taken = 0  # candidates handed out so far
        self._active: dict[int, dict] = {}  # handed out, fewer than overlap answers
        self._answered_by: dict[int, set[str]] = defaultdict(set)
        # Examples another server's annotators hold: not served until then.
        self._elsewhere: dict[int, float] = {}
        self._n_answers = 0
        self._n_updates = 0
        self._training = False
        self._last_update: dict[str, Any] | None = None
        self._agreement: dict[str, Any] | None = None
        # The learning curve and the stopping signal (the trainer reports to it).
        self.progress = ModelProgress(
            loop,
            eval_path=self.eval_path,
            checkpoint=self.checkpoint,
            curve_window=curve_window,
            stop_set_size=stop_set_size,
            stop_window=stop_window,
            stop_threshold=stop_threshold,
        )
        # The background workers; their owner starts their threads.
        self._selector = Selector(self)
        self._trainer = Trainer(self)
        self._team = TeamThread(self)
        self._threads: list[threading.Thread] = []

    def _learning(self) -> list[tuple[Callable[[], None], str]]:
        """The selector's, trainer's and team thread's bodies, and their names."""
        return [
            (self._selector.run, "selector"),
            (self._trainer.run, "trainer"),
            (self._team.run, "team"),
        ]

    def _start_threads(
        self, workers: Iterable[tuple[Callable[[], None], str]], *, prefix: str
    ) -> None:
        """Start a daemon thread for each of ``workers`` (body, name)."""
        for target, name in workers:
            thread = threading.Thread(
                target=target, name=f"{prefix}{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _stop_threads(self, timeout: float) -> bool:
        """Tell the threads to stop and wait for each up to ``timeout``
        seconds; False if they were told already (nothing done)."""
        with self._cond:
            if self._stop:
                return False
            self._stop = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        return True
