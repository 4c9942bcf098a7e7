"""The settings of a labelling server or a learner process: those a recipe's
config sets, the feed's options checked, and the settings of the process.

A feed (:class:`~spacy_al.serve.feed.Feed`) and a learner
(:class:`~spacy_al.serve.learner.Learner`) made for the components a recipe
returned read the same options from its config (:func:`config_settings`), so
that the servers and the learner of one dataset agree on them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from spacy_al.errors import Errors
from spacy_al.protocols import Components, Loop

# The GIL switch interval of a serving process (seconds; CPython's default 0.005).
SWITCH_INTERVAL = 0.0005
# Where a feed's examples are selected and its model learns: in its own threads,
# or in a learner process (started beside the server, or running elsewhere).
LEARNERS = ("thread", "process", "remote")
# The stopping signal's options of the teach and correct recipes (--stop-window,
# --stop-threshold, --stop-set-size; else the stopping module's defaults).
STOP_SETTINGS = ("stop_window", "stop_threshold", "stop_set_size")


def configure_process() -> None:
    """Settings of a process that serves a feed or runs a learner; its entry
    point calls this once.

    Lowers the process's GIL switch interval to ``SWITCH_INTERVAL`` (never
    raises it): with the selector and trainer threads busy, a request thread
    otherwise waits up to CPython's default 5 ms each time it takes the GIL back
    after a database call, several times per answer. In a learner process the
    waits fall inside its write transactions, which hold SQLite's write lock:
    every server's answers would wait them out too. The setting is the
    process's, so the entry points make it, not the feed.
    """
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)


def config_settings(
    components: Components, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """``settings`` (a feed's or learner's keyword arguments) with what the
    recipe's config and ``components`` set for those not given: ``overlap``,
    ``preselect``, the stopping signal's options, ``checkpoint``, ``eval_path``,
    and ``close_store`` (the feed or learner closes the components' store)."""
    config = components.get("config") or {}
    out = dict(settings)
    out.setdefault("overlap", int(config.get("overlap") or 1))
    out.setdefault("preselect", bool(config.get("preselect", False)))
    for key in STOP_SETTINGS:
        if config.get(key) is not None:
            out.setdefault(key, config[key])
    out.setdefault("checkpoint", components.get("checkpoint"))
    out.setdefault("eval_path", components.get("eval"))
    out.setdefault("close_store", True)
    return out


def check_feed_options(
    loop: Loop,
    *,
    learner: str,
    overlap: Any,
    lease_seconds: Any,
    prefetch: Any,
    stop_set_size: Any,
) -> None:
    """Raise ValueError for a feed's option that can't be: a ``learner`` not
    one of ``LEARNERS``, a learner process for an NER ``loop`` or one without
    a store, or a count or time out of range."""
    if learner not in LEARNERS:
        raise ValueError(Errors.E1105.format(value=learner))
    if learner != "thread" and loop.task == "ner":
        raise ValueError(Errors.E1104.format(dataset=loop.dataset, task="NER"))
    if learner != "thread" and loop.store is None:
        raise ValueError(Errors.E1102)
    _require(
        isinstance(overlap, int) and overlap >= 1,
        "overlap",
        "an integer >= 1",
        overlap,
    )
    _require(lease_seconds > 0, "lease_seconds", "a number > 0", lease_seconds)
    _require(
        prefetch is None or prefetch >= 1,
        "prefetch",
        "None or an integer >= 1",
        prefetch,
    )
    _require(
        isinstance(stop_set_size, int) and stop_set_size >= 1,
        "stop_set_size",
        "an integer >= 1",
        stop_set_size,
    )


def _require(ok: bool, name: str, requirement: str, value: Any) -> None:
    if not ok:
        raise ValueError(
            Errors.E606.format(name=name, requirement=requirement, value=value)
        )
