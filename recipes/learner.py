"""The learner process: select and learn for the servers of one dataset.

Several servers (``textcat.teach ... --learner remote``, or ``--learner process``
which starts this command beside the server) can serve one dataset from one
database; this command selects their questions and learns their answers, in a
process of its own, on this machine or another. It takes the options of the
recipe the servers serve, and talks to them only through the database and the
dataset's checkpoint folder.
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
from typing import Annotated, Any

import typer
from wasabi import msg

from spacy_al import registry
from spacy_al.errors import Errors
from spacy_al.registry import recipe
from spacy_al.serve.launcher import build_components, feed_settings
from spacy_al.serve.learner import open_learner
from spacy_al.serve.settings import configure_process
from spacy_al.stopping import DEFAULT_STOP_SET_SIZE, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from spacy_al.store import Store

from ._options import (
    DEFAULT_DB,
    Arch,
    Base,
    BatchSize,
    Dask,
    Dataset,
    Db,
    Eval,
    Multilabel,
    Overlap,
    SkipInvalid,
    SourceArg,
    StopSetSize,
    StopThreshold,
    StopWindow,
)
from ._options import TextcatLabels as Labels
from ._options import TextcatPatterns as Patterns
from ._options import TextcatStrategy as Strategy

# The learner's own options (the servers' recipe's are shared in ._options).
RecipeName = Annotated[
    str,
    typer.Option(
        "--recipe",
        help="The recipe the servers serve: textcat.teach or textcat.correct",
    ),
]
NoWait = Annotated[
    bool,
    typer.Option("--no-wait", help="Refuse, instead of waiting, if a learner runs"),
]
Nice = Annotated[
    int,
    typer.Option(
        "--nice",
        help="Lower this process's CPU priority by N (Unix nice): a learner on "
        "the servers' machine then leaves the cores to requests first",
    ),
]
#: The recipes a learner process can build, and the view each serves.
VIEWS = {"textcat.teach": "classification", "textcat.correct": "choice"}
RECIPES = tuple(VIEWS)


@recipe("learner")
def learner(
    dataset: Dataset,
    source: SourceArg,
    label: Labels,
    recipe_name: RecipeName = "textcat.teach",
    db: Db = DEFAULT_DB,
    base: Base = "blank:en",
    arch: Arch = "linear",
    multilabel: Multilabel = False,
    strategy: Strategy = "margin",
    batch_size: BatchSize = 10,
    patterns: Patterns = None,
    eval_path: Eval = None,
    skip_invalid: SkipInvalid = False,
    overlap: Overlap = 1,
    stop_window: StopWindow = DEFAULT_WINDOW,
    stop_threshold: StopThreshold = DEFAULT_THRESHOLD,
    stop_set_size: StopSetSize = DEFAULT_STOP_SET_SIZE,
    no_wait: NoWait = False,
    dask: Dask = None,
    nice: Nice = 0,
) -> None:
    """Select and learn for the servers of a dataset, in a process of its own.

    One learner per dataset: a second one waits until the first stops (or its
    heartbeat runs out), then takes over; --no-wait refuses instead. Stop it
    with Ctrl+C or SIGTERM: the model is checkpointed and the next learner may
    start at once. With --learner process a server starts its learner with
    --nice 10: on one machine, requests come first and learning takes what is
    left of the cores (as the one-process feed's threads yield to requests).
    """
    if nice:
        os.nice(nice)
    # 1. Only text classification datasets (NER serves in one process).
    if recipe_name not in RECIPES:
        raise ValueError(Errors.E1104.format(dataset=dataset, task=recipe_name))
    with Store(db) as store:
        meta = store.dataset_meta(dataset) if store.has_dataset(dataset) else {}
    if meta.get("task", "textcat") != "textcat":
        raise ValueError(Errors.E1104.format(dataset=dataset, task=meta["task"]))
    # The servers show the tasks the learner queues: the same view.
    view = VIEWS[recipe_name]
    if meta.get("view_id", view) != view:
        raise ValueError(
            Errors.E1107.format(
                dataset=dataset, view=meta["view_id"], recipe=recipe_name
            )
        )

    # 2. The servers' recipe, with the same options: its components are the
    #    learner's (the pool, the model resumed from the checkpoint, the loop).
    kwargs: dict[str, Any] = {
        "dataset": dataset,
        "source": source,
        "label": label,
        "db": db,
        "base": base,
        "arch": arch,
        "multilabel": multilabel,
        "strategy": strategy,
        "batch_size": batch_size,
        "eval_path": eval_path,
        "skip_invalid": skip_invalid,
        "overlap": overlap,
        "stop_window": stop_window,
        "stop_threshold": stop_threshold,
        "stop_set_size": stop_set_size,
    }
    if recipe_name == "textcat.teach":
        kwargs["patterns"] = patterns
    if dask is not None:
        func = registry.recipes.get(recipe_name)
        if "dask" not in inspect.signature(func).parameters:
            raise ValueError(Errors.E1106.format(err=f"{recipe_name} has no --dask"))
        kwargs["dask"] = dask

    # 3. The lock first (waiting for another learner), then the session.
    def waiting(holder: str) -> None:
        msg.info(f"Waiting for the learner of {dataset} to stop: {holder}")

    settings = feed_settings()  # the servers' lease time, the checkpoint interval
    configure_process()  # its writes hold the database's lock: no GIL waits in them
    learn = open_learner(
        lambda: build_components(recipe_name, kwargs),
        db=db,
        dataset=dataset,
        wait=not no_wait,
        waiting=waiting,
        **settings,
    )
    if learn is None:
        return

    # 4. Learn until Ctrl+C or SIGTERM; then checkpoint and free the lock.
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    msg.good(f"Learner of {dataset} is running ({learn.lock.learner}).")
    try:
        learn.run(stopped=stopped)
    except KeyboardInterrupt:
        pass
    finally:
        msg.info("Stopping the learner (saving the model)...")
        learn.close()
        # A --dask cluster the session opened (local:N: its worker processes)
        # stops with the learner.
        cluster = getattr(learn.loop.pool, "cluster", None)
        if cluster is not None:
            cluster.close()
        signal.signal(signal.SIGTERM, previous)
