"""How the model being taught is doing: its learning curve and stopping signal.

A labelling server's trainer thread (:class:`spacy_al.serve.feed.Feed`) reports each
update here, and the app shows what :meth:`ModelProgress.stats` returns:

* **Learning curve.** Macro F1 (text classification) or entity F1 (NER, spaCy's
  scorer) after each update: on the eval file when there is one, else on the
  newest gold answers, each scored by the model that was serving *before* it
  learnt from them (test, then train).
* **Stopping signal.** Stabilizing predictions: Cohen's kappa between successive
  versions' predictions on a fixed stop set sampled from the pool
  (:mod:`spacy_al.stopping`).

Both are saved in the dataset's checkpoint folder after every update, so a
restarted server continues the curve's points and the signal's history.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spacy.scorer import get_ner_prf
from spacy.training import Example

from spacy_al.checkpoints import Checkpoints
from spacy_al.corpus import Source, gold_labels
from spacy_al.metrics import textcat_score
from spacy_al.ner.model import gold_docs
from spacy_al.ner.targets import reference_doc
from spacy_al.protocols import Loop, Updater
from spacy_al.stopping import (
    DEFAULT_STOP_SET_SIZE,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    StabilizingPredictions,
    sample_stop_set,
    stop_set_labels,
)
from spacy_al.textcat.targets import TextcatTarget

# The progressive curve needs this many gold answers before its first point.
MIN_CURVE_EXAMPLES = 10


def serving_probs(updater: Updater, texts: Sequence[str]) -> np.ndarray:
    """Label probabilities of the serving text classifier (a committee's mean)."""
    served, _ = updater.serving()
    return served.predict(served.make_docs(texts))


class ModelProgress:
    """The learning curve and stopping signal of a loop's model.

    Call :meth:`start` once (it reads the eval file and samples the stop set;
    slow, so from a background thread), :meth:`before_update` with the targets
    an update is about to learn, :meth:`after_update` once it has, and
    :meth:`save` when the model is checkpointed. Thread-safe: :meth:`stats` may
    be polled meanwhile. Methods raise what went wrong; the caller decides how
    to show it (labelling goes on without a curve or signal).
    """

    def __init__(
        self,
        loop: Loop,
        *,
        eval_path: str | Path | None = None,
        checkpoint: Checkpoints | None = None,
        curve_window: int = 100,
        stop_set_size: int = DEFAULT_STOP_SET_SIZE,
        stop_window: int = DEFAULT_WINDOW,
        stop_threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.loop = loop
        self.labels: tuple[str, ...] = tuple(loop.labels)
        self.exclusive: bool = loop.exclusive
        self.ner = loop.task == "ner"
        self.eval_path = Path(eval_path) if eval_path else None
        self.checkpoint = checkpoint
        # What an earlier session saved (read once, at the start).
        self._saved: dict[str, Any] | None = None
        # A loop that learns nothing (review) has no curve or signal.
        self.enabled = loop.updater is not None
        self._lock = threading.Lock()
        self._curve: list[dict[str, Any]] = []
        self._curve_kind: str | None = (
            ("eval" if self.eval_path else "progressive") if self.enabled else None
        )
        # (probabilities, gold labels) per answer; for NER, Examples (predicted, gold)
        self._recent: deque[Any] = deque(maxlen=curve_window)
        self._learnt: set[int] = set()
        # (docs, gold labels); for NER, (gold docs, None)
        self._eval_docs: tuple[list, list[list[str]] | None] | None = None
        self._stop_set_size = stop_set_size
        self._stopping = StabilizingPredictions(
            window=stop_window, threshold=stop_threshold
        )
        self._stop_keys: list[int] = []  # input keys of the stop set
        self._stop_docs: list | None = None
        self._stop_points: list[dict[str, Any]] = []
        self._stopped_at: dict[str, int] | None = None
        self._stop_version: int | None = None  # of the last predictions compared

    # --- life cycle --------------------------------------------------------------

    def start_curve(self, *, answers: int = 0) -> None:
        """Read the eval file and add the first point (the untrained model's).
        If the file can't be read, the curve is the progressive one."""
        if not self.enabled:
            return
        try:
            self._eval_docs = self._read_eval()
        finally:
            with self._lock:
                self._curve_kind = "eval" if self._eval_docs else "progressive"
                self._curve = self._saved_curve(self._curve_kind)
        if not any(p["version"] == self.loop.version for p in self._curve):
            self._add_eval_point(answers)

    def start_stopping(self, *, answers: int | None = None) -> None:
        """Take the signal and its history back from the checkpoint folder, or
        sample a new stop set; predict the stop set with the serving model
        unless the saved signal already holds this version's predictions."""
        pool = self.loop.pool
        if not self.enabled or not len(pool):
            return
        restored = self._saved_stopping()
        if restored is not None:
            signal, points, stopped_at, keys, saved_version = restored
            indices = [pool.index[key] for key in keys]
        else:
            indices = sample_stop_set(len(pool), size=self._stop_set_size, seed=0)
            keys = [int(pool.tasks[int(i)]["_input_key"]) for i in indices]
        docs = self.loop.docs(indices)  # tokenized once, reused after every update
        with self._lock:
            self._stop_keys = keys
            if restored is not None:
                self._stopping, self._stop_points, self._stopped_at = (
                    signal,
                    points,
                    stopped_at,
                )
                self._stop_version = saved_version
        self._stop_docs = docs
        if restored is None or saved_version != self.loop.version:
            # A new signal's first predictions; or, after answers learnt at the
            # restart, the next point of the history (kappa with the saved ones).
            self._add_stopping_point(
                self._saved_answers() if answers is None else answers
            )

    # --- each update ---------------------------------------------------------------

    def before_update(self, targets: Sequence[TextcatTarget]) -> None:
        """Without an eval file, score the new gold answers with the model that
        hasn't learnt them yet (the progressive curve's test data)."""
        if not self.enabled or self._eval_docs is not None:
            return
        new = [t for t in targets if t.is_gold and t.input_key not in self._learnt]
        self._learnt.update(t.input_key for t in targets)
        if not new:
            return
        if self.ner:  # entities predicted by the serving model vs. the gold spans
            served, _ = self.loop.updater.serving()
            gold = [
                reference_doc(served.nlp, t, incorrect_spans_key=None)[0] for t in new
            ]
            predicted = served.annotate(gold)
            self._recent.extend(
                Example(p, g) for p, g in zip(predicted, gold, strict=True)
            )
            return
        probs = serving_probs(self.loop.updater, [t.text for t in new])
        for row, target in zip(probs, new, strict=True):
            gold = [label for label, value in target.cats.items() if value >= 0.5]
            self._recent.append((row, gold))

    def after_update(self, *, answers: int) -> None:
        """Add the new version's curve point and stopping-signal point;
        ``answers`` is how many answers the team has given so far."""
        if not self.enabled:
            return
        if self._eval_docs is not None:
            self._add_eval_point(answers)
        else:
            self._add_progressive_point(answers)
        self._add_stopping_point(answers)

    def _add_stopping_point(self, answers: int) -> None:
        """Predict the stop set with the new version; kappa with the one before."""
        if self._stop_docs is None:
            return
        served, version = self.loop.updater.serving()
        try:
            labels = stop_set_labels(served, self._stop_docs)
        except Exception:  # learning goes on without the signal
            self._stop_docs = None
            raise
        with self._lock:
            kappa = self._stopping.update(labels)
            self._stop_version = version
            if kappa is None:
                return
            self._stop_points.append(
                {"version": version, "answers": answers, "kappa": round(kappa, 4)}
            )
            if self._stopped_at is None and self._stopping.stop_index is not None:
                self._stopped_at = {"version": version, "answers": answers}

    # --- the learning curve ----------------------------------------------------------

    def _read_eval(self) -> tuple[list, list[list[str]] | None] | None:
        if self.eval_path is None:
            return None
        if self.ner:
            return self._read_ner_eval()
        texts: list[str] = []
        gold: list[list[str]] = []
        for task in Source(self.eval_path):
            labels = gold_labels(task)
            if labels is not None:
                texts.append(task["text"])
                gold.append(labels)
        if not texts:
            return None
        served, _ = self.loop.updater.serving()
        return served.make_docs(texts), gold

    def _read_ner_eval(self) -> tuple[list, None] | None:
        """Gold Docs of the eval file's complete annotations: records with
        ``spans`` and no answer, or answered "accept" in a manual view."""
        tasks = [
            task
            for task in Source(self.eval_path)
            if isinstance(task.get("spans"), list)
            and task.get("answer", "accept") == "accept"
            and task.get("_view_id", "ner_manual") not in ("ner", "ner_teach")
        ]
        if not tasks:
            return None
        served, _ = self.loop.updater.serving()
        return gold_docs(served.nlp, tasks, labels=self.labels), None

    def _add_eval_point(self, answers: int) -> None:
        if not self._eval_docs:
            return
        docs, gold = self._eval_docs
        served, version = self.loop.updater.serving()
        if self.ner:
            score = served.evaluate(docs)["ents_f"]
            if score is not None:
                self._add_point(answers, version, float(score))
            return
        probs = served.predict(docs)
        score = textcat_score(probs, gold, self.labels, exclusive=self.exclusive)
        self._add_point(answers, version, score)

    def _add_progressive_point(self, answers: int) -> None:
        if len(self._recent) < MIN_CURVE_EXAMPLES:
            return
        if self.ner:
            score = get_ner_prf(list(self._recent))["ents_f"]
            if score is not None:
                self._add_point(answers, self.loop.version, float(score))
            return
        probs = np.vstack([row for row, _ in self._recent])
        gold = [labels for _, labels in self._recent]
        score = textcat_score(probs, gold, self.labels, exclusive=self.exclusive)
        self._add_point(answers, self.loop.version, score)

    def _add_point(self, answers: int, version: int, score: float) -> None:
        with self._lock:
            self._curve.append(
                {"answers": answers, "version": version, "score": round(score, 4)}
            )

    # --- what the app shows ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``curve`` (points with ``answers``, ``version``, ``score``),
        ``curve_kind`` ("eval", "progressive", or None when the loop has no
        curve), ``curve_metric`` ("macro F1" or "entity F1") and ``stopping``
        (kappa points, window, threshold, mean kappa, whether to stop, where it
        first said so; None without a curve)."""
        with self._lock:
            return {
                "curve": [dict(p) for p in self._curve],
                "curve_kind": self._curve_kind,
                "curve_metric": "entity F1" if self.ner else "macro F1",
                "stopping": self._stopping_stats(),
            }

    def _stopping_stats(self) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        signal = self._stopping
        return {
            "points": [dict(p) for p in self._stop_points],
            "window": signal.window,
            "threshold": signal.threshold,
            "mean_kappa": signal.mean_kappa,
            "should_stop": signal.should_stop,
            "stopped_at": dict(self._stopped_at) if self._stopped_at else None,
            "stop_set_size": len(self._stop_keys),
        }

    # --- in the checkpoint folder --------------------------------------------------------

    def _read_saved(self) -> dict[str, Any]:
        """What the checkpoint folder holds for this dataset ({} if nothing)."""
        if self._saved is None:
            saved = self.checkpoint.read_progress() if self.checkpoint else None
            self._saved = saved or {}
        return self._saved

    def _saved_answers(self) -> int:
        points = self._stop_points or self._curve
        return int(points[-1]["answers"]) if points else 0

    def _saved_curve(self, kind: str) -> list[dict[str, Any]]:
        """The curve's points of an earlier session, if it was the same kind of
        curve (on the same eval file, or progressive)."""
        saved = self._read_saved()
        if saved.get("curve_kind") != kind or saved.get("eval") != (
            str(self.eval_path) if self.eval_path else None
        ):
            return []
        try:
            return [
                {
                    "answers": int(p["answers"]),
                    "version": int(p["version"]),
                    "score": float(p["score"]),
                }
                for p in saved.get("curve", [])
            ]
        except (KeyError, TypeError, ValueError):
            return []

    def _saved_stopping(
        self,
    ) -> tuple[StabilizingPredictions, list[dict], dict | None, list[int], int] | None:
        """The signal and its history saved by an earlier session, if it had the
        same settings and its stop set is in the pool (read so far)."""
        state = self._read_saved().get("stopping")
        if not isinstance(state, dict):
            return None
        try:
            signal = StabilizingPredictions.from_dict(state["signal"])
            keys = [int(k) for k in state["stop_set"]]
            points = [dict(p) for p in state["points"]]
            stopped_at = state["stopped_at"]
            version = int(state["version"])
        except (KeyError, TypeError, ValueError):
            return None  # unreadable: start the signal again
        same = (
            signal.window == self._stopping.window
            and signal.threshold == self._stopping.threshold
            and keys
            and len(keys) <= self._stop_set_size
            and all(key in self.loop.pool.index for key in keys)
        )
        return (signal, points, stopped_at, keys, version) if same else None

    def save(self) -> None:
        """Save the curve and the stopping signal with its history in the
        checkpoint folder, so that a restart continues them."""
        if self.checkpoint is None or not self.enabled:
            return
        with self._lock:
            state: dict[str, Any] = {
                "version": self.loop.version,
                "curve_kind": self._curve_kind,
                "eval": str(self.eval_path) if self.eval_path else None,
                "curve": [dict(p) for p in self._curve],
            }
            if self._stop_docs is not None:
                state["stopping"] = {
                    "version": self._stop_version,
                    "stop_set": list(self._stop_keys),
                    "signal": self._stopping.to_dict(),
                    "points": [dict(p) for p in self._stop_points],
                    "stopped_at": self._stopped_at,
                }
            elif isinstance(self._read_saved().get("stopping"), dict):
                state["stopping"] = self._read_saved()["stopping"]  # not started yet
        self.checkpoint.write_progress(state)
