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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy_al.checkpoints import Checkpoints
from spacy_al.corpus import Source
from spacy_al.pool import Pool
from spacy_al.store import Store
from spacy_al.team.consensus import Consensus, review_answers
from spacy_al.updater import Committee, Updater

#: How long the source is read before the session opens (then in the background).
FOREGROUND_SECONDS = 1.0


@dataclass
class Session:
    """What :func:`open_session` opened: the parts a recipe builds its loop from."""

    dataset: str
    store: Store
    source: Source
    pool: Pool
    checkpoints: Checkpoints
    updater: Updater | Committee
    resumed: bool
    consensus: Consensus
    held: list[dict] = field(default_factory=list)
    learnt_now: int = 0

    def source_info(self) -> dict[str, Any]:
        """What the recipe reports about the source (for the app and the CLI)."""
        return {
            "path": str(self.source.path),
            "read": self.source.n_read,
            "skipped": self.source.n_skipped,
            "duplicates": self.source.n_duplicates,
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
) -> Session:
    """Open ``dataset`` for labelling the texts of ``source`` (see the module).

    ``meta`` is stored with a new dataset. ``load_updater(checkpoints)`` resumes
    the model (None when there is no readable checkpoint; pass None to always
    start anew, e.g. for a committee); ``new_updater(version)`` builds a new one
    whose version starts at ``version``. ``to_targets(answers, labels)`` turns
    stored answers into the model's training targets.
    """
    store = Store(db)
    try:
        # 1. The source: read and checked before the dataset exists.
        reader = Source(source, skip_invalid=skip_invalid)
        answered = (
            store.answered_input_keys(dataset) if store.has_dataset(dataset) else set()
        )
        pool = Pool(reader, answered=answered, foreground_seconds=FOREGROUND_SECONDS)
        # 2. The dataset row.
        store.create_dataset(dataset, meta=meta)
        # 3. The model: resumed, or new with the version going on.
        checkpoints = Checkpoints.for_db(db, dataset)
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
    )
