"""A loop with no model: what the feed asks of a loop that learns nothing.

Two loops serve without learning: the review loop (a reviewer's answers are
final; nothing is learnt from them here) and a server that follows a learner
process (the learner has the model). As the ``spacy_al.protocols.Loop``
protocol says of such a loop, its ``updater`` is None, its ``version`` 0,
nothing is pending, waiting or in conflict, and there is nothing to learn,
hold or adjudicate. :class:`ModellessLoop` holds that once, with the fields
the feed reads (``store``, ``dataset``, ``labels``, ``exclusive``, ``task``,
``batch_size``, ``consensus``); a subclass sets its ``pool`` and says how it
selects and answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from spacy_al.team.consensus import Consensus

if TYPE_CHECKING:
    from spacy_al.store import Store


class ModellessLoop:
    """The model-free part of a loop (see the module)."""

    def __init__(
        self,
        *,
        store: Store,
        dataset: str,
        labels: Sequence[str],
        exclusive: bool,
        task: str = "textcat",
        batch_size: int = 10,
    ) -> None:
        self.store: Store = store
        self.dataset: str = dataset
        self.labels: tuple[str, ...] = tuple(labels)
        self.exclusive = exclusive
        self.task = task
        self.batch_size = batch_size
        self.consensus = Consensus()
        self.updater = None  # no model here

    @property
    def version(self) -> int:
        """0: no model here."""
        return 0

    @property
    def trained(self) -> bool:
        """False: there is no model."""
        return False

    @property
    def n_pending(self) -> int:
        """0: answers are stored, never queued for learning here."""
        return 0

    @property
    def ready_to_learn(self) -> bool:
        return False

    @property
    def conflicts(self) -> dict[int, tuple[dict, ...]]:
        """None: nothing waits here for annotators to agree."""
        return {}

    @property
    def n_waiting(self) -> int:
        return 0

    def pop_targets(self) -> list:
        return []

    def adjudicate(self, reviews: Iterable[dict]) -> int:
        """Nothing is learnt here: 0 queued."""
        return 0
