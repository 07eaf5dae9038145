"""Which Dask cluster runs the fits: a ``client`` argument resolved once, in one place."""

from __future__ import annotations

import contextlib

__all__ = ["dask_client"]

_INSTALL = "Dask is an optional dependency of skgpx.parallel: pip install 'skgpx[dask]' (dask[distributed])."


def _distributed():
    try:
        import distributed
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError(_INSTALL) from err
    return distributed


@contextlib.contextmanager
def dask_client(client=None, *, n_workers=None, threads_per_worker=1):
    """A ``distributed.Client`` for the duration of a ``with`` block.

    **Arguments:**

    - ``client``: ``None`` starts a ``LocalCluster`` of processes (closed on exit);
      a scheduler address string (``"tcp://10.0.0.5:8786"``) connects to a running cluster
      (the connection is closed on exit, the cluster is left running); a
      ``distributed.Client`` is used as is (and left open).
    - ``n_workers``, ``threads_per_worker``: of the ``LocalCluster`` (``None``: Dask's choice
      of workers; one thread each, as each fit already uses the BLAS threads it is given).

    Inside the block, scikit-learn's joblib parallelism can run on the same cluster with
    ``joblib.parallel_config(backend="dask")`` (``GridSearchCV``, ``cross_val_score``).
    """
    distributed = _distributed()
    if isinstance(client, distributed.Client):
        yield client
        return
    if client is None:
        with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as own:
            yield own
        return
    if isinstance(client, str):
        with distributed.Client(client) as own:
            yield own
        return
    raise TypeError(
        f"`client` must be None (a LocalCluster), a scheduler address string or a distributed.Client, "
        f"got {type(client).__name__}: {client!r}."
    )
