"""Replay gold labels as the annotator: how many labels does each strategy need?

For every seed and strategy, a fresh model starts from the same random seed set;
then, batch by batch, the loop (the same one the app drives) picks questions, an
oracle answers them from the gold labels, the model updates online, and the
serving model is scored on the evaluation set. The same run trains a model on all
of TRAIN to convergence (early stopping on a dev slice of TRAIN): the full-data
score, which the target is a fraction of.

Each run also follows the stopping signal the app shows (stabilizing
predictions, :mod:`spacy_al.stopping`): after every update the serving model
predicts a fixed stop set of the pool, and the results say where the signal
would have stopped.

``runner`` holds what every task shares; ``textcat`` and ``ner`` the runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from spacy_al.errors import Errors
from spacy_al.simulate.ner import simulate_ner
from spacy_al.simulate.runner import Progress, SimulationConfig, plot_curves
from spacy_al.simulate.textcat import simulate_textcat

if TYPE_CHECKING:
    from spacy_al.scale.cluster import Cluster

__all__ = ["SimulationConfig", "plot_curves", "simulate"]


def simulate(
    train_records: Sequence[dict],
    eval_records: Sequence[dict],
    config: SimulationConfig,
    *,
    on_round: Progress | None = None,
    on_job_done: Callable[[str, int], None] | None = None,
    cluster: Cluster | None = None,
) -> dict:
    """Run every strategy of ``config`` from every seed; return the results.

    With ``config.dask`` (or an open ``cluster``) text classification scores
    its pool on Dask, with the same picks; NER refuses it.
    """
    if config.task == "ner":
        if config.dask or cluster is not None:
            raise ValueError(Errors.E1207.format(what="simulate ner"))
        return simulate_ner(
            train_records,
            eval_records,
            config,
            on_round=on_round,
            on_job_done=on_job_done,
        )
    return simulate_textcat(
        train_records,
        eval_records,
        config,
        on_round=on_round,
        on_job_done=on_job_done,
        cluster=cluster,
    )
