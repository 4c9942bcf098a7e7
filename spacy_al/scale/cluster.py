"""The Dask cluster a learner scores its pool on: connect, map, ship a model.

``--dask ADDRESS`` connects a ``dask.distributed.Client`` to a running
scheduler (``dask scheduler`` on one machine, ``dask worker ADDRESS`` on each
of the others; every worker needs spacy-al installed and the source file at the
same path). ``--dask local:N`` starts a ``LocalCluster`` of N single-threaded
worker processes on this machine (a worker process per core: scoring holds the
GIL). dask is imported here only, and only when a cluster is opened, so a
session without ``--dask`` never needs it.
"""

from __future__ import annotations

import logging
import sys
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from spacy_al.errors import Errors

#: Seconds to wait for a remote scheduler before giving up.
CONNECT_TIMEOUT = 20


def parse_address(value: str) -> tuple[str, int | None]:
    """``("local", N)`` for ``local:N``; ``(address, None)`` for a scheduler."""
    value = (value or "").strip()
    if value.startswith("local"):
        _, _, n = value.partition(":")
        if value == "local" or not n.isdigit() or int(n) < 1:
            raise ValueError(Errors.E1200.format(value=value))
        return "local", int(n)
    if not value or " " in value:
        raise ValueError(Errors.E1200.format(value=value))
    return value, None


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """While local workers start, hide a ``__main__`` known only by its path.

    Worker processes are spawned, and multiprocessing runs the parent's
    ``__main__`` again in each one from its file (as ``__mp_main__``). A
    Streamlit app replaces ``__main__`` with its script (so does its AppTest):
    run again in a worker, the app would start serving there, or fail. The
    workers only run spacy_al's importable functions, so they need nothing of
    the parent's ``__main__``; one run as a module (``python -m ...``) is
    imported by name and left as it is.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class Cluster:
    """A client of a Dask scheduler (and the local cluster it started, if any).

    ``map`` runs a function over items on the workers and returns the results
    in order; ``ship`` sends a served model to every worker once per model
    version. Close it (or use it as a context manager) to stop a local cluster.
    """

    def __init__(self, client: Any, *, address: str, local: Any = None) -> None:
        self.client = client
        self.address = address
        self._local = local
        # model name → (version, the scattered payload, its name on the workers)
        self._shipped: dict[str, tuple[int, Any, str]] = {}

    @classmethod
    def connect(cls, address: str) -> Cluster:
        """Connect to ``address`` (a scheduler) or start ``local:N``."""
        where, n_workers = parse_address(address)
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as e:
            raise ImportError(Errors.E1201.format(err=e)) from e
        if n_workers is not None:
            with _main_not_rerun():
                local = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    # None doesn't turn the dashboard off (dask/distributed#8136):
                    # a free port, so a busy 8787 raises no warning.
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
            return cls(Client(local), address=address, local=local)
        try:
            client = Client(where, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(Errors.E1202.format(address=where, err=e)) from e
        return cls(client, address=address)

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **kwargs: Any) -> list:
        """``[fn(item, **kwargs) for item in items]``, run on the workers."""
        futures = [self.client.submit(fn, item, pure=False, **kwargs) for item in items]
        return self.client.gather(futures)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A future of ``fn(*args, **kwargs)`` on a worker (futures in the
        arguments are their values there)."""
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def gather(self, futures: Sequence[Any]) -> list:
        return self.client.gather(list(futures))

    def ship(
        self, name: str, version: int, payload: Callable[[], bytes]
    ) -> tuple[Any, str]:
        """The model ``name`` at ``version`` on every worker: (a future of its
        bytes, the key a worker caches the loaded model under).

        ``payload()`` is called, and its bytes sent to every worker, only when
        the version changes; the previous version's bytes are released.
        """
        shipped = self._shipped.get(name)
        if shipped is not None and shipped[0] == version:
            return shipped[1], shipped[2]
        future = self.client.scatter(payload(), broadcast=True, hash=False)
        key = f"{name}:{version}:{uuid.uuid4().hex[:8]}"
        self._shipped[name] = (version, future, key)
        return future, key

    def new_name(self) -> str:
        """A name for one loop's models (versions restart with each loop)."""
        return uuid.uuid4().hex

    def close(self) -> None:
        self._shipped.clear()
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cluster(address: str | None) -> Cluster | None:
    """The cluster ``--dask`` names, or None without it (dask isn't imported)."""
    if not address:
        return None
    return Cluster.connect(address)
