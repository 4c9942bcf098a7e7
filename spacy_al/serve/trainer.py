"""The trainer of a labelling server: learns each full batch, checkpoints the model.

A :class:`Trainer` thread takes each full batch of answers
(``loop.pop_targets``), updates the model outside the feed's locks, reports the
update to :class:`~spacy_al.serve.progress.ModelProgress` (the learning curve
and the stopping signal the app shows) and checkpoints it: the version and the
progress after every update, the model at most every ``checkpoint_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from spacy_al.serve.worker import Worker, WorkerFeed
from spacy_al.updater import Updater

if TYPE_CHECKING:
    from spacy_al.checkpoints import Checkpoints
    from spacy_al.protocols import Loop
    from spacy_al.serve.progress import ModelProgress


class TrainerFeed(WorkerFeed, Protocol):
    """What the trainer uses of the feed that owns it.

    The counts and the last update are the feed's state (its ``stats``), written
    under ``_cond`` (the feed's lock); answers change the loop under
    ``_loop_lock`` (never held with ``_cond``).
    """

    loop: Loop
    progress: ModelProgress
    checkpoint: Checkpoints | None
    checkpoint_seconds: float
    _clock: Callable[[], float]
    _loop_lock: threading.Lock
    _n_answers: int
    _n_updates: int
    _training: bool
    _last_update: dict[str, Any] | None


class Trainer(Worker):
    """The feed's trainer thread (:meth:`run`); the feed starts it, and saves
    the last checkpoint on close (:meth:`save_checkpoint`)."""

    feed: TrainerFeed

    def __init__(self, feed: TrainerFeed) -> None:
        super().__init__(feed)
        self.loop = feed.loop
        self.progress = feed.progress
        self.checkpoint = feed.checkpoint
        self.checkpoint_seconds = feed.checkpoint_seconds
        self._clock = feed._clock
        self._loop_lock = feed._loop_lock
        self._unsaved = 0  # updates not checkpointed yet
        self._last_save = self._clock()

    def run(self) -> None:
        """The thread's body: start the learning curve and the stopping signal,
        then learn each full batch, until the feed closes."""
        try:
            self.progress.start_curve(answers=self.feed._n_answers)
        except Exception as e:  # no curve, but labelling goes on
            self.report("Reading the eval file", e)
        try:
            self.progress.start_stopping(answers=self.feed._n_answers)
        except Exception as e:  # no stopping signal, but labelling goes on
            self.report("Predicting the stop set", e)
        while True:
            with self._cond:
                while not self.feed._stop and not self.loop.ready_to_learn:
                    self._cond.wait(0.5)
                if self.feed._stop:
                    return
                self.feed._training = True
            try:
                self._learn()
            except Exception as e:  # the thread must live on; the app shows the error
                self.report("Updating the model", e)
                time.sleep(1.0)
            finally:
                with self._cond:
                    self.feed._training = False
                    self._cond.notify_all()

    def _learn(self) -> None:
        with self._loop_lock:
            targets = self.loop.pop_targets()
        if not targets:
            return
        self.progress.before_update(targets)
        stats = self.loop.updater.update(targets)
        self._unsaved += 1
        with self._cond:
            self.feed._n_updates += 1
            self.feed._last_update = {
                "version": stats.version,
                "loss": round(float(stats.loss), 4),
                "examples": stats.n_new,
                "seconds": round(stats.seconds, 3),
            }
            self.feed._error = None
            self._cond.notify_all()  # the selector re-scores for the new version
        try:
            self.progress.after_update(answers=self.feed._n_answers)
        except Exception as e:  # the model learnt; only a curve point is missing
            self.report("Scoring the new model", e)
        self.save_checkpoint()

    def save_checkpoint(self, *, force: bool = False) -> None:
        """After an update: the version and the progress every time (cheap, so a
        restart continues after the last version shown, with its curve), the
        model at most every ``checkpoint_seconds`` (and when ``force``)."""
        if self.checkpoint is None or not self._unsaved:
            return
        self.checkpoint.write_version(self.loop.updater.version)
        self.progress.save()
        if not isinstance(self.loop.updater, Updater):
            self._unsaved = 0  # a committee isn't saved, but its version goes on
            return
        now = self._clock()
        if force or now - self._last_save >= self.checkpoint_seconds:
            self.checkpoint.save(self.loop.updater)
            self._unsaved = 0
            self._last_save = now
