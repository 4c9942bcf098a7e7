"""Open a labelling session once: the source, the store, the model, and resuming.

Every interactive recipe (textcat and NER alike) starts the same way; only the
model and the way answers become training targets differ, and the recipe passes
those in. :func:`open_session` does the steps in this order:

1. Read the source's first part (a bad file fails here, before anything is
   written); the rest goes on being read in the background.
2. Create the dataset row (its settings are kept from the first start).
3. The model: resumed from the dataset's checkpoint, or new. The version goes on
   after the last one served, even when the checkpoint is older.
4. Earlier answers of this dataset: remembered for replay, and learnt now when
   the checkpoint hadn't learnt them (a crash loses no answer). With overlap N,
   only the examples N annotators agree on (or a reviewer adjudicated) are
   learnt; the others are held back until they are.

With ``dask=`` (a scheduler's address, ``local:N``, or an open
:class:`~spacy_al.scale.cluster.Cluster`) the pool is an
:class:`~spacy_al.scale.pool.OffsetPool` indexed on the cluster: its texts stay
in the (JSONL) source, and a text-classification loop built on it scores it on
the cluster. Without it, dask is never imported.

With ``serve_only`` (a server whose learner process selects and learns) only
steps 1 and 2 run, and the pool of a JSONL source is a
:class:`~spacy_al.scale.keys.KeyPool` (input keys and done marks, no texts):
the server builds no model and learns nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy_al.checkpoints import Checkpoints
from spacy_al.corpus import Source
from spacy_al.errors import Errors
from spacy_al.pool import Pool
from spacy_al.store import Store
from spacy_al.team.consensus import Consensus, review_answers
from spacy_al.updater import Committee, Updater

if TYPE_CHECKING:
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.keys import KeyPool
    from spacy_al.scale.pool import OffsetPool

#: How long the source is read before the session opens (then in the background).
FOREGROUND_SECONDS = 1.0


@dataclass
class Session:
    """What :func:`open_session` opened: the parts a recipe builds its loop from."""

    dataset: str
    store: Store
    source: Source
    pool: Pool | OffsetPool | KeyPool
    checkpoints: Checkpoints
    #: None for a ``serve_only`` session (the learner process has the model).
    updater: Updater | Committee | None
    resumed: bool
    consensus: Consensus
    held: list[dict] = field(default_factory=list)
    learnt_now: int = 0
    #: The Dask cluster the pool is scored on (``dask=``), else None.
    cluster: Cluster | None = None

    def source_info(self) -> dict[str, Any]:
        """What the recipe reports about the source (for the app and the CLI)."""
        # A pool indexed here by byte ranges (on the cluster, or a KeyPool)
        # counted the records; the Source didn't read.
        counts = self.source if isinstance(self.pool, Pool) else self.pool
        return {
            "path": str(self.source.path),
            "read": counts.n_read,
            "skipped": counts.n_skipped,
            "duplicates": counts.n_duplicates,
        }


def open_session(
    dataset: str,
    source: str | Path,
    *,
    db: str,
    meta: dict[str, Any],
    new_updater: Callable[[int], Updater | Committee],
    load_updater: Callable[[Checkpoints], Updater | None] | None,
    to_targets: Callable[[list[dict], Sequence[str]], list[Any]],
    overlap: int = 1,
    skip_invalid: bool = False,
    dask: str | Cluster | None = None,
    serve_only: bool = False,
) -> Session:
    """Open ``dataset`` for labelling the texts of ``source`` (see the module).

    ``meta`` is stored with a new dataset. ``load_updater(checkpoints)`` resumes
    the model (None when there is no readable checkpoint; pass None to always
    start anew, e.g. for a committee); ``new_updater(version)`` builds a new one
    whose version starts at ``version``. ``to_targets(answers, labels)`` turns
    stored answers into the model's training targets. ``dask`` scores the pool
    on a Dask cluster (see the module; text classification only); a cluster
    opened here from an address is the session's ``cluster`` to close.
    ``serve_only``: a session of a server that follows a learner process (see
    the module; ``dask`` must be None).
    """
    store = Store(db)
    cluster = None
    try:
        # 1. The source: read and checked before the dataset exists.
        reader = Source(source, skip_invalid=skip_invalid)
        answered = (
            store.answered_input_keys(dataset) if store.has_dataset(dataset) else set()
        )
        if serve_only and reader.loader == "jsonl":
            from spacy_al.scale.keys import KeyPool

            pool = KeyPool.read(
                reader.path, answered=answered, skip_invalid=skip_invalid
            )
        elif dask is None or serve_only:
            pool = Pool(
                reader, answered=answered, foreground_seconds=FOREGROUND_SECONDS
            )
        else:
            cluster, pool = _pool_on_cluster(
                dask, reader, answered=answered, meta=meta, skip_invalid=skip_invalid
            )
        # 2. The dataset row.
        store.create_dataset(dataset, meta=meta)
        # 3. The model: resumed, or new with the version going on.
        checkpoints = Checkpoints.for_db(db, dataset)
        if serve_only:  # the learner process has the model and learns
            return Session(
                dataset=dataset,
                store=store,
                source=reader,
                pool=pool,
                checkpoints=checkpoints,
                updater=None,
                resumed=False,
                consensus=Consensus(overlap),
            )
        updater = load_updater(checkpoints) if load_updater is not None else None
        resumed = updater is not None
        if updater is None:
            updater = new_updater(checkpoints.read_version())
        # 4. Earlier answers: learnt now unless the checkpoint knew them; held
        #    back while their annotators disagree.
        consensus = Consensus(overlap)
        previous = store.get_answers(dataset) if answered else []
        split = consensus.split([*previous, *review_answers(store, dataset)])
        learnt_now = 0
        if previous:
            targets = to_targets(split.learn, updater.labels)
            learnt_now = checkpoints.learn_stored_answers(
                updater, targets, resumed=resumed
            )
    except BaseException:
        store.close()
        if cluster is not None and not _is_cluster(dask):
            cluster.close()
        raise
    return Session(
        dataset=dataset,
        store=store,
        source=reader,
        pool=pool,
        checkpoints=checkpoints,
        updater=updater,
        resumed=resumed,
        consensus=consensus,
        held=list(split.held),
        learnt_now=learnt_now,
        cluster=cluster,
    )


def _is_cluster(dask: object) -> bool:
    return dask is not None and not isinstance(dask, str)


def _pool_on_cluster(
    dask: str | Cluster,
    reader: Source,
    *,
    answered: set[int],
    meta: dict[str, Any],
    skip_invalid: bool,
) -> tuple[Cluster, OffsetPool]:
    """The cluster ``dask`` names (or is) and the source indexed on it."""
    from spacy_al.scale.cluster import Cluster
    from spacy_al.scale.pool import OffsetPool

    if meta.get("task") == "ner":
        raise ValueError(Errors.E1207.format(what="ner recipes"))
    if reader.loader != "jsonl":
        raise ValueError(Errors.E1203.format(path=reader.path, loader=reader.loader))
    cluster = dask if isinstance(dask, Cluster) else Cluster.connect(dask)
    try:
        pool = OffsetPool.build(
            reader.path, cluster=cluster, answered=answered, skip_invalid=skip_invalid
        )
    except BaseException:
        if cluster is not dask:
            cluster.close()
        raise
    return cluster, pool
